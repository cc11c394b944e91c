//! The media of one call as one flat, sans-IO state machine, in the shape
//! of quinn-proto and str0m: datagrams and timeouts in, with an explicit
//! `now`; datagrams to send, the next deadline and events out.
//!
//! ```text
//!   handle_datagram(now, channel, from, bytes)   handle_timeout(now)
//!   confirm / update / play / barge_in / record / stop_recording / signalled_digit
//!                 │
//!          ┌──────▼───────────────────────────────────────────┐
//!          │ MediaCore                                         │
//!          │  RtpReceiver (source rules, jitter, RFC 4733)     │
//!          │  Outbound    (prompt queue, keep-alive, pacing)   │
//!          │  RtcpSession (SR/RR, SDES, BYE, interval)         │
//!          │  Activity    (Listening | Recording(Recorder))    │
//!          └──────┬───────────────────────────────────────────┘
//!   poll_transmit(now, buf)  poll_timeout()  poll_event()  take_recorded(out)
//! ```
//!
//! There is no play-out tick: audio is played out of the jitter buffer
//! when a packet arrives (a packet that waited the jitter delay is due
//! then), keep-alive packets due within a few milliseconds leave with the
//! same wake-up, and the deadline ([`MediaCore::poll_timeout`]) is only
//! the next prompt frame, keep-alive fallback, RTCP report or RTP timeout.
//! A caller streaming 50 packets a second costs about 50 wake-ups of the
//! media engine (`super::engine`), which runs this core for the call and
//! wakes the call's task only when it has something to act on
//! ([`MediaCore::wants_attention`]); [`super::CallMedia`] is the handle
//! the task holds.
//!
//! The operations a voicemail deposit and an owner's menu need are all
//! here: a queue of PCM prompts with barge-in ([`MediaCore::play`], any
//! digit interrupts those that allow it), digits with their time from
//! RFC 4733 and SIP INFO alike ([`MediaEvent::Digit`]), recording into a
//! sink with a stop key ([`MediaCore::record`]), and a stored message
//! played in the call's codec and rate ([`Prompt`] of any rate).
//!
//! Nothing is sent before [`MediaCore::confirm`] (the ACK) or the caller's
//! first accepted packet, so a spoofed INVITE cannot make vmesh send a
//! greeting to an address of the spoofer's choosing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tracing::debug;

use crate::audio::AudioError;

use super::outbound::{Outbound, Prompt, PromptEnd, PromptId};
use super::receiver::{Inbound, ReceiverStats, RtpReceiver};
use super::recorder::{RecordEnd, RecordLimits, Recorder};
use super::rtcp::{RtcpSession, RtcpStats, RtpClock};
use super::sdp::{Direction, Negotiated};

/// How long audio due for play-out may wait for the caller's next packet
/// before a timer plays it out: one packet interval.
const PLAYOUT_SLACK: Duration = Duration::from_millis(20);

/// Which of the call's two ports a datagram uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The RTP port (and RTCP when multiplexed, RFC 5761).
    Rtp,
    /// The RTCP port, RTP + 1 (RFC 3550 §11).
    Rtcp,
}

/// A datagram to send: written into the caller's buffer, sent from our
/// `channel` port to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Our port to send from.
    pub channel: Channel,
    /// The caller's address.
    pub to: SocketAddr,
}

/// How a digit reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigitSource {
    /// An RFC 4733 telephone-event in the RTP stream.
    Rtp,
    /// A SIP INFO request (`application/dtmf-relay`, `application/dtmf`).
    Info,
}

/// What the call must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The caller's first packet was taken (the media path works).
    CallerMedia,
    /// A key press, when it was reported.
    Digit {
        /// The key.
        digit: char,
        /// When it arrived.
        at: Instant,
        /// By which way.
        via: DigitSource,
    },
    /// A prompt finished or was interrupted.
    PromptEnded {
        /// The id [`MediaCore::play`] gave it.
        id: PromptId,
        /// How.
        end: PromptEnd,
    },
    /// The recording ended; take its last audio with
    /// [`MediaCore::take_recorded`].
    RecordingEnded(RecordEnd),
    /// No RTP for the RTP timeout while nothing was being recorded.
    RtpTimeout,
}

/// Settings of the media of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MediaSettings {
    /// How long audio waits in the jitter buffer for reordered packets.
    pub jitter: Duration,
    /// Silence on the wire this long means the caller is gone (not while
    /// the caller holds the call).
    pub rtp_timeout: Duration,
    /// Interval between keep-alive packets while nothing plays (see
    /// [`super::outbound`]).
    pub keepalive: Duration,
}

/// The counters of one call's media, for its log line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediaStats {
    /// The receive path's counters.
    pub received: ReceiverStats,
    /// RTP packets we sent (prompts and keep-alive).
    pub sent: u64,
    /// RTCP traffic.
    pub rtcp: RtcpStats,
}

/// What the call does with the caller's audio.
enum Activity {
    /// Played out and dropped (while prompts play, or between steps).
    Listening,
    /// Recorded.
    Recording(Recorder),
}

/// The media of one call; see the module documentation.
pub struct MediaCore {
    negotiated: Negotiated,
    settings: MediaSettings,
    receiver: RtpReceiver,
    outbound: Outbound,
    rtcp: RtcpSession,
    activity: Activity,
    /// Confirmed by the ACK or by the caller's first packet: we may send.
    live: bool,
    /// The RTP timeout counts from the later of this and the last packet.
    quiet_since: Instant,
    events: VecDeque<MediaEvent>,
    rtp_timed_out: bool,
    sent: u64,
    encode_failures: u64,
    /// A packet from the caller woke the call since the last transmit.
    woken_by_caller: bool,
}

impl MediaCore {
    /// The media of a call negotiated as `n`, answered at `now` (`wall` is
    /// the wall clock then, for RTCP; `seed` randomizes SSRC, sequence
    /// numbers, timestamps and the CNAME, RFC 3550 §5.1, §8).
    pub fn new(
        n: &Negotiated,
        settings: MediaSettings,
        now: Instant,
        wall: SystemTime,
        seed: u64,
    ) -> Result<MediaCore, AudioError> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let outbound = Outbound::new(
            n.codec,
            n.payload_type,
            n.comfort_noise,
            settings.keepalive,
            now,
            &mut rng,
        )?;
        let bandwidth = session_bandwidth(n);
        let mut rtcp = RtcpSession::new(outbound.ssrc(), now, wall, bandwidth, seed ^ 0x5eed);
        let (start, timestamp, rate) = outbound.clock();
        rtcp.set_rtp_clock(RtpClock {
            start,
            timestamp,
            rate,
        });
        Ok(MediaCore {
            negotiated: n.clone(),
            settings,
            receiver: RtpReceiver::new(n, settings.jitter),
            outbound,
            rtcp,
            activity: Activity::Listening,
            live: false,
            quiet_since: now,
            events: VecDeque::new(),
            rtp_timed_out: false,
            sent: 0,
            encode_failures: 0,
            woken_by_caller: false,
        })
    }

    /// The rate of the audio recorded, for the whole call (see
    /// [`RtpReceiver::new`]).
    pub fn sample_rate(&self) -> u32 {
        self.receiver.sample_rate()
    }

    /// The session as last negotiated.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Whether media may flow out (confirmed, or the caller sent first).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The call is confirmed (the ACK arrived): prompts, keep-alive and
    /// RTCP may go out, and the RTP timeout starts.
    pub fn confirm(&mut self, now: Instant) {
        if !self.live {
            self.live = true;
            self.quiet_since = now;
            self.apply_direction();
        }
    }

    /// A re-INVITE (or the ACK's answer to our offer) renegotiated the
    /// session: codec, payload types, the caller's address, hold.
    pub fn update(&mut self, n: &Negotiated, now: Instant) {
        if self.negotiated.on_hold() && !n.on_hold() {
            self.quiet_since = now;
        }
        self.receiver.update(n);
        if let Err(error) = self
            .outbound
            .update(n.codec, n.payload_type, n.comfort_noise)
        {
            debug!(%error, "cannot encode the new codec; prompts stop");
            self.outbound.clear();
        }
        let (start, timestamp, rate) = self.outbound.clock();
        self.rtcp.set_rtp_clock(RtpClock {
            start,
            timestamp,
            rate,
        });
        self.negotiated = n.clone();
        self.apply_direction();
        self.collect_prompt_ends();
    }

    /// Queues a prompt; it plays once the call is live.
    pub fn play(&mut self, prompt: Prompt) -> PromptId {
        self.outbound.play(prompt)
    }

    /// Stops every prompt, playing and queued.
    pub fn clear_prompts(&mut self) {
        self.outbound.clear();
        self.collect_prompt_ends();
    }

    /// Starts recording at `now`: what the caller sent before now (still in
    /// the jitter buffer or not) is not recorded; `stop_key` ends it.
    pub fn record(&mut self, limits: &RecordLimits, stop_key: Option<char>, now: Instant) {
        // Play out, unrecorded, everything that arrived before now, also
        // what still waits its jitter delay: play-out follows arrival, so
        // no future silence is made.
        self.receiver
            .poll_audio(now + self.settings.jitter, &mut |_| {});
        self.quiet_since = self.quiet_since.max(now);
        self.rtp_timed_out = false;
        let rate = self.receiver.sample_rate();
        self.activity = Activity::Recording(Recorder::new(rate, limits, stop_key));
    }

    /// Ends the recording (the call ended, the server stops): everything
    /// still buffered is recorded first.
    pub fn stop_recording(&mut self) {
        self.end_recording(RecordEnd::Stopped);
    }

    /// A sink error ends the recording without flushing more into it.
    pub fn sink_failed(&mut self, error: String) {
        if let Activity::Recording(recorder) = &mut self.activity {
            if recorder.ended().is_none() {
                recorder.end(RecordEnd::SinkFailed(error.clone()));
                self.events
                    .push_back(MediaEvent::RecordingEnded(RecordEnd::SinkFailed(error)));
            }
        }
    }

    /// Why the recording ended, once it has.
    pub fn recording_ended(&self) -> Option<&RecordEnd> {
        match &self.activity {
            Activity::Recording(recorder) => recorder.ended(),
            Activity::Listening => None,
        }
    }

    /// A digit from SIP INFO, treated exactly as an RFC 4733 one.
    pub fn signalled_digit(&mut self, digit: char, now: Instant) {
        self.on_digit(digit, now, DigitSource::Info);
    }

    /// One datagram from `from` on our `channel` port, at `now`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        channel: Channel,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        if channel == Channel::Rtcp {
            self.handle_rtcp(now, from, datagram);
            return;
        }
        match self.receiver.handle_datagram(datagram, from, now) {
            Inbound::Media(accepted) => {
                self.rtcp.on_rtp_received(
                    accepted.ssrc,
                    accepted.sequence_number,
                    accepted.timestamp,
                    accepted.clock_rate,
                    now,
                );
                self.woken_by_caller = true;
                if accepted.first {
                    self.events.push_back(MediaEvent::CallerMedia);
                    // The caller proved it is at this address.
                    self.confirm(now);
                }
                if let Some(digit) = accepted.digit {
                    self.on_digit(digit, now, DigitSource::Rtp);
                }
                self.play_out(now);
            }
            Inbound::Rtcp if self.negotiated.rtcp_mux => self.handle_rtcp(now, from, datagram),
            Inbound::Rtcp | Inbound::Dropped => {}
        }
    }

    /// A deadline from [`MediaCore::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.play_out(now);
        if let Some(deadline) = self.rtp_deadline() {
            if now >= deadline {
                self.rtp_timed_out = true;
                if matches!(self.activity, Activity::Recording(_)) {
                    self.end_recording(RecordEnd::RtpTimeout);
                } else {
                    self.events.push_back(MediaEvent::RtpTimeout);
                }
            }
        }
    }

    /// The next datagram due at `now`, written into `buf`. Call until
    /// `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.live {
            return None;
        }
        if self.rtcp.poll_report(now, buf) {
            if let Some(transmit) = self.rtcp_transmit() {
                return Some(transmit);
            }
        }
        // One keep-alive packet may leave early per packet from the caller.
        let mut early = std::mem::take(&mut self.woken_by_caller);
        loop {
            match self.outbound.poll(now, std::mem::take(&mut early), buf) {
                Ok(true) => {
                    self.rtcp.on_rtp_sent(self.outbound.last_payload_len());
                    self.collect_prompt_ends();
                    if let Some(to) = self.receiver.destination() {
                        self.sent += 1;
                        return Some(Transmit {
                            channel: Channel::Rtp,
                            to,
                        });
                    }
                }
                Ok(false) => {
                    self.collect_prompt_ends();
                    return None;
                }
                Err(error) => {
                    self.encode_failures += 1;
                    debug!(%error, "cannot encode a prompt frame; prompts stop");
                    self.outbound.clear();
                    self.collect_prompt_ends();
                    return None;
                }
            }
        }
    }

    /// The RTCP BYE that ends our stream (RFC 3550 §6.6), written into
    /// `buf`, when media went out at all.
    pub fn goodbye(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.live {
            return None;
        }
        self.rtcp.goodbye(now, buf);
        self.rtcp_transmit()
    }

    /// When [`MediaCore::handle_timeout`] (and [`MediaCore::poll_transmit`])
    /// must run next; `None` while there is nothing to wait for.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.live {
            return None;
        }
        [
            self.outbound.poll_timeout(),
            Some(self.rtcp.poll_timeout()),
            self.rtp_deadline(),
            self.release_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Whether the call's task must look at the media: an event is waiting,
    /// or `audio` samples (or more) of recorded audio are gathered.
    pub fn wants_attention(&self, audio: usize) -> bool {
        if !self.events.is_empty() {
            return true;
        }
        match &self.activity {
            Activity::Recording(recorder) => recorder.held() >= audio,
            Activity::Listening => false,
        }
    }

    /// The capacity a buffer needs for [`Self::take_recorded`] to hand out
    /// audio, or `None` when it would hand out nothing now.
    pub fn recorded_ready(&self) -> Option<usize> {
        match &self.activity {
            Activity::Recording(recorder) => recorder.ready(recorder.ended().is_some()),
            _ => None,
        }
    }

    /// Moves the recorded audio gathered so far into `out` (cleared
    /// first; whole blocks, or all of it once the recording ended), for the
    /// call's task to write outside the lock ([`super::CallMedia`]). A
    /// sink that fails reports it with [`MediaCore::sink_failed`].
    pub fn take_recorded(&mut self, out: &mut Vec<i16>) {
        out.clear();
        if let Activity::Recording(recorder) = &mut self.activity {
            let all = recorder.ended().is_some();
            recorder.take(all, out);
        }
    }

    /// The call's counters.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            received: self.receiver.stats(),
            sent: self.sent,
            rtcp: self.rtcp.stats(),
        }
    }

    fn on_digit(&mut self, digit: char, at: Instant, via: DigitSource) {
        self.events.push_back(MediaEvent::Digit { digit, at, via });
        if self.outbound.barge_in() {
            self.collect_prompt_ends();
        }
        let stops = match &self.activity {
            Activity::Recording(r) => r.ended().is_none() && r.stop_key() == Some(digit),
            Activity::Listening => false,
        };
        if stops {
            self.end_recording(RecordEnd::Dtmf(digit));
        }
    }

    /// Plays out what the jitter buffer has due: into the recording, or
    /// nowhere.
    fn play_out(&mut self, now: Instant) {
        match &mut self.activity {
            Activity::Recording(recorder) if recorder.ended().is_none() => {
                self.receiver.poll_audio(now, &mut |pcm| recorder.push(pcm));
                if let Some(end) = recorder.ended() {
                    self.events
                        .push_back(MediaEvent::RecordingEnded(end.clone()));
                }
            }
            _ => self.receiver.poll_audio(now, &mut |_| {}),
        }
    }

    fn end_recording(&mut self, reason: RecordEnd) {
        let Activity::Recording(recorder) = &mut self.activity else {
            return;
        };
        if recorder.ended().is_some() {
            return;
        }
        // What is still buffered belongs to the message (RFC 4733 digits
        // and RTP silence left the caller's audio before them in place).
        self.receiver.finish(&mut |pcm| recorder.push(pcm));
        recorder.end(reason);
        if let Some(end) = recorder.ended() {
            self.events
                .push_back(MediaEvent::RecordingEnded(end.clone()));
        }
    }

    fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        // Only from the caller's host: a stranger's reports are not ours.
        let caller = self.receiver.destination().map(|a| a.ip());
        if caller == Some(from.ip()) {
            self.rtcp.on_rtcp(datagram, now);
        }
    }

    fn rtcp_transmit(&self) -> Option<Transmit> {
        let rtp = self.receiver.destination()?;
        if self.negotiated.rtcp_mux {
            return Some(Transmit {
                channel: Channel::Rtp,
                to: rtp,
            });
        }
        let learned = self
            .receiver
            .latched_peer()
            .filter(|&a| Some(a) != self.negotiated.remote_rtp);
        // RTP + 1 (RFC 3550 §11), when there is such a port: from RTP port
        // 65535, RTCP would wrap around to port 0.
        let next_port = |a: SocketAddr| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?));
        let to = match learned {
            // Behind a NAT, RTCP follows the learned address (+1).
            Some(nat) => next_port(nat)?,
            None => self.negotiated.remote_rtcp.or_else(|| next_port(rtp))?,
        };
        Some(Transmit {
            channel: Channel::Rtcp,
            to,
        })
    }

    /// When audio held in the jitter buffer must be played out although no
    /// packet came to push it: a frame after it became due, so that a
    /// streaming caller's next packet always comes first.
    fn release_deadline(&self) -> Option<Instant> {
        self.receiver.next_release().map(|due| due + PLAYOUT_SLACK)
    }

    fn rtp_deadline(&self) -> Option<Instant> {
        if !self.live || self.rtp_timed_out || self.negotiated.on_hold() {
            return None;
        }
        let last = self.receiver.last_rtp_at();
        let quiet = last.map_or(self.quiet_since, |t| t.max(self.quiet_since));
        Some(quiet + self.settings.rtp_timeout)
    }

    fn apply_direction(&mut self) {
        // RFC 3264 §5.1/§6.1: we send unless our side is recvonly or
        // inactive, the mirror of a caller's sendonly or inactive (hold).
        let ours = self.negotiated.direction.mirror();
        let may_send = matches!(ours, Direction::SendRecv | Direction::SendOnly);
        self.outbound.set_sending(self.live && may_send);
    }

    fn collect_prompt_ends(&mut self) {
        while let Some((id, end)) = self.outbound.poll_ended() {
            self.events.push_back(MediaEvent::PromptEnded { id, end });
        }
    }
}

/// The session bandwidth RTCP's share is computed from (RFC 3550 §6.2):
/// the codec's rate plus 16 kbit/s of IP, UDP and RTP headers at 50
/// packets a second.
fn session_bandwidth(n: &Negotiated) -> u32 {
    use super::codec::Codec;
    let codec = match n.codec {
        Codec::Pcmu | Codec::Pcma | Codec::G722 => 64_000,
        Codec::Opus(_) => 24_000,
    };
    codec + 16_000
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
