//! The registered-buffer relay engine (`--relay ring`): big bodies byte for byte both ways
//! and in both framings, bounded buffers per transfer and per shard, every buffer back after
//! aborts and timeouts, and its flags.
//!
//! The origin here is a streaming one (no recording): bodies are a position-dependent pattern
//! whose period (1,000,003 bytes) is no multiple of any buffer size, so a reordered, lost or
//! duplicated buffer shows up as a mismatch at a known offset.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

const MIB: usize = 1 << 20;
const PERIOD: usize = 1_000_003;

fn period() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        // Twice the period, so any window of up to PERIOD bytes is one slice.
        let mut p = pattern(PERIOD, 7);
        p.extend_from_within(..);
        p
    })
}

/// The body bytes at `pos..pos + len` (len <= PERIOD).
fn body_at(pos: usize, len: usize) -> &'static [u8] {
    let s = pos % PERIOD;
    &period()[s..s + len]
}

/// Checks streamed body bytes against the pattern; returns the first bad offset.
struct Checker {
    pos: usize,
    bad: Option<usize>,
}

impl Checker {
    fn new() -> Checker {
        Checker { pos: 0, bad: None }
    }
    fn feed(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            let n = b.len().min(PERIOD);
            if self.bad.is_none() && b[..n] != *body_at(self.pos, n) {
                let i = (0..n)
                    .find(|&i| b[i] != body_at(self.pos + i, 1)[0])
                    .unwrap();
                self.bad = Some(self.pos + i);
            }
            self.pos += n;
            b = &b[n..];
        }
    }
}

// ---------------------------------------------------------------------------
// streaming origin
// ---------------------------------------------------------------------------

/// A thread-per-connection origin:
/// * `GET /big/N` — N pattern bytes with Content-Length (`/chunked/N`: chunked, odd sizes);
/// * `GET /abort/N` — head for N bytes, N/2 bytes, then RST; `/stall/N` — N/2 bytes then
///   silence until the connection closes;
/// * `POST /upload` (Content-Length or chunked) — checks the body against the pattern and
///   answers `ok LEN` or `bad OFFSET`.
struct Origin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Opened by a test to let `/abort/N` responses reset.
    release: Gate,
}

impl Origin {
    fn start() -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let release = Gate::new();
        let release2 = release.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = s {
                    let release = release2.clone();
                    thread::spawn(move || {
                        if let Err(e) = serve(s, release) {
                            eprintln!("{e}");
                        }
                    });
                }
            }
        });
        Origin {
            addr,
            stop,
            release,
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn write_body(w: &mut TcpStream, n: usize) -> std::io::Result<()> {
    let mut pos = 0;
    while pos < n {
        let k = (n - pos).min(256 * 1024);
        w.write_all(body_at(pos, k))?;
        pos += k;
    }
    Ok(())
}

fn serve(s: TcpStream, release: Gate) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = s.set_nodelay(true);
    let mut w = s.try_clone()?;
    // The strict reader: a request corelay frames wrongly fails here instead of being read
    // leniently.
    let mut r = Wire::new(s);
    loop {
        let req = match r.read_request() {
            Ok(req) => req,
            Err(WireError::Eof) => return Ok(()),
            Err(e) => return Err(std::io::Error::other(format!("origin: {e:?}"))),
        };
        let target = req.target.as_str();
        let num = |p: &str| target.strip_prefix(p).and_then(|n| n.parse::<usize>().ok());
        if req.method == "POST" && target == "/upload" {
            let mut c = Checker::new();
            c.feed(&req.body);
            let body = match c.bad {
                None => format!("ok {}", c.pos),
                Some(off) => format!("bad {off}"),
            };
            w.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )?;
        } else if let Some(n) = num("/big/") {
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())?;
            write_body(&mut w, n)?;
        } else if let Some(n) = num("/chunked/") {
            w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            let mut pos = 0;
            let mut i = 0;
            while pos < n {
                // Odd chunk sizes, from tiny to larger than any buffer.
                let k = [1, 4093, 65_537, 300_001, 17][i % 5].min(n - pos);
                i += 1;
                w.write_all(format!("{k:x}\r\n").as_bytes())?;
                w.write_all(body_at(pos, k))?;
                w.write_all(b"\r\n")?;
                pos += k;
            }
            w.write_all(b"0\r\n\r\n")?;
        } else if let Some(n) = num("/abort/") {
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())?;
            write_body(&mut w, n / 2)?;
            // Reset only once the test has seen every byte sent: an RST discards what is
            // still in flight, and the test checks the exact bytes before the cut.
            release.wait(Duration::from_secs(30));
            reset_connection(w);
            return Ok(());
        } else if let Some(n) = num("/stall/") {
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes())?;
            write_body(&mut w, n / 2)?;
            let _ = r.read_to_eof();
            return Ok(());
        } else {
            w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

// ---------------------------------------------------------------------------
// client side
// ---------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A client connection read with the strict reader.
fn wire(addr: SocketAddr) -> Wire {
    Wire::new(connect(addr))
}

/// GETs `path` and checks the whole body against the pattern; returns the body length.
fn download(w: &mut Wire, path: &str) -> usize {
    w.write_all(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .unwrap();
    let r = w
        .read_response(false)
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    assert_eq!(r.status, 200, "{path}: {}", r.status_line);
    assert!(
        matches!(r.framing, Framing::Length(_) | Framing::Chunked),
        "{path}: {:?}",
        r.headers
    );
    let mut c = Checker::new();
    c.feed(&r.body);
    assert_eq!(c.bad, None, "{path}: body differs at offset {:?}", c.bad);
    c.pos
}

/// The pattern's first `n` bytes (any length).
fn pattern_prefix(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let k = (n - v.len()).min(PERIOD);
        v.extend_from_slice(body_at(v.len(), k));
    }
    v
}

/// POSTs `n` pattern bytes to /upload (chunked in odd pieces if `chunked`) and returns the
/// origin's verdict.
fn upload(addr: SocketAddr, n: usize, chunked: bool) -> String {
    let s = connect(addr);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        if chunked {
            w.write_all(
                format!(
                    "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            let mut pos = 0;
            let mut i = 0;
            while pos < n {
                let k = [100_003, 7, 1 << 20, 16_384, 999][i % 5].min(n - pos);
                i += 1;
                w.write_all(format!("{k:x}\r\n").as_bytes()).unwrap();
                w.write_all(body_at(pos, k)).unwrap();
                w.write_all(b"\r\n").unwrap();
                pos += k;
            }
            w.write_all(b"0\r\n\r\n").unwrap();
        } else {
            w.write_all(
                format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {n}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            write_body(&mut w, n).unwrap();
        }
    });
    let mut r = Wire::new(s);
    let resp = r.read_response(false).expect("upload response");
    writer.join().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.status_line);
    resp.body_str()
}

/// Reads a response head for a body that the backend will cut: checks corelay's head
/// (Date, Via, the backend's Content-Length `n`, the generated X-Request-Id), then `sent`
/// exact pattern bytes.
fn read_cut_prefix(w: &mut Wire, n: usize, sent: usize) {
    let head = w.read_response_head().expect("response head");
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["Date", "Via", "Content-Length", "X-Request-Id"],
        "{:?}",
        head.headers
    );
    assert!(is_generated_request_id(
        head.header("x-request-id").unwrap()
    ));
    assert_eq!(head.header("content-length"), Some(n.to_string().as_str()));
    let got = w
        .read_n(sent, head.raw_head.len())
        .unwrap_or_else(|e| panic!("the {sent} bytes sent before the cut: {e:?}"));
    assert!(
        got == pattern_prefix(sent),
        "body bytes before the cut differ"
    );
}

/// After the bytes sent before a cut, the connection ends in a reset with nothing more: a
/// clean EOF would let a client take a truncated body for a whole close-delimited one.
fn expect_reset(w: &mut Wire) {
    match w.read_to_eof() {
        Err((WireError::Reset, b)) if b.is_empty() => {}
        Ok(b) => panic!("clean EOF after a cut (+{} bytes), not a reset", b.len()),
        Err((e, b)) => panic!("{e:?} after a cut (+{} bytes), not a reset", b.len()),
    }
}

fn ring(origin: &Origin, extra: &[&str]) -> Corelay {
    let mut e = vec!["--relay", "ring"];
    e.extend_from_slice(extra);
    let cr = Corelay::start_with_metrics(&[origin.addr], &e);
    assert!(
        cr.startup_lines
            .iter()
            .any(|l| l.starts_with("corelay: relay memory") && l.ends_with("engine ring")),
        "{:?}",
        cr.startup_lines
    );
    cr
}

/// Every relay buffer (`r` in all) back on the free list.
fn free_back_to(cr: &Corelay, r: f64) {
    assert_eq!(cr.metric("corelay_relay_buffers_total"), r);
    cr.wait_buffers_back();
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn downloads_of_50_mib_arrive_byte_for_byte_with_length_and_chunked() {
    let origin = Origin::start();
    let cr = ring(&origin, &[]);
    let mut r = wire(cr.addr);
    assert_eq!(download(&mut r, &format!("/big/{}", 50 * MIB)), 50 * MIB);
    // Same connection: the next message starts exactly after the body.
    assert_eq!(
        download(&mut r, &format!("/chunked/{}", 50 * MIB)),
        50 * MIB
    );
    assert_eq!(download(&mut r, "/big/100000"), 100_000);
    free_back_to(&cr, 128.0); // the default --buffer-ring-size
    assert!(cr.metric("corelay_relay_buffers_in_use_max") <= 4.0);
}

#[test]
fn uploads_of_50_mib_arrive_byte_for_byte_with_length_and_chunked() {
    let origin = Origin::start();
    let cr = ring(&origin, &[]);
    assert_eq!(upload(cr.addr, 50 * MIB, false), format!("ok {}", 50 * MIB));
    assert_eq!(upload(cr.addr, 50 * MIB, true), format!("ok {}", 50 * MIB));
    free_back_to(&cr, 128.0); // the default --buffer-ring-size
}

#[test]
fn pipelined_bodies_through_the_ring_stay_in_their_messages() {
    let origin = Origin::start();
    let cr = ring(
        &origin,
        &["--relay-copy-below", "0", "--buffer-size", "4KiB"],
    );
    let mut s = connect(cr.addr);
    let mut req = Vec::new();
    for n in [100_000usize, 1, 70_001] {
        req.extend_from_slice(
            format!("POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {n}\r\n\r\n")
                .as_bytes(),
        );
        req.extend_from_slice(body_at(0, n));
    }
    s.write_all(&req).unwrap();
    let mut r = Wire::new(s);
    for n in [100_000usize, 1, 70_001] {
        let resp = r.read_response(false).expect("pipelined response");
        assert_eq!(resp.body_str(), format!("ok {n}"));
    }
}

#[test]
fn a_slow_reader_holds_at_most_k_buffers_and_others_keep_their_speed() {
    let origin = Origin::start();
    let cr = ring(
        &origin,
        &[
            "--buffer-ring-size",
            "16",
            "--max-buffers-per-transfer",
            "4",
        ],
    );
    let mut fast = wire(cr.addr);
    download(&mut fast, &format!("/big/{}", 8 * MIB));

    // A client with a small receive window that reads about 1 KiB/s.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&cr.addr.into()).unwrap();
    let mut slow: TcpStream = sock.into();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(format!("GET /big/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 64 * MIB).as_bytes())
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let reader = thread::spawn(move || {
        let mut b = [0u8; 1024];
        while !done2.load(Ordering::SeqCst) {
            if slow.read(&mut b).unwrap_or(0) == 0 {
                break;
            }
            thread::sleep(Duration::from_secs(1));
        }
    });
    // The slow transfer fills its socket buffers and then holds K buffers, no more.
    eventually(
        Duration::from_secs(10),
        "the slow transfer holds 4 buffers",
        || cr.metric("corelay_relay_buffers_free") == 12.0,
    );
    // Others are not starved: with the slow transfer holding its 4, the rest of the ring
    // carries whole downloads (a transfer allowed to take more than K would hold all 16 and
    // these would stall until the slow reader's timeout).
    for _ in 0..2 {
        download(&mut fast, &format!("/big/{}", 8 * MIB));
        assert_eq!(cr.metric("corelay_relay_buffers_free"), 12.0);
    }
    assert!(cr.metric("corelay_relay_buffers_in_use_max") <= 4.0);
    // Two transfers at K each: never more out of the ring at once.
    assert!(cr.metric("corelay_relay_buffers_out_max") <= 8.0);
    done.store(true, Ordering::SeqCst);
    drop(fast);
    reader.join().unwrap();
    free_back_to(&cr, 16.0);
}

#[test]
fn five_hundred_concurrent_downloads_share_a_ring_of_64() {
    let origin = Origin::start();
    let cr = ring(&origin, &["--buffer-ring-size", "64"]);
    let addr = cr.addr;
    let threads: Vec<_> = (0..500)
        .map(|_| {
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut r = wire(addr);
                    download(&mut r, &format!("/big/{MIB}"))
                })
                .unwrap()
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), MIB);
    }
    assert!(cr.metric("corelay_relay_buffers_out_max") <= 64.0);
    assert!(cr.metric("corelay_relay_buffers_in_use_max") <= 4.0);
    assert_eq!(cr.metric("corelay_relay_buffers_total"), 64.0);
    free_back_to(&cr, 64.0);
}

#[test]
fn a_client_abort_returns_every_buffer() {
    let origin = Origin::start();
    let cr = ring(&origin, &["--buffer-ring-size", "32"]);
    for _ in 0..3 {
        let mut s = connect(cr.addr);
        s.write_all(format!("GET /big/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 50 * MIB).as_bytes())
            .unwrap();
        let mut b = vec![0u8; 100 * 1024];
        s.read_exact(&mut b).unwrap();
        // Stop reading until the transfer holds buffers with writes in flight, then reset.
        eventually(
            Duration::from_secs(10),
            "the stalled download holds relay buffers",
            || cr.metric("corelay_relay_buffers_free") < 32.0,
        );
        reset_connection(s);
    }
    free_back_to(&cr, 32.0);
    // An upload the client abandons mid-body.
    let mut s = connect(cr.addr);
    s.write_all(
        format!(
            "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
            10 * MIB
        )
        .as_bytes(),
    )
    .unwrap();
    write_body(&mut s, MIB).unwrap();
    thread::sleep(Duration::from_millis(200));
    reset_connection(s);
    free_back_to(&cr, 32.0);
    // Still serving.
    let mut r = wire(cr.addr);
    download(&mut r, "/big/300000");
}

#[test]
fn a_backend_abort_cuts_the_client_and_returns_every_buffer() {
    let origin = Origin::start();
    let cr = ring(&origin, &["--buffer-ring-size", "32"]);
    let mut w = wire(cr.addr);
    w.write_all(format!("GET /abort/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 8 * MIB).as_bytes())
        .unwrap();
    // Every byte the origin sent arrives in order, then the origin resets and so must corelay.
    read_cut_prefix(&mut w, 8 * MIB, 4 * MIB);
    origin.release.open();
    expect_reset(&mut w);
    cr.wait_metric("corelay_backend_errors_total", 1.0);
    assert_eq!(cr.metric("corelay_client_errors_total"), 0.0);
    free_back_to(&cr, 32.0);
    cr.wait_at_rest();
}

#[test]
fn relay_timeouts_fire_and_return_every_buffer() {
    let origin = Origin::start();
    let cr = ring(
        &origin,
        &[
            "--buffer-ring-size",
            "32",
            "--backend-response-timeout",
            "500ms",
            "--send-timeout",
            "500ms",
        ],
    );
    // The backend stalls mid-body: the ring's read times out and the client is cut. The
    // origin never closes, so only corelay's timeout can end this connection (the client's
    // own read timeout, 30 s, would fail the test).
    let mut w = wire(cr.addr);
    w.write_all(format!("GET /stall/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 2 * MIB).as_bytes())
        .unwrap();
    read_cut_prefix(&mut w, 2 * MIB, MIB);
    expect_reset(&mut w);
    cr.wait_metric("corelay_backend_errors_total", 1.0);
    assert_eq!(cr.metric("corelay_client_errors_total"), 0.0);
    free_back_to(&cr, 32.0);
    // The client stops reading: the ring's write times out and the connection is closed.
    let mut s = connect(cr.addr);
    s.write_all(format!("GET /big/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 64 * MIB).as_bytes())
        .unwrap();
    let mut b = vec![0u8; 64 * 1024];
    s.read_exact(&mut b).unwrap();
    cr.wait_metric("corelay_client_errors_total", 1.0);
    cr.wait_metric("corelay_connections_open", 0.0);
    assert_eq!(cr.metric("corelay_backend_errors_total"), 1.0);
    free_back_to(&cr, 32.0);
    cr.wait_at_rest();
    // What the client still finds in its socket is bounded by the socket buffers, and the
    // connection then ends with a reset.
    let mut w = Wire::new(s);
    match w.read_to_eof() {
        Err((WireError::Reset, b)) => assert!(b.len() < 64 * MIB - 64 * 1024, "{}", b.len()),
        other => panic!(
            "a timed-out send must end in a reset: {:?}",
            other.map(|b| b.len()).map_err(|(e, b)| (e, b.len()))
        ),
    }
}

#[test]
fn drain_drops_stalled_ring_transfers_and_exits() {
    let origin = Origin::start();
    let mut cr = ring(&origin, &["--drain-timeout", "1s"]);
    let mut s = connect(cr.addr);
    s.write_all(format!("GET /stall/{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", 2 * MIB).as_bytes())
        .unwrap();
    let mut b = vec![0u8; 64 * 1024];
    s.read_exact(&mut b).unwrap();
    cr.signal(SIGTERM);
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("corelay exits after drain");
    assert!(st.success(), "{st:?}; stderr:\n{}", cr.stderr());
}

#[test]
fn bad_relay_flags_get_one_line() {
    for (args, flag) in [
        (&["--buffer-size", "3000"][..], "--buffer-size"),
        (&["--buffer-ring-size", "0"][..], "--buffer-ring-size"),
        (
            &["--buffer-ring-size", "16384", "--buffer-size", "1MiB"][..],
            "--buffer-ring-size",
        ),
        (
            &["--max-buffers-per-transfer", "0"][..],
            "--max-buffers-per-transfer",
        ),
        (
            &["--buffer-ring-size", "4", "--max-buffers-per-transfer", "8"][..],
            "--max-buffers-per-transfer",
        ),
        (&["--relay", "zerocopy"][..], "--relay"),
    ] {
        let mut a = vec!["--backend", "127.0.0.1:1", "--listen", "127.0.0.1:0"];
        a.extend_from_slice(args);
        let (st, _out, err) = run_corelay_to_exit(&a);
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
