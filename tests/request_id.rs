//! `X-Request-Id`: generated when the client sends none (format, uniqueness across requests,
//! shards and restarts), kept under `request_id = "keep"` when valid, replaced otherwise; the
//! same ID reaches the backend, comes back to the client (on corelay's own answers too) and is
//! written to the access log in both formats.

mod common;
use common::*;

use std::collections::HashSet;
use std::time::Duration;

const SIGTERM: i32 = 15;

fn is_generated(id: &str) -> bool {
    is_generated_request_id(id)
}

fn one_id(headers: Vec<&str>, what: &str) -> String {
    assert_eq!(headers.len(), 1, "{what}: X-Request-Id fields {headers:?}");
    headers[0].to_string()
}

/// The backend answers with the request's target as its body.
fn echo_backend() -> Backend {
    Backend::http(|req| ok_response(req.target.as_bytes()))
}

fn stop_and_read(cr: &mut Corelay, log: &TempConfig) -> String {
    cr.signal(SIGTERM);
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("corelay did not exit within 10 s of SIGTERM");
    assert!(st.success(), "exit {st:?}; stderr:\n{}", cr.stderr());
    std::fs::read_to_string(&log.path).expect("read the access log")
}

/// Sends `req` on a new connection; returns the response's ID and what the backend received.
fn exchange(cr: &Corelay, be: &Backend, req: &[u8]) -> (Response, String, Request) {
    let before = be.requests().len();
    let r = Client::connect(cr.addr).roundtrip(req);
    let got = be.wait_requests(before + 1, Duration::from_secs(5));
    let backend_req = got[before].clone();
    let id = one_id(r.header_all("x-request-id"), "response");
    (r, id, backend_req)
}

#[test]
fn generated_ids_go_to_the_backend_back_to_the_client_and_into_the_log() {
    let be = echo_backend();
    let log = TempConfig::new("access.log", "");
    let mut cr = Corelay::start(
        &[be.addr],
        &[
            "--access-log",
            log.path_str(),
            "--access-log-format",
            "json",
        ],
    );
    let mut c = Client::connect(cr.addr);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = c.roundtrip(&get(&format!("/{i}")));
        assert_eq!(r.status, 200);
        let id = one_id(r.header_all("x-request-id"), "response");
        assert!(is_generated(&id), "{id:?}");
        ids.push(id);
    }
    let got = be.wait_requests(5, Duration::from_secs(5));
    for (req, id) in got.iter().zip(&ids) {
        assert_eq!(&one_id(req.header_all("x-request-id"), "backend"), id);
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 5, "{ids:?}");
    // One shard: one prefix, the counter counts up.
    let counters: Vec<u64> = ids
        .iter()
        .map(|id| u64::from_str_radix(&id[22..], 16).unwrap())
        .collect();
    for w in counters.windows(2) {
        assert_eq!(w[1], w[0] + 1, "{ids:?}");
    }
    assert!(ids.iter().all(|id| id[..22] == ids[0][..22]));

    let text = stop_and_read(&mut cr, &log);
    let logged: Vec<&str> = text.lines().collect();
    assert_eq!(logged.len(), 5, "{text}");
    for (line, id) in logged.iter().zip(&ids) {
        assert!(
            line.ends_with(&format!(",\"request_id\":\"{id}\"}}")),
            "{line}"
        );
    }
}

#[test]
fn a_restart_gets_a_new_prefix() {
    let be = echo_backend();
    let prefix = |_| {
        let cr = Corelay::start(&[be.addr], &[]);
        let r = Client::connect(cr.addr).roundtrip(&get("/"));
        one_id(r.header_all("x-request-id"), "response")[..16].to_string()
    };
    let a: String = prefix(0);
    let b: String = prefix(1);
    assert_ne!(a, b);
}

#[test]
fn two_shards_make_distinct_ids() {
    let be = echo_backend();
    let cr = Corelay::start(&[be.addr], &["--cores", "2"]);
    let mut ids = HashSet::new();
    let mut shards = HashSet::new();
    // The kernel spreads connections over both shards' listeners by their ports: with 40,
    // the chance that one shard got them all is 2^-39.
    for i in 0..40 {
        let addr = cr.shard_addrs[i % cr.shard_addrs.len()];
        let r = Client::connect(addr).roundtrip(&get_close("/"));
        let id = one_id(r.header_all("x-request-id"), "response");
        assert!(is_generated(&id), "{id:?}");
        shards.insert(id[17..21].to_string());
        assert!(ids.insert(id.clone()), "duplicate {id}");
    }
    let mut shards: Vec<String> = shards.into_iter().collect();
    shards.sort();
    assert_eq!(shards, ["0000", "0001"]);
}

#[test]
fn keep_passes_a_valid_client_id_through() {
    let be = echo_backend();
    let log = TempConfig::new("access.log", "");
    let mut cr = Corelay::start(
        &[be.addr],
        &["--request-id", "keep", "--access-log", log.path_str()],
    );
    let id = "client-ID_0123:{trace}~".to_string() + &"x".repeat(100);
    assert_eq!(id.len(), 123);
    let req = format!("GET /k HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: {id}\r\n\r\n");
    let (r, got, backend_req) = exchange(&cr, &be, req.as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(got, id);
    assert_eq!(
        one_id(backend_req.header_all("x-request-id"), "backend"),
        id
    );
    // Exactly 128 characters is still valid.
    let long = "L".repeat(128);
    let req = format!("GET /k HTTP/1.1\r\nHost: {HOST}\r\nx-request-id: {long}\r\n\r\n");
    assert_eq!(exchange(&cr, &be, req.as_bytes()).1, long);
    let text = stop_and_read(&mut cr, &log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with(&format!(" request_id={id}")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(&format!(" request_id={long}")),
        "{}",
        lines[1]
    );
}

#[test]
fn generate_replaces_a_client_id() {
    let be = echo_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let req = format!("GET /g HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: mine\r\n\r\n");
    let (_, got, backend_req) = exchange(&cr, &be, req.as_bytes());
    assert!(is_generated(&got), "{got}");
    assert_eq!(
        one_id(backend_req.header_all("x-request-id"), "backend"),
        got
    );
}

#[test]
fn invalid_client_ids_are_replaced_under_keep() {
    let be = echo_backend();
    let cr = Corelay::start(&[be.addr], &["--request-id", "keep"]);
    let too_long = "a".repeat(129);
    for fields in [
        format!("X-Request-Id: {too_long}\r\n"),
        "X-Request-Id: has space\r\n".to_string(),
        "X-Request-Id: \r\n".to_string(),
        "X-Request-Id: caf\u{e9}\r\n".to_string(),
        "X-Request-Id: one\r\nX-Request-Id: two\r\n".to_string(),
    ] {
        let req = format!("GET /i HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n");
        let (_, got, backend_req) = exchange(&cr, &be, req.as_bytes());
        assert!(is_generated(&got), "{fields:?} -> {got}");
        assert_eq!(
            one_id(backend_req.header_all("x-request-id"), "backend"),
            got,
            "{fields:?}"
        );
    }
}

/// The client gets the ID its request went out with, not one the backend made up.
#[test]
fn the_backends_own_id_does_not_reach_the_client() {
    let be = Backend::http(|_| response(200, "OK", &[("X-Request-Id", "from-backend")], b"b"));
    let cr = Corelay::start(&[be.addr], &[]);
    let (_, got, backend_req) = exchange(&cr, &be, &get("/"));
    assert!(is_generated(&got), "{got}");
    assert_eq!(
        one_id(backend_req.header_all("x-request-id"), "backend"),
        got
    );
}

/// corelay's own answers carry an ID too, and the log line has the same one.
#[test]
fn corelays_own_answers_carry_the_id() {
    let log = TempConfig::new("access.log", "");
    let dead = dead_addr();
    let mut cr = Corelay::start(
        &[dead],
        &[
            "--max-header-bytes",
            "1024",
            "--max-target-len",
            "512",
            "--request-id",
            "keep",
            "--access-log",
            log.path_str(),
        ],
    );
    let r = Client::connect(cr.addr).roundtrip(&get("/"));
    assert_eq!(r.status, 502);
    let bad_gateway = one_id(r.header_all("x-request-id"), "502");
    assert!(is_generated(&bad_gateway), "{bad_gateway}");
    // A head too large to parse: its ID cannot be read, so it gets a new one even under keep.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: kept?\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(2000)
    );
    let r = Client::connect(cr.addr).roundtrip(big.as_bytes());
    assert_eq!(r.status, 431);
    let too_large = one_id(r.header_all("x-request-id"), "431");
    assert!(is_generated(&too_large), "{too_large}");
    let text = stop_and_read(&mut cr, &log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(" 502 ") && lines[0].ends_with(&format!(" request_id={bad_gateway}"))
    );
    assert!(lines[1].contains(" 431 ") && lines[1].ends_with(&format!(" request_id={too_large}")));
}
