//! How many calls the process's open-file limit lets vmesh take at once.
//!
//! A call holds three descriptors for as long as it lasts: its RTP socket,
//! its RTCP socket (port + 1) and, from its first audio on, its WAV file.
//! The file is opened after the 200 OK, so a process that ran out of
//! descriptors would answer a call and then fail to record it. vmesh
//! therefore takes no more calls at once than the limit leaves room for,
//! after [`RESERVE`] descriptors for everything else and one each for the
//! SIP connections it accepts (`sip.max_connections`, at most a quarter of
//! the limit): above it, a new call gets 503 like one above `sip.max_calls`.

/// Descriptors a call holds: RTP socket, RTCP socket, recording file.
pub const FDS_PER_CALL: u64 = 3;

/// Descriptors kept for what is not a call: the listeners, the store's
/// database and the files it writes and reads in passing, the mesh's
/// connections, the runtime's and the media engine's epoll and event
/// descriptors, standard streams.
pub const RESERVE: u64 = 256;

/// The calls at once: `max_calls`, or fewer if `open_files` (the soft
/// `RLIMIT_NOFILE`, `None` when unknown or unlimited) cannot hold them.
pub fn call_capacity(max_calls: usize, max_connections: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else {
        return max_calls;
    };
    let connections = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .min(limit / 4);
    let room = limit.saturating_sub(RESERVE + connections) / FDS_PER_CALL;
    usize::try_from(room).unwrap_or(usize::MAX).min(max_calls)
}

/// The process's open files limit (soft and hard), if it can be read.
fn open_files() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit)
}

/// The process's soft limit on open files, `None` if unlimited or unknown.
pub fn open_files_limit() -> Option<u64> {
    open_files()
        .map(|limit| limit.rlim_cur)
        .filter(|&soft| soft != libc::RLIM_INFINITY)
}

/// 1,000 calls need more descriptors than the usual soft limit of 1024:
/// raises the soft limit to the hard one (allowed without privileges,
/// setrlimit(2)); what it still cannot hold lowers the calls taken at once
/// ([`call_capacity`]).
pub fn raise_open_files_limit() {
    let Some(mut limit) = open_files() else {
        return;
    };
    if limit.rlim_cur < limit.rlim_max {
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
            tracing::debug!(
                before,
                after = limit.rlim_cur,
                "raised the open files limit"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_limit_leaves_max_calls() {
        assert_eq!(call_capacity(1000, 4096, Some(1_048_576)), 1000);
        assert_eq!(call_capacity(1000, 4096, None), 1000);
    }

    /// 20,000 descriptors, 4,096 connections: (20,000 − 256 − 4,096) / 3.
    #[test]
    fn a_limit_below_max_calls_lowers_it() {
        assert_eq!(call_capacity(100_000, 4096, Some(20_000)), 5216);
        // Fewer connections leave more for calls.
        assert_eq!(call_capacity(100_000, 64, Some(20_000)), 6560);
        // The connections count for at most a quarter of the limit:
        // 4,096 descriptors, (4,096 − 256 − 1,024) / 3.
        assert_eq!(call_capacity(1000, 4096, Some(4096)), 938);
    }

    #[test]
    fn a_limit_smaller_than_the_reserve_allows_no_call() {
        assert_eq!(call_capacity(1000, 4096, Some(256)), 0);
        assert_eq!(call_capacity(1000, 4096, Some(0)), 0);
    }

    /// Every call the capacity admits has its descriptors under the limit.
    #[test]
    fn what_it_admits_fits_the_limit() {
        for limit in [300u64, 1024, 4096, 20_000, 65_536] {
            for connections in [1usize, 64, 4096] {
                let calls = call_capacity(usize::MAX, connections, Some(limit)) as u64;
                let connections = (connections as u64).min(limit / 4);
                assert!(
                    calls * FDS_PER_CALL + connections + RESERVE
                        <= limit.max(RESERVE + connections),
                    "{limit} descriptors, {connections} connections: {calls} calls"
                );
            }
        }
    }
}
