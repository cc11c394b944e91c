//! The record loop: one call's RTP socket drained into a PCM sink.
//!
//! This is the thin async shell around [`RtpReceiver`]: it waits on the
//! socket, the call's commands, the stop signal and a play-out tick, and
//! decides when the recording ends. All timing goes through `tokio::time`,
//! so a test runtime with paused time can drive it.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::playback::Playback;
use super::receiver::{MediaEvent, ReceiverStats, RtpReceiver};
use super::sdp::Negotiated;
use super::socket::RtpSocket;
use crate::audio::silence::SilenceTracker;

/// One receive buffer per call: larger than any RTP packet on a 1500-byte
/// MTU, and small enough for 1,000 calls to cost 2 MB.
const RECV_BUFFER: usize = 2048;
/// How often due audio is played out and the timeouts are checked.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The key that ends a recording ("press # when done").
const END_KEY: char = '#';

/// When a recording must end, whatever the caller does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordLimits {
    /// The longest message, counted in recorded audio at the recording's
    /// rate; the recording is cut at exactly this many samples.
    pub max_length: Duration,
    /// Silence on the wire this long means the caller is gone (a lost BYE).
    /// It does not run while the caller holds the call.
    pub rtp_timeout: Duration,
    /// How long audio waits in the jitter buffer for reordered packets.
    pub jitter: Duration,
    /// Silence in the recorded audio this long ends the message (`None`:
    /// never); silence is below `silence_threshold_dbfs`.
    pub max_silence: Option<Duration>,
    /// The level under which a 20 ms frame counts as silence.
    pub silence_threshold_dbfs: f32,
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEnd {
    /// The call ended or the server is shutting down (the stop token).
    Stopped,
    /// The caller pressed the end key (`#`).
    Dtmf(char),
    /// The message reached the maximum length.
    MaxLength,
    /// The caller said nothing for the maximum silence.
    MaxSilence,
    /// No RTP arrived for the RTP timeout.
    RtpTimeout,
    /// The sink (the message file) refused audio; its error, as text.
    SinkFailed(String),
}

/// What the call tells a running recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// A re-INVITE renegotiated the session (codec change, hold, resume).
    Update(Negotiated),
}

/// Records the call's audio into `sink` until one of the [`RecordEnd`]
/// conditions, then flushes what the jitter buffer still holds (unless the
/// maximum length or a sink failure ended it) and returns the reason with
/// the receive statistics.
///
/// With a `prelude` (the greeting and the beep), it is played first, paced
/// on the call's socket to the peer's RTP address (from its SDP, or where
/// its packets come from); what the caller sends meanwhile is not
/// recorded, a digit skips the greeting, and the RTP timeout starts with
/// the recording.
///
/// The sink receives PCM at `negotiated.codec.audio_rate()` (8 kHz for
/// G.711, 16 kHz for G.722, the internal rate for Opus) for the whole call,
/// whatever re-INVITEs change later: see [`RtpReceiver::new`].
pub async fn record<E: Display>(
    socket: &RtpSocket,
    negotiated: &Negotiated,
    limits: RecordLimits,
    commands: &mut mpsc::Receiver<MediaCommand>,
    stop: CancellationToken,
    mut prelude: Option<Playback>,
    sink: &mut (impl FnMut(&[i16]) -> Result<(), E> + Send),
) -> (RecordEnd, ReceiverStats) {
    let mut receiver = RtpReceiver::new(negotiated, limits.jitter);
    let rate = receiver.sample_rate();
    let mut writer = CappedSink {
        sink,
        remaining: samples_in(limits.max_length, rate),
        error: None,
        silence: limits.max_silence.map(|max| SilenceWatch {
            tracker: SilenceTracker::new(rate, limits.silence_threshold_dbfs),
            max,
            frame: (rate / 50) as usize,
            exceeded: false,
        }),
    };
    let mut buf = [0u8; RECV_BUFFER];
    let mut on_hold = negotiated.on_hold();
    // The RTP timeout counts from the last packet, or from the start or the
    // end of a hold when that is later.
    let mut quiet_since = Instant::now();
    let mut commands_open = true;
    let mut tick = time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let end = loop {
        let send_due = prelude.as_ref().and_then(Playback::next_due);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break RecordEnd::Stopped,
            command = commands.recv(), if commands_open => match command {
                Some(MediaCommand::Update(n)) => {
                    if on_hold && !n.on_hold() {
                        quiet_since = Instant::now();
                    }
                    on_hold = n.on_hold();
                    receiver.update(&n);
                }
                None => commands_open = false,
            },
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    let now = Instant::now().into_std();
                    if let Some(MediaEvent::Dtmf(digit)) = receiver.handle_datagram(datagram, from, now) {
                        debug!(%digit, "DTMF");
                        match prelude.as_mut() {
                            Some(playing) => playing.on_digit(),
                            None if digit == END_KEY => break RecordEnd::Dtmf(digit),
                            None => {}
                        }
                    }
                }
                // ICMP errors surface here on some systems; the socket lives on.
                Err(error) => debug!(%error, "RTP receive error"),
            },
            _ = sleep_until_due(send_due), if send_due.is_some() => {
                if let Some(playing) = prelude.as_mut() {
                    let peer = receiver.negotiated().remote_rtp.or(receiver.latched_peer());
                    play_due(socket, playing, peer).await;
                    if playing.is_done() {
                        // The beep is out: the message starts now.
                        prelude = None;
                        quiet_since = Instant::now();
                        // Play out, unrecorded, everything that arrived
                        // before now, including what still waits its jitter
                        // delay: play-out follows arrival times, so no
                        // future silence is made.
                        let cut = quiet_since + limits.jitter;
                        receiver.poll_audio(cut.into_std(), &mut |_| {});
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if prelude.is_some() {
                    // Keep the jitter buffer moving; the caller is listening.
                    receiver.poll_audio(now.into_std(), &mut |_| {});
                    continue;
                }
                receiver.poll_audio(now.into_std(), &mut |pcm| writer.write(pcm));
                let last_rtp = receiver.last_rtp_at().map(Instant::from_std);
                let quiet = last_rtp.map_or(quiet_since, |t| t.max(quiet_since));
                if !on_hold && now.duration_since(quiet) >= limits.rtp_timeout {
                    break RecordEnd::RtpTimeout;
                }
            }
        }
        if let Some(end) = writer.end() {
            break end;
        }
    };

    if matches!(
        end,
        RecordEnd::Stopped | RecordEnd::Dtmf(_) | RecordEnd::RtpTimeout
    ) {
        receiver.finish(&mut |pcm| writer.write(pcm));
    }
    let end = match writer.error.take() {
        Some(error) => RecordEnd::SinkFailed(error),
        None => end,
    };
    (end, receiver.stats())
}

/// Waits until the prelude's next packet is due.
async fn sleep_until_due(due: Option<std::time::Instant>) {
    match due {
        Some(due) => time::sleep_until(Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}

/// Sends every prelude packet due now to the peer (when its address is
/// known yet; the pacing goes on regardless, so the timing stays right).
async fn play_due(socket: &RtpSocket, playing: &mut Playback, peer: Option<SocketAddr>) {
    let now = Instant::now().into_std();
    loop {
        match playing.poll(now) {
            Ok(Some(packet)) => {
                if let Some(peer) = peer {
                    if let Err(error) = socket.send_to(packet, peer).await {
                        debug!(%error, "cannot send a prompt packet");
                    }
                }
            }
            Ok(None) => return,
            Err(error) => {
                debug!(%error, "cannot encode a prompt frame; skipping the prompts");
                while playing.next_due().is_some() {
                    playing.on_digit();
                    if matches!(playing.poll(now), Ok(None) | Err(_)) {
                        return;
                    }
                }
                return;
            }
        }
    }
}

/// Samples of `length` at `rate` Hz.
fn samples_in(length: Duration, rate: u32) -> u64 {
    u64::try_from(length.as_nanos() * u128::from(rate) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// The sink, cut at the maximum length and stopped by its first error,
/// with the silence that may end the message measured on the way.
struct CappedSink<'a, S> {
    sink: &'a mut S,
    remaining: u64,
    error: Option<String>,
    silence: Option<SilenceWatch>,
}

/// How long the recorded audio has been silent, in 20 ms frames.
struct SilenceWatch {
    tracker: SilenceTracker,
    max: Duration,
    frame: usize,
    exceeded: bool,
}

impl SilenceWatch {
    fn observe(&mut self, pcm: &[i16]) {
        for frame in pcm.chunks(self.frame.max(1)) {
            if self.tracker.push(frame).silent_for >= self.max {
                self.exceeded = true;
            }
        }
    }
}

impl<S> CappedSink<'_, S> {
    fn write<E: Display>(&mut self, pcm: &[i16])
    where
        S: FnMut(&[i16]) -> Result<(), E>,
    {
        if self.error.is_some() || self.remaining == 0 {
            return;
        }
        let take = usize::try_from(self.remaining).map_or(pcm.len(), |r| r.min(pcm.len()));
        let Some(part) = pcm.get(..take) else {
            return;
        };
        if let Err(error) = (self.sink)(part) {
            self.error = Some(error.to_string());
        }
        self.remaining -= take as u64;
        if let Some(watch) = self.silence.as_mut() {
            watch.observe(part);
        }
    }

    fn end(&self) -> Option<RecordEnd> {
        match (&self.error, self.remaining) {
            (Some(error), _) => Some(RecordEnd::SinkFailed(error.clone())),
            (None, 0) => Some(RecordEnd::MaxLength),
            _ if self.silence.as_ref().is_some_and(|w| w.exceeded) => Some(RecordEnd::MaxSilence),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
