//! The UDP sockets of one call: RTP on an even port, RTCP on the odd port
//! above it (RFC 3550 §11).
//!
//! Several servers can share one port range on one host when each binds its
//! own address (127.0.0.11, 127.0.0.12, ...), so the sockets bind the very
//! address our SDP advertises, never the wildcard. The RTCP port is bound
//! with the RTP one (a pair is taken whole or not at all) unless the caller
//! offered RTCP multiplexing (RFC 5761), which puts RTCP on the RTP port;
//! even then no other call takes the odd port, since calls bind even ones.
//!
//! The sockets are plain non-blocking ones, not the async runtime's: the
//! media engine (`super::engine`) waits on them in its own `epoll` set.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use super::call_media::Channel;

/// Failures of the media transport, naming the address and range involved.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every even port of the range is taken on this address.
    #[error("no free even RTP port on {ip} in {first}..={last}")]
    NoFreePort {
        /// The address we tried to bind.
        ip: IpAddr,
        /// The range's first port.
        first: u16,
        /// The range's last port.
        last: u16,
    },
    /// Binding failed for a reason other than a taken port (for example the
    /// address is not one of this host's).
    #[error("cannot bind RTP socket on {addr}: {source}")]
    Bind {
        /// The address and port we tried.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// Sending a datagram failed.
    #[error("cannot send RTP to {to}: {source}")]
    Send {
        /// The destination.
        to: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
}

/// One call's RTP socket, and its RTCP socket when bound.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    local: SocketAddr,
    rtcp: Option<UdpSocket>,
    send_errors: AtomicU64,
}

impl RtpSocket {
    /// Binds an even port of `ports` on `ip`, starting at a random one so
    /// that concurrent calls and restarted servers rarely collide.
    pub async fn bind(ip: IpAddr, ports: RangeInclusive<u16>) -> Result<RtpSocket, MediaError> {
        RtpSocket::bind_pair(ip, ports, false).await
    }

    /// Binds an even port of `ports` on `ip` for RTP and, with `rtcp`, the
    /// odd port above it for RTCP: a pair whose odd half is taken is
    /// skipped whole.
    pub async fn bind_pair(
        ip: IpAddr,
        ports: RangeInclusive<u16>,
        rtcp: bool,
    ) -> Result<RtpSocket, MediaError> {
        let (first, last) = (*ports.start(), *ports.end());
        let first_even = u32::from(first) + u32::from(first % 2);
        let count = (u32::from(last) + 1).saturating_sub(first_even).div_ceil(2);
        if count == 0 {
            return Err(MediaError::NoFreePort { ip, first, last });
        }
        let start = rand::rng().random_range(0..count);
        for i in 0..count {
            let Ok(port) = u16::try_from(first_even + 2 * ((start + i) % count)) else {
                continue;
            };
            let addr = SocketAddr::new(ip, port);
            match bind_nonblocking(addr) {
                Ok(socket) => {
                    let local = socket
                        .local_addr()
                        .map_err(|source| MediaError::Bind { addr, source })?;
                    let rtcp_socket = if rtcp {
                        let rtcp_addr = SocketAddr::new(ip, port.saturating_add(1));
                        match bind_nonblocking(rtcp_addr) {
                            Ok(s) => Some(s),
                            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                            Err(source) => {
                                return Err(MediaError::Bind {
                                    addr: rtcp_addr,
                                    source,
                                })
                            }
                        }
                    } else {
                        None
                    };
                    return Ok(RtpSocket {
                        socket,
                        local,
                        rtcp: rtcp_socket,
                        send_errors: AtomicU64::new(0),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => return Err(MediaError::Bind { addr, source }),
            }
        }
        Err(MediaError::NoFreePort { ip, first, last })
    }

    /// The address and port to put in our SDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether an RTCP socket was bound.
    pub fn has_rtcp(&self) -> bool {
        self.rtcp.is_some()
    }

    /// Receives one datagram on `channel`'s socket without waiting
    /// (`WouldBlock` when there is none).
    pub fn try_recv(&self, channel: Channel, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match (channel, &self.rtcp) {
            (Channel::Rtp, _) => self.socket.recv_from(buf),
            (Channel::Rtcp, Some(rtcp)) => rtcp.recv_from(buf),
            (Channel::Rtcp, None) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Sends one datagram from `channel`'s port without waiting: UDP
    /// either takes it at once or drops it, as the network would.
    pub fn try_send(
        &self,
        channel: Channel,
        datagram: &[u8],
        to: SocketAddr,
    ) -> Result<usize, MediaError> {
        let socket = match (channel, &self.rtcp) {
            (Channel::Rtcp, Some(rtcp)) => rtcp,
            _ => &self.socket,
        };
        socket
            .send_to(datagram, to)
            .map_err(|source| MediaError::Send { to, source })
    }

    /// Sends as [`RtpSocket::try_send`] does, counting a refusal (a full
    /// socket buffer, an unreachable caller) instead of returning it.
    pub fn send_counted(&self, channel: Channel, datagram: &[u8], to: SocketAddr) {
        if let Err(error) = self.try_send(channel, datagram, to) {
            self.send_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, "cannot send a media datagram");
        }
    }

    /// Datagrams the kernel refused so far.
    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Ordering::Relaxed)
    }

    /// The descriptor of `channel`'s socket (the RTP one when RTCP shares it).
    pub fn raw_fd(&self, channel: Channel) -> RawFd {
        match (channel, &self.rtcp) {
            (Channel::Rtcp, Some(rtcp)) => rtcp.as_raw_fd(),
            _ => self.socket.as_raw_fd(),
        }
    }

    /// The RTCP socket's descriptor, when one was bound.
    pub fn rtcp_raw_fd(&self) -> Option<RawFd> {
        self.rtcp.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// A UDP socket bound to `addr`, in non-blocking mode.
fn bind_nonblocking(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn binds_an_even_port_in_range() {
        let socket = RtpSocket::bind(LOOPBACK, 41001..=41099).await.unwrap();
        let port = socket.local_addr().port();
        assert_eq!(port % 2, 0);
        assert!((41002..=41098).contains(&port));
        assert_eq!(socket.local_addr().ip(), LOOPBACK);
    }

    #[tokio::test]
    async fn moves_on_to_a_free_port_and_reports_exhaustion() {
        let a = RtpSocket::bind(LOOPBACK, 41200..=41203).await.unwrap();
        let b = RtpSocket::bind(LOOPBACK, 41200..=41203).await.unwrap();
        let mut ports = [a.local_addr().port(), b.local_addr().port()];
        ports.sort_unstable();
        assert_eq!(ports, [41200, 41202]);
        let err = RtpSocket::bind(LOOPBACK, 41200..=41203).await.unwrap_err();
        assert!(
            matches!(err, MediaError::NoFreePort { first: 41200, .. }),
            "{err}"
        );
        let empty = RtpSocket::bind(LOOPBACK, 41301..=41301).await.unwrap_err();
        assert!(matches!(empty, MediaError::NoFreePort { .. }));
    }

    #[tokio::test]
    async fn a_pair_takes_the_odd_port_above_or_moves_on() {
        // Another process holds 41603: the pair 41602/41603 is skipped.
        let _held = UdpSocket::bind((LOOPBACK, 41603)).unwrap();
        let pair = RtpSocket::bind_pair(LOOPBACK, 41602..=41605, true)
            .await
            .unwrap();
        assert_eq!(pair.local_addr().port(), 41604);
        assert!(pair.has_rtcp());
        assert!(UdpSocket::bind((LOOPBACK, 41605)).is_err(), "RTCP bound");
        let err = RtpSocket::bind_pair(LOOPBACK, 41602..=41603, true)
            .await
            .unwrap_err();
        assert!(matches!(err, MediaError::NoFreePort { .. }), "{err}");
    }

    #[tokio::test]
    async fn different_addresses_share_a_range() {
        let a = RtpSocket::bind("127.0.0.11".parse().unwrap(), 41400..=41400)
            .await
            .unwrap();
        let b = RtpSocket::bind("127.0.0.12".parse().unwrap(), 41400..=41400)
            .await
            .unwrap();
        assert_eq!(a.local_addr().port(), b.local_addr().port());
    }

    #[tokio::test]
    async fn a_foreign_address_is_a_bind_error() {
        let err = RtpSocket::bind("192.0.2.123".parse().unwrap(), 41500..=41510)
            .await
            .unwrap_err();
        assert!(matches!(err, MediaError::Bind { .. }), "{err}");
    }
}
