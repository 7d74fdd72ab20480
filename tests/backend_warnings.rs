//! A backend that cannot be reached is named once at start-up (a background connect probe),
//! and failing requests then log at most one line per backend per 10 s, each saying how many
//! failures it stands for, instead of one WARN per request.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// The throttle's interval (src/proxy/connect_warnings.rs).
const WARN_INTERVAL: Duration = Duration::from_secs(10);

fn lines_about(stderr: &str, addr: std::net::SocketAddr) -> Vec<String> {
    let needle = format!("backend {addr}: ");
    stderr
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn dead_backends_are_named_at_start_and_then_throttled() {
    let started = Instant::now();
    let (a, b) = (dead_addr(), dead_addr());
    // The probe is on by default; the test harness turns it off unless asked.
    let cr = Corelay::start(&[a, b], &["--backend-probe"]);
    // The probe runs in the background: both dead backends are named, once each, without
    // any request.
    eventually(
        Duration::from_secs(10),
        "a start-up warning per backend",
        || {
            let err = cr.stderr();
            [a, b].iter().all(|&x| {
                lines_about(&err, x)
                    .iter()
                    .any(|l| l.contains(" WARN ") && l.contains("not reachable at start"))
            })
        },
    );
    const REQUESTS: usize = 40;
    for _ in 0..REQUESTS {
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(&get_close("/")).status, 502);
    }
    let elapsed = started.elapsed();
    let err = cr.stderr();
    // One line per interval at most (the first is the probe's); every later one counts what
    // it stands for.
    let most = 1 + (elapsed.as_secs() / WARN_INTERVAL.as_secs()) as usize;
    for x in [a, b] {
        let lines = lines_about(&err, x);
        assert!(
            !lines.is_empty() && lines.len() <= most,
            "{} lines about {x} in {elapsed:?} for {REQUESTS} requests:\n{err}",
            lines.len()
        );
        assert!(lines[0].contains("not reachable at start"), "{err}");
        for l in &lines[1..] {
            assert!(l.contains("more failure"), "{l}");
        }
    }
}
