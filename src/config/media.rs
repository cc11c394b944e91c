//! The `[media]` section: RTP addresses and ports, codecs and how the
//! answer picks one, recording limits, silence detection and prompts.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use toml::de::DeTable;

use super::listen::ListenAddr;
use super::reader::{Node, Reader};

/// Codec names vmesh can offer and accept, upper-case, in the default
/// order of preference (best quality first): Opus (RFC 7587), G.722 and
/// G.711 mu-law and A-law (RFC 3551 section 6).
pub const KNOWN_CODECS: [&str; 4] = ["OPUS", "G722", "PCMU", "PCMA"];

/// The rates Opus calls may be decoded and recorded at.
pub const OPUS_RATES: [u32; 3] = [8000, 16_000, 48_000];

/// Default internal rate of Opus calls: wideband speech.
pub const DEFAULT_OPUS_RATE: u32 = 16_000;

/// Default silence after which the recording ends.
pub const DEFAULT_MAX_SILENCE: Duration = Duration::from_secs(10);

/// Default level below which audio counts as silence, in dBFS.
pub const DEFAULT_SILENCE_THRESHOLD_DBFS: f64 = -50.0;

/// Default beep frequency.
pub const DEFAULT_BEEP_HZ: u32 = 1000;

/// Default beep length.
pub const DEFAULT_BEEP: Duration = Duration::from_millis(250);

/// Default RTP port range; even ports carry RTP, the odd port above each is
/// left for RTCP (RFC 3550 section 11).
pub const DEFAULT_RTP_PORTS: RangeInclusive<u16> = 20000..=29999;

/// Default silence on RTP after which the call is ended with BYE.
pub const DEFAULT_RTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Default longest recording.
pub const DEFAULT_MAX_MESSAGE: Duration = Duration::from_secs(180);

/// Default shortest recording kept; shorter ones are hang-ups, not messages.
pub const DEFAULT_MIN_MESSAGE: Duration = Duration::from_millis(1000);

/// Default jitter buffer depth.
pub const DEFAULT_JITTER: Duration = Duration::from_millis(60);

/// Default interval between the keep-alive packets vmesh sends the caller
/// while it has nothing to play: a tenth of the packet rate of audio, far
/// inside any RTP inactivity timer (Asterisk's `rtp_timeout` counts
/// seconds) and any NAT binding's lifetime.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_millis(200);

/// The keep-alive interval is a whole number of 20 ms frames, at most this.
pub const MAX_KEEPALIVE: Duration = Duration::from_millis(1000);

/// Whose order of codecs an SDP answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodecOrder {
    /// The profile's `codecs` order: the best codec the caller allows.
    /// RFC 3264 section 6.1 lets the answerer choose any offered codec.
    Profile,
    /// The offerer's order: its first codec that the profile accepts. The
    /// default: behind a PBX the offer's order is what the PBX can bridge
    /// to the caller without transcoding (Asterisk without an Opus
    /// transcoder hangs up on an Opus answer to a PCMU caller).
    #[default]
    Offerer,
}

/// Media handling of one server.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// The address put in SDP `c=` lines and bound for RTP; never the
    /// unspecified address, which in SDP means "no media" (RFC 3264
    /// section 8.4 and RFC 2543 hold).
    pub rtp_ip: IpAddr,
    /// Ports RTP may use; only the even ones are bound, each with the next
    /// odd one kept free for RTCP. The start is even.
    pub rtp_ports: RangeInclusive<u16>,
    /// Codec names offered and accepted, in preference order, upper-case,
    /// each from [`KNOWN_CODECS`], never empty and without repeats.
    pub codecs: Vec<String>,
    /// With no RTP for this long the caller is gone; vmesh sends BYE.
    pub rtp_timeout: Duration,
    /// Longest recording; then vmesh sends BYE.
    pub max_message: Duration,
    /// Recordings shorter than this are discarded; always below `max_message`.
    pub min_message: Duration,
    /// Jitter buffer depth: how long packets are held to put them in order.
    pub jitter: Duration,
    /// Interval between keep-alive packets (comfort noise, or encoded
    /// silence) while nothing plays: a multiple of 20 ms from 20 (a packet
    /// in every frame) to [`MAX_KEEPALIVE`].
    pub keepalive: Duration,
    /// Whose order picks the codec of an SDP answer.
    pub codec_order: CodecOrder,
    /// The rate Opus calls are decoded and recorded at, in Hz: one of
    /// [`OPUS_RATES`].
    pub opus_rate: u32,
    /// The recording ends after this much silence; `None` never ends it
    /// for silence (`max_silence_s = 0`).
    pub max_silence: Option<Duration>,
    /// Audio below this level is silence, in dBFS (-90 to 0, finite).
    pub silence_threshold_dbfs: f64,
    /// A message that is silence from start to end is discarded.
    pub discard_silent: bool,
    /// Play the greeting and the beep before recording; false records at
    /// once.
    pub prompts: bool,
    /// The beep's frequency in Hz (200 to 3400, inside the telephone band).
    pub beep_hz: u32,
    /// The beep's length.
    pub beep: Duration,
}

/// The silence threshold is always a finite number (validated on reading),
/// so equality is total.
impl Eq for MediaConfig {}

impl MediaConfig {
    /// The defaults for a server listening on `listen`: RTP goes on the IP
    /// of the first listener, or on the loopback address if there is none.
    pub fn default_for(listen: &[ListenAddr]) -> Self {
        MediaConfig {
            rtp_ip: default_rtp_ip(listen),
            rtp_ports: DEFAULT_RTP_PORTS,
            codecs: KNOWN_CODECS.iter().map(|c| (*c).to_owned()).collect(),
            rtp_timeout: DEFAULT_RTP_TIMEOUT,
            max_message: DEFAULT_MAX_MESSAGE,
            min_message: DEFAULT_MIN_MESSAGE,
            jitter: DEFAULT_JITTER,
            keepalive: DEFAULT_KEEPALIVE,
            codec_order: CodecOrder::Offerer,
            opus_rate: DEFAULT_OPUS_RATE,
            max_silence: Some(DEFAULT_MAX_SILENCE),
            silence_threshold_dbfs: DEFAULT_SILENCE_THRESHOLD_DBFS,
            discard_silent: true,
            prompts: true,
            beep_hz: DEFAULT_BEEP_HZ,
            beep: DEFAULT_BEEP,
        }
    }

    /// Reads `[media]`; `listen` supplies the default `rtp_ip`.
    pub(super) fn read(
        reader: &mut Reader<'_>,
        table: &DeTable<'_>,
        listen: &[ListenAddr],
    ) -> Self {
        let mut media = MediaConfig::default_for(listen);
        let mut spans = Spans::default();
        let (mut port_min, mut port_max) = (*DEFAULT_RTP_PORTS.start(), *DEFAULT_RTP_PORTS.end());
        for (name, node) in table.iter() {
            let key = format!("media.{}", name.get_ref());
            match name.get_ref().as_ref() {
                "rtp_ip" => {
                    if let Some(s) = reader.string(&key, node) {
                        match s.parse::<IpAddr>() {
                            Ok(ip) => {
                                media.rtp_ip = ip;
                                spans.rtp_ip = Some(node.span());
                            }
                            Err(_) => {
                                spans.rtp_ip_invalid = true;
                                reader.error(
                                    &key,
                                    node.span(),
                                    format!("{s:?} is not an IP address"),
                                )
                            }
                        }
                    }
                }
                "rtp_port_min" => {
                    if let Some(port) = read_port(reader, &key, node) {
                        if port % 2 == 0 {
                            port_min = port;
                            spans.port_min = Some(node.span());
                        } else {
                            reader.error(
                                &key,
                                node.span(),
                                format!("{port} is odd; RTP uses even ports (RFC 3550 section 11)"),
                            );
                        }
                    }
                }
                "rtp_port_max" => {
                    if let Some(port) = read_port(reader, &key, node) {
                        port_max = port;
                        spans.port_max = Some(node.span());
                    }
                }
                "codecs" => {
                    if let Some(codecs) = read_codecs(reader, &key, node) {
                        media.codecs = codecs;
                    }
                }
                "rtp_timeout_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=3600) {
                        media.rtp_timeout = Duration::from_secs(n);
                    }
                }
                "max_message_s" => {
                    if let Some(n) = reader.integer(&key, node, 1..=3600) {
                        media.max_message = Duration::from_secs(n);
                        spans.max_message = Some(node.span());
                    }
                }
                "min_message_ms" => {
                    if let Some(n) = reader.integer(&key, node, 1..=3_600_000) {
                        media.min_message = Duration::from_millis(n);
                        spans.min_message = Some(node.span());
                    }
                }
                "jitter_ms" => {
                    if let Some(n) = reader.integer(&key, node, 1..=1000) {
                        media.jitter = Duration::from_millis(n);
                    }
                }
                "keepalive_ms" => {
                    let max = MAX_KEEPALIVE.as_millis() as u64;
                    if let Some(n) = reader.integer(&key, node, 20..=max) {
                        if n % 20 == 0 {
                            media.keepalive = Duration::from_millis(n);
                        } else {
                            reader.error(
                                &key,
                                node.span(),
                                format!("{n} is not a multiple of 20 (the packet time)"),
                            );
                        }
                    }
                }
                "codec_order" => {
                    if let Some(order) = read_codec_order(reader, &key, node) {
                        media.codec_order = order;
                    }
                }
                "opus_rate" => {
                    if let Some(n) = reader.integer(&key, node, 0..=u64::from(u32::MAX)) {
                        match u32::try_from(n).ok().filter(|r| OPUS_RATES.contains(r)) {
                            Some(rate) => media.opus_rate = rate,
                            None => reader.error(
                                &key,
                                node.span(),
                                format!("{n} is not an Opus rate; expected 8000, 16000 or 48000"),
                            ),
                        }
                    }
                }
                "max_silence_s" => {
                    if let Some(n) = reader.integer(&key, node, 0..=3600) {
                        media.max_silence = (n > 0).then(|| Duration::from_secs(n));
                    }
                }
                "silence_threshold_dbfs" => {
                    if let Some(level) = reader.float(&key, node, -90.0..=0.0) {
                        media.silence_threshold_dbfs = level;
                    }
                }
                "discard_silent" => {
                    if let Some(b) = reader.boolean(&key, node) {
                        media.discard_silent = b;
                    }
                }
                "prompts" => {
                    if let Some(b) = reader.boolean(&key, node) {
                        media.prompts = b;
                    }
                }
                "beep_hz" => {
                    if let Some(n) = reader.integer(&key, node, 200..=3400) {
                        media.beep_hz = n as u32;
                    }
                }
                "beep_ms" => {
                    if let Some(n) = reader.integer(&key, node, 50..=2000) {
                        media.beep = Duration::from_millis(n);
                    }
                }
                _ => reader.unknown_key(&key, name.span()),
            }
        }
        media.rtp_ports = port_min..=port_max;
        media.check_across_keys(reader, &spans);
        media
    }

    /// Checks that involve more than one key, once each key is known good.
    fn check_across_keys(&self, reader: &mut Reader<'_>, spans: &Spans) {
        if self.rtp_ip.is_unspecified() && !spans.rtp_ip_invalid {
            let message = format!(
                "{} cannot be advertised in SDP; set media.rtp_ip to an address the PBX can reach",
                self.rtp_ip
            );
            match &spans.rtp_ip {
                Some(span) => reader.error("media.rtp_ip", span.clone(), message),
                None => reader.error_unplaced(
                    "media.rtp_ip",
                    format!("not set, and the first sip.listen address {message}"),
                ),
            }
        }
        let (min, max) = (*self.rtp_ports.start(), *self.rtp_ports.end());
        if min > max {
            let message = format!("{min} is above rtp_port_max ({max})");
            match spans.port_min.clone().or_else(|| spans.port_max.clone()) {
                Some(span) => reader.error("media.rtp_port_min", span, message),
                None => reader.error_unplaced("media.rtp_port_min", message),
            }
        }
        if self.min_message >= self.max_message {
            let message = format!(
                "{} ms is not below max_message_s ({} s)",
                self.min_message.as_millis(),
                self.max_message.as_secs()
            );
            match spans
                .min_message
                .clone()
                .or_else(|| spans.max_message.clone())
            {
                Some(span) => reader.error("media.min_message_ms", span, message),
                None => reader.error_unplaced("media.min_message_ms", message),
            }
        }
    }
}

/// Where the keys that take part in cross-key checks were written, so the
/// error can point at them.
#[derive(Default)]
struct Spans {
    rtp_ip: Option<Range<usize>>,
    /// `rtp_ip` was given but is not an address: already reported, so the
    /// default it fell back to is not judged as well.
    rtp_ip_invalid: bool,
    port_min: Option<Range<usize>>,
    port_max: Option<Range<usize>>,
    max_message: Option<Range<usize>>,
    min_message: Option<Range<usize>>,
}

fn default_rtp_ip(listen: &[ListenAddr]) -> IpAddr {
    listen
        .first()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |l| l.addr.ip())
}

fn read_port(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<u16> {
    let port = reader.integer(key, node, 1..=u64::from(u16::MAX))?;
    u16::try_from(port).ok()
}

/// Reads `codec_order`: `"profile"` or `"offerer"`.
fn read_codec_order(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<CodecOrder> {
    let value = reader.string(key, node)?;
    match value.to_ascii_lowercase().as_str() {
        "profile" => Some(CodecOrder::Profile),
        "offerer" => Some(CodecOrder::Offerer),
        _ => {
            reader.error(
                key,
                node.span(),
                format!("{value:?} is not a codec order; expected \"profile\" or \"offerer\""),
            );
            None
        }
    }
}

/// Reads `codecs`: known names in any case, stored upper-case, no repeats.
fn read_codecs(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<Vec<String>> {
    let entries = reader.strings(key, node)?;
    if entries.is_empty() {
        reader.error(
            key,
            node.span(),
            format!("must list at least one of {}", KNOWN_CODECS.join(", ")),
        );
        return None;
    }
    let mut codecs: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = entry.value.to_ascii_uppercase();
        if !KNOWN_CODECS.contains(&name.as_str()) {
            let message = format!(
                "unknown codec {:?}; known: {}",
                entry.value,
                KNOWN_CODECS.join(", ")
            );
            reader.error(&entry.key, entry.span, message);
        } else if codecs.contains(&name) {
            reader.error(&entry.key, entry.span, format!("{name} is listed twice"));
        } else {
            codecs.push(name);
        }
    }
    Some(codecs)
}
