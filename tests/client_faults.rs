//! Malformed, oversized, ambiguous and slow client input. Malformed input is
//! never forwarded: after the rejection, corelay is killed (closing all its
//! sockets) and the backend is settled, then what it received is inspected.

mod common;
use common::*;
use std::thread;
use std::time::{Duration, Instant};

/// A backend that answers complete, valid requests with 200 "forwarded".
fn recording_backend() -> Backend {
    Backend::start(|mut conn| loop {
        match conn.read_request() {
            Ok(_) => {
                if conn.write(&ok_response(b"forwarded")).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = conn.drain_to_eof();
                return;
            }
        }
    })
}

/// Sends `req` on a fresh connection and checks that it is rejected with
/// `status` (well-formed, Content-Length, Connection: close, then closed).
/// Returns a description of the problem instead of panicking.
fn check_rejected(cr: &Corelay, req: &[u8], status: u16) -> Result<(), String> {
    let mut c = Client::connect(cr.addr);
    c.set_read_timeout(Duration::from_secs(5));
    let _ = c.try_send(req); // corelay may close before reading everything
    let r = match c.read_response() {
        Ok(r) => r,
        Err(e) => return Err(format!("no {status} response: {e:?}")),
    };
    if r.status != status {
        return Err(format!(
            "expected {status}, got {:?} body {:?}",
            r.status_line,
            r.body_str()
        ));
    }
    if !r.has("content-length") {
        return Err(format!("{status} without Content-Length: {:?}", r.headers));
    }
    if !r.conn_close() {
        return Err(format!(
            "{status} without Connection: close: {:?}",
            r.headers
        ));
    }
    match c.wire.read_to_eof() {
        Ok(b) if b.is_empty() => Ok(()),
        Err((WireError::Reset, b)) if b.is_empty() => Ok(()),
        Ok(b) | Err((_, b)) if !b.is_empty() => Err(format!(
            "bytes after the {status} response: {:?}",
            String::from_utf8_lossy(&b)
        )),
        Err((e, _)) => Err(format!(
            "connection not closed after the {status} response: {e:?}"
        )),
        _ => unreachable!(),
    }
}

/// Kills corelay, settles the backend and asserts it received nothing.
fn assert_backend_got_nothing(cr: &mut Corelay, be: &Backend) {
    cr.kill();
    be.settle();
    let got = be.all_received();
    assert!(
        got.iter().all(|b| b.is_empty()),
        "malformed input reached the backend: {:?}",
        got.iter()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned())
            .collect::<Vec<_>>()
    );
}

/// Runs every `(name, request, status)` case on its own client connection
/// against one corelay, then checks the backend received nothing at all.
fn reject_all(extra: &[&str], cases: &[(&str, Vec<u8>, u16)]) {
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], extra);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, req, st)| {
            check_rejected(&cr, req, *st)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_backend_got_nothing(&mut cr, &be);
}

fn with_headers(n: usize, value_len: usize) -> Vec<u8> {
    let mut v = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n").into_bytes();
    for i in 0..n {
        v.extend(format!("X-H-{i}: {}\r\n", "v".repeat(value_len)).as_bytes());
    }
    v.extend(b"\r\n");
    v
}

#[test]
fn header_section_over_16k_gives_431() {
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    )
    .into_bytes();
    reject_all(
        &[],
        &[
            ("one 20000-byte header", big, 431),
            ("many headers totalling 18k", with_headers(60, 300), 431),
        ],
    );
}

#[test]
fn header_section_under_the_limit_is_forwarded() {
    let be = recording_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(15_000)
    );
    assert_eq!(c.roundtrip(req.as_bytes()).status, 200);
    assert_eq!(
        be.requests()[0].header("x-big").map(|v| v.len()),
        Some(15_000)
    );
}

#[test]
fn more_than_100_headers_gives_431() {
    // Host + 100 others = 101 field lines
    reject_all(&[], &[("101 headers", with_headers(100, 1), 431)]);
}

#[test]
fn exactly_100_headers_are_accepted() {
    let be = recording_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(
        c.roundtrip(&with_headers(99, 1)).status,
        200,
        "Host + 99 headers = 100"
    );
    assert_eq!(be.requests()[0].header("x-h-98"), Some("v"));
}

#[test]
fn target_longer_than_max_target_len_gives_414() {
    let target = |n: usize| format!("/{}", "t".repeat(n - 1));
    reject_all(
        &[],
        &[(
            "8193-byte target",
            format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", target(8193)).into_bytes(),
            414,
        )],
    );
    reject_all(
        &["--max-target-len", "100"],
        &[(
            "101-byte target",
            format!("GET {} HTTP/1.1\r\nHost: h\r\n\r\n", target(101)).into_bytes(),
            414,
        )],
    );
    // at the limit: forwarded
    let be = recording_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let t = target(8192);
    assert_eq!(
        c.roundtrip(format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .status,
        200
    );
    assert_eq!(be.requests()[0].target, t);
}

#[test]
fn content_length_with_transfer_encoding_gives_400() {
    reject_all(
        &[],
        &[
            (
                "CL then TE",
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
                400,
            ),
            (
                "TE then CL",
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 20\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
                400,
            ),
        ],
    );
}

#[test]
fn differing_or_invalid_content_length_gives_400() {
    let req = |cl: &str| format!("POST / HTTP/1.1\r\nHost: h\r\n{cl}\r\n\r\nhello!").into_bytes();
    reject_all(
        &[],
        &[
            (
                "two lines 5 and 6",
                req("Content-Length: 5\r\nContent-Length: 6"),
                400,
            ),
            ("list 5, 6", req("Content-Length: 5, 6"), 400),
            ("abc", req("Content-Length: abc"), 400),
            ("-1", req("Content-Length: -1"), 400),
            ("+5", req("Content-Length: +5"), 400),
            ("0x5", req("Content-Length: 0x5"), 400),
            ("5 5", req("Content-Length: 5 5"), 400),
            ("empty", req("Content-Length: "), 400),
        ],
    );
}

#[test]
fn content_length_overflow_is_rejected() {
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let req =
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\nhello";
    let r400 = check_rejected(&cr, req, 400);
    let r413 = check_rejected(&cr, req, 413);
    assert!(
        r400.is_ok() || r413.is_ok(),
        "overflowing Content-Length: {r400:?} / {r413:?}"
    );
    assert_backend_got_nothing(&mut cr, &be);
}

#[test]
fn transfer_encoding_not_ending_in_chunked_gives_400() {
    let req = |te: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .into_bytes()
    };
    reject_all(
        &[],
        &[
            ("chunked, gzip", req("chunked, gzip"), 400),
            ("gzip", req("gzip"), 400),
            ("identity", req("identity"), 400),
            ("xchunked", req("xchunked"), 400),
        ],
    );
}

#[test]
fn unknown_transfer_coding_before_chunked_gives_501() {
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec();
    reject_all(&[], &[("gzip, chunked", req, 501)]);
}

#[test]
fn transfer_encoding_in_http10_gives_400() {
    let req =
        b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec();
    reject_all(&[], &[("HTTP/1.0 + TE", req, 400)]);
}

#[test]
fn transfer_coding_names_are_case_insensitive() {
    let be = recording_backend();
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(be.requests()[0].body, b"hello");
}

#[test]
fn missing_or_duplicate_host_gives_400() {
    reject_all(
        &[],
        &[
            (
                "no Host",
                b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".to_vec(),
                400,
            ),
            (
                "two Hosts",
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
                400,
            ),
        ],
    );
}

#[test]
fn malformed_request_heads_give_400() {
    reject_all(
        &[],
        &[
            (
                "double space",
                b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
                400,
            ),
            (
                "extra token",
                b"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n".to_vec(),
                400,
            ),
            (
                "lowercase version",
                b"GET / http/1.1\r\nHost: h\r\n\r\n".to_vec(),
                400,
            ),
            (
                "bad method char",
                b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
                400,
            ),
            (
                "leading space",
                b" GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
                400,
            ),
            (
                "field without colon",
                b"GET / HTTP/1.1\r\nHost: h\r\nX-Broken\r\n\r\n".to_vec(),
                400,
            ),
            (
                "space before colon",
                b"GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n".to_vec(),
                400,
            ),
            (
                "bad field name",
                b"GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n".to_vec(),
                400,
            ),
            ("http/0.9", b"GET /\r\n\r\n".to_vec(), 400),
        ],
    );
}

#[test]
fn nul_in_field_value_is_rejected_or_replaced() {
    // RFC 9110 5.5: reject, or replace NUL with SP; never forward it.
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let req = b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n";
    if check_rejected(&cr, req, 400).is_err() {
        let mut c = Client::connect(cr.addr);
        let r = c.roundtrip(req);
        assert_eq!(r.status, 200, "{}", r.status_line);
    }
    cr.kill();
    be.settle();
    for b in be.all_received() {
        assert!(!b.contains(&0), "NUL forwarded to the backend");
    }
}

// --- invalid chunk-size lines -------------------------------------------------

/// Sends a chunked POST whose body is `tail`; corelay must answer 400 or
/// close, and the backend must never see a complete request nor `forbidden`.
fn bad_chunk(tail: &[u8], forbidden: &[u8]) {
    bad_chunk_after(b"", tail, forbidden)
}

/// Like [`bad_chunk`], but first sends the head and `valid` (valid chunks),
/// waits until the backend received the forwarded head (corelay streams
/// bodies), and only then sends `tail`.
fn bad_chunk_after(valid: &[u8], tail: &[u8], forbidden: &[u8]) {
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.set_read_timeout(Duration::from_secs(5));
    let mut req =
        b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    if !valid.is_empty() {
        req.extend_from_slice(valid);
        c.send(&req);
        req.clear();
        eventually(
            Duration::from_secs(5),
            "the backend receives the streamed request head",
            || be.connections() > 0 && contains(&be.received(0), b"\r\n\r\n"),
        );
    }
    req.extend_from_slice(tail);
    let _ = c.try_send(&req);
    match c.read_response() {
        Ok(r) => {
            assert_eq!(
                r.status,
                400,
                "invalid chunked body answered with {:?} body {:?}",
                r.status_line,
                r.body_str()
            );
            assert!(r.has("content-length"), "{:?}", r.headers);
            assert!(
                r.conn_close(),
                "400 for bad framing without Connection: close: {:?}",
                r.headers
            );
            c.expect_closed();
        }
        Err(e) if e.is_closed() => {}
        Err(e) => panic!("invalid chunked body neither refused nor closed: {e:?}"),
    }
    cr.kill();
    be.settle();
    assert!(
        be.requests().is_empty(),
        "the backend received a complete request: {:?}",
        be.requests()
    );
    for (i, b) in be.all_received().iter().enumerate() {
        assert!(
            !contains(b, forbidden),
            "backend connection {i} received the invalid framing {:?}: {:?}",
            String::from_utf8_lossy(forbidden),
            String::from_utf8_lossy(b)
        );
        if let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(
                !matches!(decode_chunked(&b[end + 4..]), Chunked::Complete { .. }),
                "backend connection {i} received a complete chunked body: {:?}",
                String::from_utf8_lossy(b)
            );
        }
    }
}

#[test]
fn chunk_size_empty_line() {
    bad_chunk(b"\r\nhello\r\n0\r\n\r\n", b"\r\n\r\n\r\nhello");
}

#[test]
fn chunk_size_trailing_space() {
    bad_chunk(b"5 \r\nhello\r\n0\r\n\r\n", b"5 \r\n");
}

#[test]
fn chunk_size_bare_lf() {
    bad_chunk(b"5\nhello\r\n0\r\n\r\n", b"5\nhello");
}

#[test]
fn chunk_extension_with_nul() {
    bad_chunk(b"5;a\0b\r\nhello\r\n0\r\n\r\n", b"\0");
}

#[test]
fn chunk_size_hex_prefix() {
    bad_chunk(b"0x5\r\nhello\r\n0\r\n\r\n", b"0x5");
}

#[test]
fn chunk_size_plus_sign() {
    bad_chunk(b"+5\r\nhello\r\n0\r\n\r\n", b"+5");
}

#[test]
fn chunk_size_overflow() {
    bad_chunk(
        b"10000000000000000005\r\nhello\r\n0\r\n\r\n",
        b"10000000000000000005",
    );
}

#[test]
fn chunk_data_not_followed_by_crlf() {
    bad_chunk(b"5\r\nhelloXX0\r\n\r\n", b"helloXX");
}

#[test]
fn invalid_chunk_after_a_valid_one() {
    bad_chunk(b"5\r\nhello\r\n5 \r\nworld\r\n0\r\n\r\n", b"5 \r\n");
}

#[test]
fn invalid_chunk_after_streamed_data() {
    bad_chunk_after(b"5\r\nhello\r\n", b"5 \r\nworld\r\n0\r\n\r\n", b"5 \r\n");
}

#[test]
fn hex_prefix_chunk_after_streamed_data() {
    // a lenient parser reads "0" as the last chunk and "x5..." as garbage
    bad_chunk_after(b"5\r\nhello\r\n", b"0x5\r\nworld\r\n0\r\n\r\n", b"0x5");
}

// --- slow and vanishing clients -----------------------------------------------

#[test]
fn slowloris_header_trickle_gets_408_within_the_absolute_deadline() {
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], &["--client-header-timeout", "1s"]);
    let mut c = Client::connect(cr.addr);
    c.set_read_timeout(Duration::from_secs(5));
    let t0 = Instant::now();
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n");
    let mut w = c.stream().try_clone().unwrap();
    let trickler = thread::spawn(move || {
        use std::io::Write;
        let start = Instant::now();
        for b in b"X-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if start.elapsed() > Duration::from_secs(6) || w.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let outcome = c.read_response();
    let took = t0.elapsed();
    match outcome {
        Ok(r) => {
            assert_eq!(r.status, 408, "{}", r.status_line);
            assert!(r.conn_close(), "{:?}", r.headers);
        }
        Err(e) => assert!(
            e.is_closed(),
            "slowloris connection was not cut: {e:?} after {took:?}"
        ),
    }
    assert!(
        took >= Duration::from_millis(900),
        "cut after {took:?}, before the 1s header timeout"
    );
    assert!(
        took <= Duration::from_secs(3),
        "cut after {took:?}: the header timeout is not an absolute deadline"
    );
    let _ = c.stream().shutdown(std::net::Shutdown::Both);
    trickler.join().unwrap();
    assert_backend_got_nothing(&mut cr, &be);
}

/// Splits what a backend received on one connection into the forwarded head and the rest,
/// checking the head's request line and Content-Length.
fn forwarded_head_and_rest<'a>(got: &'a [u8], request_line: &str, cl: &str) -> &'a [u8] {
    let text = String::from_utf8_lossy(got);
    let end = text
        .find("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head forwarded: {text:?}"))
        + 4;
    let head = &text[..end];
    assert!(
        head.starts_with(&format!("{request_line}\r\n")),
        "forwarded head {head:?}"
    );
    assert!(
        head.contains(&format!("\r\nContent-Length: {cl}\r\n")),
        "forwarded head {head:?}"
    );
    &got[end..]
}

#[test]
fn stalled_request_body_is_cut_by_client_body_timeout() {
    let be = Backend::start(|mut conn| {
        let _ = conn.drain_to_eof();
    });
    let cr = Corelay::start_with_metrics(&[be.addr], &["--client-body-timeout", "500ms"]);
    let mut c = Client::connect(cr.addr);
    c.set_read_timeout(Duration::from_secs(5));
    let t0 = Instant::now();
    c.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello");
    // The head and the first 5 bytes are forwarded at once (the body streams).
    be.wait_connections(1, Duration::from_secs(5));
    eventually(
        Duration::from_secs(5),
        "the start of the body forwarded",
        || be.received(0).ends_with(b"\r\n\r\nhello"),
    );
    // Then only corelay's body timeout can end the exchange: the backend never answers, the
    // client never sends the rest, and the client's own timeout (5 s) would fail the test.
    let outcome = c.read_response();
    let took = t0.elapsed();
    match outcome {
        Ok(r) => assert_eq!(r.status, 408, "{}", r.status_line),
        Err(e) => assert_eq!(e, WireError::Reset, "stalled upload not cut after {took:?}"),
    }
    assert!(took >= Duration::from_millis(400), "cut after {took:?}");
    // The half-sent request must not stay open towards the backend, and nothing was made
    // up to complete it.
    assert!(
        be.wait_conn_done(0, Duration::from_secs(5)),
        "backend connection of the aborted request left open"
    );
    let got = be.received(0);
    assert_eq!(
        forwarded_head_and_rest(&got, "POST / HTTP/1.1", "10"),
        b"hello"
    );
    assert_eq!(be.connections(), 1);
    cr.wait_metric("corelay_client_errors_total", 1.0);
    cr.wait_at_rest();
}

#[test]
fn client_disconnect_mid_upload_leaks_nothing() {
    let be = Backend::start(|mut conn| {
        let _ = conn.drain_to_eof();
    });
    let cr = Corelay::start_with_metrics(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    c.send(&vec![b'x'; 50_000]);
    eventually(
        Duration::from_secs(5),
        "the backend receives the 50,000 bytes sent",
        || {
            be.connections() == 1 && {
                let got = be.received(0);
                got.len() > 50_000
                    && forwarded_head_and_rest(&got, "POST /up HTTP/1.1", "100000").len() == 50_000
            }
        },
    );
    assert_eq!(cr.metric("corelay_connections_open"), 1.0);
    drop(c);
    cr.wait_metric("corelay_connections_open", 0.0);
    assert!(
        be.wait_conn_done(0, Duration::from_secs(5)),
        "backend connection of the aborted upload left open"
    );
    // Exactly what the client sent, nothing made up to complete the body.
    let got = be.received(0);
    let body = forwarded_head_and_rest(&got, "POST /up HTTP/1.1", "100000");
    assert!(body == vec![b'x'; 50_000], "{} body bytes", body.len());
    cr.wait_metric("corelay_client_errors_total", 1.0);
    assert_eq!(cr.metric("corelay_backend_errors_total"), 0.0);
    // Every relay buffer and head buffer came back.
    cr.wait_at_rest();
    assert_eq!(cr.metric("corelay_backend_idle_connections"), 0.0);
}

#[test]
fn obs_fold_is_rejected_or_unfolded() {
    // RFC 9112 5.2: reject with 400 or replace each obs-fold with SP.
    let be = recording_backend();
    let mut cr = Corelay::start(&[be.addr], &[]);
    let req = b"GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\nX-After: 1\r\n\r\n";
    if check_rejected(&cr, req, 400).is_err() {
        let mut c = Client::connect(cr.addr);
        assert_eq!(c.roundtrip(req).status, 200);
    }
    cr.kill();
    be.settle();
    for b in be.all_received() {
        assert!(
            !contains(&b, b"\r\n "),
            "obs-fold forwarded: {:?}",
            String::from_utf8_lossy(&b)
        );
    }
}

/// The largest a socket's kernel buffer may grow to (`tcp_rmem` / `tcp_wmem` maximum).
fn tcp_buffer_max(which: &str) -> usize {
    let text = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{which}"))
        .unwrap_or_else(|e| panic!("{which}: {e}"));
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{which}: {text:?}"))
}

#[test]
fn client_that_stops_reading_is_cut_by_send_timeout() {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // The backend offers far more than can ever sit in buffers on the way, and counts what
    // corelay took from it.
    const BODY: usize = 1 << 30;
    let written = Arc::new(AtomicUsize::new(0));
    let w2 = written.clone();
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_err() {
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n");
        if conn.write(head.as_bytes()).is_err() {
            return;
        }
        let chunk = pattern(64 * 1024, 5);
        let mut s = conn.stream().try_clone().unwrap();
        while w2.load(Ordering::SeqCst) < BODY && s.write_all(&chunk).is_ok() {
            w2.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let cr = Corelay::start_with_metrics(&[be.addr], &["--send-timeout", "500ms"]);
    // A client with a small receive buffer.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&cr.addr.into()).unwrap();
    let s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut w = Wire::new(s);
    w.write_all(&get("/huge")).unwrap();
    // Read only the head, then stop reading.
    let head = w.read_response_head().expect("response head");
    assert_eq!(head.status, 200);
    cr.wait_metric("corelay_client_errors_total", 1.0);
    cr.wait_metric("corelay_connections_open", 0.0);
    cr.wait_at_rest();
    be.wait_conn_done(0, Duration::from_secs(10));
    // What corelay may have taken from the backend while the client read nothing: the
    // backend's send buffer, corelay's receive buffer, the transfer's K relay buffers
    // (defaults: 4 x 64 KiB), corelay's send buffer and the client's small receive buffer.
    // A proxy that reads ahead without bound takes far more in the 500 ms send timeout.
    let (rmem, wmem) = (tcp_buffer_max("tcp_rmem"), tcp_buffer_max("tcp_wmem"));
    let bound = wmem + rmem + 4 * 64 * 1024 + wmem + 64 * 1024;
    let took = written.load(Ordering::SeqCst);
    assert!(
        took <= bound,
        "corelay read {took} bytes from the backend for a client that reads nothing (bound {bound})"
    );
    // And the client's connection ends in a reset.
    match w.read_to_eof() {
        Err((WireError::Reset, _)) => {}
        other => panic!(
            "a timed-out send must end in a reset: {:?}",
            other.map(|b| b.len()).map_err(|(e, b)| (e, b.len()))
        ),
    }
}
