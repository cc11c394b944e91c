//! Loopback addresses of their own for every test, so tests run in parallel.
//!
//! Linux answers on every 127.x.y.z address, so each test takes a fresh
//! address pair (server and caller) instead of hunting for free ports: the
//! server keeps the fixed SIP port 5060 and its fixed RTP range, SIPp keeps
//! its fixed ports, and nothing of one test can collide with another's.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// The SIP port the server listens on (UDP and TCP), on its own address.
pub const SIP_PORT: u16 = 5060;
/// The server's RTP port range, on its own address.
pub const RTP_PORT_MIN: u16 = 30000;
/// Last port of the server's RTP range.
pub const RTP_PORT_MAX: u16 = 30099;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The addresses of one test: the server's and the caller's.
#[derive(Clone, Copy, Debug)]
pub struct TestNet {
    /// Where the server listens (SIP and RTP).
    pub ip: Ipv4Addr,
    /// Where SIPp and the raw SIP clients of the test send from.
    pub peer_ip: Ipv4Addr,
}

impl TestNet {
    /// A pair of loopback addresses no other running test uses.
    ///
    /// The second octet comes from the process id (test binaries may run
    /// side by side), the third from a counter (tests of one binary run in
    /// parallel threads); an address whose SIP port is already taken is
    /// skipped.
    pub fn allocate() -> TestNet {
        let process = 10 + (std::process::id() % 200) as u8;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            assert!(
                n < 250,
                "no free loopback address left for this test binary"
            );
            let ip = Ipv4Addr::new(127, process, 1 + n as u8, 1);
            let peer_ip = Ipv4Addr::new(127, process, 1 + n as u8, 2);
            if UdpSocket::bind(SocketAddrV4::new(ip, SIP_PORT)).is_ok() {
                return TestNet { ip, peer_ip };
            }
        }
    }

    /// The server's SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, SIP_PORT))
    }
}
