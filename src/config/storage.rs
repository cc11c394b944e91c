//! The `[storage]` section: the format messages are kept in, the encoder
//! pool that produces it, and how long deleted messages stay restorable.

use std::time::Duration;

use toml::de::DeTable;

use super::reader::Reader;

/// Default Opus bit rate for stored messages: transparent for wideband
/// speech at about 180 kB per minute.
pub const DEFAULT_OPUS_BITRATE: u32 = 24_000;

/// Default number of background encoders.
pub const DEFAULT_ENCODE_WORKERS: usize = 2;

/// Default days a deleted message stays restorable before it is purged.
pub const DEFAULT_DELETED_RETENTION_DAYS: u64 = 30;

const SECONDS_PER_DAY: u64 = 86_400;
/// Default free space, in MiB, under which new calls are refused: room for
/// a few maximal messages (180 s at 16 kHz is 5.8 MB) to finish.
pub const DEFAULT_MIN_FREE_MB: u64 = 64;

/// The file format a stored message is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageFormat {
    /// 16-bit PCM WAV: no encoding cost, about 1.9 MB per minute at 16 kHz.
    #[default]
    Wav,
    /// Ogg Opus (RFC 7845): about a tenth of the size of WAV.
    Opus,
}

impl StorageFormat {
    /// The name used in profiles and in a message's `format` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            StorageFormat::Wav => "wav",
            StorageFormat::Opus => "opus",
        }
    }
}

/// How messages are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The format of stored messages.
    pub format: StorageFormat,
    /// Opus bit rate in bits per second (6000 to 128000, RFC 6716's range
    /// for mono speech and music).
    pub opus_bitrate: u32,
    /// Messages encoded at once, off the call path (1 to 64).
    pub encode_workers: usize,
    /// How long a deleted message stays restorable before it is purged
    /// (files and rows); zero purges at the next sweep.
    pub deleted_retention: Duration,
    /// Free space in the data directory's file system, in bytes, under
    /// which new calls get 503 with Retry-After before they are answered.
    pub min_free_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            format: StorageFormat::Wav,
            opus_bitrate: DEFAULT_OPUS_BITRATE,
            encode_workers: DEFAULT_ENCODE_WORKERS,
            deleted_retention: Duration::from_secs(
                DEFAULT_DELETED_RETENTION_DAYS * SECONDS_PER_DAY,
            ),
            min_free_bytes: DEFAULT_MIN_FREE_MB * 1024 * 1024,
        }
    }
}

impl StorageConfig {
    /// Reads `[storage]`.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>) -> Self {
        let mut storage = StorageConfig::default();
        for (name, node) in table.iter() {
            let key = format!("storage.{}", name.get_ref());
            match name.get_ref().as_ref() {
                "format" => {
                    let Some(value) = reader.string(&key, node) else {
                        continue;
                    };
                    match value.to_ascii_lowercase().as_str() {
                        "wav" => storage.format = StorageFormat::Wav,
                        "opus" => storage.format = StorageFormat::Opus,
                        _ => reader.error(
                            &key,
                            node.span(),
                            format!(
                                "{value:?} is not a storage format; expected \"wav\" or \"opus\""
                            ),
                        ),
                    }
                }
                "opus_bitrate" => {
                    if let Some(n) = reader.integer(&key, node, 6000..=128_000) {
                        storage.opus_bitrate = u32::try_from(n).unwrap_or(DEFAULT_OPUS_BITRATE);
                    }
                }
                "encode_workers" => {
                    if let Some(n) = reader.integer(&key, node, 1..=64) {
                        storage.encode_workers =
                            usize::try_from(n).unwrap_or(DEFAULT_ENCODE_WORKERS);
                    }
                }
                "deleted_retention_days" => {
                    if let Some(n) = reader.integer(&key, node, 0..=3650) {
                        storage.deleted_retention = Duration::from_secs(n * SECONDS_PER_DAY);
                    }
                }
                "min_free_mb" => {
                    if let Some(n) = reader.integer(&key, node, 0..=1_048_576) {
                        storage.min_free_bytes = n * 1024 * 1024;
                    }
                }
                _ => reader.unknown_key(&key, name.span()),
            }
        }
        storage
    }
}
