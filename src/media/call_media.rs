//! The call's task's handle on its media: the sans-IO [`MediaCore`] behind
//! a lock that the media engine (`super::engine`) shares.
//!
//! Once a [`super::MediaPort`] attaches the media to the engine, the
//! engine feeds the core every datagram and runs its timers on its own
//! threads, and wakes the call's task only when the core wants attention:
//! an event (a digit, a prompt's end, the recording's end) or a second of
//! recorded audio to write. The task meanwhile acts through this handle
//! exactly as on the core: queue prompts, start and stop a recording,
//! apply a re-INVITE, drain the recorded audio, read the counters. Each
//! method takes the lock for the time of one core call; recorded audio is
//! taken out under the lock (the recorder's buffer swapped with the
//! handle's, no copy) and handed to the sink after it, so a slow disk
//! never holds up the engine.
//!
//! A change the task makes that brings the core's next deadline forward
//! (a prompt to play now, a recording's limits) is passed on to the
//! engine, which runs the core by then. Not attached (before its port
//! exists, or in tests), the handle is the core itself: the caller feeds
//! it and waits for [`CallMedia::poll_timeout`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use crate::audio::AudioError;

use super::core::MediaCore;
pub use super::core::{Channel, DigitSource, MediaEvent, MediaSettings, MediaStats, Transmit};
use super::engine::Worker;
use super::outbound::{Prompt, PromptId};
use super::recorder::{RecordEnd, RecordLimits};
use super::sdp::Negotiated;

/// The media of one call; see the module documentation.
pub struct CallMedia {
    shared: Arc<Shared>,
}

/// What the call's task and the engine share.
pub(super) struct Shared {
    state: Mutex<State>,
    /// The call's slot in its engine worker's table (`usize::MAX`: none).
    slot: AtomicUsize,
}

/// The core and what the engine knows of it, under one lock.
pub(super) struct State {
    pub(super) core: MediaCore,
    /// The engine's worker that runs the core, once attached.
    pub(super) worker: Option<Arc<Worker>>,
    /// When the worker will run the core next.
    pub(super) scheduled: Option<Instant>,
}

impl Shared {
    pub(super) fn slot(&self) -> Option<usize> {
        Some(self.slot.load(Ordering::Acquire)).filter(|&s| s != usize::MAX)
    }

    pub(super) fn set_slot(&self, slot: usize) {
        self.slot.store(slot, Ordering::Release);
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves the core as it was between two
        // calls, which is a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `due` comes before `scheduled` (none is never).
pub(super) fn earlier(due: Option<Instant>, scheduled: Option<Instant>) -> bool {
    match (due, scheduled) {
        (Some(due), Some(scheduled)) => due < scheduled,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl CallMedia {
    /// The media of a call negotiated as `n`, answered at `now` (`wall` is
    /// the wall clock then, for RTCP; `seed` randomizes SSRC, sequence
    /// numbers, timestamps and the CNAME, RFC 3550 §5.1, §8).
    pub fn new(
        n: &Negotiated,
        settings: MediaSettings,
        now: Instant,
        wall: SystemTime,
        seed: u64,
    ) -> Result<CallMedia, AudioError> {
        let core = MediaCore::new(n, settings, now, wall, seed)?;
        Ok(CallMedia {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    core,
                    worker: None,
                    scheduled: None,
                }),
                slot: AtomicUsize::new(usize::MAX),
            }),
        })
    }

    /// What the engine shares with this handle.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `f` on the core; if the core is attached and its deadline came
    /// forward, tells the engine.
    fn with<R>(&mut self, f: impl FnOnce(&mut MediaCore) -> R) -> R {
        let mut state = self.shared.lock();
        let result = f(&mut state.core);
        let due = state.core.poll_timeout();
        if earlier(due, state.scheduled) {
            if let Some(worker) = state.worker.clone() {
                state.scheduled = due;
                drop(state);
                worker.reschedule(&self.shared);
            }
        }
        result
    }

    fn read<R>(&self, f: impl FnOnce(&MediaCore) -> R) -> R {
        f(&self.shared.lock().core)
    }

    /// The rate of the audio recorded, for the whole call.
    pub fn sample_rate(&self) -> u32 {
        self.read(MediaCore::sample_rate)
    }

    /// The session as last negotiated.
    pub fn negotiated(&self) -> Negotiated {
        self.read(|core| core.negotiated().clone())
    }

    /// Whether media may flow out (confirmed, or the caller sent first).
    pub fn is_live(&self) -> bool {
        self.read(MediaCore::is_live)
    }

    /// The call is confirmed (the ACK arrived): prompts, keep-alive and
    /// RTCP may go out, and the RTP timeout starts.
    pub fn confirm(&mut self, now: Instant) {
        self.with(|core| core.confirm(now));
    }

    /// A re-INVITE (or the ACK's answer to our offer) renegotiated the
    /// session: codec, payload types, the caller's address, hold.
    pub fn update(&mut self, n: &Negotiated, now: Instant) {
        self.with(|core| core.update(n, now));
    }

    /// Queues a prompt; it plays once the call is live.
    pub fn play(&mut self, prompt: Prompt) -> PromptId {
        self.with(|core| core.play(prompt))
    }

    /// Stops every prompt, playing and queued.
    pub fn clear_prompts(&mut self) {
        self.with(MediaCore::clear_prompts);
    }

    /// Starts recording at `now`; `stop_key` ends it.
    pub fn record(&mut self, limits: &RecordLimits, stop_key: Option<char>, now: Instant) {
        self.with(|core| core.record(limits, stop_key, now));
    }

    /// Ends the recording: everything still buffered is recorded first.
    pub fn stop_recording(&mut self) {
        self.with(MediaCore::stop_recording);
    }

    /// A sink error ends the recording without flushing more into it.
    pub fn sink_failed(&mut self, error: String) {
        self.with(|core| core.sink_failed(error));
    }

    /// Why the recording ended, once it has.
    pub fn recording_ended(&self) -> Option<RecordEnd> {
        self.read(|core| core.recording_ended().cloned())
    }

    /// A digit from SIP INFO, treated exactly as an RFC 4733 one.
    pub fn signalled_digit(&mut self, digit: char, now: Instant) {
        self.with(|core| core.signalled_digit(digit, now));
    }

    /// One datagram from `from` on our `channel` port, at `now` (the
    /// engine's work once attached).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        channel: Channel,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        self.with(|core| core.handle_datagram(now, channel, from, datagram));
    }

    /// A deadline passed (the engine's work once attached; harmless to
    /// repeat).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.with(|core| core.handle_timeout(now));
    }

    /// The next datagram due at `now`, written into `buf`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.with(|core| core.poll_transmit(now, buf))
    }

    /// The RTCP BYE that ends our stream, when media went out at all.
    pub fn goodbye(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.with(|core| core.goodbye(now, buf))
    }

    /// When the caller must call [`CallMedia::handle_timeout`] next. `None`
    /// once attached to the engine, which keeps the core's time itself:
    /// the task then waits only for the engine's wake-up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = self.shared.lock();
        match state.worker {
            Some(_) => None,
            None => state.core.poll_timeout(),
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.with(MediaCore::poll_event)
    }

    /// Hands the sink the recorded audio gathered so far (whole blocks, or
    /// all of it once the recording ended), outside the lock. On a sink
    /// error the recording ends with [`RecordEnd::SinkFailed`] and the
    /// error is returned.
    pub fn drain_recorded<E: std::fmt::Display>(
        &mut self,
        sink: &mut impl FnMut(&[i16]) -> Result<(), E>,
    ) -> Result<(), String> {
        // The recorder's buffer is swapped out, not copied, and a new one
        // takes its place; the one drained is freed once written rather
        // than kept for the next turn, so a call holds one second's
        // buffer, not two (a few allocations a second per call). The new
        // one is made before the lock is taken, so the media engine's
        // thread never waits on the allocator for this call.
        let Some(capacity) = self.read(MediaCore::recorded_ready) else {
            return Ok(());
        };
        let mut drained = Vec::with_capacity(capacity);
        self.with(|core| core.take_recorded(&mut drained));
        if drained.is_empty() {
            return Ok(());
        }
        sink(&drained).map_err(|error| {
            let error = error.to_string();
            self.sink_failed(error.clone());
            error
        })
    }

    /// The call's counters.
    pub fn stats(&self) -> MediaStats {
        self.read(MediaCore::stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::Codec;
    use std::time::Duration;

    fn media() -> CallMedia {
        let n = Negotiated {
            remote_rtp: Some("192.0.2.1:4000".parse().unwrap()),
            ..Negotiated::before_answer(Codec::Pcmu)
        };
        let settings = MediaSettings {
            jitter: Duration::from_millis(60),
            rtp_timeout: Duration::from_secs(5),
            keepalive: crate::config::DEFAULT_KEEPALIVE,
        };
        CallMedia::new(&n, settings, Instant::now(), SystemTime::now(), 1).unwrap()
    }

    /// Not attached, the handle is the core: its deadline is the caller's.
    #[test]
    fn a_detached_handle_gives_the_cores_deadline() {
        let mut media = media();
        assert_eq!(media.poll_timeout(), None, "nothing before the ACK");
        let now = Instant::now();
        media.confirm(now);
        assert!(media.poll_timeout().is_some());
    }

    /// A failing sink ends the recording with its error, reported once.
    #[test]
    fn a_failing_sink_ends_the_recording() {
        let mut media = media();
        let now = Instant::now();
        media.confirm(now);
        let limits = RecordLimits {
            max_length: Duration::from_secs(60),
            rtp_timeout: Duration::from_secs(5),
            jitter: Duration::from_millis(60),
            max_silence: None,
            silence_threshold_dbfs: -50.0,
        };
        media.record(&limits, None, now);
        media.stop_recording();
        // Nothing was recorded: the sink is not called.
        assert_eq!(media.drain_recorded(&mut |_: &[i16]| Err("full")), Ok(()));
        assert_eq!(media.recording_ended(), Some(RecordEnd::Stopped));
    }
}
