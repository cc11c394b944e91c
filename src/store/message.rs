//! A voicemail message: what a call hands the store when recording starts
//! ([`NewMessage`]) and what the index holds once it is stored ([`Message`]).

use serde::{Deserialize, Serialize};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::error::StoreError;
use super::folder::Folder;

/// The only container the store writes today; kept as a column so that
/// other formats (Ogg Opus) can be added without a schema change.
pub const FORMAT_WAV: &str = "wav";

/// Ogg Opus container, for messages recorded with the Opus codec; kept
/// as a format (and `.opus` file extension) the store accepts from peers.
pub const FORMAT_OPUS: &str = "opus";

/// [`Message::delivery`]: stored at its home server (recorded for one of
/// this server's mailboxes, or received from the peer that recorded it).
pub const DELIVERY_HOME: &str = "home";
/// [`Message::delivery`]: waiting in the outbox for its home server.
pub const DELIVERY_QUEUED: &str = "queued";
/// [`Message::delivery`]: its home server confirmed durable storage (200).
pub const DELIVERY_DELIVERED: &str = "delivered";
/// [`Message::delivery`]: parked after a refusal; `vmesh queue retry` resumes it.
pub const DELIVERY_FAILED: &str = "failed";

/// Longest peer name, as for `server.name` in profiles and topologies.
const PEER_MAX_LEN: usize = 64;

/// RFC 3339 (section 5.6) in UTC with exactly three fraction digits. The fixed
/// width makes the text sort in time order, so SQLite can order by it.
const RECEIVED_AT_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// What the call layer knows when it answers a call and starts recording.
///
/// The id is chosen here, at recording time, so that the same message keeps
/// one identity across crashes, recovery and transfer between servers.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// Message identity, unique across the mesh.
    pub id: Uuid,
    /// Target mailbox (1..=32 ASCII digits); becomes a directory name.
    pub mailbox: String,
    /// The caller's URI (From, or P-Asserted-Identity when trusted).
    pub caller_uri: String,
    /// The caller's display name, when the PBX sent one.
    pub caller_name: Option<String>,
    /// The originally called URI (Diversion / History-Info target).
    pub called_uri: String,
    /// Diversion reason (RFC 5806 `reason`, RFC 4458 `cause`), e.g. `user-busy`.
    pub reason: Option<String>,
    /// When the call reached the voicemail server.
    pub received_at: OffsetDateTime,
    /// Negotiated codec name, e.g. `PCMU`.
    pub codec: String,
    /// Rate of the decoded PCM that will be written (8000 for G.711).
    pub sample_rate: u32,
    /// The server that recorded the message (its mesh name).
    pub origin: String,
    /// SIP Call-ID of the call, to correlate with logs and traces.
    pub call_id: String,
}

/// A stored message as listed by the index; also the JSON shape of
/// `vmesh messages --json` and of the metadata part of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Hyphenated lower-case UUID.
    pub id: String,
    /// Mailbox (1..=32 ASCII digits).
    pub mailbox: String,
    /// Caller URI.
    pub caller: String,
    /// Caller display name.
    pub caller_name: Option<String>,
    /// Originally called URI.
    pub called: String,
    /// Diversion reason.
    pub reason: Option<String>,
    /// RFC 3339 UTC receive time, fixed width (milliseconds).
    pub received_at: String,
    /// Audio length, from the samples in the file.
    pub duration_ms: u64,
    /// Codec the call used.
    pub codec: String,
    /// Container format of the audio file ([`FORMAT_WAV`]).
    pub format: String,
    /// Sample rate of the stored PCM.
    pub sample_rate: u32,
    /// Size of the audio file in bytes.
    pub size_bytes: u64,
    /// Lower-case hex SHA-256 of the audio file, to verify copies.
    pub sha256: String,
    /// The folder it is in: [`Folder::New`] when stored, then `old` once
    /// heard, `saved`, or `deleted` (soft: restorable until purged).
    pub folder: Folder,
    /// When it was moved to `deleted` (RFC 3339 UTC); `None` in any other
    /// folder. It is purged `storage.deleted_retention_days` later.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// True when the recording was cut short (crash, abnormal call end) and
    /// holds only what was received.
    pub partial: bool,
    /// Server that recorded it.
    pub origin: String,
    /// SIP Call-ID of the call.
    pub call_id: String,
    /// The peer that is home to the mailbox, when that is not this server;
    /// `None` when this server is its home.
    #[serde(default)]
    pub home: Option<String>,
    /// Where the message stands on its way home: [`DELIVERY_HOME`],
    /// [`DELIVERY_QUEUED`], [`DELIVERY_DELIVERED`] or [`DELIVERY_FAILED`].
    #[serde(default = "delivery_home")]
    pub delivery: String,
}

/// Default of [`Message::delivery`] for JSON written before the mesh.
fn delivery_home() -> String {
    DELIVERY_HOME.to_owned()
}

/// A codec name in the store's one spelling, upper-case ("OPUS", "G722",
/// "PCMU", "PCMA"), whatever a sidecar written before it or a peer's
/// metadata said ("opus").
pub fn codec_spelling(codec: &str) -> String {
    codec.to_ascii_uppercase()
}

/// The file extension of an audio format the store accepts, `None` for any
/// other. The extension is the format name, so a file's name says what it
/// holds (`.wav`, `.opus`, served as `audio/wav` and `audio/ogg`).
pub fn format_extension(format: &str) -> Option<&'static str> {
    match format {
        FORMAT_WAV => Some(FORMAT_WAV),
        FORMAT_OPUS => Some(FORMAT_OPUS),
        _ => None,
    }
}

/// Checks a peer name with the rule profiles and topologies use for server
/// names (1 to 64 ASCII letters, digits, `-`, `_`, `.`), so an outbox row
/// always names a peer the mesh can look up.
pub fn validate_peer(name: &str) -> Result<(), StoreError> {
    let ok = (1..=PEER_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidPeer {
            name: name.to_owned(),
        })
    }
}

/// Checks that a mailbox is 1..=32 ASCII digits.
///
/// Mailboxes become path components (`messages/<mailbox>/`), so this is the
/// guard against path traversal; every entry point that takes a mailbox
/// calls it before building a path.
pub fn validate_mailbox(mailbox: &str) -> Result<(), StoreError> {
    if crate::config::is_valid_mailbox(mailbox) {
        Ok(())
    } else {
        Err(StoreError::InvalidMailbox {
            mailbox: mailbox.to_owned(),
        })
    }
}

/// Formats a receive time the way the index stores it (see
/// [`RECEIVED_AT_FORMAT`]): converted to UTC, milliseconds, `Z`. A time
/// whose UTC form falls outside the years 0000 to 9999 (RFC 3339 §5.6
/// writes four digits; `9999-12-31T23:59:59-23:59` is in year 10000 in
/// UTC) cannot be stored and is an error, never a panic.
pub fn format_received_at(id: &Uuid, at: OffsetDateTime) -> Result<String, StoreError> {
    let out_of_range = || StoreError::TimeOutOfRange {
        id: id.to_string(),
        time: at.to_string(),
    };
    let utc = at
        .checked_to_offset(UtcOffset::UTC)
        .ok_or_else(out_of_range)?;
    if !(0..=9999).contains(&utc.year()) {
        return Err(out_of_range());
    }
    utc.format(RECEIVED_AT_FORMAT)
        .map_err(|source| StoreError::Timestamp {
            id: id.to_string(),
            source,
        })
}

/// Formats Unix epoch milliseconds like receive times (RFC 3339, UTC,
/// milliseconds), for the outbox and peer times the CLI shows. `None` when
/// the value is outside the years RFC 3339 can write.
pub fn format_unix_ms(ms: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    at.format(RECEIVED_AT_FORMAT).ok()
}

/// The wall clock as Unix epoch milliseconds and as its RFC 3339 text.
/// Persisted times use the wall clock because they must mean the same
/// after a restart, which a monotonic `Instant` cannot.
pub fn now_unix_ms() -> (i64, String) {
    let now = OffsetDateTime::now_utc();
    let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let text = now
        .format(RECEIVED_AT_FORMAT)
        .unwrap_or_else(|_| now.to_string());
    (ms, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn mailbox_accepts_digits_only() {
        assert!(validate_mailbox("1001").is_ok());
        assert!(validate_mailbox(&"9".repeat(32)).is_ok());
        for bad in ["", "../x", "10/01", "1001 ", "abc", "١٢٣", &"9".repeat(33)] {
            assert!(
                matches!(
                    validate_mailbox(bad),
                    Err(StoreError::InvalidMailbox { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn peer_names_follow_the_server_name_rule() {
        for good in ["site-a", "b.example_2", &"x".repeat(64)] {
            assert!(validate_peer(good).is_ok(), "{good:?} refused");
        }
        for bad in ["", "a b", "site/a", "é", &"x".repeat(65)] {
            assert!(
                matches!(validate_peer(bad), Err(StoreError::InvalidPeer { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn only_known_formats_have_an_extension() {
        assert_eq!(format_extension("wav"), Some("wav"));
        assert_eq!(format_extension("opus"), Some("opus"));
        assert_eq!(format_extension("../x"), None);
        assert_eq!(format_extension("WAV"), None);
    }

    #[test]
    fn unix_ms_formats_like_receive_times() {
        assert_eq!(
            format_unix_ms(1_714_557_600_500).as_deref(),
            Some("2024-05-01T10:00:00.500Z")
        );
        assert_eq!(format_unix_ms(i64::MAX), None);
        let (ms, text) = now_unix_ms();
        assert_eq!(format_unix_ms(ms), Some(text));
    }

    #[test]
    fn received_at_is_utc_fixed_width_and_sorts() {
        let id = Uuid::nil();
        let a = format_received_at(&id, datetime!(2024-05-01 12:00:00 +02:00)).unwrap();
        let b = format_received_at(&id, datetime!(2024-05-01 10:00:00.5 UTC)).unwrap();
        assert_eq!(a, "2024-05-01T10:00:00.000Z");
        assert_eq!(b, "2024-05-01T10:00:00.500Z");
        assert!(a < b);
        let parsed =
            OffsetDateTime::parse(&b, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, datetime!(2024-05-01 10:00:00.5 UTC));
    }

    #[test]
    fn times_outside_rfc_3339_years_in_utc_are_refused_not_a_panic() {
        let id = Uuid::nil();
        let rfc3339 = time::format_description::well_known::Rfc3339;
        for text in ["9999-12-31T23:59:59.999-23:59", "0000-01-01T00:00:00+23:59"] {
            let at = OffsetDateTime::parse(text, &rfc3339).unwrap();
            assert!(
                matches!(
                    format_received_at(&id, at),
                    Err(StoreError::TimeOutOfRange { .. })
                ),
                "{text}"
            );
        }
        let edge = OffsetDateTime::parse("9999-12-31T23:59:59.999Z", &rfc3339).unwrap();
        assert_eq!(
            format_received_at(&id, edge).unwrap(),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
