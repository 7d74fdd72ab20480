//! The Prometheus text exposition of every shard's series.
//!
//! Shard-level gauges and counters keep a `shard` and `cpu` label (a stuck core shows as
//! one); the request, route and backend series are summed over shards, since which core
//! took a connection is the kernel's choice and says nothing to an operator.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::cells::{Cells, HistogramTotals, LATENCY_BUCKETS};
use super::layout::{code_labels, Layout, CODE_SLOTS};
use super::series::{Counter, ProxyStats, FAILURES};
use super::ShardMetrics;

/// One per-shard metric: name, type, help, and how to read it from a shard.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ShardMetrics) -> u64,
);

const SHARD_ROWS: [Row; 27] = [
    (
        "corelay_connections_open",
        "gauge",
        "Client connections open.",
        |m| m.shard.snapshot().connections_open,
    ),
    (
        "corelay_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        |m| m.shard.snapshot().connections_accepted,
    ),
    (
        "corelay_accept_errors_total",
        "counter",
        "Failed accepts (EMFILE, ENFILE, ...).",
        |m| m.shard.snapshot().accept_errors,
    ),
    (
        "corelay_client_errors_total",
        "counter",
        "Requests that failed on the client's side.",
        |m| m.proxy.current().get(Counter::ClientErrors),
    ),
    (
        "corelay_backend_errors_total",
        "counter",
        "Requests that failed on the backend's side.",
        |m| m.proxy.current().get(Counter::BackendErrors),
    ),
    (
        "corelay_backend_connects_total",
        "counter",
        "New backend connections.",
        |m| m.proxy.current().get(Counter::BackendConnects),
    ),
    (
        "corelay_backend_connect_errors_total",
        "counter",
        "Failed backend connects.",
        |m| m.proxy.current().get(Counter::BackendConnectErrors),
    ),
    (
        "corelay_backend_reuses_total",
        "counter",
        "Requests sent on a pooled connection.",
        |m| m.proxy.current().get(Counter::BackendReuses),
    ),
    (
        "corelay_backend_retries_total",
        "counter",
        "Requests sent again after a stale pooled connection.",
        |m| m.proxy.current().get(Counter::BackendRetries),
    ),
    (
        "corelay_admission_in_flight",
        "gauge",
        "Requests past the admit phase.",
        |m| m.proxy.current().get(Counter::AdmissionInFlight),
    ),
    (
        "corelay_admission_queued",
        "gauge",
        "Requests waiting in the admission queue.",
        |m| m.proxy.current().get(Counter::AdmissionQueued),
    ),
    (
        "corelay_tunnels_open",
        "gauge",
        "Upgraded (WebSocket) connections being tunnelled now.",
        |m| m.proxy.current().get(Counter::TunnelsOpen),
    ),
    (
        "corelay_tunnels_total",
        "counter",
        "Upgraded connections tunnelled since start.",
        |m| m.proxy.current().get(Counter::Tunnels),
    ),
    (
        "corelay_access_log_dropped_lines_total",
        "counter",
        "Access-log lines dropped because the writer was behind.",
        |m| m.log_dropped(),
    ),
    (
        "corelay_relay_buffers_in_use",
        "gauge",
        "Relay buffers held by transfers now.",
        |m| load(&m.relay.total).saturating_sub(load(&m.relay.free)),
    ),
    (
        "corelay_relay_buffers_free",
        "gauge",
        "Relay buffers free now.",
        |m| load(&m.relay.free),
    ),
    (
        "corelay_relay_buffers_total",
        "gauge",
        "Relay buffers in the shard's ring.",
        |m| load(&m.relay.total),
    ),
    (
        "corelay_relay_buffers_in_use_max",
        "gauge",
        "Most relay buffers one transfer held at once.",
        |m| load(&m.relay.transfer_max),
    ),
    (
        "corelay_relay_buffers_out_max",
        "gauge",
        "Most relay buffers in use at once.",
        |m| load(&m.relay.out_max),
    ),
    (
        "corelay_relay_orphaned_ops_total",
        "counter",
        "Relay operations abandoned in the kernel.",
        |m| load(&m.relay.orphaned),
    ),
    (
        "corelay_engine_enters_total",
        "counter",
        "io_uring_enter calls.",
        |m| load(&m.engine.enters),
    ),
    (
        "corelay_engine_parks_total",
        "counter",
        "Times the shard engine parked.",
        |m| load(&m.engine.parks),
    ),
    (
        "corelay_engine_no_buffer_retries_total",
        "counter",
        "Receives retried for lack of a head buffer.",
        |m| load(&m.engine.no_buffers),
    ),
    (
        "corelay_engine_descriptors_open",
        "gauge",
        "Direct descriptors open.",
        |m| load(&m.engine.files_open),
    ),
    (
        "corelay_engine_descriptors_total",
        "gauge",
        "Direct descriptor table size.",
        |m| load(&m.engine.files_total),
    ),
    (
        "corelay_engine_head_buffers_held",
        "gauge",
        "Head buffers lent to connections now.",
        |m| load(&m.engine.head_buffers_out),
    ),
    (
        "corelay_engine_ops_in_flight",
        "gauge",
        "Operations in the kernel, orphans included: at rest only the listener's accepts.",
        |m| load(&m.engine.ops_in_flight),
    ),
];

/// Renders every shard's series in the Prometheus text format (version 0.0.4).
pub fn render(shards: &[ShardMetrics], out: &mut String) {
    for (name, kind, help, get) in SHARD_ROWS {
        header(out, name, kind, help);
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
    if shards.is_empty() {
        return;
    }
    // Series by route and backend: a shard moving to a reload's new layout joins once it has
    // (shards move within a second); until then its old series are left out.
    let proxies: Vec<Arc<ProxyStats>> = shards.iter().map(|m| m.proxy.current()).collect();
    let first = proxies[0].clone();
    let same: Vec<&ProxyStats> = proxies
        .iter()
        .filter(|p| p.layout == first.layout)
        .map(|p| &**p)
        .collect();
    let layout: &Layout = &first.layout;

    header(
        out,
        "corelay_requests_total",
        "counter",
        "Requests by route, group and status; code is exact for source=\"proxy\", a class for source=\"backend\".",
    );
    for (r, route) in layout.routes.iter().enumerate() {
        for code in 0..CODE_SLOTS {
            let n: u64 = same.iter().map(|p| p.requests(r, code)).sum();
            let (code, source) = code_labels(code);
            let _ = writeln!(
                out,
                "corelay_requests_total{{{route},code=\"{code}\",source=\"{source}\"}} {n}"
            );
        }
    }
    histograms(
        out,
        "corelay_request_duration_seconds",
        "From a request's head read to its last byte sent (or its refusal).",
        layout.routes.iter().map(String::as_str),
        &same,
        |p| p.durations(),
    );

    let backends: Vec<String> = layout
        .backends
        .iter()
        .map(|b| format!("group=\"{}\",backend=\"{}\"", b.group, b.addr))
        .collect();
    header(
        out,
        "corelay_backend_requests_total",
        "counter",
        "Requests sent to a backend (a retry counts again).",
    );
    for (i, labels) in backends.iter().enumerate() {
        let n: u64 = same.iter().map(|p| p.backend_requests(i)).sum();
        let _ = writeln!(out, "corelay_backend_requests_total{{{labels}}} {n}");
    }
    header(
        out,
        "corelay_backend_failures_total",
        "counter",
        "Backend failures by kind: refused (connect), timeout, reset, malformed (response).",
    );
    for (i, labels) in backends.iter().enumerate() {
        for (f, kind) in FAILURES {
            let n: u64 = same.iter().map(|p| p.backend_failures(i, f)).sum();
            let _ = writeln!(
                out,
                "corelay_backend_failures_total{{{labels},kind=\"{kind}\"}} {n}"
            );
        }
    }
    header(
        out,
        "corelay_backend_in_flight",
        "gauge",
        "Requests holding a connection to the backend now.",
    );
    for (i, labels) in backends.iter().enumerate() {
        let n: u64 = same.iter().map(|p| p.in_flight(i)).sum();
        let _ = writeln!(out, "corelay_backend_in_flight{{{labels}}} {n}");
    }
    header(
        out,
        "corelay_backend_idle_connections",
        "gauge",
        "Idle keep-alive connections pooled for the backend.",
    );
    for (i, labels) in backends.iter().enumerate() {
        let n: u64 = same.iter().map(|p| p.idle(i)).sum();
        let _ = writeln!(out, "corelay_backend_idle_connections{{{labels}}} {n}");
    }
    histograms(
        out,
        "corelay_backend_connect_seconds",
        "Time to establish a new backend connection.",
        backends.iter().map(String::as_str),
        &same,
        |p| p.connect_times(),
    );
    histograms(
        out,
        "corelay_backend_response_head_seconds",
        "From the request sent to the backend's response head read.",
        backends.iter().map(String::as_str),
        &same,
        |p| p.head_times(),
    );
}

/// The process-wide series: configuration reloads, and the active health checks' verdict per
/// backend of the running configuration.
pub fn process(reloader: &crate::reload::Reloader, out: &mut String) {
    header(
        out,
        "corelay_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP) applied, and refused for an invalid file.",
    );
    let _ = writeln!(
        out,
        "corelay_reloads_total{{result=\"applied\"}} {}",
        load(&reloader.successes)
    );
    let _ = writeln!(
        out,
        "corelay_reloads_total{{result=\"refused\"}} {}",
        load(&reloader.failures)
    );
    let gen = reloader.current();
    header(
        out,
        "corelay_backend_up",
        "gauge",
        "1 while active health checks find the backend up (always 1 without checks).",
    );
    for (g, group) in gen.config.groups.iter().enumerate() {
        for (b, addr) in group.backends.iter().enumerate() {
            let up = gen.health.group(g).is_up(b) as u8;
            let _ = writeln!(
                out,
                "corelay_backend_up{{group=\"{}\",backend=\"{addr}\"}} {up}",
                super::layout::escape(&group.name)
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One histogram per label set, summed over shards; `cells` gives a shard's block and the
/// stride between label sets.
fn histograms<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    labels: impl Iterator<Item = &'a str>,
    shards: &[&ProxyStats],
    cells: fn(&ProxyStats) -> (&Cells, usize),
) {
    header(out, name, "histogram", help);
    for (i, labels) in labels.enumerate() {
        let mut t = HistogramTotals::default();
        for p in shards {
            let (c, stride) = cells(p);
            t.add_from(c, i * stride);
        }
        let mut cumulative = 0;
        for (b, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += t.buckets[b];
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = t.count();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", t.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
