//! Process lifecycle: startup output, metrics, several shards, graceful
//! shutdown on SIGTERM/SIGINT, command-line errors.

mod common;
use common::*;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn startup_lines_are_printed_in_order() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let l = &cr.startup_lines;
    assert_eq!(l.len(), 4, "{l:?}");
    // The relay memory line: cores x ring size x buffer size, with the engine in use.
    assert!(
        l[0].starts_with("corelay: relay memory 8 MiB (1 shard x 128 buffers x 64 KiB), engine "),
        "{l:?}"
    );
    assert!(l[1].starts_with("corelay: metrics on 127.0.0.1:"), "{l:?}");
    assert!(
        l[2].starts_with("corelay: shard 0 on cpu ") && l[2].contains(" listening on 127.0.0.1:"),
        "{l:?}"
    );
    assert_eq!(l[3], "corelay: ready");
    assert_ne!(cr.addr.port(), 0);
    assert_ne!(cr.metrics_addr.unwrap().port(), 0);
    assert_ne!(cr.addr, cr.metrics_addr.unwrap());
}

#[test]
fn metrics_count_accepted_and_open_connections() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let m = cr.metrics_addr.unwrap();
    let text = scrape_metrics(m);
    let open = metric_samples(&text, "corelay_connections_open");
    assert_eq!(open.len(), 1, "one sample per shard:\n{text}");
    assert!(
        open[0].0.contains("shard=\"0\"") && open[0].0.contains("cpu=\""),
        "labels {:?}",
        open[0].0
    );
    assert_eq!(open[0].1, 0.0);
    assert_eq!(metric_sum(&text, "corelay_connections_accepted_total"), 0.0);

    let mut held = Client::connect(cr.addr);
    assert_eq!(held.roundtrip(&get("/")).status, 200);
    for _ in 0..2 {
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(&get_close("/")).status, 200);
    }
    eventually(
        Duration::from_secs(5),
        "accepted_total == 3 and open == 1",
        || {
            let t = scrape_metrics(m);
            metric_sum(&t, "corelay_connections_accepted_total") == 3.0
                && metric_sum(&t, "corelay_connections_open") == 1.0
        },
    );
    drop(held);
    eventually(
        Duration::from_secs(5),
        "open == 0 after the last client left",
        || cr.metric("corelay_connections_open") == 0.0,
    );
}

#[test]
fn two_cores_run_two_shards() {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    let cr = Corelay::start_with_metrics(&[be.addr], &["--cores", "2"]);
    assert_eq!(cr.shards.len(), 2, "{:?}", cr.startup_lines);
    assert_eq!(
        cr.shards.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![0, 1],
        "{:?}",
        cr.startup_lines
    );
    assert_ne!(
        cr.shards[0].1, cr.shards[1].1,
        "two shards pinned to one cpu: {:?}",
        cr.startup_lines
    );
    let mut n = 0;
    for addr in &cr.shard_addrs {
        for i in 0..10 {
            let mut c = Client::connect(*addr);
            let path = format!("/{i}");
            let r = c.roundtrip(&get_close(&path));
            assert_eq!((r.status, r.body_str()), (200, path));
            n += 1;
        }
    }
    let m = cr.metrics_addr.unwrap();
    eventually(
        Duration::from_secs(5),
        "accepted_total sums to the connections made",
        || metric_sum(&scrape_metrics(m), "corelay_connections_accepted_total") == n as f64,
    );
    let text = scrape_metrics(m);
    let shards: Vec<String> = metric_samples(&text, "corelay_connections_open")
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(shards.len(), 2, "{text}");
    assert!(
        shards.iter().any(|l| l.contains("shard=\"0\""))
            && shards.iter().any(|l| l.contains("shard=\"1\"")),
        "{text}"
    );
}

/// Is a brand-new connection refused or closed without being served?
fn new_connection_refused(addr: std::net::SocketAddr) -> Result<bool, String> {
    let s = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(_) => return Ok(true),
        Ok(s) => s,
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut w = Wire::new(s);
    if w.write_all(&get_close("/new")).is_err() {
        return Ok(true);
    }
    match w.read_response(false) {
        Ok(r) if r.status == 200 => Ok(false),
        Ok(r) => Err(format!(
            "new connection during drain answered {:?}",
            r.status_line
        )),
        Err(e) if e.is_closed() => Ok(true),
        Err(e) => Err(format!(
            "new connection during drain neither refused nor closed: {e:?}"
        )),
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    // The in-flight request is held at the backend until the test releases it, so the
    // process cannot exit before: whatever happens to the idle connection meanwhile happens
    // during the drain.
    let release = Gate::new();
    let be = backend_holding_slow(&release, |_| ok_response(b"fast"));
    let mut cr = Corelay::start(&[be.addr], &[]);
    // An idle keep-alive client connection.
    let mut idle = Client::connect(cr.addr);
    assert_eq!(idle.roundtrip(&get("/")).body, b"fast");
    // The in-flight request.
    let mut c = Client::connect(cr.addr);
    c.send(&get("/slow"));
    be.wait_requests(2, Duration::from_secs(5));
    let t0 = Instant::now();
    cr.signal(SIGTERM);

    // New connections are refused once shutdown began (allow 500 ms for the
    // signal to be noticed).
    loop {
        match new_connection_refused(cr.addr) {
            Ok(true) => break,
            Ok(false) => assert!(
                t0.elapsed() < Duration::from_millis(500),
                "still serving new connections 500ms after SIGTERM"
            ),
            Err(e) => panic!("{e}"),
        }
        thread::sleep(Duration::from_millis(50));
    }

    // The idle connection is closed while the process still drains the held request.
    idle.set_read_timeout(Duration::from_secs(5));
    idle.expect_closed();
    assert!(
        cr.wait_exit(Duration::ZERO).is_none(),
        "corelay exited with a request in flight"
    );
    release.open();

    let r = c
        .read_response()
        .expect("in-flight request was not completed during the drain");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"drained"[..]));
    assert!(r.conn_close(), "{:?}", r.headers);
    let st = cr
        .wait_exit(Duration::from_secs(5))
        .expect("corelay did not exit within 5s after the drain");
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st:?}; stderr:\n{}",
        cr.stderr()
    );
    be.assert_no_panics();
}

#[test]
fn drain_timeout_bounds_shutdown() {
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.drain_to_eof(); // never answers
        }
    });
    let mut cr = Corelay::start(&[be.addr], &["--drain-timeout", "500ms"]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/hang"));
    be.wait_requests(1, Duration::from_secs(5));
    let t0 = Instant::now();
    cr.signal(SIGTERM);
    let st = cr
        .wait_exit(Duration::from_secs(5))
        .expect("corelay did not exit after --drain-timeout 500ms");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "exited after {took:?}, before the drain timeout"
    );
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st:?}; stderr:\n{}",
        cr.stderr()
    );
    // The abandoned client is not left hanging.
    match c.read_response() {
        Ok(r) => assert_ne!(r.status, 200),
        Err(e) => assert!(e.is_closed(), "{e:?}"),
    }
}

#[test]
fn sigint_on_an_idle_proxy_exits_0() {
    let be = Backend::ok(b"x");
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get_close("/")).status, 200);
    drop(c);
    let t0 = Instant::now();
    cr.signal(SIGINT);
    let st = cr
        .wait_exit(Duration::from_secs(5))
        .expect("corelay did not exit on SIGINT");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "idle shutdown took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        st.code(),
        Some(0),
        "exit status {st:?}; stderr:\n{}",
        cr.stderr()
    );
}

fn bad_cli(args: &[&str], flag: &str) {
    let (st, out, err) = run_corelay_to_exit(args);
    assert_eq!(
        st.code(),
        Some(2),
        "{args:?}: exit status {st:?}, stderr {err:?}"
    );
    assert!(!out.contains("corelay: ready"), "{args:?}: printed ready");
    let lines: Vec<&str> = err.trim_end_matches('\n').split('\n').collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: stderr must be exactly one line, got {err:?}"
    );
    assert!(
        err.ends_with('\n'),
        "{args:?}: stderr line not terminated: {err:?}"
    );
    assert!(
        lines[0].contains(flag),
        "{args:?}: error does not name {flag}: {err:?}"
    );
}

#[test]
fn bad_cli_cores_zero() {
    bad_cli(
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--cores",
            "0",
        ],
        "--cores",
    );
}

#[test]
fn bad_cli_listen_nonsense() {
    bad_cli(
        &[
            "--listen",
            "nonsense",
            "--backend",
            "127.0.0.1:1",
            "--cores",
            "1",
        ],
        "--listen",
    );
}

#[test]
fn bad_cli_backend_missing() {
    bad_cli(&["--listen", "127.0.0.1:0", "--cores", "1"], "--backend");
}

#[test]
fn bad_cli_duration_with_bad_unit() {
    bad_cli(
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "127.0.0.1:1",
            "--cores",
            "1",
            "--client-header-timeout",
            "5x",
        ],
        "--client-header-timeout",
    );
}

#[test]
fn cpus_list_pins_the_shard() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start(&[be.addr], &["--cpus", "1"]);
    assert_eq!(cr.shards, vec![(0, 1)], "{:?}", cr.startup_lines);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/")).status, 200);
}

#[test]
fn bad_cli_backend_nonsense() {
    bad_cli(
        &[
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "nonsense",
            "--cores",
            "1",
        ],
        "--backend",
    );
}
