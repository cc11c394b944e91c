//! `vmesh messages list|show|export|delete|restore|move|mark`.
//!
//! The folder commands change what a running server sees through the
//! database alone: the server notices the change (see `store::changes`)
//! and updates the mailbox's message-waiting lamps.

use std::path::Path;

use super::terminal::{escape, escape_or};
use super::{CliError, FolderArg, MessagesCommand, MoveTarget};
use crate::store::{Folder, FolderChange, Message, Store};

impl From<FolderArg> for Folder {
    fn from(arg: FolderArg) -> Folder {
        match arg {
            FolderArg::New => Folder::New,
            FolderArg::Old => Folder::Old,
            FolderArg::Saved => Folder::Saved,
            FolderArg::Deleted => Folder::Deleted,
        }
    }
}

impl From<MoveTarget> for Folder {
    fn from(arg: MoveTarget) -> Folder {
        match arg {
            MoveTarget::New => Folder::New,
            MoveTarget::Old => Folder::Old,
            MoveTarget::Saved => Folder::Saved,
        }
    }
}

pub fn run(command: MessagesCommand) -> Result<(), CliError> {
    match command {
        MessagesCommand::List {
            mailbox,
            folder,
            json,
            state,
        } => {
            let store = super::open_store(&state.data_dir()?)?;
            let list = store.list_in(mailbox.as_deref(), folder.map(Folder::from))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
        }
        MessagesCommand::Show { id, json, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            let m = store.get(&id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print_one(&m, &store);
            }
        }
        MessagesCommand::Export {
            id,
            out,
            raw,
            force,
            state,
        } => {
            let store = super::open_store(&state.data_dir()?)?;
            let m = store.get(&id)?;
            export(&store, &m, &out, raw, force)?;
            eprintln!(
                "exported {} ({} ms) to {}",
                m.id,
                m.duration_ms,
                out.display()
            );
        }
        MessagesCommand::Delete { id, json, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            report(store.delete(&id)?, json)?;
        }
        MessagesCommand::Restore { id, json, state } => {
            let store = super::open_store(&state.data_dir()?)?;
            report(store.restore(&id)?, json)?;
        }
        MessagesCommand::Move {
            id,
            to,
            json,
            state,
        } => {
            let store = super::open_store(&state.data_dir()?)?;
            report(store.move_to(&id, to.into())?, json)?;
        }
        MessagesCommand::Mark {
            id,
            heard,
            json,
            state,
            ..
        } => {
            let store = super::open_store(&state.data_dir()?)?;
            let change = if heard {
                store.mark_heard(&id)?
            } else {
                store.mark_new(&id)?
            };
            report(change, json)?;
        }
    }
    Ok(())
}

/// Says what a folder command did: one line on stderr, and with `json`
/// the message as it now is on stdout.
fn report(change: FolderChange, json: bool) -> Result<(), CliError> {
    let m = &change.message;
    if change.changed() {
        eprintln!(
            "{} (mailbox {}): {} -> {}",
            m.id, m.mailbox, change.from, m.folder
        );
    } else {
        eprintln!("{} (mailbox {}): already {}", m.id, m.mailbox, m.folder);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
    }
    Ok(())
}

/// Writes message `m` to `out`: always as WAV (16-bit PCM at the
/// message's rate, decoding Ogg Opus) so any player or analysis tool takes
/// it, or with `raw` (`--raw`) the stored file byte for byte, so an Ogg
/// Opus message stays Ogg Opus with its tags. Either way the stored bytes
/// are checked against the message's SHA-256 first. An existing `out` is
/// replaced only with `force`, and a symbolic link never followed.
pub fn export(
    store: &Store,
    m: &Message,
    out: &Path,
    raw: bool,
    force: bool,
) -> Result<(), CliError> {
    let bytes = if raw {
        store.read_audio(m)?
    } else {
        store.export_wav(m)?
    };
    super::output::write_file(out, &bytes, force)
}

fn print_table(list: &[Message]) {
    println!(
        "{:<36}  {:<8}  {:<20}  {:>8}  {:<13}  {:<8}  {:<12}  {:<10}  CALLER",
        "ID", "MAILBOX", "RECEIVED (UTC)", "SECONDS", "REASON", "FOLDER", "ORIGIN", "DELIVERY"
    );
    for m in list {
        let caller = match &m.caller_name {
            Some(name) => format!("\"{}\" <{}>", escape(name), escape(&m.caller)),
            None => escape(&m.caller).into_owned(),
        };
        let folder = if m.partial {
            format!("{}*", m.folder)
        } else {
            m.folder.to_string()
        };
        println!(
            "{:<36}  {:<8}  {:<20}  {:>8.1}  {:<13}  {:<8}  {:<12}  {:<10}  {}",
            escape(&m.id),
            escape(&m.mailbox),
            escape(
                &m.received_at
                    .get(..19)
                    .unwrap_or(&m.received_at)
                    .replace('T', " ")
            ),
            m.duration_ms as f64 / 1000.0,
            escape_or(m.reason.as_deref(), "-"),
            folder,
            escape(&m.origin),
            escape(&m.delivery),
            caller
        );
    }
    if list.iter().any(|m| m.partial) {
        println!("(* partial: the recording was cut by a crash and recovered)");
    }
    println!("{} message(s)", list.len());
}

fn print_one(m: &Message, store: &Store) {
    let rows = [
        ("id", m.id.clone()),
        ("mailbox", m.mailbox.clone()),
        ("caller", m.caller.clone()),
        ("caller name", m.caller_name.clone().unwrap_or_default()),
        ("called", m.called.clone()),
        ("reason", m.reason.clone().unwrap_or_default()),
        ("received at", m.received_at.clone()),
        (
            "duration",
            format!("{:.2} s", m.duration_ms as f64 / 1000.0),
        ),
        ("codec", m.codec.clone()),
        ("format", format!("{} {} Hz", m.format, m.sample_rate)),
        ("size", format!("{} bytes", m.size_bytes)),
        ("sha256", m.sha256.clone()),
        ("folder", m.folder.to_string()),
        ("deleted at", m.deleted_at.clone().unwrap_or_default()),
        ("partial", m.partial.to_string()),
        ("origin", m.origin.clone()),
        ("home", m.home.clone().unwrap_or_default()),
        ("delivery", m.delivery.clone()),
        ("call id", m.call_id.clone()),
        ("file", store.audio_path(m).display().to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<12} {}", escape(&v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Finished, NewMessage, Route, StoragePolicy, StoreFormat};
    use std::time::Duration;

    /// One second of a 440 Hz tone stored as Ogg Opus at 16 kHz.
    fn opus_message(store: &Store) -> Message {
        let mut rec = store
            .start_recording(NewMessage {
                id: uuid::Uuid::new_v4(),
                mailbox: "1001".into(),
                caller_uri: "sip:2002@pbx".into(),
                caller_name: None,
                called_uri: "sip:1001@pbx".into(),
                reason: None,
                received_at: time::OffsetDateTime::UNIX_EPOCH,
                codec: "G722".into(),
                sample_rate: 16_000,
                origin: "vmesh".into(),
                call_id: "c1".into(),
            })
            .unwrap();
        let tone: Vec<i16> = (0..16_000)
            .map(|n| (8000.0 * (n as f64 * 440.0 * std::f64::consts::TAU / 16_000.0).sin()) as i16)
            .collect();
        rec.write(&tone).unwrap();
        let policy = StoragePolicy {
            min_duration: Duration::ZERO,
            format: StoreFormat::Opus { bitrate: 24_000 },
            silence: None,
        };
        match store.finish(rec, &policy, false, &Route::Home).unwrap() {
            Finished::Stored(m) => m,
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn export_decodes_opus_to_wav_and_raw_copies_the_ogg_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let m = opus_message(&store);

        let wav = dir.path().join("m.wav");
        export(&store, &m, &wav, false, false).unwrap();
        let reader = hound::WavReader::open(&wav).unwrap();
        assert_eq!(
            (
                reader.spec().sample_rate,
                reader.spec().channels,
                reader.len()
            ),
            (16_000, 1, 16_000)
        );

        let raw = dir.path().join("m.opus");
        export(&store, &m, &raw, true, false).unwrap();
        let raw = std::fs::read(raw).unwrap();
        assert_eq!(raw, std::fs::read(store.audio_path(&m)).unwrap());
        assert!(raw.starts_with(b"OggS"));
    }
}
