//! An owner's call on the wire: one task, one flat loop, like a deposit's.
//!
//! The loop waits on the call's media and timer ([`MediaPort`]: the media
//! engine's wake-up, and the menu's deadline),
//! the dialog's events ([`CallLeg`]), the job that is running and the
//! server's shutdown, and feeds each to the sans-IO cores: the media core
//! ([`CallMedia`]) and the owner's flow ([`OwnerFlow`]), whose effects it
//! carries out at once: audio queued in the media core, which converts
//! any rate and encodes the call's codec; the greeting take recorded
//! after the tone; jobs run off the call's task in two lanes
//! ([`JobQueue`]): what changes the store or checks a PIN, in order, and
//! what is loaded to play (prompts rendered from the clips loaded at
//! start-up, `Context::prompts`; messages decoded), so a prompt never
//! waits for a write and the call's task never renders or decodes. One
//! timer serves both cores: the earlier of their deadlines.
//!
//! When the call ends, the jobs already asked for still run (a message
//! heard just before the caller hung up is still marked heard; an
//! unaccepted take is still removed), within a bound.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, info, warn};

use super::flow::{Effect, Job, OwnerEvent, OwnerFlow, Sound};
use super::jobs::{JobEnv, JobFuture};
use crate::media::{
    beep, CallMedia, MediaEvent, MediaPort, Negotiated, Prompt, RecordLimits, RtpSocket,
};
use crate::retrieval::menu::{MenuConfig, Start};
use crate::voicemail::leg::{CallLeg, LegEvent};
use crate::voicemail::Context;

/// The key that ends a greeting recording.
const END_KEY: char = '#';

/// Longest the jobs left at the end of a call may take.
const JOBS_GRACE: Duration = Duration::from_secs(10);

/// One owner's call.
pub struct OwnerSession {
    ctx: Arc<Context>,
    leg: CallLeg,
    start: Start,
    env: JobEnv,
    config: MenuConfig,
}

impl OwnerSession {
    /// An owner's call on the dialog `leg`, from `source`.
    pub fn new(
        ctx: Arc<Context>,
        leg: CallLeg,
        start: Start,
        source: Option<IpAddr>,
    ) -> OwnerSession {
        let config = MenuConfig::from_config(&ctx.profile.retrieval);
        let env = JobEnv {
            ctx: ctx.clone(),
            source,
            call: format!("{:016x}", rand::random::<u64>()),
        };
        OwnerSession {
            ctx,
            leg,
            start,
            env,
            config,
        }
    }

    /// Answers the call and runs the menu until the call ends.
    pub async fn run(
        mut self,
        offer: Option<Negotiated>,
        socket: RtpSocket,
        slot: OwnedSemaphorePermit,
    ) {
        let Some(codec) = self.leg.prepare(offer.as_ref()).await else {
            return;
        };
        let Some(mut media) = self.leg.answer(offer, codec) else {
            return;
        };
        let mut port = MediaPort::new(socket, &media);
        let mut jobs = Lanes::default();
        let hang_up = self.drive(&mut media, &mut port, &mut jobs).await;
        info!(
            hang_up,
            stats = ?media.stats(),
            send_errors = port.send_errors(),
            "owner's call ended"
        );
        port.goodbye(&mut media, now());
        if hang_up {
            self.leg.bye().await;
        }
        drop(port);
        drop(slot);
        // What was asked of the store still happens; nothing more plays.
        if tokio::time::timeout(JOBS_GRACE, jobs.ordered.finish())
            .await
            .is_err()
        {
            warn!("the call's last jobs did not finish in time");
        }
    }

    /// The call's one loop; returns whether vmesh hangs up.
    async fn drive(
        &mut self,
        media: &mut CallMedia,
        port: &mut MediaPort,
        jobs: &mut Lanes,
    ) -> bool {
        let mut flow = OwnerFlow::new(self.config.clone(), self.start.clone());
        let mut recorded: Vec<i16> = Vec::new();
        let shutdown_token = self.ctx.shutdown.clone();
        let shutdown = shutdown_token.cancelled();
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut logged_in = false;
        loop {
            let at = now();
            flow.handle_timeout(at);
            // Until both cores are quiet: a transmit may end a prompt, an
            // event may call for effects, an effect may end a prompt.
            loop {
                port.transmit(media, at);
                let mut busy = false;
                // Whatever was recorded goes into the take before the end
                // of the recording is handled.
                if let Err(error) = media.drain_recorded(&mut |pcm: &[i16]| {
                    recorded.extend_from_slice(pcm);
                    Ok::<(), Infallible>(())
                }) {
                    warn!(%error, "greeting recording failed");
                }
                while let Some(event) = media.poll_event() {
                    busy = true;
                    if let MediaEvent::Digit { digit, via, .. } = &event {
                        debug!(%digit, ?via, "DTMF");
                    }
                    flow.handle(OwnerEvent::Media(event), at);
                }
                while let Some(effect) = flow.poll_effect() {
                    busy = true;
                    if let Some(hang_up) =
                        self.carry_out(effect, &mut flow, media, jobs, &mut recorded, at)
                    {
                        return hang_up;
                    }
                }
                if !busy {
                    break;
                }
            }
            if !logged_in {
                if let Some(mailbox) = flow.mailbox() {
                    logged_in = true;
                    tracing::Span::current().record("mailbox", mailbox);
                }
            }
            let deadline = [media.poll_timeout(), flow.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            port.arm(deadline);
            tokio::select! {
                biased;
                input = std::future::poll_fn(|cx| port.poll_input(cx)) => {
                    port.feed(media, input, now());
                }
                state = self.leg.next_state() => {
                    match self.leg.on_state(state, media).await {
                        Some(LegEvent::Confirmed) => flow.handle(OwnerEvent::Confirmed, now()),
                        Some(LegEvent::CallerLeft) => flow.handle(OwnerEvent::CallerLeft, now()),
                        None => {}
                    }
                }
                done = jobs.ordered.next(), if jobs.ordered.is_busy() => {
                    if let Some(event) = done {
                        flow.handle(event, now());
                    }
                }
                done = jobs.loads.next(), if jobs.loads.is_busy() => {
                    if let Some(event) = done {
                        flow.handle(event, now());
                    }
                }
                _ = &mut shutdown, if !stopping => {
                    stopping = true;
                    info!("server stopping: ending the owner's call");
                    flow.handle(OwnerEvent::Shutdown, now());
                }
            }
        }
    }

    /// Carries out one effect; `Some(hang_up)` when the call is over.
    fn carry_out(
        &self,
        effect: Effect,
        flow: &mut OwnerFlow,
        media: &mut CallMedia,
        jobs: &mut Lanes,
        recorded: &mut Vec<i16>,
        now: Instant,
    ) -> Option<bool> {
        let rate = media.negotiated().codec.audio_rate();
        match effect {
            Effect::PlayAudio {
                playback,
                pcm,
                rate,
            } => {
                let prompt = play(media, pcm, rate);
                flow.handle(
                    OwnerEvent::Queued {
                        sound: Sound::Menu(playback),
                        prompt,
                    },
                    now,
                );
            }
            Effect::Stop => media.clear_prompts(),
            Effect::Tone => {
                let settings = &self.ctx.profile.media;
                let millis = u32::try_from(settings.beep.as_millis()).unwrap_or(u32::MAX);
                let prompt = play(media, beep(rate, settings.beep_hz, millis), rate);
                flow.handle(
                    OwnerEvent::Queued {
                        sound: Sound::Tone,
                        prompt,
                    },
                    now,
                );
            }
            Effect::Record => {
                recorded.clear();
                media.record(&self.greeting_limits(), Some(END_KEY), now);
            }
            Effect::StopRecording => media.stop_recording(),
            Effect::Job(job @ Job::Load { .. }) => {
                jobs.loads
                    .push_latest(self.env.start(job, rate, Vec::new()));
            }
            Effect::Job(job) => {
                let take = match job {
                    Job::SaveTake { .. } => std::mem::take(recorded),
                    _ => Vec::new(),
                };
                jobs.ordered.push(self.env.start(job, rate, take));
            }
            Effect::Finish { hang_up } => return Some(hang_up),
        }
        None
    }

    /// The limits of a greeting recording: the menu's longest greeting (it
    /// stops the recording itself at that point; this is the backstop),
    /// and the profile's silence and RTP rules.
    fn greeting_limits(&self) -> RecordLimits {
        let media = &self.ctx.profile.media;
        RecordLimits {
            max_length: self.config.max_greeting + Duration::from_secs(1),
            rtp_timeout: media.rtp_timeout,
            jitter: media.jitter,
            max_silence: media.max_silence,
            silence_threshold_dbfs: media.silence_threshold_dbfs as f32,
        }
    }
}

/// Replaces what plays with `pcm` at `rate`; its prompt id. The menu
/// decides which keys interrupt (see [`super::flow`]), so the media core's
/// own barge-in is off.
fn play(media: &mut CallMedia, pcm: Vec<i16>, rate: u32) -> u64 {
    media.clear_prompts();
    media.play(Prompt {
        pcm: pcm.into(),
        rate,
        barge_in: false,
    })
}

/// The two lanes of a call's jobs.
#[derive(Default)]
pub struct Lanes {
    /// PIN checks, the store, the greetings' files: in the order asked.
    pub ordered: JobQueue,
    /// Audio to play: the flow takes only the latest.
    pub loads: JobQueue,
}

/// Jobs run one after the other.
#[derive(Default)]
pub struct JobQueue {
    running: Option<JobFuture>,
    waiting: VecDeque<JobFuture>,
}

impl JobQueue {
    /// Queues a job after the others.
    pub fn push(&mut self, job: JobFuture) {
        if self.running.is_none() {
            self.running = Some(job);
        } else {
            self.waiting.push_back(job);
        }
    }

    /// Queues a job that makes the waiting ones moot: they are dropped
    /// unstarted (the running one ends; what it reports is stale).
    pub fn push_latest(&mut self, job: JobFuture) {
        self.waiting.clear();
        self.push(job);
    }

    /// Whether a job is running.
    pub fn is_busy(&self) -> bool {
        self.running.is_some()
    }

    /// Runs the current job to its end and starts the next; what it
    /// reported. Cancel-safe: the job stays here until it has ended.
    pub async fn next(&mut self) -> Option<OwnerEvent> {
        let job = self.running.as_mut()?;
        let reported = job.await;
        self.running = self.waiting.pop_front();
        reported
    }

    /// Runs every job left, in order.
    pub async fn finish(&mut self) {
        while self.is_busy() {
            self.next().await;
        }
    }
}

/// Now, on tokio's clock (paused in tests), as the cores take it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::menu::{Event, PinVerdict};

    fn job(verdict: PinVerdict, log: &Arc<std::sync::Mutex<Vec<PinVerdict>>>) -> JobFuture {
        let log = log.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.lock().unwrap().push(verdict);
            Some(OwnerEvent::Answer(Event::PinVerdict(verdict)))
        })
    }

    #[tokio::test]
    async fn jobs_run_in_order_and_a_newer_load_drops_the_waiting_ones() {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut queue = JobQueue::default();
        queue.push(job(PinVerdict::Accepted, &log));
        queue.push(job(PinVerdict::Rejected, &log));
        queue.push_latest(job(PinVerdict::Locked, &log));
        let mut reported = Vec::new();
        while queue.is_busy() {
            reported.push(queue.next().await);
        }
        assert_eq!(
            *log.lock().unwrap(),
            [PinVerdict::Accepted, PinVerdict::Locked],
            "the running job ends, the one waiting is dropped"
        );
        assert_eq!(reported.len(), 2);

        let mut ordered = JobQueue::default();
        for verdict in [PinVerdict::Rejected, PinVerdict::Accepted] {
            ordered.push(job(verdict, &log));
        }
        ordered.finish().await;
        assert_eq!(
            log.lock().unwrap()[2..],
            [PinVerdict::Rejected, PinVerdict::Accepted]
        );
    }
}
