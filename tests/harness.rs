//! Self-checks of the test harness (tests/common) without corelay: the
//! scripted backend, the response reader and the strict chunked decoder.
//! If these fail, the other suites' verdicts cannot be trusted.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn strict_chunk_size_lines() {
    assert_eq!(parse_chunk_size_line(b"5"), Ok(5));
    assert_eq!(parse_chunk_size_line(b"1aF"), Ok(0x1af));
    assert_eq!(parse_chunk_size_line(b"5;a=b"), Ok(5));
    assert_eq!(parse_chunk_size_line(b"5 ; a = \"q\\\"x\""), Ok(5));
    for bad in [
        &b""[..],
        b"5 ",
        b" 5",
        b"0x5",
        b"+5",
        b"-5",
        b"5;a\0b",
        b"5;",
        b"5;a=",
        b"g",
        b"5 6",
    ] {
        assert!(
            parse_chunk_size_line(bad).is_err(),
            "{:?} accepted",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn strict_chunked_decoder() {
    match decode_chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nrest") {
        Chunked::Complete {
            body,
            trailers,
            consumed,
        } => {
            assert_eq!(body, b"hello");
            assert_eq!(trailers, vec![("X-T".to_string(), "1".to_string())]);
            assert_eq!(consumed, 23);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(decode_chunked(b"5\r\nhel"), Chunked::Incomplete);
    assert_eq!(decode_chunked(b"5\r\nhello\r\n0\r\n"), Chunked::Incomplete);
    for bad in [
        &b"\r\nhello\r\n0\r\n\r\n"[..],
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
    ] {
        assert!(
            matches!(decode_chunked(bad), Chunked::Invalid(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let body = pattern(100_000, 1);
    match decode_chunked(&chunk_encode(&body, 4096)) {
        Chunked::Complete { body: b, .. } => assert_bytes_eq(&b, &body, "round trip"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backend_and_reader_round_trip_without_proxy() {
    let be = Backend::http(|req| match req.target.as_str() {
        "/chunked" => {
            let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            v.extend(chunk_encode(b"hello chunked world", 5));
            v
        }
        "/close" => b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec(),
        _ => response(200, "OK", &[("X-Echo", &req.target)], &req.body),
    });
    let mut c = Client::connect(be.addr);
    let r = c.roundtrip(&post("/a", b"abc"));
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("x-echo")),
        (200, &b"abc"[..], Some("/a"))
    );
    let r = c.roundtrip(&get("/chunked"));
    assert_eq!(
        (r.framing, r.body_str().as_str()),
        (Framing::Chunked, "hello chunked world")
    );
    let mut req = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend(chunk_encode(b"0123456789", 3));
    let r = c.roundtrip(&req);
    assert_eq!(r.body_str(), "0123456789");
    let r = c.roundtrip(&get("/close"));
    assert_eq!(
        (r.framing, r.body_str().as_str()),
        (Framing::Close, "until close")
    );
    drop(c);
    be.settle();
    let reqs = be.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[2].framing, Framing::Chunked);
    assert_eq!(be.connections(), 1);
    assert!(be.received(0).starts_with(b"POST /a HTTP/1.1\r\n"));
    be.assert_no_panics();
}

#[test]
fn settle_sees_connections_and_timeouts_fire() {
    let be = Backend::start(|mut conn| {
        let _ = conn.drain_to_eof();
    });
    let mut c = Client::connect(be.addr);
    c.send(b"partial");
    be.wait_connections(1, Duration::from_secs(5));
    c.set_read_timeout(Duration::from_millis(200));
    assert_eq!(c.read_response().unwrap_err(), WireError::Timeout);
    drop(c);
    be.settle();
    assert_eq!(be.received(0), b"partial");
    assert_eq!(be.total_received(), 7);
}
