//! A desk phone for owners' calls: a raw SIP dialog over UDP and an RTP
//! socket that sends and listens at once, as a phone does.
//!
//! While the call is up a thread sends one packet every 20 ms on a wall
//! clock: the phone's (silent) microphone, or speech the test hands it,
//! and key presses as RFC 4733 telephone-events (two updates and three end
//! packets each, RFC 4733 §2.5.1.4), or, for a phone that does not offer
//! telephone-event, as SIP INFO (`application/dtmf-relay` or
//! `application/dtmf`). Another thread timestamps every packet vmesh sends
//! as it arrives.
//!
//! What the phone heard is decoded without vmesh's code: G.711 μ-law by
//! table, Opus by writing the payloads into an Ogg Opus file (RFC 7845,
//! with the `ogg` crate) that FFmpeg decodes with its own Opus decoder.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::audio::ulaw_to_linear;
use super::dialog::Dialog;
use super::media::{sdp_audio_addr, sdp_payload_types};
use super::raw_sip::{unique_token, SipRequest, SipResponse, SipUdp};

/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// How long an answer may take.
const ANSWER: Duration = Duration::from_secs(5);
/// μ-law digital silence.
const ULAW_SILENCE: u8 = 0xFF;
/// Our payload types: PCMU is static; Opus and telephone-event dynamic.
const PCMU_PT: u8 = 0;
const OPUS_PT: u8 = 111;
const EVENT_PT: u8 = 101;
/// Opus packets of encoded silence are a few octets; speech takes tens.
const OPUS_SILENT_MAX: usize = 12;

/// The codec the phone offers (only that one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneCodec {
    /// G.711 μ-law, 8 kHz.
    Pcmu,
    /// Opus (RFC 7587), sent at 16 kHz.
    Opus,
}

impl PhoneCodec {
    fn payload_type(self) -> u8 {
        match self {
            PhoneCodec::Pcmu => PCMU_PT,
            PhoneCodec::Opus => OPUS_PT,
        }
    }

    /// RTP timestamp units per 20 ms.
    fn step(self) -> u32 {
        match self {
            PhoneCodec::Pcmu => 160,
            PhoneCodec::Opus => 960,
        }
    }
}

/// How the phone sends keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// RFC 4733 telephone-events in the RTP stream.
    Rfc4733,
    /// SIP INFO `application/dtmf-relay` (no telephone-event offered).
    InfoRelay,
    /// SIP INFO `application/dtmf` (no telephone-event offered).
    InfoDtmf,
}

/// Who calls, and how.
#[derive(Clone, Debug)]
pub struct PhoneSetup {
    /// The Request-URI user: a pilot (`*97`) or a mailbox.
    pub user: String,
    /// The From user.
    pub from: String,
    /// More header lines (P-Asserted-Identity, Diversion).
    pub headers: Vec<String>,
    /// The codec offered.
    pub codec: PhoneCodec,
    /// How keys are sent.
    pub keys: Keys,
    /// The phone's address.
    pub ip: Ipv4Addr,
}

impl PhoneSetup {
    /// A μ-law phone with RFC 4733 keys, calling `user` from `from`.
    pub fn new(ip: Ipv4Addr, user: &str, from: &str) -> PhoneSetup {
        PhoneSetup {
            user: user.into(),
            from: from.into(),
            headers: Vec::new(),
            codec: PhoneCodec::Pcmu,
            keys: Keys::Rfc4733,
            ip,
        }
    }
}

/// One RTP packet vmesh sent, as it arrived.
#[derive(Clone, Debug)]
pub struct Packet {
    /// When it arrived.
    pub at: Instant,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// What the sending thread is asked to do.
enum Send {
    /// A key as telephone-events; the instant its first packet left.
    Key(char, mpsc::Sender<Instant>),
    /// These payloads, one per 20 ms; the instant the last left.
    Audio(Vec<Vec<u8>>, mpsc::Sender<Instant>),
}

/// A call in progress.
pub struct Phone {
    udp: SipUdp,
    dialog: Dialog,
    setup: PhoneSetup,
    cseq: u32,
    /// When the 200 arrived.
    pub answered_at: Instant,
    commands: mpsc::Sender<Send>,
    packets: Arc<Mutex<Vec<Packet>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Phone {
    /// Calls vmesh at `server`; panics unless it answers 200.
    pub fn call(server: SocketAddr, setup: PhoneSetup) -> Phone {
        match Phone::try_call(server, setup) {
            Ok(phone) => phone,
            Err(response) => panic!("the call was refused:\n{}", response.raw),
        }
    }

    /// Calls vmesh at `server`; the final response when it is not 200.
    pub fn try_call(server: SocketAddr, setup: PhoneSetup) -> Result<Phone, SipResponse> {
        let udp = SipUdp::bind(setup.ip, server);
        let rtp = UdpSocket::bind((setup.ip, 0)).expect("bind the phone's RTP socket");
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = listen(&rtp, setup.codec.payload_type(), &packets, &stop);
        let offer = offer(rtp.local_addr().expect("RTP address"), &setup);
        let text = invite(server, udp.local_addr(), &setup, &offer);
        let response = udp
            .transact(&text, ANSWER)
            .unwrap_or_else(|| panic!("no final response to the INVITE:\n{text}"));
        let answered_at = Instant::now();
        if response.status != 200 {
            stop.store(true, Ordering::Relaxed);
            listener.join().ok();
            return Err(response);
        }
        assert_eq!(
            sdp_payload_types(&response.body).first(),
            Some(&setup.codec.payload_type()),
            "the answer takes our codec: {}",
            response.body
        );
        let media = sdp_audio_addr(&response.body).expect("an audio address in the answer");
        let dialog = Dialog::from_2xx(&response, udp.local_addr(), "UDP");
        udp.send(dialog.ack(None).as_bytes());
        let (commands, queue) = mpsc::channel();
        let sender = speak(rtp, media, setup.codec, queue, stop.clone());
        Ok(Phone {
            udp,
            cseq: dialog.invite_cseq + 1,
            dialog,
            setup,
            answered_at,
            commands,
            packets,
            stop,
            threads: vec![listener, sender],
        })
    }

    /// Sends later keys another way (an INFO body type; RFC 4733 only if
    /// it was offered).
    pub fn set_keys(&mut self, keys: Keys) {
        assert!(
            keys != Keys::Rfc4733 || self.setup.keys == Keys::Rfc4733,
            "telephone-event was not offered"
        );
        self.setup.keys = keys;
    }

    /// Presses `keys` one after the other; returns when each was sent (its
    /// first telephone-event packet, or its INFO).
    pub fn press(&mut self, keys: &str) -> Vec<Instant> {
        keys.chars().map(|key| self.key(key)).collect()
    }

    fn key(&mut self, key: char) -> Instant {
        let (content_type, body) = match self.setup.keys {
            Keys::Rfc4733 => {
                let (done, sent) = mpsc::channel();
                self.commands
                    .send(Send::Key(key, done))
                    .expect("the phone's sender runs");
                return sent.recv().expect("the key was sent");
            }
            Keys::InfoRelay => (
                "application/dtmf-relay",
                format!("Signal={key}\r\nDuration=160\r\n"),
            ),
            Keys::InfoDtmf => ("application/dtmf", key.to_string()),
        };
        let text = self.dialog.request(
            "INFO",
            self.cseq,
            &[&format!("Content-Type: {content_type}")],
            &body,
        );
        self.cseq += 1;
        let at = Instant::now();
        let response = self
            .udp
            .transact(&text, ANSWER)
            .unwrap_or_else(|| panic!("no answer to INFO {key}"));
        assert_eq!(response.status, 200, "INFO {key}: {}", response.raw);
        // A key takes about as long as a telephone-event.
        std::thread::sleep(Duration::from_millis(100));
        at
    }

    /// Sends μ-law (or Opus) payloads, one per 20 ms, instead of silence;
    /// returns when the last left.
    pub fn speak(&self, payloads: Vec<Vec<u8>>) -> Instant {
        let (done, sent) = mpsc::channel();
        self.commands
            .send(Send::Audio(payloads, done))
            .expect("the phone's sender runs");
        sent.recv().expect("the audio was sent")
    }

    /// Everything heard so far.
    pub fn packets(&self) -> Vec<Packet> {
        self.packets.lock().unwrap().clone()
    }

    /// Whether a packet carries sound (not vmesh's encoded silence).
    pub fn is_sound(&self, packet: &Packet) -> bool {
        match self.setup.codec {
            PhoneCodec::Pcmu => packet
                .payload
                .iter()
                .any(|&b| b != ULAW_SILENCE && b != 0x7F),
            PhoneCodec::Opus => packet.payload.len() > OPUS_SILENT_MAX,
        }
    }

    /// The arrival of the first packet of sound after `after`; panics
    /// after `timeout`.
    pub fn wait_sound(&self, after: Instant, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self
                .packets()
                .iter()
                .find(|p| p.at > after && self.is_sound(p))
            {
                return p.at;
            }
            assert!(
                Instant::now() < deadline,
                "no sound from vmesh within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// When vmesh fell silent after `after` for at least `quiet` (the
    /// arrival of the first silent packet of that run); panics after
    /// `timeout`.
    pub fn wait_quiet(&self, after: Instant, quiet: Duration, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        let run = (quiet.as_millis() / PTIME.as_millis()) as usize;
        loop {
            let packets = self.packets();
            let mut silent = 0;
            for (i, p) in packets.iter().enumerate().filter(|(_, p)| p.at > after) {
                if self.is_sound(p) {
                    silent = 0;
                    continue;
                }
                silent += 1;
                if silent >= run {
                    return packets[i + 1 - run].at;
                }
            }
            assert!(
                Instant::now() < deadline,
                "vmesh did not fall silent for {quiet:?} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the phone heard so far, decoded at `rate` (8000 for μ-law;
    /// any rate for Opus, decoded by FFmpeg in `dir`).
    pub fn heard(&self, rate: u32, dir: &Path) -> Heard {
        let packets = self.packets();
        let pcm = match self.setup.codec {
            PhoneCodec::Pcmu => {
                assert_eq!(rate, 8000, "μ-law is heard at 8 kHz");
                packets
                    .iter()
                    .flat_map(|p| p.payload.iter().map(|&b| ulaw_to_linear(b)))
                    .collect()
            }
            PhoneCodec::Opus => decode_opus(&packets, rate, dir),
        };
        Heard {
            rate,
            times: packets.iter().map(|p| p.at).collect(),
            pcm,
        }
    }

    /// Waits for vmesh's BYE and answers it; false if none came.
    pub fn wait_bye(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(request) = self.udp.recv_request(left) else {
                return false;
            };
            self.udp.send(request.response(200, "OK").as_bytes());
            if request.method == "BYE" {
                return true;
            }
        }
        false
    }

    /// A request vmesh sent in the dialog, if one comes within `timeout`
    /// (answered 200).
    pub fn recv_request(&self, timeout: Duration) -> Option<SipRequest> {
        let request = self.udp.recv_request(timeout)?;
        self.udp.send(request.response(200, "OK").as_bytes());
        Some(request)
    }

    /// Hangs up (BYE) and checks the 200.
    pub fn hang_up(mut self) {
        let bye = self.dialog.request("BYE", self.cseq, &[], "");
        self.cseq += 1;
        let response = self
            .udp
            .transact(&bye, ANSWER)
            .expect("a final response to BYE");
        assert_eq!(response.status, 200, "{}", response.raw);
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().ok();
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the phone heard: PCM at `rate`, packet by packet (each 20 ms).
pub struct Heard {
    /// The rate.
    pub rate: u32,
    /// The arrival of each packet.
    pub times: Vec<Instant>,
    /// The audio.
    pub pcm: Vec<i16>,
}

impl Heard {
    /// Samples per packet.
    pub fn frame(&self) -> usize {
        (self.rate / 50) as usize
    }

    /// The sample index where the first packet arriving after `at` begins.
    pub fn index_at(&self, at: Instant) -> usize {
        let packet = self
            .times
            .iter()
            .position(|&t| t > at)
            .unwrap_or(self.times.len());
        (packet * self.frame()).min(self.pcm.len())
    }

    /// When the packet holding sample `index` arrived.
    pub fn time_of(&self, index: usize) -> Instant {
        let packet = (index / self.frame()).min(self.times.len().saturating_sub(1));
        self.times[packet]
    }

    /// The audio from `from` for `len` samples (less at the end).
    pub fn span(&self, from: usize, len: usize) -> &[i16] {
        let from = from.min(self.pcm.len());
        &self.pcm[from..(from + len).min(self.pcm.len())]
    }
}

/// The INVITE: to `user` at the server, from `from` at the phone.
fn invite(server: SocketAddr, local: SocketAddr, setup: &PhoneSetup, sdp: &str) -> String {
    let token = unique_token();
    let mut text = format!(
        "INVITE sip:{user}@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@{ip}>;tag=p{token}\r\n\
         To: <sip:{user}@{server}>\r\n\
         Call-ID: {token}@{ip}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{from}@{local}>\r\n\
         Content-Type: application/sdp\r\n",
        user = setup.user,
        from = setup.from,
        ip = local.ip(),
    );
    for header in &setup.headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
    text
}

/// Our SDP offer: the one codec, telephone-event unless keys go by INFO.
fn offer(rtp: SocketAddr, setup: &PhoneSetup) -> String {
    let (codec, clock) = match setup.codec {
        PhoneCodec::Pcmu => ("PCMU/8000", 8000),
        PhoneCodec::Opus => ("opus/48000/2", 48_000),
    };
    let pt = setup.codec.payload_type();
    let mut types = vec![pt.to_string()];
    let mut attributes = vec![format!("a=rtpmap:{pt} {codec}")];
    if setup.keys == Keys::Rfc4733 {
        types.push(EVENT_PT.to_string());
        attributes.push(format!("a=rtpmap:{EVENT_PT} telephone-event/{clock}"));
        attributes.push(format!("a=fmtp:{EVENT_PT} 0-16"));
    }
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {types}\r\n{attributes}\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
        types = types.join(" "),
        attributes = attributes.join("\r\n"),
    )
}

/// The thread that timestamps what vmesh sends.
fn listen(
    socket: &UdpSocket,
    payload_type: u8,
    packets: &Arc<Mutex<Vec<Packet>>>,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let socket = socket.try_clone().expect("clone the RTP socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .expect("RTP read timeout");
    let (packets, stop) = (packets.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            match socket.recv_from(&mut buf) {
                Ok((n, _)) if n > 12 && buf[1] & 0x7F == payload_type => {
                    let at = Instant::now();
                    let csrc = usize::from(buf[0] & 0x0F) * 4;
                    let start = 12 + csrc;
                    if n > start {
                        packets.lock().unwrap().push(Packet {
                            at,
                            payload: buf[start..n].to_vec(),
                        });
                    }
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::ConnectionRefused
                    ) => {}
                Err(e) => panic!("receive RTP: {e}"),
            }
        }
    })
}

/// The thread that sends the phone's RTP: silence, speech or keys, one
/// packet per 20 ms on a wall clock.
fn speak(
    socket: UdpSocket,
    dest: SocketAddr,
    codec: PhoneCodec,
    queue: mpsc::Receiver<Send>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let silence = match codec {
            PhoneCodec::Pcmu => vec![ULAW_SILENCE; 160],
            PhoneCodec::Opus => opus_frames(&[0; 320]).remove(0),
        };
        let mut rtp = RtpOut {
            socket,
            dest,
            ssrc: 0x0FAC_E000 | u32::from(rand_u16()),
            seq: rand_u16(),
            ts: u32::from(rand_u16()) << 8,
            step: codec.step(),
            payload_type: codec.payload_type(),
            first: true,
        };
        let start = Instant::now();
        let mut tick = 0u32;
        let mut next = || {
            tick += 1;
            let due = start + PTIME * tick;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        };
        while !stop.load(Ordering::Relaxed) {
            match queue.try_recv() {
                Ok(Send::Key(key, done)) => {
                    let event = match key {
                        '0'..='9' => key as u8 - b'0',
                        '*' => 10,
                        '#' => 11,
                        other => panic!("no such key {other}"),
                    };
                    let ts = rtp.ts;
                    for i in 0..5u32 {
                        let end = i >= 2;
                        let duration = (rtp.step * (i.min(2) + 1)) as u16;
                        let mut payload = vec![event, if end { 0x80 } else { 0 } | 10];
                        payload.extend_from_slice(&duration.to_be_bytes());
                        rtp.send(EVENT_PT, i == 0, ts, &payload);
                        if i == 0 {
                            done.send(Instant::now()).ok();
                        }
                        next();
                    }
                    rtp.ts = ts.wrapping_add(rtp.step * 5);
                }
                Ok(Send::Audio(payloads, done)) => {
                    for payload in &payloads {
                        rtp.audio(payload);
                        next();
                    }
                    done.send(Instant::now()).ok();
                }
                Err(_) => {
                    rtp.audio(&silence);
                    next();
                }
            }
        }
    })
}

struct RtpOut {
    socket: UdpSocket,
    dest: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    step: u32,
    payload_type: u8,
    first: bool,
}

impl RtpOut {
    fn send(&mut self, payload_type: u8, marker: bool, ts: u32, payload: &[u8]) {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80);
        packet.push(if marker { 0x80 } else { 0 } | payload_type);
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&ts.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        // vmesh may have hung up: a refused send is not an error here.
        self.socket.send_to(&packet, self.dest).ok();
        self.seq = self.seq.wrapping_add(1);
    }

    fn audio(&mut self, payload: &[u8]) {
        let marker = std::mem::take(&mut self.first);
        self.send(self.payload_type, marker, self.ts, payload);
        self.ts = self.ts.wrapping_add(self.step);
    }
}

fn rand_u16() -> u16 {
    rand::random()
}

/// μ-law payloads of 20 ms from a G.711 WAV's data.
pub fn ulaw_frames(data: &[u8]) -> Vec<Vec<u8>> {
    data.chunks_exact(160).map(<[u8]>::to_vec).collect()
}

/// Opus payloads of 20 ms from 16 kHz PCM, encoded with libopus (what a
/// phone sends; only what vmesh sends is decoded independently).
pub fn opus_frames(pcm16k: &[i16]) -> Vec<Vec<u8>> {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Channels, SampleRate};
    let encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip)
        .expect("an Opus encoder");
    pcm16k
        .chunks(320)
        .map(|chunk| {
            let mut frame = chunk.to_vec();
            frame.resize(320, 0);
            let mut out = vec![0u8; 1500];
            let n = encoder.encode(&frame, &mut out).expect("Opus encodes");
            out.truncate(n);
            out
        })
        .collect()
}

/// Decodes Opus payloads (20 ms each, in order) at `rate` with FFmpeg:
/// written as an Ogg Opus file first (RFC 7845: OpusHead, OpusTags, one
/// packet per 20 ms with its granule position at 48 kHz).
pub fn decode_opus(packets: &[Packet], rate: u32, dir: &Path) -> Vec<i16> {
    let ogg = dir.join(format!("heard-{}.opus", unique_token()));
    {
        let file = std::fs::File::create(&ogg).expect("create the Ogg file");
        let mut writer = ogg::PacketWriter::new(std::io::BufWriter::new(file));
        let serial = 0x5eed;
        let mut head = b"OpusHead".to_vec();
        head.push(1); // version
        head.push(1); // channels
        head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
        head.extend_from_slice(&16_000u32.to_le_bytes()); // input rate (informational)
        head.extend_from_slice(&0i16.to_le_bytes()); // gain
        head.push(0); // mapping family
        writer
            .write_packet(head, serial, ogg::PacketWriteEndInfo::EndPage, 0)
            .expect("write OpusHead");
        let mut tags = b"OpusTags".to_vec();
        let vendor = b"vmesh-test";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer
            .write_packet(tags, serial, ogg::PacketWriteEndInfo::EndPage, 0)
            .expect("write OpusTags");
        for (i, packet) in packets.iter().enumerate() {
            let last = i + 1 == packets.len();
            let end = if last {
                ogg::PacketWriteEndInfo::EndStream
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            writer
                .write_packet(packet.payload.clone(), serial, end, 960 * (i as u64 + 1))
                .expect("write an Opus packet");
        }
    }
    let wav = ogg.with_extension("wav");
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&ogg)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-c:a", "pcm_s16le"])
        .arg(&wav)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg cannot run ({e}); scripts/test.sh installs it"));
    assert!(
        output.status.success(),
        "ffmpeg cannot decode what the phone heard: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (got_rate, pcm) = super::audio::read_wav_mono_i16(&wav);
    assert_eq!(got_rate, rate);
    std::fs::remove_file(&ogg).ok();
    std::fs::remove_file(&wav).ok();
    pcm
}

/// A clip of vmesh's English prompts as a listener expects it: the file
/// from `sip-profiles/prompts/en/` decoded by FFmpeg at `rate`. `pause`
/// stands for the menu's 300 ms of silence between sentences.
pub fn clip(name: &str, rate: u32) -> Vec<i16> {
    if name == "pause" {
        return vec![0; (rate * 3 / 10) as usize];
    }
    let path = super::repo_root()
        .join("sip-profiles/prompts/en")
        .join(format!("{name}.opus"));
    ffmpeg_pcm(&path, rate)
}

/// Any audio file FFmpeg reads, as mono 16-bit PCM at `rate`: decoded by
/// FFmpeg, never by vmesh.
pub fn ffmpeg_pcm(path: &Path, rate: u32) -> Vec<i16> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-f", "s16le", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg cannot run ({e}); scripts/test.sh installs it"));
    assert!(
        output.status.success(),
        "ffmpeg cannot decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Clips one after the other, as the menu says a sentence.
pub fn sentence(names: &[&str], rate: u32) -> Vec<i16> {
    names.iter().flat_map(|n| clip(n, rate)).collect()
}
