//! Two network namespaces joined by one veth pair: a real link between two
//! hosts that a test can cut (`ip link set DEV down`) and restore.
//!
//! Loopback cannot be partitioned (every 127.x.y.z address is local), so a
//! partition test puts each server in a namespace of its own with one
//! address on its end of the link. Everything here is made by the test and
//! removed when the [`NetnsPair`] is dropped, also when the test fails:
//! deleting a namespace destroys the veth end in it, and with it the pair.
//!
//! Work inside a namespace (an OPTIONS probe, a SIPp caller) runs on a
//! thread that has joined it with setns(2): a thread's network namespace is
//! its own, and the processes it starts inherit it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The subnet of every pair's link. Each pair lives in namespaces of its
/// own, so pairs of tests running at once never see each other's addresses.
const SUBNET: [u8; 3] = [10, 77, 0];

/// Two namespaces `a` and `b`, linked by a veth pair, each end with one
/// address of [`SUBNET`] (.1 in `a`, .2 in `b`) and loopback up.
pub struct NetnsPair {
    /// The namespaces' names, as `ip netns` knows them.
    pub names: [String; 2],
    /// The veth end in each namespace.
    pub devices: [String; 2],
    /// The address of each end.
    pub ips: [Ipv4Addr; 2],
}

impl NetnsPair {
    /// Creates the pair, or says why it cannot (not root, no `ip`, a kernel
    /// without namespaces): the caller then falls back to another way of
    /// partitioning. Whatever was created before a failure is removed.
    pub fn create() -> Result<NetnsPair, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let pair = NetnsPair {
            names: [format!("vmesh-{tag}-a"), format!("vmesh-{tag}-b")],
            // Interface names are at most 15 bytes.
            devices: [
                format!("vma{}x{n}", std::process::id() % 100_000),
                format!("vmb{}x{n}", std::process::id() % 100_000),
            ],
            ips: [
                Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 1),
                Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 2),
            ],
        };
        // From here on, dropping `pair` deletes whatever exists of it.
        for name in &pair.names {
            ip(&["netns", "add", name])?;
        }
        ip(&[
            "link",
            "add",
            &pair.devices[0],
            "netns",
            &pair.names[0],
            "type",
            "veth",
            "peer",
            "name",
            &pair.devices[1],
            "netns",
            &pair.names[1],
        ])?;
        for side in 0..2 {
            let ns = &pair.names[side];
            let address = format!("{}/24", pair.ips[side]);
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &address,
                "dev",
                &pair.devices[side],
            ])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", &pair.devices[side], "up"])?;
        }
        Ok(pair)
    }

    /// Cuts the link: side `a`'s end goes down. Side `a` then has no route
    /// to `b` (its connects fail at once); side `b`'s end loses its carrier
    /// and what it sends is dropped (its requests time out). Each side keeps
    /// reaching its own address.
    pub fn cut(&self) {
        ip(&[
            "-n",
            &self.names[0],
            "link",
            "set",
            &self.devices[0],
            "down",
        ])
        .unwrap_or_else(|e| panic!("cut the link: {e}"));
    }

    /// Drops every packet between the two sides, silently, inside side
    /// `a`'s namespace (an nftables rule on its input and output hooks):
    /// the WAN failure where packets vanish and nothing says so, so
    /// connects and requests hang until their own timeouts. The link stays
    /// up.
    pub fn blackhole(&self) {
        let other = self.ips[1];
        let rules = format!(
            "table inet vmesh_blackhole {{\n\
             chain input {{ type filter hook input priority 0; policy accept; ip saddr {other} drop; }}\n\
             chain output {{ type filter hook output priority 0; policy accept; ip daddr {other} drop; }}\n\
             }}\n"
        );
        nft(&self.names[0], &["-f", "-"], Some(&rules))
            .unwrap_or_else(|e| panic!("blackhole the link: {e}"));
    }

    /// Removes the blackhole of [`NetnsPair::blackhole`].
    pub fn unblackhole(&self) {
        nft(
            &self.names[0],
            &["delete", "table", "inet", "vmesh_blackhole"],
            None,
        )
        .unwrap_or_else(|e| panic!("remove the blackhole: {e}"));
    }

    /// Restores the link cut by [`NetnsPair::cut`].
    pub fn heal(&self) {
        ip(&["-n", &self.names[0], "link", "set", &self.devices[0], "up"])
            .unwrap_or_else(|e| panic!("restore the link: {e}"));
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for name in &self.names {
            // Fails harmlessly for a namespace that was never created.
            let _ = ip(&["netns", "delete", name]);
        }
    }
}

/// Runs `ip ARGS`; the error says what failed and why.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {} {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `nft ARGS` inside namespace `ns`, with `stdin` as its input.
fn nft(ns: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "nft {}: {e} (is the nftables package installed?)",
                args.join(" ")
            )
        })?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .map_err(|e| format!("nft stdin: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("nft {}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {}: {} {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `f` on a thread inside namespace `ns` and returns its result (a
/// panic in `f` is the caller's panic). Sockets made and processes started
/// by `f` belong to `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    let thread = std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns(2) on a namespace file we hold open; it changes
        // only this thread's network namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
        f()
    });
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
