//! Raise the soft limit on open files (RLIMIT_NOFILE) at start.
//!
//! Every peer of the room costs one TCP connection, so one file descriptor, plus one more
//! for a moment while two peers dial each other at once. A lecture hall of 200 peers needs
//! about 200 + a few dozen descriptors in each process; a program that runs many peers in one
//! process (tests, benchmarks) needs n(n-1) for n peers. Many systems start programs with a soft
//! limit of 1024 (macOS: 256) while the hard limit is far higher, and any process may raise its
//! soft limit up to its hard limit without privileges. This does that, once, at start.
//!
//! The CLI calls [`raise_nofile_limit`] before starting its node; a library user may too.

use std::io;

/// The soft limit asked for: well above a full lecture hall, far below any sane hard limit.
pub const WANTED_NOFILE: u64 = 65_536;

/// Raise the soft RLIMIT_NOFILE to `min(hard, WANTED_NOFILE)` (never lowers it).
///
/// Returns `(soft, hard)` as they are afterwards. On macOS the kernel also caps the soft limit
/// at `OPEN_MAX` (10240), which is applied here too.
#[cfg(unix)]
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    raise_nofile_limit_to(WANTED_NOFILE)
}

/// Like [`raise_nofile_limit`], with the wanted soft limit given.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux and macOS, not on every Unix
pub fn raise_nofile_limit_to(wanted: u64) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct, which `lim` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft = lim.rlim_cur as u64;
    let hard = lim.rlim_max as u64;
    let mut target = wanted.min(hard);
    if cfg!(target_os = "macos") {
        target = target.min(10_240);
    }
    if target <= soft {
        return Ok((soft, hard));
    }
    lim.rlim_cur = target as libc::rlim_t;
    // SAFETY: setrlimit reads one rlimit struct, which `lim` is.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((target, hard))
}

/// Elsewhere there is nothing to raise: Windows has no such per-process soft limit on sockets.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    Ok((u64::MAX, u64::MAX))
}

#[cfg(all(test, unix))]
mod tests {
    #[test]
    fn raises_never_lowers() {
        let (soft, hard) = super::raise_nofile_limit().unwrap();
        assert!(soft <= hard);
        assert!(soft >= super::WANTED_NOFILE.min(hard) || cfg!(target_os = "macos"));
        // Asking for less than we have changes nothing.
        assert_eq!(super::raise_nofile_limit_to(16).unwrap(), (soft, hard));
    }
}
