//! RLIMIT_MEMLOCK, which io_uring (and so glommio) may need raised.
//!
//! glommio refuses to build an executor when the soft limit is under 512 KiB,
//! and registers an io buffer (10 MiB by default) per executor; pinned memory
//! is charged to this limit unless the process has CAP_IPC_LOCK. Raising it
//! here, once at startup, gives a clear error instead of a shard failing later.

use std::io;

/// How to fix a too-low RLIMIT_MEMLOCK, for error messages.
pub(crate) const FIX_HINT: &str =
    "run `ulimit -l unlimited`, or set LimitMEMLOCK=infinity in the systemd unit, \
     or grant CAP_SYS_RESOURCE";

/// Raises RLIMIT_MEMLOCK so the soft limit is at least `wanted_bytes`.
///
/// Tries RLIM_INFINITY for both limits first (allowed with CAP_SYS_RESOURCE),
/// then the soft limit up to the hard limit (always allowed). Returns the soft
/// limit now in effect, in bytes (`u64::MAX` means unlimited). Does nothing if
/// it is already high enough.
pub fn raise_memlock_limit(wanted_bytes: u64) -> Result<u64, String> {
    let (soft, hard) = get().map_err(|e| format!("cannot read RLIMIT_MEMLOCK: {e}"))?;
    if soft == libc::RLIM_INFINITY || soft >= wanted_bytes {
        return Ok(soft);
    }
    if set(libc::RLIM_INFINITY, libc::RLIM_INFINITY).is_ok() {
        return Ok(libc::RLIM_INFINITY);
    }
    if hard == libc::RLIM_INFINITY || hard >= wanted_bytes {
        if let Ok(()) = set(hard, hard) {
            return Ok(hard);
        }
    }
    Err(format!(
        "RLIMIT_MEMLOCK is {} (hard limit {}) but io_uring needs at least {}; {FIX_HINT}",
        describe(soft),
        describe(hard),
        describe(wanted_bytes)
    ))
}

/// glommio refuses to build an executor below this soft limit.
const GLOMMIO_MINIMUM: u64 = 512 << 10;

/// If the soft limit is below what glommio insists on, says so in one line.
pub(crate) fn too_low_for_glommio() -> Option<String> {
    let (soft, _) = get().ok()?;
    (soft < GLOMMIO_MINIMUM).then(|| {
        format!(
            "RLIMIT_MEMLOCK is {}, glommio needs at least {}; {FIX_HINT}",
            describe(soft),
            describe(GLOMMIO_MINIMUM)
        )
    })
}

fn get() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

fn set(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn describe(bytes: u64) -> String {
    if bytes == libc::RLIM_INFINITY {
        "unlimited".into()
    } else if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_high_enough_is_a_no_op() {
        let (soft, _) = get().unwrap();
        assert_eq!(raise_memlock_limit(0).unwrap(), soft);
        assert_eq!(get().unwrap().0, soft);
    }

    #[test]
    fn describes_sizes() {
        assert_eq!(describe(8 << 20), "8 MiB");
        assert_eq!(describe(512 << 10), "512 KiB");
        assert_eq!(describe(1000), "1000 bytes");
        assert_eq!(describe(libc::RLIM_INFINITY), "unlimited");
    }
}

/// Lifts the `RLIMIT_NOFILE` soft limit to the hard one. Each shard's fixed-file table (its
/// direct descriptors, one per connection) may be as large as this limit, and the kernel
/// checks the soft one.
pub fn raise_nofile_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}
