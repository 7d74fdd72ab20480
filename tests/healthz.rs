//! `GET /healthz` on the metrics listener: 200 while serving, 503 from the moment draining
//! starts (while an in-flight request still finishes), so that an orchestrator stops sending
//! traffic before the exit.

mod common;
use common::*;

use std::sync::{Arc, Barrier};
use std::time::Duration;

const SIGTERM: i32 = 15;

fn healthz(addr: std::net::SocketAddr) -> (u16, String) {
    let mut c = Client::connect(addr);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n");
    let r = c.read_response().expect("healthz response");
    (r.status, r.body_str())
}

#[test]
fn healthz_is_200_while_serving_and_503_while_draining() {
    let release = Arc::new(Barrier::new(2));
    let r2 = release.clone();
    let be = Backend::http(move |req| {
        if req.target == "/hold" {
            r2.wait();
        }
        ok_response(b"done")
    });
    let mut cr = Corelay::start_with_metrics(&[be.addr], &["--drain-timeout", "20s"]);
    let m = cr.metrics_addr.unwrap();
    assert_eq!(healthz(m), (200, "ok\n".to_string()));

    // A request in flight keeps the drain going while we look.
    let mut held = Client::connect(cr.addr);
    held.send(&get("/hold"));
    be.wait_requests(1, Duration::from_secs(5));
    cr.signal(SIGTERM);
    eventually(Duration::from_secs(5), "/healthz answers 503", || {
        healthz(m).0 == 503
    });
    assert_eq!(healthz(m), (503, "draining\n".to_string()));
    assert!(
        cr.wait_exit(Duration::from_millis(200)).is_none(),
        "exited while a request was in flight"
    );

    release.wait();
    let r = held
        .read_response()
        .expect("the in-flight request finishes");
    assert_eq!((r.status, r.body_str()), (200, "done".to_string()));
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("exit after the drain");
    assert!(st.success(), "{st:?}");
}

#[test]
fn other_paths_get_404() {
    let be = Backend::ok(b"x");
    let cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let mut c = Client::connect(cr.metrics_addr.unwrap());
    c.send(b"GET /health HTTP/1.1\r\nHost: m\r\n\r\n");
    assert_eq!(c.read_response().unwrap().status, 404);
}
