//! The shard's keep-alive pool of backend connections.
//!
//! A connection enters the pool only after its response was read completely and both sides
//! allowed reuse (see `exchange.rs`). Idle connections are handed out newest first, since
//! the newest is the least likely to have been closed by the backend; ones idle longer than
//! `--backend-idle-timeout` or already closed by the backend are dropped on the way.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::peer::Peer;

struct Idle {
    peer: Peer,
    since: Instant,
}

pub struct Pool {
    idle: RefCell<Vec<VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(backends: usize, max_idle: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: RefCell::new((0..backends).map(|_| VecDeque::new()).collect()),
            max_idle,
            idle_timeout,
        }
    }

    /// An idle connection to `backend` that still looks alive, if any.
    pub fn take(&self, backend: usize, now: Instant) -> Option<Peer> {
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[backend];
        while let Some(entry) = list.pop_back() {
            if now.duration_since(entry.since) < self.idle_timeout && is_alive(&entry.peer) {
                return Some(entry.peer);
            }
        }
        None
    }

    /// Keeps a connection for reuse; the oldest idle one makes room when the list is full.
    pub fn put(&self, backend: usize, mut peer: Peer, now: Instant) {
        if self.max_idle == 0 {
            return;
        }
        peer.release_if_empty();
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[backend];
        if list.len() >= self.max_idle {
            list.pop_front();
        }
        list.push_back(Idle { peer, since: now });
    }

    /// Closes connections idle past the timeout, so that the backend's sockets are not held
    /// by a proxy that has no traffic. Called periodically by the shard.
    pub fn sweep(&self, now: Instant) {
        let mut idle = self.idle.borrow_mut();
        for list in idle.iter_mut() {
            while list
                .front()
                .is_some_and(|e| now.duration_since(e.since) >= self.idle_timeout)
            {
                list.pop_front();
            }
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().map(|l| l.len()).sum()
    }

    pub fn clear(&self) {
        self.idle.borrow_mut().iter_mut().for_each(|l| l.clear());
    }
}

/// A pooled connection is alive when reading from it would block: EOF, stray bytes or an
/// error all mean the backend closed it or broke the protocol, so it must not carry a
/// request. This check is not only about dead connections (which the retry of idempotent
/// requests would cover): bytes a backend sent unasked while the connection sat idle would
/// otherwise be taken as the response to the next request, someone else's. It costs one
/// non-blocking `recv` per reuse.
fn is_alive(peer: &Peer) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into a valid one-byte buffer on a socket fd we own.
    let r = unsafe {
        libc::recv(
            peer.stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}
