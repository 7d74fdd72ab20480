//! Upload faults: the backend resets or stops reading in the middle of a request body. The
//! client gets an answer or a reset, and every relay buffer, head buffer and descriptor the
//! transfer held comes back.

mod common;
use common::*;

use std::io::Write;
use std::time::Duration;

const UPLOAD: usize = 16 << 20;

/// Starts a 16 MiB upload on its own thread; returns the client and the writer.
fn start_upload(cr: &Corelay) -> (Client, std::thread::JoinHandle<()>) {
    let c = Client::connect(cr.addr);
    let mut w = c.stream().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let head = format!("POST /up HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {UPLOAD}\r\n\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = pattern(64 * 1024, 3);
        for _ in 0..UPLOAD / chunk.len() {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    (c, writer)
}

/// Nothing held once the failed upload is over: every orphaned operation completed, and
/// the descriptors are those of the idle proxy.
fn all_back(cr: &Corelay, descriptors_idle: f64) {
    cr.wait_at_rest();
    cr.wait_metric("corelay_engine_descriptors_open", descriptors_idle);
}

#[test]
fn a_backend_reset_mid_upload_gives_502_and_returns_everything() {
    let be = Backend::start(|mut conn| {
        if conn.wire.read_head(1 << 16).is_err() {
            return;
        }
        // Take 1 MiB of the body, then reset.
        if conn.wire.read_n(1 << 20, 0).is_ok() {
            conn.reset();
        }
    });
    let cr = Corelay::start_with_metrics(&[be.addr], &["--buffer-ring-size", "16"]);
    let idle = cr.metric("corelay_engine_descriptors_open");
    for round in 0..3 {
        let (mut c, writer) = start_upload(&cr);
        let r = c.read_response().expect("502");
        assert_eq!(r.status, 502, "round {round}: {}", r.status_line);
        assert!(r.conn_close(), "{:?}", r.headers);
        drop(c);
        writer.join().unwrap();
        all_back(&cr, idle);
        assert_eq!(
            cr.metric("corelay_backend_errors_total"),
            (round + 1) as f64
        );
    }
}

#[test]
fn a_backend_that_stops_reading_mid_upload_times_out_and_returns_everything() {
    let release = Gate::new();
    let held = release.clone();
    let be = Backend::start(move |mut conn| {
        if conn.wire.read_head(1 << 16).is_err() {
            return;
        }
        // Stop reading; keep the connection open until the test is done.
        held.wait(Duration::from_secs(30));
    });
    let cr = Corelay::start_with_metrics(
        &[be.addr],
        &[
            "--buffer-ring-size",
            "16",
            "--backend-response-timeout",
            "500ms",
        ],
    );
    let idle = cr.metric("corelay_engine_descriptors_open");
    let (mut c, writer) = start_upload(&cr);
    // Only corelay's timeout can end this: the backend holds the connection, and the
    // client keeps sending.
    let r = c.read_response().expect("504");
    assert_eq!(r.status, 504, "{}", r.status_line);
    assert!(r.conn_close(), "{:?}", r.headers);
    drop(c);
    writer.join().unwrap();
    all_back(&cr, idle);
    assert_eq!(cr.metric("corelay_backend_errors_total"), 1.0);
    // The stuck body write and its transfer's receive were orphaned by the timeout, and
    // both completed (ops back to the accepts alone, above).
    assert!(cr.metric("corelay_relay_orphaned_ops_total") >= 1.0);
    release.open();
    be.settle();
}
