//! The owner's call's work off its task: the PIN check, the store, the
//! greetings' files, rendering prompts and decoding messages. Each [`Job`]
//! becomes one future that the session runs in its lane; blocking work
//! goes to tokio's blocking pool, so the call's task keeps its 20 ms
//! pacing.
//!
//! Folder changes go through the store (one SQLite transaction each) and
//! then tell the message-waiting service, so the lamps change at once
//! rather than at the next poll of the change log.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin as Pinned;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::flow::{Audio, Job, OwnerEvent};
use super::take::Take;
use crate::audio::resample;
use crate::retrieval::menu::{Event, Folder, MailboxContents, MessageSummary};
use crate::retrieval::sentence::caller_number;
use crate::store::{Folder as StoreFolder, Message, Store, StoreError};
use crate::voicemail::greetings::{GreetingKind, Greetings};
use crate::voicemail::Context;

/// A job as a future: what it reports, if anything.
pub type JobFuture = Pinned<Box<dyn Future<Output = Option<OwnerEvent>> + Send>>;

/// What every job of one call needs to know.
#[derive(Clone)]
pub struct JobEnv {
    /// The server's shared state.
    pub ctx: Arc<Context>,
    /// The caller's address, the login lockout's key.
    pub source: Option<IpAddr>,
    /// A token naming this call in temporary file names.
    pub call: String,
}

impl JobEnv {
    /// The future that runs `job`. `rate` is the call's audio rate now
    /// (what [`Job::Load`] decodes to); `take` is the greeting audio
    /// recorded (at `rate`) for [`Job::SaveTake`].
    pub fn start(&self, job: Job, rate: u32, recorded: Vec<i16>) -> JobFuture {
        let env = self.clone();
        Box::pin(async move {
            let what = format!("{job:?}");
            let started = std::time::Instant::now();
            let reported = env.run(job, rate, recorded).await;
            tracing::debug!(
                job = what,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job done"
            );
            reported
        })
    }

    async fn run(self, job: Job, rate: u32, recorded: Vec<i16>) -> Option<OwnerEvent> {
        let store = self.ctx.store.clone();
        match job {
            Job::VerifyPin { mailbox, pin } => {
                let verdict = self
                    .ctx
                    .logins
                    .verify(store, &mailbox, pin, self.source)
                    .await;
                Some(OwnerEvent::Answer(Event::PinVerdict(verdict)))
            }
            Job::LoadMailbox { mailbox } => {
                let data_dir = self.ctx.profile.server.data_dir.clone();
                let loaded =
                    blocking(move || contents(&store, &Greetings::new(data_dir), &mailbox)).await;
                Some(OwnerEvent::Answer(match loaded {
                    Some(Ok(contents)) => Event::MailboxLoaded(contents),
                    Some(Err(e)) => {
                        warn!(error = %e, "cannot read the mailbox");
                        Event::MailboxUnavailable
                    }
                    None => Event::MailboxUnavailable,
                }))
            }
            Job::Load { playback, audio } => {
                let env = self.clone();
                let loaded = blocking(move || env.load(&audio, rate)).await;
                Some(match loaded {
                    Some(Ok(pcm)) => OwnerEvent::Loaded {
                        playback,
                        pcm,
                        rate,
                    },
                    Some(Err(error)) => {
                        warn!(%error, "cannot play");
                        OwnerEvent::LoadFailed { playback }
                    }
                    None => OwnerEvent::LoadFailed { playback },
                })
            }
            Job::MarkHeard { id } => self.move_message(id, Move::Heard).await,
            Job::Save { id } => self.move_message(id, Move::Save).await,
            Job::Delete { id } => self.move_message(id, Move::Delete).await,
            Job::SetPin { mailbox, pin } => {
                let saved = blocking(move || {
                    let hash = crate::retrieval::pin::hash(&pin).map_err(|e| e.to_string())?;
                    store
                        .set_pin_hash(&mailbox, &hash)
                        .map_err(|e| e.to_string())
                })
                .await;
                let saved = match saved {
                    Some(Ok(_)) => true,
                    Some(Err(error)) => {
                        warn!(%error, "cannot store the new PIN");
                        false
                    }
                    None => false,
                };
                Some(OwnerEvent::Answer(Event::PinSaved(saved)))
            }
            Job::SaveTake { mailbox, kind } => {
                let take = Take::new(&self.data_dir(), &mailbox, kind, &self.call);
                let threshold = self.ctx.profile.media.silence_threshold_dbfs as f32;
                let saved = blocking(move || take?.save(&recorded, rate, threshold));
                let length = match saved.await {
                    Some(Ok(length)) => length,
                    Some(Err(e)) => {
                        warn!(error = %e, "cannot write the recorded greeting");
                        Duration::ZERO
                    }
                    None => Duration::ZERO,
                };
                Some(OwnerEvent::TakeSaved { length })
            }
            Job::AcceptGreeting { mailbox, kind } => {
                let take = Take::new(&self.data_dir(), &mailbox, kind, &self.call);
                match blocking(move || take?.accept()).await {
                    Some(Ok(greeting)) => info!(
                        kind = %greeting.kind,
                        duration_ms = greeting.duration_ms,
                        "greeting set by phone"
                    ),
                    Some(Err(e)) => warn!(error = %e, "cannot set the greeting"),
                    None => {}
                }
                None
            }
            Job::DiscardGreeting { mailbox, kind } => {
                let take = Take::new(&self.data_dir(), &mailbox, kind, &self.call);
                if let Some(Err(e)) = blocking(move || take?.discard()).await {
                    warn!(error = %e, "cannot remove the recorded greeting");
                }
                None
            }
            Job::RemoveTemporaryGreeting { mailbox } => {
                let greetings = Greetings::new(self.data_dir());
                match blocking(move || greetings.clear(&mailbox, GreetingKind::Temporary)).await {
                    Some(Ok(_)) => info!("temporary greeting removed by phone"),
                    Some(Err(e)) => warn!(error = %e, "cannot remove the temporary greeting"),
                    None => {}
                }
                None
            }
        }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.ctx.profile.server.data_dir.clone()
    }

    /// Renders or decodes what is to be played, at `rate`.
    fn load(&self, audio: &Audio, rate: u32) -> Result<Vec<i16>, String> {
        match audio {
            // Cached per clip and rate: after the first calls, a copy.
            Audio::Clips(clips) => self
                .ctx
                .prompts
                .render(clips, rate)
                .map_err(|e| e.to_string()),
            Audio::Message(id) => {
                let store = &self.ctx.store;
                let message = store.get(id).map_err(|e| e.to_string())?;
                let (pcm, from) = store.message_pcm(&message).map_err(|e| e.to_string())?;
                // Converted here, off the call's task, rather than by the
                // media core as the first frame goes out.
                resample(&pcm, from, rate).map_err(|e| e.to_string())
            }
            Audio::Take { mailbox, kind } => {
                Take::new(&self.data_dir(), mailbox, *kind, &self.call)
                    .and_then(|take| take.load(rate))
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Moves a message's folder, then updates the lamps.
    async fn move_message(&self, id: String, to: Move) -> Option<OwnerEvent> {
        let store = self.ctx.store.clone();
        let moved = blocking(move || match to {
            Move::Heard => store.mark_heard(&id),
            Move::Save => store.move_to(&id, StoreFolder::Saved),
            Move::Delete => store.delete(&id),
        })
        .await;
        match moved {
            Some(Ok(change)) => {
                info!(
                    id = %change.message.id,
                    from = %change.from,
                    to = %change.message.folder,
                    "message moved by its owner"
                );
                self.ctx.mwi.mailbox_changed(&change.message.mailbox);
            }
            Some(Err(e)) => warn!(error = %e, "cannot move the message"),
            None => {}
        }
        None
    }
}

/// A folder change asked for by a key.
#[derive(Debug, Clone, Copy)]
enum Move {
    Heard,
    Save,
    Delete,
}

/// Runs `f` on the blocking pool; `None` if it panicked or was cancelled
/// (logged).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Some(value),
        Err(e) => {
            warn!(error = %e, "a call's job failed to run");
            None
        }
    }
}

/// The mailbox's messages as the menu needs them, and whether its
/// temporary greeting is set.
fn contents(
    store: &Store,
    greetings: &Greetings,
    mailbox: &str,
) -> Result<MailboxContents, StoreError> {
    let messages = store
        .listening_order(mailbox)?
        .iter()
        .filter_map(summary)
        .collect();
    let temporary_greeting = greetings
        .path_of(mailbox, GreetingKind::Temporary)
        .is_ok_and(|path| path.is_file());
    Ok(MailboxContents {
        messages,
        temporary_greeting,
    })
}

/// What the menu needs of a stored message; `None` for a deleted one.
fn summary(message: &Message) -> Option<MessageSummary> {
    let folder = match message.folder {
        StoreFolder::New => Folder::New,
        StoreFolder::Old => Folder::Old,
        StoreFolder::Saved => Folder::Saved,
        StoreFolder::Deleted => return None,
    };
    let received_at = match message.received_at.parse() {
        Ok(at) => at,
        Err(e) => {
            warn!(id = %message.id, error = %e, "unreadable receive time; the envelope says 1970");
            jiff::Timestamp::UNIX_EPOCH
        }
    };
    Some(MessageSummary {
        id: message.id.clone(),
        folder,
        received_at,
        caller: caller_number(&message.caller),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IncomingMessage, Received};
    use sha2::{Digest, Sha256};

    fn wav(rate: u32, pcm: &[i16]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for &s in pcm {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        out.into_inner()
    }

    /// A message recorded at another site and delivered here, its home,
    /// is listed and played like a local one.
    #[test]
    fn a_message_from_another_site_is_at_home_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pcm: Vec<i16> = (0..8000)
            .map(|i| ((i % 40) * 500 - 10_000) as i16)
            .collect();
        let bytes = wav(8000, &pcm);
        let meta = IncomingMessage {
            id: uuid::Uuid::new_v4().to_string(),
            mailbox: "2001".into(),
            caller: "sip:+1-555-0100@pbx-a.example".into(),
            caller_name: None,
            called: "sip:2001@pbx-a.example".into(),
            reason: Some("no-answer".into()),
            received_at: "2026-11-30T09:41:00.000Z".into(),
            duration_ms: 1000,
            codec: "PCMU".into(),
            format: "wav".into(),
            sample_rate: 8000,
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            origin: "site-a".into(),
            partial: false,
            call_id: "c@pbx-a".into(),
        };
        let Received::Stored(stored) = store.store_received(&meta, &bytes).unwrap() else {
            panic!("not stored");
        };
        let listed = contents(&store, &Greetings::new(dir.path()), "2001").unwrap();
        assert_eq!(
            listed.messages,
            [MessageSummary {
                id: stored.id.clone(),
                folder: Folder::New,
                received_at: "2026-11-30T09:41:00Z".parse().unwrap(),
                caller: Some("15550100".into()),
            }]
        );
        assert!(!listed.temporary_greeting);
        assert_eq!(store.message_pcm(&stored).unwrap(), (pcm, 8000));
    }
}
