//! Per-shard proxy counters and the Prometheus endpoint that reads them.
//!
//! Each shard writes only its own [`ProxyStats`] (relaxed atomics, cache-line aligned so
//! shards never share a line); the metrics thread reads all of them. Nothing here is on the
//! request path beyond a relaxed increment.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::proxy::{ProxyError, Side};

#[repr(align(64))]
#[derive(Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    pub client_errors: AtomicU64,
    pub backend_errors: AtomicU64,
    pub backend_connects: AtomicU64,
    pub backend_connect_errors: AtomicU64,
    pub backend_reuses: AtomicU64,
    pub backend_retries: AtomicU64,
    pub backend_idle: AtomicU64,
}

impl ProxyStats {
    #[inline]
    pub fn inc(&self, counter: &AtomicU64) {
        // Only the owning shard writes, so load+store is enough (no locked RMW on x86).
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    pub fn count_error(&self, e: &ProxyError) {
        match e.side() {
            Side::Client => self.inc(&self.client_errors),
            Side::Backend => self.inc(&self.backend_errors),
        }
    }
}

/// What the metrics endpoint reports for one shard.
pub struct ShardMetrics {
    pub index: usize,
    pub cpu: usize,
    pub shard: Arc<shards::ShardStats>,
    pub proxy: Arc<ProxyStats>,
    /// The shard engine writes these itself, live (`shards::engine`).
    pub relay: Arc<shards::RingGauges>,
    pub engine: Arc<shards::EngineStats>,
}

/// One metric: name, Prometheus type, and how to read it from a shard.
type Row = (&'static str, &'static str, fn(&ShardMetrics) -> u64);

/// Renders every shard's counters in the Prometheus text format.
pub fn render(shards: &[ShardMetrics], out: &mut String) {
    use std::fmt::Write as _;
    let rows: [Row; 22] = [
        ("corelay_connections_open", "gauge", |m| {
            m.shard.snapshot().connections_open
        }),
        ("corelay_connections_accepted_total", "counter", |m| {
            m.shard.snapshot().connections_accepted
        }),
        ("corelay_accept_errors_total", "counter", |m| {
            m.shard.snapshot().accept_errors
        }),
        ("corelay_requests_total", "counter", |m| {
            load(&m.proxy.requests)
        }),
        ("corelay_client_errors_total", "counter", |m| {
            load(&m.proxy.client_errors)
        }),
        ("corelay_backend_errors_total", "counter", |m| {
            load(&m.proxy.backend_errors)
        }),
        ("corelay_backend_connects_total", "counter", |m| {
            load(&m.proxy.backend_connects)
        }),
        ("corelay_backend_connect_errors_total", "counter", |m| {
            load(&m.proxy.backend_connect_errors)
        }),
        ("corelay_backend_reuses_total", "counter", |m| {
            load(&m.proxy.backend_reuses)
        }),
        ("corelay_backend_retries_total", "counter", |m| {
            load(&m.proxy.backend_retries)
        }),
        ("corelay_backend_idle_connections", "gauge", |m| {
            load(&m.proxy.backend_idle)
        }),
        ("corelay_relay_buffers_free", "gauge", |m| {
            load(&m.relay.free)
        }),
        ("corelay_relay_buffers_total", "gauge", |m| {
            load(&m.relay.total)
        }),
        ("corelay_relay_buffers_in_use_max", "gauge", |m| {
            load(&m.relay.transfer_max)
        }),
        ("corelay_relay_buffers_out_max", "gauge", |m| {
            load(&m.relay.out_max)
        }),
        ("corelay_relay_orphaned_ops_total", "counter", |m| {
            load(&m.relay.orphaned)
        }),
        ("corelay_engine_enters_total", "counter", |m| {
            load(&m.engine.enters)
        }),
        ("corelay_engine_parks_total", "counter", |m| {
            load(&m.engine.parks)
        }),
        ("corelay_engine_no_buffer_retries_total", "counter", |m| {
            load(&m.engine.no_buffers)
        }),
        ("corelay_engine_descriptors_open", "gauge", |m| {
            load(&m.engine.files_open)
        }),
        ("corelay_engine_head_buffers_held", "gauge", |m| {
            load(&m.engine.head_buffers_out)
        }),
        // Operations in the kernel, orphans included: at rest only the listener's accepts,
        // so a cut transfer whose orphaned operations never completed shows here.
        ("corelay_engine_ops_in_flight", "gauge", |m| {
            load(&m.engine.ops_in_flight)
        }),
    ];
    for (name, kind, get) in rows {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for m in shards {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\",cpu=\"{}\"}} {}",
                m.index,
                m.cpu,
                get(m)
            );
        }
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Serves `GET /metrics` on its own plain thread: scrapes are rare and must not cost the
/// shards anything.
pub fn spawn(listener: TcpListener, shards: Vec<ShardMetrics>) -> std::io::Result<()> {
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
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
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
