//! The 44-byte header of a recording's WAV file, rewritten from what is
//! really on disk: after a crash (the header holds the sizes of the last
//! flush, or zero) and after trailing silence is cut from the end.
//!
//! hound cannot be told the real length (its append mode trusts the stale
//! header), so the header is rebuilt here: hound writes the canonical
//! header for the recording's spec, and the two RIFF size fields are set
//! from the data length. Rewriting is idempotent, so a crash in the middle
//! is handled by the next recovery, which rebuilds it from the file length.

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use hound::WavWriter;

use super::error::StoreError;
use super::recording::{wav_spec, BYTES_PER_SAMPLE, WAV_HEADER_LEN};

/// Offset of the RIFF chunk size field.
const RIFF_SIZE_OFFSET: usize = 4;
/// Offset of the `data` chunk id and of its size field in the 44-byte header.
const DATA_ID_OFFSET: usize = 36;
const DATA_SIZE_OFFSET: usize = 40;

/// Rebuilds the header of a 16-bit mono recording from its length and
/// returns the number of samples it holds. A trailing odd byte (half a
/// sample) is cut off. A file shorter than a header holds no audio.
pub fn repair_header(path: &Path, sample_rate: u32) -> Result<u64, StoreError> {
    let mut file = open_rw(path)?;
    let len = file.metadata().map_err(StoreError::io("stat", path))?.len();
    if len <= WAV_HEADER_LEN {
        return Ok(0);
    }
    let samples = (len - WAV_HEADER_LEN) / BYTES_PER_SAMPLE;
    set_samples(&mut file, path, sample_rate, samples, len)?;
    Ok(samples)
}

/// Cuts a closed recording down to its first `samples` samples (trailing
/// silence trimmed at finish time) and rewrites its header to match.
pub fn truncate(path: &Path, sample_rate: u32, samples: u64) -> Result<(), StoreError> {
    let mut file = open_rw(path)?;
    let len = file.metadata().map_err(StoreError::io("stat", path))?.len();
    set_samples(&mut file, path, sample_rate, samples, len)
}

/// Writes a recording that holds no audio: the header alone, replacing
/// whatever `path` held.
pub fn write_empty(path: &Path, sample_rate: u32) -> Result<(), StoreError> {
    let header = canonical_header(path, sample_rate, 0)?;
    std::fs::write(path, header).map_err(StoreError::io("write", path))
}

fn open_rw(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open", path))
}

/// Truncates `file` (now `len` bytes) to a header plus `samples` samples
/// and writes the header for that size unless it is already on disk.
fn set_samples(
    file: &mut File,
    path: &Path,
    sample_rate: u32,
    samples: u64,
    len: u64,
) -> Result<(), StoreError> {
    let data_bytes = samples.saturating_mul(BYTES_PER_SAMPLE);
    let header = canonical_header(path, sample_rate, data_bytes)?;
    if WAV_HEADER_LEN + data_bytes < len {
        file.set_len(WAV_HEADER_LEN + data_bytes)
            .map_err(StoreError::io("truncate", path))?;
    }
    let mut on_disk = vec![0u8; header.len()];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut on_disk))
        .map_err(StoreError::io("read header of", path))?;
    if on_disk != header {
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .map_err(StoreError::io("rewrite header of", path))?;
    }
    Ok(())
}

/// The header hound writes for `sample_rate`, with sizes for `data_bytes`.
pub(super) fn canonical_header(
    path: &Path,
    sample_rate: u32,
    data_bytes: u64,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptRecording {
        path: path.to_owned(),
        reason,
    };
    let data_size = u32::try_from(data_bytes)
        .ok()
        .filter(|n| n.checked_add(36).is_some())
        .ok_or_else(|| corrupt(format!("{data_bytes} bytes of audio exceed the WAV limit")))?;
    let mut header = Vec::new();
    WavWriter::new(Cursor::new(&mut header), wav_spec(sample_rate))
        .and_then(WavWriter::finalize)
        .map_err(StoreError::wav(path))?;
    let layout_ok = header.len() as u64 == WAV_HEADER_LEN
        && header.get(DATA_ID_OFFSET..DATA_SIZE_OFFSET) == Some(b"data".as_slice());
    if !layout_ok {
        return Err(corrupt("unexpected WAV header layout".into()));
    }
    set_sizes(&mut header, data_size);
    Ok(header)
}

/// Sets the two sizes of a canonical header (from [`canonical_header`])
/// for `data_size` bytes of audio, which the caller keeps within the RIFF
/// limit.
pub(super) fn set_sizes(header: &mut [u8], data_size: u32) {
    let riff_size = data_size.saturating_add(36).to_le_bytes();
    if let Some(field) = header.get_mut(RIFF_SIZE_OFFSET..RIFF_SIZE_OFFSET + 4) {
        field.copy_from_slice(&riff_size);
    }
    if let Some(field) = header.get_mut(DATA_SIZE_OFFSET..DATA_SIZE_OFFSET + 4) {
        field.copy_from_slice(&data_size.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_with(samples: &[i16]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.wav");
        let mut writer = WavWriter::create(&path, wav_spec(8000)).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
        (dir, path)
    }

    fn read(path: &Path) -> Vec<i16> {
        hound::WavReader::open(path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn truncate_keeps_the_first_samples_with_a_valid_header() {
        let audio: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        let (_dir, path) = wav_with(&audio);
        truncate(&path, 8000, 600).unwrap();
        assert_eq!(read(&path), audio[..600]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 1200);
        // Idempotent: the header is already right.
        truncate(&path, 8000, 600).unwrap();
        assert_eq!(read(&path), audio[..600]);
    }

    #[test]
    fn repair_follows_the_file_length() {
        let audio: Vec<i16> = (0..100).map(|i| i as i16 * 3).collect();
        let (_dir, path) = wav_with(&audio);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40..44].fill(0); // stale header, as after a crash
        bytes.push(1); // half a sample
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(repair_header(&path, 8000).unwrap(), 100);
        assert_eq!(read(&path), audio);
    }
}
