//! PROXY protocol v1/v2 on the client listener (`--proxy-protocol`): the decoded source
//! address becomes `X-Forwarded-For`, the access log's client and the per-client key;
//! a connection without a valid header (missing, truncated, cut off by the header timeout,
//! garbage) is closed without a response byte and reaches no backend. Without the flag a
//! PROXY line is just a bad request (400).

mod common;
use common::*;

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

const V1_TCP4: &[u8] = b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 8080\r\n";
const V1_TCP6: &[u8] = b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 8080\r\n";
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header: signature, `version 2 | command`, family byte, length, `block` (addresses and
/// TLVs).
fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut v = V2_SIG.to_vec();
    v.push(0x20 | command);
    v.push(family);
    v.extend_from_slice(&(block.len() as u16).to_be_bytes());
    v.extend_from_slice(block);
    v
}

/// v2 PROXY over TCP/IPv4, followed by `tlvs` (already encoded).
fn v2_tcp4(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(tlvs);
    v2(0x1, 0x11, &b)
}

/// v2 PROXY over TCP/IPv6, followed by `tlvs`.
fn v2_tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&dport.to_be_bytes());
    b.extend_from_slice(tlvs);
    v2(0x1, 0x21, &b)
}

/// One TLV: type, 16-bit big-endian length, value.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// AWS NLB's TLVs: PP2_TYPE_AWS (0xEA) with subtype 0x01 and the VPC endpoint id, and a
/// PP2_TYPE_NOOP padding TLV.
fn aws_tlvs() -> Vec<u8> {
    let mut t = tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9");
    t.extend_from_slice(&tlv(0x04, &[0, 0, 0]));
    t
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A backend echoing the path, and corelay in front of it with `--proxy-protocol`.
fn proxied(extra: &[&str]) -> (Backend, Corelay) {
    let be = Backend::http(|req| ok_response(req.target.as_bytes()));
    let mut flags = vec!["--proxy-protocol"];
    flags.extend_from_slice(extra);
    let cr = Corelay::start(&[be.addr], &flags);
    (be, cr)
}

/// Sends `header` + a GET for `path` in one write; expects 200 with the path echoed and returns
/// the request the backend got. Also checks that the header itself never reached the backend.
fn through(cr: &Corelay, be: &Backend, header: &[u8], path: &str) -> Request {
    let before = be.requests().len();
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&cat(&[header, &get(path)]));
    assert_eq!(
        (r.status, r.body_str()),
        (200, path.to_string()),
        "{}",
        r.status_line
    );
    let reqs = be.wait_requests(before + 1, WAIT);
    let req = reqs
        .iter()
        .find(|q| q.target == path)
        .unwrap_or_else(|| panic!("backend never got {path}"))
        .clone();
    assert_eq!(req.request_line, format!("GET {path} HTTP/1.1"));
    assert!(
        !contains(&req.raw_head, b"PROXY") && !contains(&req.raw_head, b"QUIT"),
        "the PROXY header reached the backend: {:?}",
        String::from_utf8_lossy(&req.raw_head)
    );
    req
}

fn xff(req: &Request) -> Vec<String> {
    req.header_all("x-forwarded-for")
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// After a refused connection: corelay must still serve a valid proxied connection, and once
/// it is killed the backend must have seen exactly that one request and nothing else (no
/// connection, no byte, from the refused one).
fn assert_backend_untouched_then_serves(mut cr: Corelay, be: &Backend) {
    // Nothing reached the backend because of the refused connection.
    assert_eq!(be.connections(), 0, "backend got a connection");
    let req = through(&cr, be, V1_TCP4, "/after");
    assert_eq!(xff(&req), ["203.0.113.7"]);
    cr.kill();
    be.settle();
    let reqs = be.requests();
    assert_eq!(
        reqs.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
        ["/after"],
        "requests the backend received"
    );
    assert_eq!(
        be.total_received(),
        req.raw_head.len(),
        "backend bytes beyond the one valid request: {:?}",
        be.all_received()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
    );
    be.assert_no_panics();
}

/// Opens a connection, writes `bytes`, optionally half-closes, and expects corelay to close
/// the connection without sending one byte. Returns how long the close took.
fn expect_silent_close(cr: &Corelay, bytes: &[u8], half_close: bool) -> Duration {
    let t0 = Instant::now();
    let mut c = Client::connect(cr.addr);
    if !bytes.is_empty() {
        c.send(bytes);
    }
    if half_close {
        c.stream().shutdown(Shutdown::Write).unwrap();
    }
    c.set_read_timeout(WAIT);
    c.expect_closed();
    t0.elapsed()
}

// ---------------------------------------------------------------------------------------------
// decoded addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_tcp4_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let req = through(&cr, &be, V1_TCP4, "/v1/tcp4");
    assert_eq!(xff(&req), ["203.0.113.7"]);
    be.assert_no_panics();
}

#[test]
fn v1_tcp6_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let req = through(&cr, &be, V1_TCP6, "/v1/tcp6");
    assert_eq!(xff(&req), ["2001:db8::7"]);
}

#[test]
fn v1_unknown_keeps_the_socket_peer() {
    let (be, cr) = proxied(&[]);
    let req = through(&cr, &be, b"PROXY UNKNOWN\r\n", "/v1/unknown");
    assert_eq!(xff(&req), ["127.0.0.1"]);
}

#[test]
fn v1_header_arriving_in_pieces_is_reassembled() {
    let (be, cr) = proxied(&[]);
    let mut c = Client::connect(cr.addr);
    // Split inside the word, inside an address and between CR and LF.
    for piece in [
        &b"PRO"[..],
        b"XY TCP4 203.0.",
        b"113.7 10.0.0.1 56324 8080\r",
        b"\n",
    ] {
        c.send(piece);
        thread::sleep(Duration::from_millis(30));
    }
    let r = c.roundtrip(&get("/pieces"));
    assert_eq!((r.status, r.body_str()), (200, "/pieces".to_string()));
    let reqs = be.wait_requests(1, WAIT);
    assert_eq!(xff(&reqs[0]), ["203.0.113.7"]);
}

#[test]
fn v2_tcp4_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let h = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 23),
        40000,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &[],
    );
    assert_eq!(h.len(), 28);
    let req = through(&cr, &be, &h, "/v2/tcp4");
    assert_eq!(xff(&req), ["198.51.100.23"]);
}

#[test]
fn v2_tcp4_with_tlvs_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let h = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 24),
        40001,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &aws_tlvs(),
    );
    let req = through(&cr, &be, &h, "/v2/tcp4/tlv");
    assert_eq!(xff(&req), ["198.51.100.24"]);
}

#[test]
fn v2_tcp6_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let src: Ipv6Addr = "2001:db8:1::23".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    let h = v2_tcp6(src, 40002, dst, 8080, &[]);
    assert_eq!(h.len(), 52);
    let req = through(&cr, &be, &h, "/v2/tcp6");
    assert_eq!(xff(&req), ["2001:db8:1::23"]);
}

#[test]
fn v2_tcp6_with_tlv_sets_x_forwarded_for() {
    let (be, cr) = proxied(&[]);
    let src: Ipv6Addr = "2001:db8:1::24".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:2::1".parse().unwrap();
    // PP2_TYPE_AUTHORITY (SNI), as HAProxy sends it.
    let h = v2_tcp6(src, 40003, dst, 443, &tlv(0x02, b"www.example.com"));
    let req = through(&cr, &be, &h, "/v2/tcp6/tlv");
    assert_eq!(xff(&req), ["2001:db8:1::24"]);
}

#[test]
fn v2_local_command_keeps_the_socket_peer() {
    let (be, cr) = proxied(&[]);
    // LOCAL (the balancer's own health check): no addresses, family UNSPEC.
    let req = through(&cr, &be, &v2(0x0, 0x00, &[]), "/v2/local");
    assert_eq!(xff(&req), ["127.0.0.1"]);
    // LOCAL with an address block: the block is ignored, the socket peer is used.
    let block = cat(&[
        &[203, 0, 113, 99],
        &[10, 0, 0, 1],
        &[0x9c, 0x40, 0x1f, 0x90],
    ]);
    let req = through(&cr, &be, &v2(0x0, 0x11, &block), "/v2/local/addrs");
    assert_eq!(xff(&req), ["127.0.0.1"]);
}

#[test]
fn client_sent_x_forwarded_for_is_kept_and_the_proxy_source_appended() {
    let (be, cr) = proxied(&[]);
    let mut c = Client::connect(cr.addr);
    let req = format!("GET /chain HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n");
    let r = c.roundtrip(&cat(&[V1_TCP4, req.as_bytes()]));
    assert_eq!(r.status, 200);
    let reqs = be.wait_requests(1, WAIT);
    // The last element is the one corelay vouches for; earlier ones are the client's word.
    assert_eq!(
        reqs[0].header_list("x-forwarded-for"),
        ["192.0.2.1", "203.0.113.7"]
    );
}

#[test]
fn pipelined_header_and_two_requests_in_one_write() {
    let (be, cr) = proxied(&[]);
    let mut c = Client::connect(cr.addr);
    c.send(&cat(&[V1_TCP4, &get("/p1"), &get("/p2")]));
    for path in ["/p1", "/p2"] {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("response to {path}: {e:?}"));
        assert_eq!((r.status, r.body_str()), (200, path.to_string()));
    }
    let reqs = be.wait_requests(2, WAIT);
    assert_eq!(
        reqs.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
        ["/p1", "/p2"]
    );
    for r in &reqs {
        assert_eq!(xff(r), ["203.0.113.7"], "{}", r.target);
    }
    // The header applies to the whole connection: a later request on it too.
    let r = c.roundtrip(&get("/p3"));
    assert_eq!(r.status, 200);
    let reqs = be.wait_requests(3, WAIT);
    assert_eq!(xff(&reqs[2]), ["203.0.113.7"]);
}

#[test]
fn v2_pipelined_header_and_two_requests_in_one_write() {
    let (be, cr) = proxied(&[]);
    let h = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 25),
        40004,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &aws_tlvs(),
    );
    let mut c = Client::connect(cr.addr);
    c.send(&cat(&[&h, &get("/q1"), &get("/q2")]));
    for path in ["/q1", "/q2"] {
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("response to {path}: {e:?}"));
        assert_eq!((r.status, r.body_str()), (200, path.to_string()));
    }
    let reqs = be.wait_requests(2, WAIT);
    for r in &reqs {
        assert_eq!(xff(r), ["198.51.100.25"], "{}", r.target);
    }
}

// ---------------------------------------------------------------------------------------------
// refused connections: closed without a response byte, nothing forwarded
// ---------------------------------------------------------------------------------------------

#[test]
fn request_without_header_is_closed_unanswered() {
    let (be, cr) = proxied(&[]);
    expect_silent_close(&cr, &get("/no-header"), false);
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn request_starting_with_p_but_no_header_is_closed_unanswered() {
    // `P` is the first byte of the v1 signature: POST/PUT/PATCH must still be refused.
    let (be, cr) = proxied(&[]);
    expect_silent_close(&cr, &post("/no-header", b"body"), false);
    expect_silent_close(
        &cr,
        format!("PUT /x HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        false,
    );
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn truncated_v1_header_then_close_is_closed_unanswered() {
    let (be, cr) = proxied(&[]);
    expect_silent_close(&cr, b"PROXY TCP4 203.0.113.7 10.0.0.1 563", true);
    // Complete line but the client half-closes before any request: nothing to forward.
    expect_silent_close(&cr, V1_TCP4, true);
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn truncated_v2_header_then_close_is_closed_unanswered() {
    let (be, cr) = proxied(&[]);
    let h = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 26),
        40005,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &[],
    );
    // Signature only, then mid-address.
    expect_silent_close(&cr, &h[..12], true);
    expect_silent_close(&cr, &h[..20], true);
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn v1_header_cut_midway_is_closed_by_the_header_timeout() {
    let (be, cr) = proxied(&["--client-header-timeout", "1s"]);
    let took = expect_silent_close(&cr, b"PROXY TCP4 203.0.113.7 10.0.", false);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}, expected about 1 s (--client-header-timeout)"
    );
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn v2_header_cut_midway_is_closed_by_the_header_timeout() {
    let (be, cr) = proxied(&["--client-header-timeout", "1s"]);
    let h = v2_tcp6(
        "2001:db8::5".parse().unwrap(),
        1,
        "2001:db8::6".parse().unwrap(),
        2,
        &[],
    );
    let took = expect_silent_close(&cr, &h[..30], false);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}, expected about 1 s (--client-header-timeout)"
    );
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn silent_connection_is_closed_by_the_header_timeout() {
    let (be, cr) = proxied(&["--client-header-timeout", "1s"]);
    let took = expect_silent_close(&cr, b"", false);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    assert_backend_untouched_then_serves(cr, &be);
}

#[test]
fn garbage_headers_are_closed_unanswered() {
    let (be, cr) = proxied(&[]);
    let good4 = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 27),
        40006,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &[],
    );
    let mut bad_version = good4.clone();
    bad_version[12] = 0x31; // version 3
    let mut bad_command = good4.clone();
    bad_command[12] = 0x22; // command 2
    let mut bad_family = good4.clone();
    bad_family[13] = 0x41; // family 4
    let short_len = v2(0x1, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8]); // shorter than two IPv4 addrs
    let mut tlv_overrun = good4.clone();
    // A TLV claiming 9 bytes with 2 present, inside the declared length.
    tlv_overrun.extend_from_slice(&[0x04, 0x00, 0x09, 0xAA, 0xBB]);
    let l = (tlv_overrun.len() - 16) as u16;
    tlv_overrun[14..16].copy_from_slice(&l.to_be_bytes());
    let mut too_long = V2_SIG.to_vec();
    too_long.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        ("binary zeros", vec![0u8; 64]),
        (
            "lower-case proxy",
            b"proxy TCP4 203.0.113.7 10.0.0.1 56324 8080\r\n".to_vec(),
        ),
        (
            "PROXY without space",
            b"PROXYTCP4 203.0.113.7 10.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "unknown v1 protocol",
            b"PROXY TCP5 203.0.113.7 10.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 bad address",
            b"PROXY TCP4 203.0.113.999 10.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 v6 address as TCP4",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 port leading zero",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 0080 2\r\n".to_vec(),
        ),
        (
            "v1 port too big",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 2\r\n".to_vec(),
        ),
        (
            "v1 missing port",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 56324\r\n".to_vec(),
        ),
        (
            "v1 extra field",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2 3\r\n".to_vec(),
        ),
        (
            "v1 bare LF",
            b"PROXY TCP4 203.0.113.7 10.0.0.1 1 2\n".to_vec(),
        ),
        ("v1 no CRLF in 107 bytes", {
            let mut v = b"PROXY UNKNOWN ".to_vec();
            v.extend_from_slice(&[b'a'; 120]);
            v
        }),
        (
            "v2 signature mismatch",
            b"\r\n\r\n\0\r\nQUIZ\n\x21\x11\x00\x0c".to_vec(),
        ),
        ("v2 version 3", bad_version),
        ("v2 command 2", bad_command),
        ("v2 family 4", bad_family),
        ("v2 length below addresses", short_len),
        ("v2 TLV overrun", tlv_overrun),
        ("v2 length beyond limit", too_long),
    ];
    for (what, bytes) in &cases {
        let mut with_request = bytes.clone();
        with_request.extend_from_slice(&get("/garbage"));
        let t0 = Instant::now();
        let mut c = Client::connect(cr.addr);
        c.set_read_timeout(WAIT);
        // corelay may close while the rest is in flight: a failed write is fine.
        let _ = c.try_send(&with_request);
        match c.wire.read_to_eof() {
            Ok(b) if b.is_empty() => {}
            Err((WireError::Reset, b)) if b.is_empty() => {}
            other => panic!("{what}: expected a silent close, got {other:?}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{what}: closed only after {:?} (not refused at once)",
            t0.elapsed()
        );
    }
    assert_backend_untouched_then_serves(cr, &be);
}

// ---------------------------------------------------------------------------------------------
// the decoded address elsewhere: access log and per-client limits
// ---------------------------------------------------------------------------------------------

#[test]
fn access_log_records_the_proxied_client() {
    let log = TempConfig::new("access.log", "");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(
        &[be.addr],
        &["--proxy-protocol", "--access-log", log.path_str()],
    );
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&cat(&[V1_TCP4, &get("/logged4")])).status, 200);
    let mut c6 = Client::connect(cr.addr);
    assert_eq!(c6.roundtrip(&cat(&[V1_TCP6, &get("/logged6")])).status, 200);
    drop((c, c6));
    cr.signal(SIGTERM);
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("exit after SIGTERM");
    assert!(st.success(), "{st:?}; stderr:\n{}", cr.stderr());
    let text = std::fs::read_to_string(&log.path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| l.contains("/logged6"));
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("203.0.113.7 - - ["), "{}", lines[0]);
    assert!(
        lines[0].contains("\"GET /logged4 HTTP/1.1\" 200 "),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("2001:db8::7 - - ["), "{}", lines[1]);
}

#[test]
fn per_client_connection_cap_counts_the_proxied_address() {
    let (be, cr) = proxied(&["--max-connections-per-client", "1"]);
    let header = |last: u8| format!("PROXY TCP4 198.51.100.{last} 10.0.0.1 4000{last} 8080\r\n");
    // One open connection for 198.51.100.1.
    let mut a = Client::connect(cr.addr);
    assert_eq!(
        a.roundtrip(&cat(&[header(1).as_bytes(), &get("/a")]))
            .status,
        200
    );
    // A second one from the same (proxied) client: 429.
    let mut b = Client::connect(cr.addr);
    b.send(&cat(&[header(1).as_bytes(), &get("/b")]));
    let r = b
        .read_response()
        .expect("response to the second connection");
    assert_eq!(r.status, 429, "{}", r.status_line);
    // Another proxied client over the same TCP peer (127.0.0.1) is not limited.
    let mut c = Client::connect(cr.addr);
    assert_eq!(
        c.roundtrip(&cat(&[header(2).as_bytes(), &get("/c")]))
            .status,
        200
    );
    let targets: Vec<String> = be
        .wait_requests(2, WAIT)
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets, ["/a", "/c"]);
    drop(a);
}

// ---------------------------------------------------------------------------------------------
// without --proxy-protocol
// ---------------------------------------------------------------------------------------------

#[test]
fn without_the_flag_a_proxy_line_is_a_bad_request() {
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &[]);
    let mut c = Client::connect(cr.addr);
    c.send(&cat(&[V1_TCP4, &get("/smuggled")]));
    let r = c.read_response().expect("a response to the PROXY line");
    assert_eq!(r.status, 400, "{}", r.status_line);
    c.set_read_timeout(WAIT);
    c.expect_closed();

    // A v2 header is not a request either.
    let h = v2_tcp4(
        Ipv4Addr::new(198, 51, 100, 28),
        40007,
        Ipv4Addr::new(10, 0, 0, 1),
        8080,
        &[],
    );
    let mut c = Client::connect(cr.addr);
    let _ = c.try_send(&cat(&[&h, &get("/smuggled2")]));
    let r = c.read_response().expect("a response to the v2 header");
    assert_eq!(r.status, 400, "{}", r.status_line);

    cr.kill();
    be.settle();
    assert_eq!(be.connections(), 0, "the backend was contacted");
}

/// A connection stalled inside its PROXY header does not hold up another one on the same
/// (single) shard.
#[test]
fn refused_connection_does_not_affect_a_concurrent_one() {
    let (be, cr) = proxied(&["--client-header-timeout", "3s"]);
    // A stalled header on one connection...
    let mut stalled = TcpStream::connect(cr.addr).unwrap();
    stalled.write_all(b"PROXY TCP4 203.0.").unwrap();
    // ...does not hold up another connection on the same shard.
    let t0 = Instant::now();
    let req = through(&cr, &be, V1_TCP4, "/concurrent");
    assert_eq!(xff(&req), ["203.0.113.7"]);
    // Well under the 3 s it would take if it waited for the stalled header's timeout.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    drop(stalled);
}
