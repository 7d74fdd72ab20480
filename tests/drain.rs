//! Draining with keep-alive connections: on SIGTERM idle connections close at once, the
//! in-flight response carries `Connection: close`, and requests pipelined behind it are never
//! forwarded (the process is about to exit; the client retries them elsewhere).

mod common;
use common::*;

use std::thread;
use std::time::{Duration, Instant};

/// Sends SIGTERM and waits until new connections are refused, so the shard has seen it.
fn sigterm_and_wait_for_drain(cr: &Corelay) {
    cr.signal(SIGTERM);
    let t0 = Instant::now();
    loop {
        match std::net::TcpStream::connect_timeout(&cr.addr, Duration::from_secs(1)) {
            Err(_) => return,
            Ok(s) => {
                // Accepted into a closing listener's backlog: closed without an answer.
                let mut w = Wire::new(s);
                w.set_read_timeout(Duration::from_secs(2));
                if w.write_all(&get_close("/new")).is_err() {
                    return;
                }
                match w.read_response(false) {
                    Err(e) if e.is_closed() => return,
                    Ok(r) => assert_eq!(r.status, 200, "{}", r.status_line),
                    Err(e) => panic!("new connection during drain: {e:?}"),
                }
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "SIGTERM not noticed"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Everything the backend received, over all connections, as text.
fn backend_text(be: &Backend) -> String {
    be.all_received()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn drain_closes_idle_keepalive_connections_and_the_in_flight_response_says_close() {
    let release = Gate::new();
    let be = backend_holding_slow(&release, |req| ok_response(req.target.as_bytes()));
    let mut cr = Corelay::start(&[be.addr], &[]);
    // Three idle keep-alive connections, each after a request.
    let mut idle: Vec<Client> = (0..3)
        .map(|i| {
            let mut c = Client::connect(cr.addr);
            let r = c.roundtrip(&get(&format!("/idle{i}")));
            assert!(!r.conn_close());
            c
        })
        .collect();
    // The in-flight request with two more pipelined behind it, all in one write.
    let mut c = Client::connect(cr.addr);
    let mut pipelined = get("/slow");
    pipelined.extend(get("/after1"));
    pipelined.extend(get("/after2"));
    c.send(&pipelined);
    be.wait_requests(4, Duration::from_secs(5));
    sigterm_and_wait_for_drain(&cr);

    // The idle ones close while the held request keeps the process draining.
    for i in &mut idle {
        i.set_read_timeout(Duration::from_secs(5));
        i.expect_closed();
    }
    assert!(
        cr.wait_exit(Duration::ZERO).is_none(),
        "exited while draining"
    );
    release.open();
    let r = c.read_response().expect("the in-flight response");
    assert_eq!((r.status, r.body_str().as_str()), (200, "drained"));
    assert!(
        r.conn_close(),
        "no Connection: close during drain: {:?}",
        r.headers
    );
    // Nothing answers the pipelined requests: the connection closes after the response.
    c.expect_closed();
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("exit after drain");
    assert_eq!(st.code(), Some(0), "{st:?}: {}", cr.stderr());
    be.settle();
    // (Probes sent before the signal was noticed may have been served as `/new`.)
    let targets: Vec<String> = be
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .filter(|t| t != "/new")
        .collect();
    assert_eq!(targets, ["/idle0", "/idle1", "/idle2", "/slow"]);
    assert!(
        !backend_text(&be).contains("/after"),
        "{}",
        backend_text(&be)
    );
    be.assert_no_panics();
}

#[test]
fn drain_during_a_keepalive_response_forwards_no_pipelined_request() {
    // The response head (keep-alive: the drain had not begun) is already at the client when
    // SIGTERM arrives; its body completes during the drain. The request pipelined behind it
    // must not be forwarded.
    let release = Gate::new();
    let held = release.clone();
    let be = Backend::start(move |mut conn| loop {
        let req = match conn.read_request() {
            Ok(r) => r,
            Err(_) => return,
        };
        if req.target == "/stream" {
            if conn
                .write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
                .is_err()
            {
                return;
            }
            assert!(held.wait(Duration::from_secs(20)), "never released");
            if conn.write(b"world").is_err() {
                return;
            }
        } else if conn.write(&ok_response(req.target.as_bytes())).is_err() {
            return;
        }
    });
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut pipelined = get("/stream");
    pipelined.extend(get("/after"));
    c.send(&pipelined);
    let head = c.wire.read_response_head().expect("response head");
    assert_eq!(head.status, 200);
    assert!(!head.conn_close(), "{:?}", head.headers);
    sigterm_and_wait_for_drain(&cr);
    release.open();
    let body = c.wire.read_n(10, head.raw_head.len()).expect("the body");
    assert_eq!(body, b"helloworld");
    c.expect_closed();
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("exit after drain");
    assert_eq!(st.code(), Some(0), "{st:?}: {}", cr.stderr());
    be.settle();
    assert!(
        !backend_text(&be).contains("/after"),
        "{}",
        backend_text(&be)
    );
    be.assert_no_panics();
}
