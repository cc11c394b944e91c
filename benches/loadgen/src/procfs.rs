//! What the kernel says about a process and about UDP, from `/proc`.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (fields 14 and 15, in
//! clock ticks, every thread of the process included, those that already
//! exited too), memory is `VmRSS` and `VmHWM` of `/proc/PID/status`, and
//! the UDP counters of `/proc/net/snmp` show datagrams the kernel dropped
//! (a full receive buffer is `RcvbufErrors`), which no process sees.
//! `/proc/net/udp` lists every UDP socket with its receive queue and its
//! own drop count: summed over the sockets of the receiver's address, they
//! say whether it has read everything sent and whether the kernel dropped
//! any of it.

use std::fs;
use std::net::Ipv4Addr;

/// Clock ticks per second of `/proc/PID/stat`'s times.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted
    // after its closing parenthesis (field 3 is the first after it).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_second() as f64)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The system-wide UDP counters of `/proc/net/snmp`.
#[derive(Clone, Copy, Default, Debug)]
pub struct UdpCounters {
    pub in_datagrams: u64,
    pub no_ports: u64,
    pub in_errors: u64,
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl UdpCounters {
    /// Reads them now (zeros if `/proc/net/snmp` cannot be read).
    pub fn read() -> UdpCounters {
        let text = fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return UdpCounters::default();
        };
        let mut c = UdpCounters::default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let v = value.parse().unwrap_or(0);
            match name {
                "InDatagrams" => c.in_datagrams = v,
                "NoPorts" => c.no_ports = v,
                "InErrors" => c.in_errors = v,
                "RcvbufErrors" => c.rcvbuf_errors = v,
                "SndbufErrors" => c.sndbuf_errors = v,
                _ => {}
            }
        }
        c
    }

    /// What changed since `before`, as report JSON.
    pub fn delta_json(&self, before: &UdpCounters) -> String {
        format!(
            "{{\"in_datagrams\": {}, \"no_ports\": {}, \"in_errors\": {}, \"rcvbuf_errors\": {}, \"sndbuf_errors\": {}}}",
            self.in_datagrams.wrapping_sub(before.in_datagrams),
            self.no_ports.wrapping_sub(before.no_ports),
            self.in_errors.wrapping_sub(before.in_errors),
            self.rcvbuf_errors.wrapping_sub(before.rcvbuf_errors),
            self.sndbuf_errors.wrapping_sub(before.sndbuf_errors),
        )
    }
}

/// The UDP sockets bound to one address, from `/proc/net/udp`.
#[derive(Clone, Copy, Default, Debug)]
pub struct SocketQueues {
    pub sockets: u64,
    /// Octets waiting to be read (the kernel's accounting, overhead
    /// included), summed.
    pub rx_queue: u64,
    /// Datagrams the kernel dropped on these sockets, summed.
    pub drops: u64,
}

impl SocketQueues {
    /// Reads them now for the sockets bound to `ip`.
    pub fn read(ip: Ipv4Addr) -> SocketQueues {
        // The kernel prints the address as the hex of its in-memory
        // (network order) u32, read as a host-order integer.
        let want = format!("{:08X}", u32::from_ne_bytes(ip.octets()));
        let text = fs::read_to_string("/proc/net/udp").unwrap_or_default();
        let mut q = SocketQueues::default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(queues), Some(drops)) =
                (fields.get(1), fields.get(4), fields.last())
            else {
                continue;
            };
            if local.split(':').next() != Some(want.as_str()) {
                continue;
            }
            q.sockets += 1;
            if let Some(rx) = queues.split(':').nth(1) {
                q.rx_queue += u64::from_str_radix(rx, 16).unwrap_or(0);
            }
            q.drops += drops.parse::<u64>().unwrap_or(0);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(status_kb(pid, "VmRSS").unwrap() > 0);
        assert!(status_kb(pid, "VmHWM").unwrap() > 0);
        assert!(cpu_seconds(u32::MAX).is_none());
    }

    #[test]
    fn sees_a_socket_and_its_queue() {
        let ip = Ipv4Addr::new(127, 0, 0, 97);
        let rx = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = SocketQueues::read(ip);
        assert!(before.sockets >= 1);
        tx.send_to(&[0u8; 100], rx.local_addr().unwrap()).unwrap();
        let after = SocketQueues::read(ip);
        assert!(after.rx_queue > before.rx_queue, "{before:?} {after:?}");
    }
}
