//! The shard's keep-alive pool of backend connections.
//!
//! A connection enters the pool only after its response was read completely and both sides
//! allowed reuse (see `respond.rs`). Idle connections are handed out newest first, since
//! the newest is the least likely to have been closed by the backend; ones idle longer than
//! `--backend-idle-timeout` or already closed by the backend are dropped on the way.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::peer::Peer;
use crate::metrics::BackendGauges;

struct Idle {
    peer: Peer,
    since: Instant,
}

pub struct Pool {
    idle: RefCell<Vec<VecDeque<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// The group left the configuration: nothing is pooled any more.
    retired: std::cell::Cell<bool>,
    /// `corelay_backend_idle_connections`, set after every change of a backend's list.
    gauges: BackendGauges,
}

impl Pool {
    pub fn new(
        backends: usize,
        max_idle: usize,
        idle_timeout: Duration,
        gauges: BackendGauges,
    ) -> Pool {
        Pool {
            idle: RefCell::new((0..backends).map(|_| VecDeque::new()).collect()),
            max_idle,
            idle_timeout,
            retired: std::cell::Cell::new(false),
            gauges,
        }
    }

    /// Closes every idle connection and pools none from now on (a reload dropped the group).
    pub fn retire(&self) {
        self.retired.set(true);
        self.clear();
    }

    /// An idle connection to `backend` that still looks alive, if any.
    pub fn take(&self, backend: usize, now: Instant) -> Option<Peer> {
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[backend];
        let mut found = None;
        while let Some(entry) = list.pop_back() {
            if now.duration_since(entry.since) < self.idle_timeout && entry.peer.conn.is_quiet() {
                found = Some(entry.peer);
                break;
            }
        }
        self.gauges.set_idle(backend, list.len());
        found
    }

    /// Keeps a connection for reuse; the oldest idle one makes room when the list is full.
    pub fn put(&self, backend: usize, mut peer: Peer, now: Instant) {
        if self.max_idle == 0 || self.retired.get() {
            return;
        }
        peer.release_if_empty();
        // A receive stays armed while the connection idles: a close or stray bytes complete
        // it at once, and `take` sees that without a syscall. An alive connection's armed
        // receive then carries its next response.
        peer.conn.arm();
        let mut idle = self.idle.borrow_mut();
        let list = &mut idle[backend];
        if list.len() >= self.max_idle {
            list.pop_front();
        }
        list.push_back(Idle { peer, since: now });
        self.gauges.set_idle(backend, list.len());
    }

    /// Closes connections idle past the timeout, so that the backend's sockets are not held
    /// by a proxy that has no traffic. Called periodically by the shard.
    pub fn sweep(&self, now: Instant) {
        let mut idle = self.idle.borrow_mut();
        for (backend, list) in idle.iter_mut().enumerate() {
            while list
                .front()
                .is_some_and(|e| now.duration_since(e.since) >= self.idle_timeout)
            {
                list.pop_front();
            }
            self.gauges.set_idle(backend, list.len());
        }
    }

    pub fn clear(&self) {
        let mut idle = self.idle.borrow_mut();
        for (backend, list) in idle.iter_mut().enumerate() {
            list.clear();
            self.gauges.set_idle(backend, 0);
        }
    }
}

/// A pooled connection is only reused while it is quiet (`Conn::is_quiet`): EOF, stray bytes
/// or an error all mean the backend closed it or broke the protocol, so it must not carry a
/// request. This is not only about dead connections (which the retry of idempotent requests
/// would cover): bytes a backend sent unasked while the connection sat idle would otherwise
/// be taken as the response to the next request, someone else's.
impl Pool {
    /// Closes the oldest idle connection of any backend; false if none is idle.
    pub fn evict_one(&self) -> bool {
        let mut idle = self.idle.borrow_mut();
        let oldest = idle
            .iter_mut()
            .enumerate()
            .filter(|(_, l)| !l.is_empty())
            .min_by_key(|(_, l)| l.front().map(|e| e.since));
        match oldest {
            Some((backend, list)) => {
                list.pop_front();
                self.gauges.set_idle(backend, list.len());
                true
            }
            None => false,
        }
    }
}
