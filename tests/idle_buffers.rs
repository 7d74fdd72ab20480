//! Idle connections hold no buffers: 2,000 idle keep-alive client connections and 2,000
//! idle pooled backend connections on one shard, checked through `/metrics`.
//!
//! Receives use provided buffers, so a connection waiting for bytes holds none, and a pooled
//! backend connection keeps a receive armed (to see a close at once) without holding one
//! either. The test builds that state for real: 2,000 client connections each send one
//! request, the test's own backend (one epoll thread, non-blocking sockets) holds every
//! answer until 2,000 requests wait on it at once, so corelay must have opened 2,000 backend
//! connections; after the answers they all go back to the pool. Then, with everything idle:
//!
//! * `corelay_connections_open` == 2000, `corelay_backend_idle_connections` == 2000,
//!   `corelay_engine_descriptors_open` == 4000 (one direct descriptor per socket),
//! * `corelay_engine_head_buffers_held` == 0 and `corelay_relay_buffers_free` ==
//!   `corelay_relay_buffers_total` (no idle connection holds a head or relay buffer);
//!
//! and a few of the idle client connections still work, over pooled backend connections
//! (`corelay_backend_connects_total` does not move, the backend accepts nothing new).

mod common;
use common::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Idle client connections, and so idle pooled backend connections.
const CONNS: usize = 2000;
/// Client connections opened before waiting for corelay to have accepted them all, so the
/// listen backlog is never close to full.
const CONNECT_BATCH: usize = 250;
/// Longest wait for any one phase to reach its expected state.
const PHASE_TIMEOUT: Duration = Duration::from_secs(10);
/// The idle client connections used again at the end.
const AGAIN: [usize; 5] = [0, 1, 999, 1500, CONNS - 1];

// ---------------------------------------------------------------------------
// RLIMIT_NOFILE
// ---------------------------------------------------------------------------

/// Lifts this process's soft `RLIMIT_NOFILE` to the hard limit (the test holds 2,000 client
/// sockets and 2,000 accepted backend sockets; corelay inherits the raised limit too).
fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        assert_eq!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl),
            0,
            "getrlimit: {}",
            io::Error::last_os_error()
        );
        if rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            assert_eq!(
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl),
                0,
                "setrlimit: {}",
                io::Error::last_os_error()
            );
        }
    }
    rl.rlim_cur as u64
}

// ---------------------------------------------------------------------------
// the backend: one epoll thread, non-blocking sockets
// ---------------------------------------------------------------------------

/// What the backend saw; a snapshot is cloned out under the lock.
#[derive(Default, Clone, Debug)]
struct OriginState {
    accepted: usize,
    /// Connections closed by corelay (EOF or error on the backend side).
    closed: usize,
    requests: usize,
    /// Requests read and not answered yet.
    waiting: usize,
    max_waiting: usize,
    /// Answers are held until this many requests wait at once.
    hold: usize,
    /// Set once `waiting` reached `hold`; from then on every request is answered as soon as
    /// it is read (until [`Origin::hold`] holds answers again).
    released: bool,
    /// Requests read on each connection (by accept index).
    per_conn: Vec<usize>,
    errors: Vec<String>,
}

impl OriginState {
    /// Everything but the per-connection counts.
    fn brief(&self) -> String {
        format!(
            "accepted {} closed {} requests {} waiting {} (most at once {}) hold {} released {} errors {:?}",
            self.accepted,
            self.closed,
            self.requests,
            self.waiting,
            self.max_waiting,
            self.hold,
            self.released,
            &self.errors[..self.errors.len().min(10)]
        )
    }
}

struct OriginShared {
    stop: AtomicBool,
    state: Mutex<OriginState>,
}

/// An HTTP/1.1 keep-alive origin that answers nothing until `hold` requests wait at once
/// (see [`Origin::hold`]).
/// `GET /x` is answered with body `hello /x` and `X-Conn: <accept index>`.
struct Origin {
    addr: SocketAddr,
    shared: Arc<OriginShared>,
    thread: Option<JoinHandle<()>>,
}

struct OConn {
    stream: TcpStream,
    buf: Vec<u8>,
    pending: VecDeque<String>,
    open: bool,
}

const LISTENER_TOKEN: u64 = u64::MAX;

fn epoll_ctl(ep: i32, op: i32, fd: i32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: a valid epoll fd and event struct.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn origin_response(target: &str, conn: usize) -> Vec<u8> {
    let body = format!("hello {target}");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Conn: {conn}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Origin {
    fn start(hold: usize) -> Origin {
        // std's listener has a backlog of 128; corelay opens 2,000 connections at once.
        let sock = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("backend socket");
        sock.set_reuse_address(true).unwrap();
        sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .expect("bind backend");
        sock.listen(4096).expect("listen backend");
        let listener: TcpListener = sock.into();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(OriginShared {
            stop: AtomicBool::new(false),
            state: Mutex::new(OriginState {
                hold,
                ..OriginState::default()
            }),
        });
        let sh = shared.clone();
        let thread = thread::Builder::new()
            .name("origin".into())
            .spawn(move || origin_loop(listener, &sh))
            .unwrap();
        Origin {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// Holds answers again until `n` requests wait at once.
    fn hold(&self, n: usize) {
        let mut st = self.shared.state.lock().unwrap();
        assert_eq!(st.waiting, 0, "requests still waiting: {}", st.brief());
        st.hold = n;
        st.released = false;
    }

    fn snapshot(&self) -> OriginState {
        self.shared.state.lock().unwrap().clone()
    }

    /// Waits until `pred` holds; returns the state it held in, or the last state seen.
    fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&OriginState) -> bool,
    ) -> Result<OriginState, OriginState> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if pred(&s) {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                return Err(s);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn origin_loop(listener: TcpListener, sh: &OriginShared) {
    // SAFETY: plain syscall.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1: {}", io::Error::last_os_error());
    epoll_ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        LISTENER_TOKEN,
    )
    .unwrap();
    let mut conns: Vec<OConn> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut tmp = vec![0u8; 16 * 1024];
    while !sh.stop.load(Ordering::SeqCst) {
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            panic!("epoll_wait: {e}");
        }
        let mut st = sh.state.lock().unwrap();
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == LISTENER_TOKEN {
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true).unwrap();
                            let _ = s.set_nodelay(true);
                            let index = conns.len();
                            epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), index as u64)
                                .unwrap();
                            conns.push(OConn {
                                stream: s,
                                buf: Vec::new(),
                                pending: VecDeque::new(),
                                open: true,
                            });
                            st.accepted += 1;
                            st.per_conn.push(0);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            st.errors.push(format!("accept: {e}"));
                            break;
                        }
                    }
                }
                continue;
            }
            let index = token as usize;
            let c = &mut conns[index];
            if !c.open {
                continue;
            }
            let mut eof = false;
            loop {
                match c.stream.read(&mut tmp) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => c.buf.extend_from_slice(&tmp[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            while let Some(p) = find(&c.buf, b"\r\n\r\n") {
                let head: Vec<u8> = c.buf.drain(..p + 4).collect();
                let text = String::from_utf8_lossy(&head).into_owned();
                let line = text.split("\r\n").next().unwrap_or("");
                let parts: Vec<&str> = line.split(' ').collect();
                if parts.len() != 3 || parts[0] != "GET" || parts[2] != "HTTP/1.1" {
                    st.errors
                        .push(format!("backend conn {index}: bad request line {line:?}"));
                }
                let lower = text.to_ascii_lowercase();
                if lower.contains("\r\ncontent-length:") || lower.contains("\r\ntransfer-encoding:")
                {
                    st.errors
                        .push(format!("backend conn {index}: GET with a body: {text:?}"));
                }
                c.pending
                    .push_back(parts.get(1).copied().unwrap_or("?").to_string());
                st.requests += 1;
                st.waiting += 1;
                st.per_conn[index] += 1;
                st.max_waiting = st.max_waiting.max(st.waiting);
            }
            if eof {
                c.open = false;
                st.closed += 1;
                // SAFETY: removes a registered fd; the stream is dropped (closed) below.
                unsafe {
                    libc::epoll_ctl(
                        ep,
                        libc::EPOLL_CTL_DEL,
                        c.stream.as_raw_fd(),
                        std::ptr::null_mut(),
                    )
                };
                st.waiting -= c.pending.len();
                c.pending.clear();
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        if !st.released && st.waiting >= st.hold {
            st.released = true;
        }
        if st.released && st.waiting > 0 {
            for (index, c) in conns.iter_mut().enumerate() {
                while let Some(target) = c.pending.pop_front() {
                    st.waiting -= 1;
                    // A response of ~60 bytes into an empty socket buffer does not block.
                    if let Err(e) = c.stream.write_all(&origin_response(&target, index)) {
                        st.errors
                            .push(format!("backend conn {index}: write failed: {e}"));
                    }
                }
            }
        }
        drop(st);
    }
    // SAFETY: closes the epoll fd this function created.
    unsafe { libc::close(ep) };
}

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

const GAUGES: [&str; 9] = [
    "corelay_connections_open",
    "corelay_backend_idle_connections",
    "corelay_engine_descriptors_open",
    "corelay_engine_head_buffers_held",
    "corelay_relay_buffers_free",
    "corelay_relay_buffers_total",
    "corelay_backend_connects_total",
    "corelay_backend_reuses_total",
    "corelay_requests_total",
];

/// One scrape: every metric of [`GAUGES`] (one shard, so the sum is that shard's value).
fn scrape(cr: &Corelay) -> HashMap<&'static str, u64> {
    let text = scrape_metrics(cr.metrics_addr.expect("metrics"));
    GAUGES
        .iter()
        .map(|&n| (n, metric_sum(&text, n) as u64))
        .collect()
}

fn show(m: &HashMap<&'static str, u64>) -> String {
    GAUGES
        .iter()
        .map(|n| format!("{n}={}", m[n]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The idle state: `clients` client connections and `CONNS` pooled backend connections,
/// each one direct descriptor, and no buffer lent to any of them.
fn idle_as_expected(m: &HashMap<&'static str, u64>, clients: u64) -> bool {
    m["corelay_connections_open"] == clients
        && m["corelay_backend_idle_connections"] == CONNS as u64
        && m["corelay_engine_descriptors_open"] == clients + CONNS as u64
        && m["corelay_engine_head_buffers_held"] == 0
        && m["corelay_relay_buffers_free"] == m["corelay_relay_buffers_total"]
}

/// Waits (bounded) for the idle state, then asserts every value of it from one scrape.
fn assert_idle(cr: &Corelay, clients: u64, what: &str) -> HashMap<&'static str, u64> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let m = loop {
        let m = scrape(cr);
        if idle_as_expected(&m, clients) || Instant::now() >= deadline {
            break m;
        }
        thread::sleep(Duration::from_millis(50));
    };
    println!("{what}: {}", show(&m));
    assert_eq!(
        m["corelay_connections_open"],
        clients,
        "{what}: {}",
        show(&m)
    );
    assert_eq!(
        m["corelay_backend_idle_connections"],
        CONNS as u64,
        "{what}: {}",
        show(&m)
    );
    assert_eq!(
        m["corelay_engine_descriptors_open"],
        clients + CONNS as u64,
        "{what}: {}",
        show(&m)
    );
    assert_eq!(
        m["corelay_engine_head_buffers_held"],
        0,
        "{what}: head buffers held by idle connections: {}",
        show(&m)
    );
    assert!(m["corelay_relay_buffers_total"] > 0, "{what}: {}", show(&m));
    assert_eq!(
        m["corelay_relay_buffers_free"],
        m["corelay_relay_buffers_total"],
        "{what}: relay buffers held by idle connections: {}",
        show(&m)
    );
    m
}

// ---------------------------------------------------------------------------
// the test
// ---------------------------------------------------------------------------

/// Checks one response of the origin relayed by corelay, exactly: the status line, the
/// origin's headers in its order with corelay's `Date` and `Via: 1.1 corelay` (any date),
/// and the body. Returns the backend connection (X-Conn) it came over.
fn check_response(r: &Response, target: &str, what: &str) -> usize {
    let body = format!("hello {target}");
    let raw = String::from_utf8_lossy(&r.raw_head).into_owned();
    assert_eq!(
        (r.status_line.as_str(), r.framing, r.body_str().as_str()),
        (
            "HTTP/1.1 200 OK",
            Framing::Length(body.len()),
            body.as_str()
        ),
        "{what}: response {raw:?}"
    );
    let xc = r.header_all("x-conn");
    assert_eq!(xc.len(), 1, "{what}: X-Conn in {raw:?}");
    let conn: usize = xc[0]
        .parse()
        .unwrap_or_else(|_| panic!("{what}: bad X-Conn in {raw:?}"));
    let dates = r.header_all("date");
    assert_eq!(dates.len(), 1, "{what}: Date in {raw:?}");
    let ids = r.header_all("x-request-id");
    assert!(
        ids.len() == 1 && is_generated_request_id(ids[0]),
        "{what}: X-Request-Id in {raw:?}"
    );
    let expected = format!(
        "HTTP/1.1 200 OK\r\nX-Conn: {conn}\r\nDate: {}\r\nVia: 1.1 corelay\r\nContent-Length: {}\r\nX-Request-Id: {}\r\n\r\n",
        dates[0],
        body.len(),
        ids[0]
    );
    assert_eq!(raw, expected, "{what}: response head");
    conn
}

#[test]
fn two_thousand_idle_clients_and_pooled_backends_hold_no_buffers() {
    let started = Instant::now();
    let nofile = raise_nofile_limit();
    assert!(
        nofile >= (2 * CONNS + 200) as u64,
        "RLIMIT_NOFILE {nofile} is too low for {CONNS} client and {CONNS} backend sockets"
    );

    let origin = Origin::start(CONNS);
    let max_idle = (2 * CONNS).to_string();
    let cr = Corelay::start_with_metrics(
        &[origin.addr],
        &[
            "--cores",
            "1",
            "--backlog",
            "4096",
            "--backend-max-idle",
            &max_idle,
            "--backend-idle-timeout",
            "60s",
            "--client-keepalive-timeout",
            "60s",
            "--backend-response-timeout",
            "30s",
        ],
    );
    assert_eq!(cr.shards.len(), 1, "one shard: {:?}", cr.startup_lines);
    let m0 = scrape(&cr);
    println!("started: {}", show(&m0));
    assert_eq!(m0["corelay_engine_head_buffers_held"], 0, "{}", show(&m0));
    assert_eq!(m0["corelay_engine_descriptors_open"], 0, "{}", show(&m0));

    // 1. 2,000 client connections, in batches that corelay accepts before the next.
    let mut clients: Vec<Client> = Vec::with_capacity(CONNS);
    while clients.len() < CONNS {
        let n = CONNECT_BATCH.min(CONNS - clients.len());
        for _ in 0..n {
            clients.push(Client::connect(cr.addr));
        }
        let want = clients.len() as f64;
        eventually(
            PHASE_TIMEOUT,
            &format!("corelay accepted {want} connections"),
            || cr.metric("corelay_connections_open") == want,
        );
    }
    println!(
        "{CONNS} client connections open after {:?}",
        started.elapsed()
    );

    // One request on each, all at once: the origin answers none until all 2,000 wait on it,
    // so corelay must open 2,000 backend connections.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&get(&format!("/warm/{i}")));
    }
    let st = origin
        .wait_for(PHASE_TIMEOUT, |s| s.released)
        .unwrap_or_else(|s| {
            panic!(
                "the backend never had {CONNS} requests waiting at once: {} (corelay: {})",
                s.brief(),
                show(&scrape(&cr))
            )
        });
    assert_eq!(st.accepted, CONNS, "backend connections: {}", st.brief());
    println!(
        "backend: {} connections, {} requests waiting at once, after {:?}",
        st.accepted,
        st.max_waiting,
        started.elapsed()
    );

    let mut backend_conns = HashSet::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let target = format!("/warm/{i}");
        let r = c
            .read_response()
            .unwrap_or_else(|e| panic!("client {i}: no response to {target}: {e:?}"));
        let bc = check_response(&r, &target, &format!("client {i}"));
        assert!(
            backend_conns.insert(bc),
            "client {i}: backend conn {bc} answered twice"
        );
    }
    assert_eq!(backend_conns.len(), CONNS);
    let st = origin.snapshot();
    assert_eq!(
        (st.accepted, st.requests, st.waiting, st.closed),
        (CONNS, CONNS, 0, 0),
        "backend after the first round: {}",
        st.brief()
    );
    assert!(st.errors.is_empty(), "backend errors: {:?}", st.errors);

    // 2. Everything idle: 2,000 clients and 2,000 pooled backends, no buffer held.
    let idle = assert_idle(&cr, CONNS as u64, "idle");
    assert_eq!(
        idle["corelay_backend_connects_total"],
        CONNS as u64,
        "{}",
        show(&idle)
    );
    assert_eq!(
        idle["corelay_requests_total"],
        CONNS as u64,
        "{}",
        show(&idle)
    );

    // 3. A few idle client connections are used again, over pooled backend connections.
    // The origin holds these answers too until all of them wait on it, so corelay takes as
    // many pooled connections at once.
    origin.hold(AGAIN.len());
    for &i in &AGAIN {
        clients[i].send(&get(&format!("/again/{i}")));
    }
    let st = origin
        .wait_for(PHASE_TIMEOUT, |s| s.released)
        .unwrap_or_else(|s| {
            panic!(
                "the backend never had {} requests waiting at once: {} (corelay: {})",
                AGAIN.len(),
                s.brief(),
                show(&scrape(&cr))
            )
        });
    assert_eq!(st.accepted, CONNS, "backend connections: {}", st.brief());
    let mut reused = HashSet::new();
    for &i in &AGAIN {
        let target = format!("/again/{i}");
        let r = clients[i]
            .read_response()
            .unwrap_or_else(|e| panic!("client {i}: no response to {target}: {e:?}"));
        let bc = check_response(&r, &target, &format!("client {i} again"));
        assert!(bc < CONNS, "client {i} again: backend conn {bc}");
        assert!(
            reused.insert(bc),
            "client {i} again: backend conn {bc} answered twice"
        );
        println!(
            "client {i}: {target} answered over pooled backend conn {bc}: {:?}",
            String::from_utf8_lossy(&r.raw_head)
        );
    }
    let after = assert_idle(&cr, CONNS as u64, "after reuse");
    let n = AGAIN.len() as u64;
    assert_eq!(
        after["corelay_backend_connects_total"],
        idle["corelay_backend_connects_total"],
        "backend connections were opened for requests that had pooled ones: {}",
        show(&after)
    );
    assert_eq!(
        after["corelay_backend_reuses_total"],
        idle["corelay_backend_reuses_total"] + n,
        "{}",
        show(&after)
    );
    assert_eq!(
        after["corelay_requests_total"],
        idle["corelay_requests_total"] + n,
        "{}",
        show(&after)
    );
    let st = origin.snapshot();
    assert_eq!(
        (st.accepted, st.requests, st.waiting, st.closed),
        (CONNS, CONNS + AGAIN.len(), 0, 0),
        "backend after the reuse: {}",
        st.brief()
    );
    assert!(
        st.per_conn.iter().all(|&k| k >= 1),
        "every backend connection carried a request"
    );
    assert!(st.errors.is_empty(), "backend errors: {:?}", st.errors);
    println!("done after {:?}", started.elapsed());
    let t = Instant::now();
    drop(clients);
    drop(cr);
    drop(origin);
    println!("teardown took {:?}", t.elapsed());
}
