//! The route and connect phases: choosing a backend and getting a connection to it, pooled
//! or new.

use std::io;
use std::time::Instant;

use glommio::net::TcpStream;

use super::error::{ErrorKind, ProxyError};
use super::peer::Peer;
use super::Shard;

/// A connection to one backend, with where it came from.
pub struct BackendConn {
    pub peer: Peer,
    pub backend: usize,
    /// Taken from the keep-alive pool (and so possibly closed by the backend meanwhile).
    pub reused: bool,
}

/// Tries the balancer's plan in order. `fresh` skips the pool (used for the one retry after a
/// reused connection turned out to be dead).
pub async fn connect(shard: &Shard, fresh: bool) -> Result<BackendConn, ProxyError> {
    let cfg = &shard.config;
    let now = Instant::now();
    let mut last_err: Option<io::Error> = None;
    for backend in shard.balancer.plan(now) {
        if !fresh {
            if let Some(peer) = shard.pool.take(backend, now) {
                shard.stats.inc(&shard.stats.backend_reuses);
                return Ok(BackendConn {
                    peer,
                    backend,
                    reused: true,
                });
            }
        }
        let addr = shard.balancer.addr(backend);
        match TcpStream::connect_timeout(addr, cfg.backend_connect_timeout).await {
            Ok(stream) => {
                shard.balancer.mark_up(backend);
                shard.stats.inc(&shard.stats.backend_connects);
                // Errors here only mean the socket is already broken; the first read or write
                // reports that properly.
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(cfg.backend_response_timeout));
                let _ = stream.set_write_timeout(Some(cfg.backend_response_timeout));
                return Ok(BackendConn {
                    peer: Peer::new(stream, shard.head_buffer_max, shard.head_buffers.clone()),
                    backend,
                    reused: false,
                });
            }
            Err(e) => {
                let e = io::Error::from(e);
                log::warn!("backend {addr}: connect failed: {e}");
                shard.stats.inc(&shard.stats.backend_connect_errors);
                shard.balancer.mark_down(backend, Instant::now());
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
