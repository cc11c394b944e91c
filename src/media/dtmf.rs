//! DTMF digits carried as RFC 4733 telephone-events.
//!
//! A PBX sends each key press as a series of telephone-event packets that
//! share one RTP timestamp (the event's start): updates while the key is
//! held, then the end packet, which RFC 4733 §2.5.1.4 says is sent three
//! times for robustness. A digit is reported once, on its first end packet;
//! the retransmitted ends are recognised by their timestamp.

/// Length of a telephone-event payload (RFC 4733 §2.3).
const EVENT_PAYLOAD_LEN: usize = 4;
/// The E (end) bit in the second octet (RFC 4733 §2.3.4).
const END_BIT: u8 = 0x80;

/// Maps an RFC 4733 §3.2 event code to its DTMF key, if it is one.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (event - 12))),
        _ => None,
    }
}

/// Turns a stream of telephone-event packets into digits, each once.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    /// The (SSRC, RTP timestamp) of the last event reported: its
    /// retransmitted end packets carry the same pair.
    last_reported: Option<(u32, u32)>,
}

impl DtmfDetector {
    /// Creates a detector that has reported nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event payload; returns the digit when this packet
    /// is the first end packet of an event. Malformed payloads and events
    /// that are not DTMF keys (tones, RFC 4733 §3.2 codes above 15) are
    /// ignored.
    pub fn on_packet(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = payload.get(..EVENT_PAYLOAD_LEN)?;
        if event[1] & END_BIT == 0 {
            return None;
        }
        let key = (ssrc, timestamp);
        if self.last_reported == Some(key) {
            return None;
        }
        let digit = event_to_digit(event[0])?;
        self.last_reported = Some(key);
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { END_BIT | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn maps_event_codes() {
        assert_eq!(event_to_digit(0), Some('0'));
        assert_eq!(event_to_digit(9), Some('9'));
        assert_eq!(event_to_digit(10), Some('*'));
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(15), Some('D'));
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn reports_each_digit_once_on_its_end() {
        let mut dtmf = DtmfDetector::new();
        assert_eq!(dtmf.on_packet(1, 1000, &event(5, false, 160)), None);
        assert_eq!(dtmf.on_packet(1, 1000, &event(5, false, 320)), None);
        assert_eq!(dtmf.on_packet(1, 1000, &event(5, true, 480)), Some('5'));
        assert_eq!(dtmf.on_packet(1, 1000, &event(5, true, 480)), None);
        assert_eq!(dtmf.on_packet(1, 1000, &event(5, true, 480)), None);
        // The same key pressed again is a new event with a new timestamp.
        assert_eq!(dtmf.on_packet(1, 3000, &event(5, true, 480)), Some('5'));
        assert_eq!(dtmf.on_packet(1, 5000, &event(11, true, 480)), Some('#'));
    }

    #[test]
    fn ignores_malformed_and_non_dtmf_events() {
        let mut dtmf = DtmfDetector::new();
        assert_eq!(dtmf.on_packet(1, 1, &[11, END_BIT]), None);
        assert_eq!(dtmf.on_packet(1, 2, &event(32, true, 160)), None);
        assert_eq!(dtmf.on_packet(1, 3, &event(1, true, 160)), Some('1'));
    }
}
