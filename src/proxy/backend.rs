//! The route and connect phases: choosing a backend and getting a connection to it, pooled
//! or new.

use std::io;
use std::time::Instant;

use shards::Conn;

use super::balancer::InFlight;
use super::error::{ErrorKind, ProxyError};
use super::peer::Peer;
use super::shard::{GroupState, Shard};
use crate::metrics::{Counter, Failure};

/// A connection to one backend, with where it came from.
pub struct BackendConn<'s> {
    pub peer: Peer,
    pub group: &'s GroupState,
    pub backend: usize,
    /// Taken from the keep-alive pool (and so possibly closed by the backend meanwhile).
    pub reused: bool,
    /// Counts the request against this backend (for `least_requests`) while it lives.
    _in_flight: InFlight<'s>,
}

impl BackendConn<'_> {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.group.balancer.addr(self.backend)
    }
}

/// Tries the balancer's plan in order. `fresh` skips the pool (used for the one retry after a
/// reused connection turned out to be dead).
pub async fn connect<'s>(
    shard: &'s Shard,
    group: &'s GroupState,
    fresh: bool,
) -> Result<BackendConn<'s>, ProxyError> {
    let cfg = &shard.config;
    // The loop turn's time: back-off and idle ages are far coarser than a turn.
    let now = shard.engine.now();
    let mut last_err: Option<io::Error> = None;
    for backend in group.balancer.plan(now) {
        if !fresh {
            if let Some(peer) = group.pool.take(backend, now) {
                shard.stats.inc(Counter::BackendReuses);
                return Ok(BackendConn {
                    peer,
                    group,
                    backend,
                    reused: true,
                    _in_flight: group.balancer.start(backend),
                });
            }
        }
        let addr = group.balancer.addr(backend);
        // Boxed: only a new connection pays for the connect's state, instead of every
        // connection task carrying room for it (see docs/benchmarks.md, memory per request).
        let started = Instant::now();
        match Box::pin(connect_one(shard, addr)).await {
            Ok(mut conn) => {
                group.balancer.mark_up(backend);
                shard.stats.inc(Counter::BackendConnects);
                shard
                    .stats
                    .connect_time(group.gauges.slot(backend), started.elapsed());
                conn.set_read_timeout(Some(cfg.backend_response_timeout));
                conn.set_write_timeout(Some(cfg.backend_response_timeout));
                return Ok(BackendConn {
                    peer: Peer::new(conn, shard.head_buffer_max, shard.head_buffers.clone()),
                    group,
                    backend,
                    reused: false,
                    _in_flight: group.balancer.start(backend),
                });
            }
            Err(e) => {
                super::connect_warnings::connect_failed(addr, &e);
                shard.stats.inc(Counter::BackendConnectErrors);
                let kind = if e.kind() == io::ErrorKind::TimedOut {
                    Failure::Timeout
                } else {
                    Failure::Refused
                };
                shard
                    .stats
                    .backend_failure(group.gauges.slot(backend), kind);
                let now = Instant::now();
                group.balancer.mark_down(backend, now);
                group.balancer.failed(backend, now);
                last_err = Some(e);
            }
        }
    }
    let e = last_err.unwrap_or_else(|| io::Error::other("no backend configured"));
    Err(ProxyError::new(if e.kind() == io::ErrorKind::TimedOut {
        ErrorKind::ConnectTimeout
    } else {
        ErrorKind::Connect(e)
    }))
}

/// One connect. When the shard's descriptor table is full (`ENFILE`), idle pooled
/// connections are what can give: close one and try again, so that a full table never turns
/// into a 502 for a client that is already connected (accepting stops at half the table, so
/// there is always room once idle ones go).
async fn connect_one(shard: &Shard, addr: std::net::SocketAddr) -> io::Result<Conn> {
    let timeout = shard.config.backend_connect_timeout;
    loop {
        match Conn::connect(&shard.engine, addr, timeout).await {
            Err(e) if e.raw_os_error() == Some(libc::ENFILE) => {
                if !shard.groups.iter().any(|g| g.pool.evict_one()) {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}
