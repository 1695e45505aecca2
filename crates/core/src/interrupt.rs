//! Stopping on a signal. A cluster scheduler warns a job before it preempts it or its time runs
//! out (Slurm's `--signal`, SIGUSR1 here) and stops it with SIGTERM; `kdstore train` and
//! `kdstore study` then stop at the next training step instead of dying mid-write. A training has a
//! checkpoint after every finished epoch, so what is lost is at most the epoch under way, and
//! `--resume` (which a study passes by itself) continues bit for bit. They exit with
//! [`EXIT_INTERRUPTED`], which a study does not count as a failed attempt.

use std::sync::atomic::{AtomicI32, Ordering};

/// EX_TEMPFAIL: stopped on request, to be run again.
pub const EXIT_INTERRUPTED: i32 = 75;

/// The signals that stop a run.
pub const SIGNALS: [i32; 2] = [libc::SIGTERM, libc::SIGUSR1];

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// From now on, SIGTERM and SIGUSR1 are recorded instead of ending the process.
pub fn install() {
    for signal in SIGNALS {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(signal, record as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A signal's name as people write it.
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGINT => "SIGINT".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_recorded_not_fatal() {
        install();
        // SAFETY: raising a signal whose handler was installed above.
        unsafe {
            libc::raise(libc::SIGUSR1);
        }
        assert_eq!(received(), Some(libc::SIGUSR1));
        assert_eq!(name(libc::SIGUSR1), "SIGUSR1");
    }
}
