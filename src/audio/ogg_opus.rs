//! Ogg Opus files (RFC 7845): how messages are stored when the profile asks
//! for Opus, and how they are read back for export and playback.
//!
//! The Ogg pages come from the `ogg` crate; this file lays out what RFC 7845
//! puts in them:
//! - an ID header page, `OpusHead` (§5.1): version 1, one channel, the
//!   encoder's pre-skip, the input rate, gain 0, mapping family 0;
//! - a comment header page, `OpusTags` (§5.2): vendor `vmesh` and the
//!   message's metadata as `KEY=value` comments;
//! - audio pages of 20 ms packets, one page per second of audio, each with
//!   the granule position of its last packet: the 48 kHz samples decoded
//!   up to its end, the pre-skip samples included (§4);
//! - end-of-stream on the last page, whose granule position is pre-skip
//!   plus the input length at 48 kHz, so the padding that flushed the
//!   encoder's lookahead is trimmed (end trimming, §4.4).
//!
//! A file written from N input samples therefore decodes, with pre-skip and
//! end trimming applied, to exactly N samples, aligned with the input.

use std::io::{Read, Seek, Write};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use ogg::PacketReader;

use super::opus::{OpusDecoder, OpusEncoder};
use super::resample::resample;
use super::AudioError;

/// The vendor string written into `OpusTags`.
pub const VENDOR: &str = "vmesh";

/// Granule positions count 48 kHz samples whatever the input rate (§4).
const GRANULE_RATE: u32 = 48_000;

/// Packets (20 ms each) per audio page: one second, so a file cut short by
/// a crash loses at most the last second, and seeking stays cheap.
const PACKETS_PER_PAGE: usize = 50;

/// Rates an Opus decoder can produce directly.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// Writes mono PCM into an Ogg Opus stream as it arrives.
///
/// Feed any number of samples with [`write_pcm`](OggOpusWriter::write_pcm);
/// complete 20 ms frames are encoded at once and pages reach the writer
/// every second of audio. [`finish`](OggOpusWriter::finish) must be called
/// to write the last page; a writer dropped without it leaves a file
/// without end-of-stream, which readers treat as truncated.
pub struct OggOpusWriter<W: Write> {
    packets: PacketWriter<'static, W>,
    encoder: OpusEncoder,
    serial: u32,
    input_rate: u32,
    /// Pre-skip in 48 kHz samples, as written in `OpusHead`.
    pre_skip: u64,
    /// The encoder's lookahead in input samples.
    lookahead: usize,
    /// Input not yet making up a whole frame.
    pending: Vec<i16>,
    input_samples: u64,
    /// Frames encoded so far, including the held-back one.
    frames: u64,
    /// The latest packet, held back until we know whether it ends the stream.
    held: Option<Vec<u8>>,
}

impl<W: Write> OggOpusWriter<W> {
    /// Starts a stream of `input_rate` PCM (8000, 16000 or 48000 Hz; 12000
    /// and 24000 also work) at `bitrate` bits per second, writing both
    /// header pages at once. `tags` become `KEY=value` comments; keys must
    /// be printable ASCII without `=` (RFC 7845 §5.2, Vorbis comments).
    ///
    /// The stream serial number is random, as RFC 3533 §6 asks so that
    /// streams can be chained or multiplexed; [`with_serial`] fixes it.
    ///
    /// [`with_serial`]: OggOpusWriter::with_serial
    pub fn new(
        writer: W,
        input_rate: u32,
        bitrate: u32,
        tags: &[(String, String)],
    ) -> Result<Self, AudioError> {
        Self::with_serial(writer, input_rate, bitrate, tags, rand::random())
    }

    /// [`new`](OggOpusWriter::new) with a chosen serial number, for
    /// byte-identical output.
    pub fn with_serial(
        writer: W,
        input_rate: u32,
        bitrate: u32,
        tags: &[(String, String)],
        serial: u32,
    ) -> Result<Self, AudioError> {
        let encoder = OpusEncoder::new(input_rate, bitrate)?;
        let lookahead = encoder.lookahead()?;
        let pre_skip = u64::from(lookahead) * u64::from(GRANULE_RATE / input_rate);
        let head = opus_head(pre_skip, input_rate)?;
        let comments = opus_tags(tags)?;
        let mut packets = PacketWriter::new(writer);
        // Each header packet ends its own page, granule 0 (§3).
        packets.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        packets.write_packet(comments, serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(OggOpusWriter {
            packets,
            encoder,
            serial,
            input_rate,
            pre_skip,
            lookahead: lookahead as usize,
            pending: Vec::new(),
            input_samples: 0,
            frames: 0,
            held: None,
        })
    }

    /// Appends PCM at the input rate, encoding every complete 20 ms frame.
    pub fn write_pcm(&mut self, pcm: &[i16]) -> Result<(), AudioError> {
        self.input_samples += pcm.len() as u64;
        let frame = self.encoder.frame_samples();
        let mut rest = pcm;
        while !rest.is_empty() {
            let take = (frame - self.pending.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.pending.extend_from_slice(head);
            rest = tail;
            if self.pending.len() == frame {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    /// Ends the stream: pads the input with silence until the encoder has
    /// seen its lookahead past the last sample, writes the last page with
    /// end-of-stream and the granule position that trims the padding
    /// (§4.4), and returns the writer.
    ///
    /// That final granule position never falls below the previous page's:
    /// packet `n` is written before the last only if `n` frames end before
    /// the input plus lookahead does, so `n * 960 < pre-skip + 3 * input`
    /// (at 16 kHz; likewise at other rates).
    pub fn finish(mut self) -> Result<W, AudioError> {
        let frame = self.encoder.frame_samples() as u64;
        let needed = self.input_samples + self.lookahead as u64;
        let frames_needed = needed.div_ceil(frame).max(1);
        while self.frames < frames_needed {
            self.pending.resize(frame as usize, 0);
            self.encode_pending()?;
        }
        let end = self.pre_skip + self.input_samples * self.granule_per_sample();
        if let Some(last) = self.held.take() {
            self.packets
                .write_packet(last, self.serial, PacketWriteEndInfo::EndStream, end)?;
        }
        let mut writer = self.packets.into_inner();
        writer.flush()?;
        Ok(writer)
    }

    /// 48 kHz granule units per input sample.
    fn granule_per_sample(&self) -> u64 {
        u64::from(GRANULE_RATE / self.input_rate)
    }

    /// Encodes the full frame in `pending` and writes the packet before it,
    /// whose place in the stream is now known not to be the end.
    fn encode_pending(&mut self) -> Result<(), AudioError> {
        let mut packet = Vec::new();
        self.encoder.encode_frame(&self.pending, &mut packet)?;
        self.pending.clear();
        if let Some(previous) = self.held.replace(packet) {
            // `previous` is frame number `self.frames`, counting from 1,
            // and ends after this many decoded 48 kHz samples.
            let granule =
                self.frames * self.encoder.frame_samples() as u64 * self.granule_per_sample();
            let end = if self.frames.is_multiple_of(PACKETS_PER_PAGE as u64) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.packets
                .write_packet(previous, self.serial, end, granule)?;
        }
        self.frames += 1;
        Ok(())
    }
}

/// The `OpusHead` packet (RFC 7845 §5.1) for one channel, mapping family 0.
fn opus_head(pre_skip: u64, input_rate: u32) -> Result<Vec<u8>, AudioError> {
    let pre_skip = u16::try_from(pre_skip)
        .map_err(|_| AudioError::NotOggOpus(format!("pre-skip {pre_skip} exceeds 16 bits")))?;
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channel count
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain, Q7.8 dB
    head.push(0); // channel mapping family: mono/stereo, no table
    Ok(head)
}

/// The `OpusTags` packet (RFC 7845 §5.2): vendor, then `KEY=value` comments.
fn opus_tags(tags: &[(String, String)]) -> Result<Vec<u8>, AudioError> {
    let mut packet = b"OpusTags".to_vec();
    let push_string = |packet: &mut Vec<u8>, text: &[u8]| -> Result<(), AudioError> {
        let len = u32::try_from(text.len())
            .map_err(|_| AudioError::NotOggOpus("a comment exceeds 4 GiB".into()))?;
        packet.extend_from_slice(&len.to_le_bytes());
        packet.extend_from_slice(text);
        Ok(())
    };
    push_string(&mut packet, VENDOR.as_bytes())?;
    let count = u32::try_from(tags.len())
        .map_err(|_| AudioError::NotOggOpus("too many comments".into()))?;
    packet.extend_from_slice(&count.to_le_bytes());
    for (key, value) in tags {
        let valid = !key.is_empty() && key.bytes().all(|b| (0x20..=0x7d).contains(&b) && b != b'=');
        if !valid {
            return Err(AudioError::InvalidTag { key: key.clone() });
        }
        push_string(&mut packet, format!("{key}={value}").as_bytes())?;
    }
    Ok(packet)
}

/// A decoded Ogg Opus stream.
#[derive(Debug, Clone, PartialEq)]
pub struct OggOpusAudio {
    /// The input sample rate recorded in `OpusHead` (0 if unspecified).
    pub input_rate: u32,
    /// The rate of `pcm`: the input rate, or 48000 when the input rate is
    /// unspecified.
    pub sample_rate: u32,
    /// The audio, mono, with pre-skip and end trimming applied and the
    /// header's output gain.
    pub pcm: Vec<i16>,
    /// The `OpusTags` vendor string.
    pub vendor: String,
    /// The `OpusTags` comments as (key, value), in file order.
    pub tags: Vec<(String, String)>,
}

/// Reads and decodes a whole Ogg Opus stream (the first logical stream if
/// several are multiplexed), downmixed to mono.
///
/// The PCM comes back at the input rate recorded in `OpusHead`: decoded
/// directly at that rate when Opus supports it (8, 12, 16, 24, 48 kHz),
/// else decoded at 48 kHz and resampled. Pre-skip and end trimming are
/// applied (RFC 7845 §4.2, §4.4), so a file from [`OggOpusWriter`] gives
/// back exactly as many samples as were written. Streams that begin with a
/// nonzero granule offset (§4.5, cut from a live broadcast) are decoded
/// from their first packet.
pub fn read_ogg_opus<R: Read + Seek>(reader: R) -> Result<OggOpusAudio, AudioError> {
    read_ogg_opus_at(reader, None)
}

/// [`read_ogg_opus`] with the PCM at `rate` instead of the input rate:
/// decoded directly at that rate when Opus supports it (the decoder
/// band-limits as it goes, at a fraction of a resampler's cost), else
/// decoded at 48 kHz and resampled. `None` is the input rate.
pub fn read_ogg_opus_at<R: Read + Seek>(
    reader: R,
    rate: Option<u32>,
) -> Result<OggOpusAudio, AudioError> {
    let mut packets = PacketReader::new(reader);
    let missing = |what: &str| AudioError::NotOggOpus(format!("missing {what}"));

    let head = packets.read_packet()?.ok_or_else(|| missing("OpusHead"))?;
    let serial = head.stream_serial();
    let head = parse_head(&head.data)?;
    let tags = loop {
        let packet = packets.read_packet()?.ok_or_else(|| missing("OpusTags"))?;
        if packet.stream_serial() == serial {
            break parse_tags(&packet.data)?;
        }
    };

    let wanted = rate.unwrap_or(head.input_rate);
    let decode_rate = if OPUS_RATES.contains(&wanted) {
        wanted
    } else {
        GRANULE_RATE
    };
    let mut decoder = OpusDecoder::new(decode_rate)?;
    let mut pcm = Vec::new();
    let mut final_granule = None;
    while let Some(packet) = packets.read_packet()? {
        if packet.stream_serial() != serial {
            continue;
        }
        decoder.decode(&packet.data, &mut pcm)?;
        final_granule = Some(packet.absgp_page());
        if packet.last_in_stream() {
            break;
        }
    }

    let per_granule = GRANULE_RATE / decode_rate;
    let skip = (head.pre_skip / per_granule) as usize;
    let keep = match final_granule {
        Some(granule) if granule >= head.pre_skip as u64 => {
            ((granule - head.pre_skip as u64) / u64::from(per_granule)) as usize
        }
        Some(granule) => {
            return Err(AudioError::NotOggOpus(format!(
                "final granule position {granule} is before the pre-skip {}",
                head.pre_skip
            )))
        }
        None => 0,
    };
    let mut pcm = pcm.get(skip..).unwrap_or_default().to_vec();
    pcm.truncate(keep);
    apply_gain(&mut pcm, head.gain);

    let sample_rate = match wanted {
        0 => GRANULE_RATE,
        rate if rate == decode_rate => rate,
        rate => {
            pcm = resample(&pcm, decode_rate, rate)?;
            rate
        }
    };
    Ok(OggOpusAudio {
        input_rate: head.input_rate,
        sample_rate,
        pcm,
        vendor: tags.0,
        tags: tags.1,
    })
}

/// The fields of `OpusHead` that decoding needs.
struct Head {
    pre_skip: u32,
    input_rate: u32,
    gain: i16,
}

/// Parses and checks `OpusHead` (RFC 7845 §5.1).
fn parse_head(data: &[u8]) -> Result<Head, AudioError> {
    let bad = |why: &str| AudioError::NotOggOpus(format!("OpusHead: {why}"));
    if data.len() < 19 || !data.starts_with(b"OpusHead") {
        return Err(bad("missing or too short"));
    }
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    // Only the major version (upper nibble) must match (§5.1).
    if byte(8) & 0xf0 != 0 {
        return Err(bad(&format!("unsupported version {}", byte(8))));
    }
    let channels = byte(9);
    let family = byte(18);
    if channels == 0 || family != 0 || channels > 2 {
        return Err(bad(&format!(
            "{channels} channels with mapping family {family}: only mono and stereo (family 0) are read"
        )));
    }
    Ok(Head {
        pre_skip: u32::from(u16::from_le_bytes([byte(10), byte(11)])),
        input_rate: u32::from_le_bytes([byte(12), byte(13), byte(14), byte(15)]),
        gain: i16::from_le_bytes([byte(16), byte(17)]),
    })
}

/// Parses `OpusTags` (RFC 7845 §5.2) into the vendor and `KEY=value` pairs.
/// Comments without `=` are kept with an empty value; text that is not
/// UTF-8 is replaced, not refused: the audio matters more than the tags.
fn parse_tags(data: &[u8]) -> Result<(String, Vec<(String, String)>), AudioError> {
    let bad = || AudioError::NotOggOpus("OpusTags: truncated".into());
    let body = data
        .strip_prefix(b"OpusTags")
        .ok_or_else(|| AudioError::NotOggOpus("second packet is not OpusTags".into()))?;
    let mut cursor = body;
    let take_u32 = |cursor: &mut &[u8]| -> Result<usize, AudioError> {
        let (bytes, rest) = cursor.split_first_chunk::<4>().ok_or_else(bad)?;
        *cursor = rest;
        Ok(u32::from_le_bytes(*bytes) as usize)
    };
    let take_string = |cursor: &mut &[u8], len: usize| -> Result<String, AudioError> {
        let (text, rest) = cursor.split_at_checked(len).ok_or_else(bad)?;
        *cursor = rest;
        Ok(String::from_utf8_lossy(text).into_owned())
    };
    let vendor_len = take_u32(&mut cursor)?;
    let vendor = take_string(&mut cursor, vendor_len)?;
    let count = take_u32(&mut cursor)?;
    let mut tags = Vec::new();
    for _ in 0..count {
        let len = take_u32(&mut cursor)?;
        let comment = take_string(&mut cursor, len)?;
        let (key, value) = comment.split_once('=').unwrap_or((&comment, ""));
        tags.push((key.to_owned(), value.to_owned()));
    }
    Ok((vendor, tags))
}

/// Applies the `OpusHead` output gain, Q7.8 dB (§5.1), which decoders
/// must honour; ours write 0.
fn apply_gain(pcm: &mut [i16], gain: i16) {
    if gain == 0 {
        return;
    }
    let factor = 10f64.powf(f64::from(gain) / (20.0 * 256.0));
    for sample in pcm {
        *sample = (f64::from(*sample) * factor)
            .round()
            .clamp(-32768.0, 32767.0) as i16;
    }
}

#[cfg(test)]
#[path = "ogg_opus_tests.rs"]
mod tests;
