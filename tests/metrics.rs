//! `/metrics` after a known mix of requests: exact counts by route, group, status and source,
//! histogram counts, per-backend requests, failures, in-flight and idle connections, and the
//! per-shard gauges. Real sockets, a real backend, a dead backend address.

mod common;
use common::*;

use std::time::Duration;

/// Every sample of `name` whose label text contains all of `want` (`k="v"` pairs).
fn samples(text: &str, name: &str, want: &[&str]) -> Vec<(String, f64)> {
    metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            let have: Vec<&str> = split_labels(labels);
            want.iter().all(|w| have.contains(w))
        })
        .collect()
}

/// `a="x",b="y"` -> [`a="x"`, `b="y"`] (label values here hold no comma).
fn split_labels(labels: &str) -> Vec<&str> {
    labels.split(',').filter(|s| !s.is_empty()).collect()
}

/// The one sample of `name` with exactly the labels `want`.
fn value(text: &str, name: &str, want: &[&str]) -> f64 {
    let s: Vec<_> = metric_samples(text, name)
        .into_iter()
        .filter(|(labels, _)| {
            let mut have = split_labels(labels);
            have.sort();
            let mut w = want.to_vec();
            w.sort();
            have == w
        })
        .collect();
    assert_eq!(s.len(), 1, "{name}{want:?}: {s:?}\n{text}");
    s[0].1
}

fn sum(text: &str, name: &str, want: &[&str]) -> f64 {
    samples(text, name, want).iter().map(|(_, v)| v).sum()
}

/// Checks one histogram's shape: cumulative buckets ending in `+Inf` == `_count`.
fn histogram_count(text: &str, name: &str, labels: &[&str]) -> f64 {
    let buckets = samples(text, &format!("{name}_bucket"), labels);
    assert!(buckets.len() > 2, "{name}{labels:?} buckets: {buckets:?}");
    for w in buckets.windows(2) {
        assert!(
            w[0].1 <= w[1].1,
            "{name} buckets not cumulative: {buckets:?}"
        );
    }
    let (last_labels, inf) = buckets.last().unwrap();
    assert!(last_labels.contains("le=\"+Inf\""), "{last_labels}");
    let count = value(text, &format!("{name}_count"), labels);
    assert_eq!(*inf, count, "{name}{labels:?}: +Inf bucket != count");
    let sum = value(text, &format!("{name}_sum"), labels);
    assert!(
        sum >= 0.0 && (count > 0.0 || sum == 0.0),
        "{name} sum {sum}"
    );
    count
}

#[test]
fn a_known_mix_of_requests_gives_exact_counts() {
    let backend = Backend::http(|req| match req.target.as_str() {
        "/missing" => response(404, "Not Found", &[], b"no"),
        "/upstream-502" => response(502, "Bad Gateway", &[], b"upstream says no"),
        "/bad" => b"this is not HTTP\r\n\r\n".to_vec(),
        _ => ok_response(b"ok"),
    });
    let dead = dead_addr();
    let cfg = TempConfig::new(
        "metrics.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ncores = 1\nmetrics_listen = \"127.0.0.1:0\"\n\
             max_header_bytes = 1024\nmax_target_len = 512\n\
             [groups.main]\nbackends = [\"{}\"]\n[groups.dead]\nbackends = [\"{dead}\"]\n\
             [[routes]]\npath = \"/dead\"\ngroup = \"dead\"\n\
             [[routes]]\ngroup = \"main\"\n",
            backend.addr
        ),
    );
    let cr = Corelay::start_with_config(&cfg.path, &[]);
    let metrics = cr.metrics_addr.expect("metrics listener");

    // One keep-alive connection: 200, 200, a backend 404, a backend 502, then a malformed
    // response (corelay's 502, and the connection closes).
    let mut c = Client::connect(cr.addr);
    for (path, status) in [
        ("/a", 200),
        ("/b", 200),
        ("/missing", 404),
        ("/upstream-502", 502),
    ] {
        assert_eq!(c.roundtrip(&get(path)).status, status, "{path}");
    }
    assert_eq!(c.roundtrip(&get("/bad")).status, 502);
    c.expect_closed();
    // A third 200 on a new connection, to a new backend connection that then idles.
    assert_eq!(Client::connect(cr.addr).roundtrip(&get("/c")).status, 200);
    // A head over max_header_bytes: 431 before any route is chosen.
    let mut c = Client::connect(cr.addr);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(2000)
    );
    assert_eq!(c.roundtrip(big.as_bytes()).status, 431);
    // The dead group: connect refused, corelay's 502.
    assert_eq!(
        Client::connect(cr.addr).roundtrip(&get("/dead/x")).status,
        502
    );

    // A request is counted once its answer is sent, so the scrape may come first: wait for
    // the total, then every series must be exact.
    let mut text = String::new();
    eventually(Duration::from_secs(5), "8 requests counted, 1 idle", || {
        text = scrape_metrics(metrics);
        metric_sum(&text, "corelay_requests_total") == 8.0
            && metric_sum(&text, "corelay_backend_idle_connections") == 1.0
    });

    let main = ["route=\"*/\"", "group=\"main\""];
    let dead_route = ["route=\"*/dead\"", "group=\"dead\""];
    let none = ["route=\"-\"", "group=\"-\""];
    let req = |labels: &[&str], code: &str, source: &str| {
        let mut l = labels.to_vec();
        let code = format!("code=\"{code}\"");
        let source = format!("source=\"{source}\"");
        l.push(&code);
        l.push(&source);
        value(&text, "corelay_requests_total", &l)
    };
    assert_eq!(req(&main, "2xx", "backend"), 3.0);
    assert_eq!(req(&main, "4xx", "backend"), 1.0);
    // A backend's 502 and corelay's own are told apart by source (and code granularity).
    assert_eq!(req(&main, "5xx", "backend"), 1.0);
    assert_eq!(req(&main, "502", "proxy"), 1.0);
    assert_eq!(req(&dead_route, "502", "proxy"), 1.0);
    assert_eq!(req(&none, "431", "proxy"), 1.0);
    assert_eq!(
        sum(&text, "corelay_requests_total", &["source=\"proxy\""]),
        3.0
    );
    // Bounded by the configuration: 3 route slots x 17 proxy codes + 5 backend classes.
    assert_eq!(
        metric_samples(&text, "corelay_requests_total").len(),
        3 * 22
    );

    let duration = "corelay_request_duration_seconds";
    assert_eq!(histogram_count(&text, duration, &main), 6.0);
    assert_eq!(histogram_count(&text, duration, &dead_route), 1.0);
    assert_eq!(histogram_count(&text, duration, &none), 1.0);

    let b_main = format!("backend=\"{}\"", backend.addr);
    let b_dead = format!("backend=\"{dead}\"");
    let bm = ["group=\"main\"", b_main.as_str()];
    let bd = ["group=\"dead\"", b_dead.as_str()];
    assert_eq!(value(&text, "corelay_backend_requests_total", &bm), 6.0);
    assert_eq!(value(&text, "corelay_backend_requests_total", &bd), 0.0);
    let failures = |labels: &[&str], kind: &str| {
        let mut l = labels.to_vec();
        let k = format!("kind=\"{kind}\"");
        l.push(&k);
        value(&text, "corelay_backend_failures_total", &l)
    };
    assert_eq!(failures(&bm, "malformed"), 1.0);
    assert_eq!(failures(&bm, "refused"), 0.0);
    assert_eq!(failures(&bm, "timeout"), 0.0);
    assert_eq!(failures(&bm, "reset"), 0.0);
    assert_eq!(failures(&bd, "refused"), 1.0);
    assert_eq!(failures(&bd, "malformed"), 0.0);
    assert_eq!(value(&text, "corelay_backend_in_flight", &bm), 0.0);
    assert_eq!(value(&text, "corelay_backend_idle_connections", &bm), 1.0);
    assert_eq!(value(&text, "corelay_backend_idle_connections", &bd), 0.0);

    // Two backend connections (the malformed answer ended the first): two connect times.
    assert_eq!(backend.connections(), 2);
    assert_eq!(
        histogram_count(&text, "corelay_backend_connect_seconds", &bm),
        2.0
    );
    assert_eq!(
        histogram_count(&text, "corelay_backend_connect_seconds", &bd),
        0.0
    );
    // Response heads read: the three 200s, the 404 and the backend's 502.
    assert_eq!(
        histogram_count(&text, "corelay_backend_response_head_seconds", &bm),
        5.0
    );

    // Per shard: nothing admitted or queued now, no relay buffer held, no line dropped.
    for name in [
        "corelay_admission_in_flight",
        "corelay_admission_queued",
        "corelay_relay_buffers_in_use",
        "corelay_access_log_dropped_lines_total",
    ] {
        assert_eq!(
            value(&text, name, &["shard=\"0\"", "cpu=\"0\""]),
            0.0,
            "{name}"
        );
    }
    assert!(text.contains("# TYPE corelay_request_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE corelay_requests_total counter\n"));
    backend.assert_no_panics();
}

/// The admission gauges are live: a request held by a slow backend is in flight, the next
/// one waits in the queue; both return to 0 when they finish.
#[test]
fn admission_gauges_follow_requests() {
    let release = std::sync::Arc::new(std::sync::Barrier::new(2));
    let r2 = release.clone();
    let backend = Backend::http(move |req| {
        if req.target == "/hold" {
            r2.wait();
        }
        ok_response(b"ok")
    });
    let cr = Corelay::start_with_metrics(&[backend.addr], &["--max-requests-per-core", "1"]);
    let m = cr.metrics_addr.unwrap();
    let shard = ["shard=\"0\"", "cpu=\"0\""];
    let mut held = Client::connect(cr.addr);
    held.send(&get("/hold"));
    eventually(Duration::from_secs(5), "one request in flight", || {
        value(&scrape_metrics(m), "corelay_admission_in_flight", &shard) == 1.0
    });
    let mut queued = Client::connect(cr.addr);
    queued.send(&get("/next"));
    eventually(Duration::from_secs(5), "one request queued", || {
        value(&scrape_metrics(m), "corelay_admission_queued", &shard) == 1.0
    });
    let text = scrape_metrics(m);
    assert_eq!(
        sum(&text, "corelay_backend_in_flight", &[]),
        1.0,
        "the queued request holds no backend"
    );
    release.wait();
    assert_eq!(held.read_response().unwrap().status, 200);
    assert_eq!(queued.read_response().unwrap().status, 200);
    eventually(Duration::from_secs(5), "gauges back to 0", || {
        let t = scrape_metrics(m);
        value(&t, "corelay_admission_in_flight", &shard) == 0.0
            && value(&t, "corelay_admission_queued", &shard) == 0.0
            && sum(&t, "corelay_backend_in_flight", &[]) == 0.0
    });
}

/// Two shards count separately and the scrape merges them: one series per label set, whose
/// value is the sum, while the per-shard series keep their shard label.
#[test]
fn shards_are_merged_in_the_scrape() {
    let backend = Backend::ok(b"ok");
    let cr = Corelay::start_with_metrics(&[backend.addr], &["--cores", "2"]);
    let m = cr.metrics_addr.unwrap();
    const N: usize = 40;
    for i in 0..N {
        let addr = cr.shard_addrs[i % cr.shard_addrs.len()];
        assert_eq!(Client::connect(addr).roundtrip(&get_close("/")).status, 200);
    }
    let mut text = String::new();
    eventually(Duration::from_secs(5), "every request counted", || {
        text = scrape_metrics(m);
        metric_sum(&text, "corelay_requests_total") == N as f64
    });
    let ok = [
        "route=\"*/\"",
        "group=\"default\"",
        "code=\"2xx\"",
        "source=\"backend\"",
    ];
    assert_eq!(value(&text, "corelay_requests_total", &ok), N as f64);
    assert_eq!(
        histogram_count(
            &text,
            "corelay_request_duration_seconds",
            &["route=\"*/\"", "group=\"default\""]
        ),
        N as f64
    );
    let b = format!("backend=\"{}\"", backend.addr);
    assert_eq!(
        value(
            &text,
            "corelay_backend_requests_total",
            &["group=\"default\"", &b]
        ),
        N as f64
    );
    // Both shards took connections (by the kernel's spread; 2^-39 that one got all 40), and
    // their own counters stay apart.
    let accepted = metric_samples(&text, "corelay_connections_accepted_total");
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert!(accepted.iter().all(|(_, v)| *v > 0.0), "{accepted:?}");
    assert_eq!(accepted.iter().map(|(_, v)| v).sum::<f64>(), N as f64);
}
