//! Time for pacing: one monotonic clock in nanoseconds, absolute sleeps.
//!
//! Every packet and every INVITE has an absolute deadline on
//! `CLOCK_MONOTONIC`; the sender sleeps with `clock_nanosleep(TIMER_ABSTIME)`
//! until the next one, so a late wake-up never shifts the schedule that
//! follows (no drift), and each send's lateness is measured against its own
//! deadline. The thread's timer slack is set to 1 ns (`PR_SET_TIMERSLACK`):
//! the kernel's default 50 µs would otherwise be added to every sleep.
//!
//! The wall clock (`CLOCK_REALTIME`) is read only to pair a send with the
//! kernel's receive timestamps (`SO_TIMESTAMPNS`), which are on that clock.

/// Nanoseconds of one clock.
fn now_on(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds.
pub fn mono_ns() -> u64 {
    now_on(libc::CLOCK_MONOTONIC)
}

/// Now on `CLOCK_REALTIME`, in nanoseconds since the epoch.
pub fn real_ns() -> u64 {
    now_on(libc::CLOCK_REALTIME)
}

/// Sleeps until `deadline` on `CLOCK_MONOTONIC` (returns at once if past).
pub fn sleep_until(deadline: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; no remainder is asked for.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Puts this thread (and the threads it starts later) in the real-time
/// FIFO class at `priority`, so that the other work of a busy machine does
/// not delay the schedule; the sleeps keep its CPU use small. Needs root
/// (or `CAP_SYS_NICE`); the error says why not.
pub fn realtime(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a valid sched_param for the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes this thread's timed sleeps end when asked, not up to 50 µs later.
pub fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}
