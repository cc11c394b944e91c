//! The UDP socket one call receives its RTP on.
//!
//! Several servers can share one port range on one host when each binds its
//! own address (127.0.0.11, 127.0.0.12, ...), so the socket binds the very
//! address our SDP advertises, never the wildcard. Ports are even, as RTP
//! wants (RFC 3550 §11); the odd port above is left unbound because we send
//! no RTCP and ignore what arrives, and no other call will take it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use rand::Rng;
use tokio::net::UdpSocket;

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

/// One call's RTP socket.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    local: SocketAddr,
}

impl RtpSocket {
    /// Binds an even port of `ports` on `ip`, starting at a random one so
    /// that concurrent calls and restarted servers rarely collide.
    pub async fn bind(ip: IpAddr, ports: RangeInclusive<u16>) -> Result<RtpSocket, MediaError> {
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
            match UdpSocket::bind(addr).await {
                Ok(socket) => {
                    let local = socket
                        .local_addr()
                        .map_err(|source| MediaError::Bind { addr, source })?;
                    return Ok(RtpSocket { socket, local });
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

    /// Receives one datagram into `buf`; cancel-safe, for `select!`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// Sends one datagram (prompt playback, keep-alives).
    pub async fn send_to(&self, datagram: &[u8], to: SocketAddr) -> Result<usize, MediaError> {
        self.socket
            .send_to(datagram, to)
            .await
            .map_err(|source| MediaError::Send { to, source })
    }
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
