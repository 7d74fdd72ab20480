//! Metrics: per-shard series the request path writes without locks or shared cache lines,
//! and the plain thread that serves them (`GET /metrics`, Prometheus text format) with the
//! health endpoint (`GET /healthz`) on the metrics listener.
//!
//! Which series exist is fixed at start by the configuration ([`layout`]); each shard writes
//! only its own cells ([`cells`], [`series`]); a scrape reads all shards and merges them
//! ([`render`]). The metrics thread never touches a shard, so a scrape costs the shards
//! nothing.

pub mod cells;
pub mod layout;
mod render;
pub mod series;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

pub use layout::{Layout, Source};
pub use render::render;
pub use series::{BackendGauges, Counter, Failure, ProxyStats};

/// A shard's current [`ProxyStats`]: the same for the process's life unless a reload changes
/// the layout (routes, groups, backends), when the shard installs new ones. Locked only at
/// that switch and by scrapes, never on the request path.
pub struct StatsSlot(std::sync::Mutex<Arc<ProxyStats>>);

impl StatsSlot {
    pub fn new(stats: Arc<ProxyStats>) -> Arc<StatsSlot> {
        Arc::new(StatsSlot(std::sync::Mutex::new(stats)))
    }

    pub fn current(&self) -> Arc<ProxyStats> {
        self.0.lock().unwrap().clone()
    }

    pub fn set(&self, stats: Arc<ProxyStats>) {
        *self.0.lock().unwrap() = stats;
    }
}

/// What the metrics endpoint reports for one shard.
pub struct ShardMetrics {
    pub index: usize,
    pub cpu: usize,
    pub shard: Arc<shards::ShardStats>,
    pub proxy: Arc<StatsSlot>,
    /// The shard engine writes these itself, live (`shards::engine`).
    pub relay: Arc<shards::RingGauges>,
    pub engine: Arc<shards::EngineStats>,
    pub access_log: Arc<crate::access_log::Sink>,
}

impl ShardMetrics {
    fn log_dropped(&self) -> u64 {
        self.access_log.shard_dropped(self.index)
    }
}

/// Serves `GET /metrics` and `GET /healthz` on its own plain thread: scrapes are rare and
/// must not cost the shards anything. `/healthz` answers 200 while serving and 503 once
/// shutdown began (draining), so that an orchestrator stops sending traffic before the exit.
pub fn spawn(
    listener: TcpListener,
    shards: Vec<ShardMetrics>,
    reloader: Arc<crate::reload::Reloader>,
    shutdown: shards::ShutdownHandle,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut reader = BufReader::new(&conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Read the rest of the head so that closing does not reset the connection.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let (status, body) = if line.starts_with("GET /metrics ") {
                    let mut body = String::new();
                    render(&shards, &mut body);
                    render::process(&reloader, &mut body);
                    ("200 OK", body)
                } else if line.starts_with("GET /healthz ") {
                    if shutdown.is_triggered() {
                        ("503 Service Unavailable", "draining\n".to_string())
                    } else {
                        ("200 OK", "ok\n".to_string())
                    }
                } else {
                    ("404 Not Found", "try /metrics or /healthz\n".to_string())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(())
}
