//! Who may send this call its media: the address the caller's SDP names,
//! or, behind a NAT, the one source that proves itself first.
//!
//! RTP over UDP has no authentication (SRTP is not offered by the PBXs
//! vmesh serves), so anyone who can reach the call's port can send it
//! packets: a stray stream, a scanner spraying the port range, RTCP sent
//! to the wrong port. Taking the first packet from anywhere as the caller
//! (naive symmetric RTP) lets one such packet steal the whole message. The
//! rules here follow Asterisk's `strictrtp` with probation:
//!
//! - the address and port in the SDP (`c=` and `m=`, RFC 4566 §5.7,
//!   §5.14) are trusted at once: media from there is the caller's;
//! - media from another address is taken only after [`PROBATION`]
//!   consecutive packets with one SSRC and consecutive sequence numbers
//!   (the RFC 3550 A.1 idea of a source on probation), which a NATed
//!   phone sends within 60 ms and a blind sprayer does not; that source is
//!   then learned (symmetric RTP, RFC 4961), and our own RTP goes there;
//! - once a source is sending, no other replaces it: packets from anywhere
//!   else are dropped (and counted), except that the signalled address
//!   outranks a learned one (a stranger who won the probation race before
//!   the caller's first packet loses the stream as soon as the caller's
//!   own packets arrive);
//! - a re-INVITE that moves the caller's media to another address opens
//!   the choice again (RFC 3264 §8.3.1).
//!
//! Sans-IO: an address, SSRC and sequence number in, a verdict out.

use std::net::SocketAddr;

/// Consecutive packets a source not named in the SDP must send before its
/// media is taken: Asterisk's default `probation` (rtp.conf).
pub const PROBATION: u32 = 4;

/// Sources followed through probation at once; a new one replaces the one
/// heard from least recently, so a spray from many addresses cannot keep
/// a real NATed caller from finishing its probation for long.
const CANDIDATES: usize = 4;

/// What to do with a packet, by its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The caller's media: use it.
    Accept,
    /// A source on probation: not used (yet).
    Probation,
    /// Another source than the one the stream is locked to: dropped.
    Stranger,
}

/// A source working through its probation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    from: SocketAddr,
    ssrc: u32,
    next_seq: u16,
    count: u32,
    /// A counter value, for replacing the least recently heard candidate.
    heard: u64,
}

/// Whether the stream's source is known yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No media taken yet: the signalled address would be taken at once,
    /// others are on probation.
    Listening { candidates: Vec<Candidate> },
    /// Media comes from `from`; `learned` when it was not the SDP's address.
    Locked { from: SocketAddr, learned: bool },
}

/// The source rules of one call's RTP (or RTCP) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    signalled: Option<SocketAddr>,
    state: State,
    heard: u64,
}

impl MediaSource {
    /// Rules for a caller whose SDP names `signalled` (`None` when it gave
    /// no usable address, `c=0.0.0.0` or a host name: then only a source
    /// that passes probation is taken).
    pub fn new(signalled: Option<SocketAddr>) -> MediaSource {
        MediaSource {
            signalled,
            state: State::Listening {
                candidates: Vec::new(),
            },
            heard: 0,
        }
    }

    /// A re-INVITE's address: when it differs from the one signalled
    /// before, the stream is open to the new one (and to probation) again.
    pub fn update(&mut self, signalled: Option<SocketAddr>) {
        if signalled != self.signalled {
            *self = MediaSource::new(signalled);
        }
    }

    /// Judges one packet (already known to be RTP) from `from`.
    pub fn check(&mut self, from: SocketAddr, ssrc: u32, seq: u16) -> Verdict {
        self.heard += 1;
        let signalled = self.signalled == Some(from);
        match &mut self.state {
            State::Locked { from: locked, .. } if *locked == from => Verdict::Accept,
            State::Locked { learned: true, .. } if signalled => {
                self.state = State::Locked {
                    from,
                    learned: false,
                };
                Verdict::Accept
            }
            State::Locked { .. } => Verdict::Stranger,
            State::Listening { .. } if signalled => {
                self.state = State::Locked {
                    from,
                    learned: false,
                };
                Verdict::Accept
            }
            State::Listening { candidates } => {
                let heard = self.heard;
                let proven = probation(candidates, from, ssrc, seq, heard);
                if proven {
                    self.state = State::Locked {
                        from,
                        learned: true,
                    };
                    Verdict::Accept
                } else {
                    Verdict::Probation
                }
            }
        }
    }

    /// Where our media goes: the source we took, or the SDP's address
    /// until one was taken.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.state {
            State::Locked { from, .. } => Some(from),
            State::Listening { .. } => self.signalled,
        }
    }

    /// The source media is taken from, once there is one.
    pub fn locked(&self) -> Option<SocketAddr> {
        match self.state {
            State::Locked { from, .. } => Some(from),
            State::Listening { .. } => None,
        }
    }

    /// The address the SDP named.
    pub fn signalled(&self) -> Option<SocketAddr> {
        self.signalled
    }
}

/// Moves `from` on through its probation; true once it has sent
/// [`PROBATION`] consecutive packets of one SSRC.
fn probation(
    candidates: &mut Vec<Candidate>,
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    heard: u64,
) -> bool {
    let index = match candidates.iter().position(|c| c.from == from) {
        Some(i) => i,
        None => {
            let fresh = Candidate {
                from,
                ssrc,
                next_seq: seq,
                count: 0,
                heard,
            };
            if candidates.len() < CANDIDATES {
                candidates.push(fresh);
                candidates.len() - 1
            } else {
                let oldest = candidates
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, c)| c.heard)
                    .map_or(0, |(i, _)| i);
                candidates[oldest] = fresh;
                oldest
            }
        }
    };
    let candidate = &mut candidates[index];
    if candidate.ssrc == ssrc && candidate.next_seq == seq {
        candidate.count += 1;
    } else {
        candidate.ssrc = ssrc;
        candidate.count = 1;
    }
    candidate.next_seq = seq.wrapping_add(1);
    candidate.heard = heard;
    candidate.count >= PROBATION
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const CALLER: &str = "192.0.2.1:4000";
    const NAT: &str = "198.51.100.9:31000";
    const STRANGER: &str = "203.0.113.66:9999";

    #[test]
    fn the_signalled_address_is_taken_at_once_and_keeps_the_stream() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        // A stranger first, as a sprayer sends: never accepted.
        for seq in 0..10 {
            let verdict = source.check(addr(STRANGER), 7, seq * 13);
            assert_eq!(verdict, Verdict::Probation);
        }
        assert_eq!(source.check(addr(CALLER), 1, 500), Verdict::Accept);
        assert_eq!(source.locked(), Some(addr(CALLER)));
        for seq in 10..100 {
            assert_eq!(source.check(addr(STRANGER), 7, seq), Verdict::Stranger);
        }
        assert_eq!(source.check(addr(CALLER), 1, 501), Verdict::Accept);
        assert_eq!(source.destination(), Some(addr(CALLER)));
    }

    /// Before the caller's first packet, one packet from anywhere (or one
    /// per port, as a sprayer sends) must not take the stream.
    #[test]
    fn a_single_packet_from_elsewhere_does_not_latch() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        assert_eq!(source.check(addr(STRANGER), 1, 1), Verdict::Probation);
        assert_eq!(source.locked(), None);
        // Scattered sequence numbers never finish probation.
        for seq in [9, 400, 3, 70, 8000, 12] {
            assert_eq!(source.check(addr(STRANGER), 1, seq), Verdict::Probation);
        }
        assert_eq!(source.destination(), Some(addr(CALLER)));
    }

    #[test]
    fn a_nated_caller_is_learned_after_probation() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        for seq in 100..100 + u16::try_from(PROBATION).unwrap() - 1 {
            assert_eq!(source.check(addr(NAT), 42, seq), Verdict::Probation);
        }
        assert_eq!(source.check(addr(NAT), 42, 103), Verdict::Accept);
        assert_eq!(source.destination(), Some(addr(NAT)));
        // A stranger now cannot take it, even with a perfect sequence.
        for seq in 0..20 {
            assert_eq!(source.check(addr(STRANGER), 9, seq), Verdict::Stranger);
        }
        assert_eq!(source.check(addr(NAT), 42, 104), Verdict::Accept);
    }

    #[test]
    fn probation_needs_one_ssrc_and_consecutive_numbers() {
        let mut source = MediaSource::new(None);
        assert_eq!(source.check(addr(NAT), 1, 10), Verdict::Probation);
        assert_eq!(source.check(addr(NAT), 1, 11), Verdict::Probation);
        // Another SSRC restarts the count, so does a gap.
        assert_eq!(source.check(addr(NAT), 2, 12), Verdict::Probation);
        assert_eq!(source.check(addr(NAT), 2, 14), Verdict::Probation);
        assert_eq!(source.check(addr(NAT), 2, 15), Verdict::Probation);
        assert_eq!(source.check(addr(NAT), 2, 16), Verdict::Probation);
        assert_eq!(source.check(addr(NAT), 2, 17), Verdict::Accept);
        // Sequence numbers wrap within probation.
        let mut other = MediaSource::new(None);
        for seq in [65534, 65535, 0] {
            assert_eq!(other.check(addr(NAT), 5, seq), Verdict::Probation);
        }
        assert_eq!(other.check(addr(NAT), 5, 1), Verdict::Accept);
    }

    /// A stranger interleaving its packets with a NATed caller's does not
    /// reset the caller's probation, and the caller wins.
    #[test]
    fn interleaved_strangers_do_not_stall_probation() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        let mut verdicts = Vec::new();
        for i in 0..PROBATION as u16 {
            source.check(addr(STRANGER), 3, i * 7);
            verdicts.push(source.check(addr(NAT), 8, 1000 + i));
        }
        assert_eq!(verdicts.last(), Some(&Verdict::Accept));
        assert_eq!(source.locked(), Some(addr(NAT)));
    }

    /// A stranger that won probation before the caller sent anything loses
    /// the stream to the caller's first packet from its SDP address.
    #[test]
    fn the_signalled_address_outranks_a_learned_one() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        for seq in 0..PROBATION as u16 {
            source.check(addr(STRANGER), 3, seq);
        }
        assert_eq!(source.locked(), Some(addr(STRANGER)));
        assert_eq!(source.check(addr(CALLER), 1, 77), Verdict::Accept);
        assert_eq!(source.locked(), Some(addr(CALLER)));
        assert_eq!(source.check(addr(STRANGER), 3, 5), Verdict::Stranger);
    }

    #[test]
    fn a_reinvite_to_a_new_address_reopens_the_choice() {
        let mut source = MediaSource::new(Some(addr(CALLER)));
        source.check(addr(CALLER), 1, 1);
        source.update(Some(addr(CALLER)));
        assert_eq!(source.locked(), Some(addr(CALLER)), "same address: kept");
        let moved = addr("192.0.2.50:6000");
        source.update(Some(moved));
        assert_eq!(source.locked(), None);
        assert_eq!(source.check(addr(CALLER), 1, 2), Verdict::Probation);
        assert_eq!(source.check(moved, 1, 3), Verdict::Accept);
    }

    #[test]
    fn many_sprayed_sources_rotate_through_the_candidates() {
        let mut source = MediaSource::new(None);
        // The NATed caller sends one packet per 20 ms, a sprayer three
        // addresses in between: the caller still finishes its probation.
        let mut accepted = false;
        for i in 0..PROBATION as u16 {
            for s in 0..3u16 {
                let sprayer = SocketAddr::new(addr(STRANGER).ip(), 10_000 + s);
                source.check(sprayer, u32::from(s), i * 7);
            }
            accepted = source.check(addr(NAT), 8, 40 + i) == Verdict::Accept;
        }
        assert!(accepted);
    }
}
