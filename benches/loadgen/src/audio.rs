//! What the calls send: the audio cut into 20 ms frames, each the payload
//! of one RTP packet.
//!
//! G.711 μ-law and G.722 (64 kbit/s) come as raw files whose 20 ms are 160
//! octets each. Opus comes as an Ogg Opus file (RFC 7845) made with 20 ms
//! frames: its audio packets are the payloads as they are, since an RTP
//! packet carries one Opus packet (RFC 7587 §4.2). The Ogg pages are read
//! with the `ogg` crate.

use std::io::Cursor;

/// Octets of a G.711 or G.722 frame (20 ms).
pub const FIXED_FRAME: usize = 160;
/// The largest payload the sender's buffers hold. RFC 6716 allows 1,275
/// octets per Opus packet; speech at the usual rates uses well under 200.
pub const MAX_FRAME: usize = 400;

/// The frames of the audio, in order; a call loops over them.
#[derive(Debug)]
pub struct Audio {
    data: Vec<u8>,
    /// `(start, length)` of each frame in `data`.
    frames: Vec<(usize, usize)>,
}

impl Audio {
    /// A raw G.711 or G.722 file, cut into 160-octet frames (a trailing
    /// part frame is dropped).
    pub fn fixed(mut data: Vec<u8>) -> Result<Audio, String> {
        data.truncate(data.len() / FIXED_FRAME * FIXED_FRAME);
        let frames = (0..data.len() / FIXED_FRAME)
            .map(|i| (i * FIXED_FRAME, FIXED_FRAME))
            .collect();
        Audio::checked(data, frames)
    }

    /// The audio packets of an Ogg Opus file (its first logical stream):
    /// every packet after the identification and comment headers
    /// (RFC 7845 §3), each of 20 ms.
    pub fn ogg_opus(file: Vec<u8>) -> Result<Audio, String> {
        let mut reader = ogg::PacketReader::new(Cursor::new(file));
        let mut data = Vec::new();
        let mut frames = Vec::new();
        let mut serial = None;
        let mut index = 0usize;
        while let Some(packet) = reader.read_packet().map_err(|e| format!("Ogg: {e}"))? {
            if *serial.get_or_insert(packet.stream_serial()) != packet.stream_serial() {
                continue;
            }
            index += 1;
            match index {
                1 if !packet.data.starts_with(b"OpusHead") => {
                    return Err("not an Ogg Opus file (no OpusHead)".into())
                }
                1 | 2 => continue,
                _ => {}
            }
            if packet.data.is_empty() || packet.data.len() > MAX_FRAME {
                return Err(format!(
                    "Opus packet {} has {} octets (1 to {MAX_FRAME})",
                    index - 2,
                    packet.data.len()
                ));
            }
            if frame_ms(&packet.data) != Some(20) {
                return Err(format!(
                    "Opus packet {} is not 20 ms (encode with -frame_duration 20)",
                    index - 2
                ));
            }
            frames.push((data.len(), packet.data.len()));
            data.extend_from_slice(&packet.data);
        }
        Audio::checked(data, frames)
    }

    fn checked(data: Vec<u8>, frames: Vec<(usize, usize)>) -> Result<Audio, String> {
        if frames.is_empty() {
            return Err("less than one packet of audio".into());
        }
        Ok(Audio { data, frames })
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Frame `i`, counting from the start again past the end.
    pub fn frame(&self, i: usize) -> &[u8] {
        let (start, len) = self.frames[i % self.frames.len()];
        &self.data[start..start + len]
    }
}

/// The duration of an Opus packet in ms, from its TOC octet and frame
/// count (RFC 6716 §3.1 and §3.2); `None` when it is not a whole number
/// of ms or the packet is malformed.
fn frame_ms(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = u32::from(toc >> 3);
    // Frame sizes in tenths of ms by configuration (RFC 6716 table 2).
    let tenths = match config {
        0..=11 => [100, 200, 400, 600][(config % 4) as usize],
        12..=15 => [100, 200][(config % 2) as usize],
        _ => [25, 50, 100, 200][(config % 4) as usize],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = tenths * count;
    (total % 10 == 0).then_some(total / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_file_is_cut_into_whole_frames() {
        let audio = Audio::fixed((0..350u32).map(|i| i as u8).collect()).unwrap();
        assert_eq!(audio.frames(), 2);
        assert_eq!(audio.frame(1)[0], 160);
        assert_eq!(audio.frame(2)[0], 0, "wraps");
        assert!(Audio::fixed(vec![0; 159]).is_err());
    }

    #[test]
    fn opus_frame_durations_follow_the_toc() {
        // SILK wideband 20 ms, one frame (config 9, code 0).
        assert_eq!(frame_ms(&[9 << 3]), Some(20));
        // CELT fullband 20 ms (config 31), code 1: two frames.
        assert_eq!(frame_ms(&[31 << 3 | 1]), Some(40));
        // Hybrid 10 ms (config 12), code 3 with two frames.
        assert_eq!(frame_ms(&[12 << 3 | 3, 2]), Some(20));
        // CELT 2.5 ms (config 16): not whole ms.
        assert_eq!(frame_ms(&[16 << 3]), None);
        assert_eq!(frame_ms(&[]), None);
    }

    /// An Ogg Opus stream written here page by page with the `ogg` crate:
    /// the headers are skipped, the audio packets kept in order.
    #[test]
    fn the_audio_packets_of_an_ogg_opus_file_are_the_frames() {
        let mut file = Vec::new();
        {
            let mut w = ogg::PacketWriter::new(&mut file);
            let end = ogg::PacketWriteEndInfo::EndPage;
            let mut head = b"OpusHead".to_vec();
            head.extend_from_slice(&[1, 1, 0x38, 1, 0x80, 0x3e, 0, 0, 0, 0, 0]);
            w.write_packet(head, 7, end, 0).unwrap();
            w.write_packet(b"OpusTags\0\0\0\0\0\0\0\0".to_vec(), 7, end, 0)
                .unwrap();
            for (i, len) in [3usize, 90, 41].into_iter().enumerate() {
                let mut p = vec![9 << 3; len];
                p[len - 1] = i as u8;
                let info = if i == 2 {
                    ogg::PacketWriteEndInfo::EndStream
                } else {
                    ogg::PacketWriteEndInfo::NormalPacket
                };
                w.write_packet(p, 7, info, 960 * (i as u64 + 1)).unwrap();
            }
        }
        let audio = Audio::ogg_opus(file).unwrap();
        assert_eq!(audio.frames(), 3);
        assert_eq!(audio.frame(1).len(), 90);
        assert_eq!(audio.frame(2).last(), Some(&2));
        assert!(Audio::ogg_opus(b"not ogg".to_vec()).is_err());
    }
}
