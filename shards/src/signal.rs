//! Cross-thread shutdown trigger: [`ShutdownHandle`] (any thread) and the
//! per-shard eventfd it writes, awaited on the shard by [`RemoteWake`].
//!
//! Why an eventfd: a shard spends idle time parked inside glommio's
//! `io_uring_enter`, and nothing but a ring completion wakes it. A read on an
//! eventfd submitted through glommio's own ring completes the moment another
//! thread writes the eventfd, so an idle shard wakes immediately and costs
//! nothing while waiting. A periodic timer polling an `AtomicBool` would also
//! work but wakes every core N times a second forever and adds up to one
//! period of shutdown latency; it is kept only as a fallback for the case
//! where the ring read fails.

use std::{
    io,
    mem::ManuallyDrop,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

/// How often the fallback path checks the flag if the eventfd read fails.
const FALLBACK_POLL: Duration = Duration::from_millis(50);

struct Inner {
    triggered: AtomicBool,
    /// One eventfd per shard. Owned here, not by the shards, so that a late
    /// `trigger()` after a shard has exited still writes to a valid fd rather
    /// than to a closed (or reused) descriptor.
    eventfds: Vec<OwnedFd>,
}

/// A cloneable, Send + Sync handle that triggers shutdown from any thread
/// (signal handler thread, tests).
#[derive(Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("triggered", &self.is_triggered())
            .field("shards", &self.inner.eventfds.len())
            .finish()
    }
}

impl ShutdownHandle {
    /// Creates the handle and one eventfd per shard.
    pub(crate) fn new(shards: usize) -> io::Result<ShutdownHandle> {
        let eventfds = (0..shards)
            .map(|_| new_eventfd())
            .collect::<io::Result<_>>()?;
        Ok(ShutdownHandle {
            inner: Arc::new(Inner {
                triggered: AtomicBool::new(false),
                eventfds,
            }),
        })
    }

    /// Asks every shard to stop accepting, tell its handlers, drain and exit.
    /// Returns immediately; idempotent. Use [`Server::join`](crate::Server::join)
    /// to wait for the shards to finish.
    pub fn trigger(&self) {
        if self.inner.triggered.swap(true, Ordering::SeqCst) {
            return;
        }
        for fd in &self.inner.eventfds {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an fd we own. The only
            // possible failure is EAGAIN on counter overflow, which cannot
            // happen with a single write of 1.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// True once [`trigger`](Self::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// The shard-side waiter for shard `index`.
    pub(crate) fn remote_wake(&self, index: usize) -> RemoteWake {
        RemoteWake {
            handle: self.clone(),
            index,
        }
    }
}

/// Shard side of the trigger; must be awaited inside the shard's executor.
/// Holds the handle, which keeps the eventfd open for as long as it waits.
pub(crate) struct RemoteWake {
    handle: ShutdownHandle,
    index: usize,
}

impl RemoteWake {
    /// Resolves once shutdown has been triggered from any thread.
    pub(crate) async fn wait(self) {
        if self.handle.is_triggered() {
            return;
        }
        let fd = self.handle.inner.eventfds[self.index].as_raw_fd();
        // glommio's file must never close the fd: it is owned by the handle,
        // and glommio closes files asynchronously through the ring, which a
        // shard about to exit would never submit (leaking the fd).
        // SAFETY: the fd stays open while `self.handle` lives, which outlives
        // `file`; ManuallyDrop keeps glommio from closing it.
        let file = ManuallyDrop::new(unsafe { glommio::io::BufferedFile::from_raw_fd(fd) });
        match file.read_at(0, 8).await {
            // Only trigger() writes this eventfd, so a completed read means
            // shutdown; no need to look at the value.
            Ok(_) => return,
            Err(e) => log::warn!(
                "shutdown eventfd read failed ({e}); falling back to polling every {FALLBACK_POLL:?}"
            ),
        }
        while !self.handle.is_triggered() {
            glommio::timer::sleep(FALLBACK_POLL).await;
        }
    }
}

fn new_eventfd() -> io::Result<OwnedFd> {
    // Blocking on purpose: io_uring returns EAGAIN for reads on O_NONBLOCK
    // files instead of waiting for them to become readable.
    // SAFETY: plain syscall; on success we take ownership of the new fd.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
