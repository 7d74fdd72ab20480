//! Basic relaying: request and response rewriting, body framings both ways,
//! 10 MiB bodies checked byte for byte.

mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn get_is_forwarded_with_proxy_headers() {
    let be = Backend::ok(b"hello");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"GET /path/x?q=1&r=%20 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: itest\r\nX-End: yes\r\nAccept: */*\r\n\r\n",
    );
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(
        r.header_list("via").iter().any(|v| v.contains("corelay")),
        "response Via missing corelay: {:?}",
        r.headers
    );

    let req = &be.wait_requests(1, WAIT)[0];
    assert_eq!(req.request_line, "GET /path/x?q=1&r=%20 HTTP/1.1");
    let (first_name, first_value) = &req.headers[0];
    assert!(
        first_name.eq_ignore_ascii_case("host"),
        "Host is not the first header: {:?}",
        req.headers
    );
    assert_eq!(first_value, "example.test:8080");
    assert_eq!(req.header_all("host").len(), 1, "{:?}", req.headers);
    assert_eq!(req.header("user-agent"), Some("itest"));
    assert_eq!(req.header("x-end"), Some("yes"));
    assert_eq!(req.header("accept"), Some("*/*"));
    assert_eq!(req.header_list("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));
    assert!(
        req.header_all("via")
            .iter()
            .any(|v| v.contains("1.1 corelay")),
        "backend request Via: {:?}",
        req.headers
    );
    assert!(
        req.header("transfer-encoding").is_none(),
        "{:?}",
        req.headers
    );
    assert!(
        matches!(req.header("content-length"), None | Some("0")),
        "{:?}",
        req.headers
    );
    assert!(req.body.is_empty());
    be.assert_no_panics();
}

#[test]
fn x_forwarded_for_and_via_are_appended_to_existing_lists() {
    let be = Backend::ok(b"ok");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.roundtrip(
        b"GET /1 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.0 upstream\r\n\r\n",
    );
    c.roundtrip(b"GET /2 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n");
    let reqs = be.wait_requests(2, WAIT);
    assert_eq!(
        reqs[0].header_list("x-forwarded-for"),
        vec!["1.2.3.4", "127.0.0.1"],
        "{:?}",
        reqs[0].headers
    );
    let via = reqs[0].header_list("via");
    assert_eq!(via.len(), 2, "Via list {via:?}");
    assert_eq!(via[0], "1.0 upstream");
    assert!(via[1].starts_with("1.1 corelay"), "Via list {via:?}");
    assert_eq!(
        reqs[1].header_list("x-forwarded-for"),
        vec!["1.2.3.4", "5.6.7.8", "127.0.0.1"],
        "{:?}",
        reqs[1].headers
    );
}

#[test]
fn hop_by_hop_request_headers_are_not_forwarded() {
    let be = Backend::ok(b"ok");
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop-A\r\nX-Hop-A: secret\r\nKeep-Alive: timeout=5\r\n\
Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Keep: 1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let req = &be.wait_requests(1, WAIT)[0];
    for h in [
        "x-hop-a",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !req.has(h),
            "hop-by-hop header {h} forwarded: {:?}",
            req.headers
        );
    }
    for t in req.header_list("connection") {
        assert!(
            !t.eq_ignore_ascii_case("x-hop-a"),
            "client Connection forwarded: {:?}",
            req.headers
        );
    }
    assert_eq!(req.header("x-keep"), Some("1"));
}

#[test]
fn hop_by_hop_response_headers_are_not_forwarded() {
    let be = Backend::http(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
X-Public: p\r\nVia: 1.1 origin\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
    for h in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(
            !r.has(h),
            "hop-by-hop response header {h} forwarded: {:?}",
            r.headers
        );
    }
    for t in r.header_list("connection") {
        assert!(
            !t.eq_ignore_ascii_case("x-secret"),
            "backend Connection forwarded: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("x-public"), Some("p"));
    let via = r.header_list("via");
    assert_eq!(via.len(), 2, "Via {via:?}");
    assert_eq!(via[0], "1.1 origin");
    assert!(via[1].contains("corelay"), "Via {via:?}");
}

#[test]
fn status_line_and_end_to_end_headers_pass_through() {
    let be = Backend::http(|req| match req.target.as_str() {
        "/missing" => response(404, "Not Found", &[], b"nope"),
        "/custom" => response(503, "Gone Fishing", &[("Retry-After", "3")], b""),
        "/old" => b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/missing"));
    assert_eq!(
        (r.status_line.as_str(), r.body.as_slice()),
        ("HTTP/1.1 404 Not Found", &b"nope"[..])
    );
    let r = c.roundtrip(&get("/custom"));
    assert_eq!(r.status_line, "HTTP/1.1 503 Gone Fishing");
    assert_eq!(r.header("retry-after"), Some("3"));
    let r = c.roundtrip(&get("/cookies"));
    assert_eq!(
        r.header_all("set-cookie"),
        vec!["a=1", "b=2"],
        "Set-Cookie lines must stay separate"
    );
    let r = c.roundtrip(&get("/old"));
    assert_eq!(
        r.status_line, "HTTP/1.1 200 OK",
        "status line to the client is HTTP/1.1"
    );
    assert_eq!(r.body, b"old");
}

#[test]
fn post_with_content_length() {
    let be = Backend::http(|req| ok_response(format!("got {} bytes", req.body.len()).as_bytes()));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nname=value&x=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "got 14 bytes");
    let req = &be.wait_requests(1, WAIT)[0];
    assert_eq!(req.request_line, "POST /form HTTP/1.1");
    assert_eq!(req.header_all("content-length"), vec!["14"]);
    assert!(!req.has("transfer-encoding"), "{:?}", req.headers);
    assert_eq!(req.header("content-type"), Some("text/plain"));
    assert_eq!(req.body, b"name=value&x=1");
}

#[test]
fn post_with_chunked_body_and_trailers_then_next_request() {
    let be = Backend::http(|req| ok_response(&req.body));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!((r.status, r.body_str().as_str()), (200, "hello world"));
    // The trailer section must have been consumed: the next request parses.
    let r = c.roundtrip(&get("/after"));
    assert_eq!((r.status, r.body_str().as_str()), (200, ""));
    let reqs = be.wait_requests(2, WAIT);
    let req = &reqs[0];
    assert_eq!(req.body, b"hello world");
    let te = req.header_all("transfer-encoding");
    let cl = req.header_all("content-length");
    match (te.as_slice(), cl.as_slice()) {
        (["chunked"], []) => assert_eq!(req.framing, Framing::Chunked),
        ([], ["11"]) => {}
        _ => panic!("bad framing towards the backend: {:?}", req.headers),
    }
    assert_eq!(reqs[1].request_line, "GET /after HTTP/1.1");
}

#[test]
fn chunked_response_is_rechunked() {
    let be = Backend::http(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Checksum: abc\r\n\r\n"
            .to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    for _ in 0..2 {
        let r = c.roundtrip(&get("/"));
        assert_eq!(r.status, 200);
        assert_eq!(r.framing, Framing::Chunked, "{:?}", r.headers);
        assert!(
            !r.has("content-length"),
            "CL together with chunked: {:?}",
            r.headers
        );
        assert_eq!(r.body_str(), "Wikipedia in\r\n\r\nchunks.");
    }
}

#[test]
fn close_delimited_response_is_delivered_exactly() {
    let body = pattern(100_000, 7);
    let body2 = body.clone();
    let be = Backend::start(move |mut conn| {
        if conn.read_request().is_ok() {
            let mut v =
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
            v.extend_from_slice(&body2);
            let _ = conn.write(&v);
        }
        // returning closes the connection: that ends the body
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status, 200);
    match r.framing {
        Framing::Chunked => assert!(!r.has("content-length")),
        Framing::Close => assert!(
            r.conn_close(),
            "close-delimited without Connection: close: {:?}",
            r.headers
        ),
        f => panic!("unexpected framing {f:?}: {:?}", r.headers),
    }
    assert_bytes_eq(&r.body, &body, "close-delimited body");
}

#[test]
fn http10_backend_response_without_length() {
    let be = Backend::start(|mut conn| {
        if conn.read_request().is_ok() {
            let _ = conn.write(b"HTTP/1.0 200 OK\r\nX-Old: 1\r\n\r\nold style body");
        }
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/"));
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body_str(), "old style body");
    if r.framing == Framing::Close {
        assert!(r.conn_close(), "{:?}", r.headers);
    }
}

#[test]
fn informational_response_is_forwarded_before_final() {
    // RFC 9110 15.2: a proxy MUST forward 1xx responses it did not ask for.
    let be = Backend::http(|_| {
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&get("/"));
    let first = c.read_response().expect("response");
    assert_eq!(
        first.status, 103,
        "1xx not forwarded: {}",
        first.status_line
    );
    assert_eq!(first.header("link"), Some("</s.css>; rel=preload"));
    let fin = c.read_response().expect("final response");
    assert_eq!((fin.status, fin.body.as_slice()), (200, &b"ok"[..]));
    let r = c.roundtrip(&get("/again"));
    assert_eq!(r.status, 103);
    assert_eq!(c.read_response().expect("final").status, 200);
}

#[test]
fn upload_10_mib_content_length_byte_for_byte() {
    let body = pattern(10 << 20, 11);
    let be = Backend::http(|req| {
        ok_response(format!("{}:{:x}", req.body.len(), fnv1a(&req.body)).as_bytes())
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&post("/big", &body));
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), format!("{}:{:x}", body.len(), fnv1a(&body)));
    let req = &be.wait_requests(1, WAIT)[0];
    assert_eq!(
        req.header_all("content-length"),
        vec![(10 << 20).to_string().as_str()]
    );
    assert_bytes_eq(&req.body, &body, "uploaded body at the backend");
}

#[test]
fn upload_10_mib_chunked_byte_for_byte() {
    let body = pattern(10 << 20, 12);
    let be = Backend::http(|req| {
        ok_response(format!("{}:{:x}", req.body.len(), fnv1a(&req.body)).as_bytes())
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let mut req = b"PUT /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend(chunk_encode(&body, 65_537));
    let r = c.roundtrip(&req);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), format!("{}:{:x}", body.len(), fnv1a(&body)));
    assert_bytes_eq(
        &be.wait_requests(1, WAIT)[0].body,
        &body,
        "uploaded chunked body at the backend",
    );
}

#[test]
fn download_10_mib_content_length_byte_for_byte() {
    let body = pattern(10 << 20, 13);
    let b2 = body.clone();
    let be = Backend::http(move |_| ok_response(&b2));
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/big"));
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Length(10 << 20));
    assert_bytes_eq(&r.body, &body, "downloaded body");
    // and the connection is still usable
    assert_eq!(c.roundtrip(&get("/big")).body.len(), 10 << 20);
}

#[test]
fn download_10_mib_chunked_byte_for_byte() {
    let body = pattern(10 << 20, 14);
    let b2 = body.clone();
    let be = Backend::http(move |_| {
        let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        v.extend(chunk_encode(&b2, 1_000_003));
        v
    });
    let cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/big"));
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert_bytes_eq(&r.body, &body, "downloaded chunked body");
}

#[test]
fn small_relay_buffers_with_odd_chunk_boundaries() {
    // 1 KiB relay buffers: chunk-size lines, CRLFs and heads straddle buffer
    // boundaries in every possible way.
    let body = pattern(300_000, 21);
    let b2 = body.clone();
    let be = Backend::http(move |req| {
        if req.method == "POST" {
            ok_response(format!("{}:{:x}", req.body.len(), fnv1a(&req.body)).as_bytes())
        } else {
            let size: usize = req.target.trim_start_matches('/').parse().unwrap();
            let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            v.extend(chunk_encode(&b2, size));
            v
        }
    });
    let cr = Corelay::start(&[be.addr], &["--buffer-size", "1KiB"]);
    let mut c = Client::connect(cr.addr);
    for size in [1usize, 7, 1021, 1024, 1025, 4093] {
        let n = if size < 8 { 5_000 } else { body.len() };
        let mut req =
            b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend(chunk_encode(&body[..n], size));
        let r = c.roundtrip(&req);
        assert_eq!(
            r.body_str(),
            format!("{}:{:x}", n, fnv1a(&body[..n])),
            "upload with {size}-byte chunks"
        );
        if size >= 8 {
            let r = c.roundtrip(&get(&format!("/{size}")));
            assert_bytes_eq(&r.body, &body, &format!("download with {size}-byte chunks"));
        }
    }
    // 50 pipelined requests in one write
    let mut all = Vec::new();
    for i in 0..50 {
        all.extend(post(&format!("/p{i}"), format!("body-{i}").as_bytes()));
    }
    c.send(&all);
    for i in 0..50 {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("pipelined {i}: {e:?}"));
        let b = format!("body-{i}");
        assert_eq!(
            r.body_str(),
            format!("{}:{:x}", b.len(), fnv1a(b.as_bytes()))
        );
    }
}
