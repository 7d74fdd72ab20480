//! `origin`: the HTTP/1.1 origin server behind corelay's demo and bench suite.
//!
//! It must never be the bottleneck of a measurement, so it follows the same
//! thread-per-core design as corelay itself: one glommio `LocalExecutor` per
//! core, each with its own `SO_REUSEPORT` listener on the same address, and
//! connections that never leave the core that accepted them.
//!
//! Every connection owns one fixed input buffer and one output buffer. The
//! request loop parses as many pipelined requests as the input buffer holds,
//! appends their responses to the output buffer in order and only writes
//! (flushes) when it has to wait for more input. Response heads for the fixed
//! routes and the `/big` payload pattern are built once at start-up, so the
//! steady state does no per-request allocation.
//!
//! Routes:
//! - `GET /small`       200, `--small-size` bytes of text
//! - `GET /big/<bytes>` 200, exactly `<bytes>` bytes (max 1 GiB), byte `i` is `i % 251`
//! - `GET /slow/<ms>`   200, the `/small` body after a non-blocking sleep of `<ms>`
//! - `GET /slow/<ms>/<bytes>` the `/big/<bytes>` answer after that sleep
//! - `GET /reset/<bytes>` 200 with `Content-Length: <bytes>`, then the first half of the
//!   `/big` body, then a TCP reset: a backend that dies mid-body (for the soak)
//! - `POST|PUT /echo`   200, the request body streamed back (chunked in, chunked out)
//! - `GET /`            200, the list of routes
//!
//! `HEAD` works for every `GET` route; anything else is 404 (or 405 for a
//! known path with the wrong method).
//!
//! `--idle-close-ms N` makes it close a keep-alive connection that waits more than N ms for
//! its next request after answering one, like a backend with a short keep-alive timeout (the soak's idle-closing
//! backend, which races corelay's reuse of pooled connections).

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Duration;

use clap::Parser;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

/// Per-connection input buffer. Also the largest request head we accept.
const IN_BUF: usize = 32 * 1024;
/// Flush the output buffer once it holds this much, even mid-batch.
const OUT_FLUSH: usize = 64 * 1024;
/// Body pieces at least this big are written straight from their buffer
/// instead of being copied into the output buffer first.
const DIRECT_WRITE: usize = 16 * 1024;
/// Largest `/big` body we serve (400 above).
const BIG_MAX: u64 = 1 << 30;
/// Longest `/slow` sleep we accept (400 above): ten minutes.
const SLOW_MAX_MS: u64 = 600_000;
/// `/big` bytes are `offset % PATTERN_PERIOD` so clients can check content.
const PATTERN_PERIOD: usize = 251;
/// The preallocated `/big` pattern: ~256 KiB and a whole number of periods,
/// so writing it back to back keeps the `i % 251` sequence unbroken.
const PATTERN_LEN: usize = PATTERN_PERIOD * 1045;
/// Most headers we look at in one request.
const MAX_HEADERS: usize = 64;

const GREETING: &[u8] = b"Hello from the corelay origin!";
const INDEX_BODY: &[u8] = b"corelay origin routes:\n\
  GET  /small        small text body\n\
  GET  /big/<bytes>  body of exactly <bytes> bytes (byte i = i % 251)\n\
  GET  /slow/<ms>    small body after sleeping <ms> milliseconds\n\
  POST /echo         echoes the request body (PUT too; chunked in -> chunked out)\n\
HEAD works for every GET route.\n";

#[derive(Parser, Debug)]
#[command(
    name = "origin",
    about = "Fast thread-per-core HTTP/1.1 origin for corelay's demo and benches"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Number of cores (one executor and one SO_REUSEPORT listener each).
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Size in bytes of the `/small` body.
    #[arg(long, default_value_t = 38)]
    small_size: usize,
    /// Close a keep-alive connection that has waited this long for its next request
    /// (0: never).
    #[arg(long, default_value_t = 0)]
    idle_close_ms: u64,
}

/// A response whose head (minus the `Connection` line) and body never change.
struct Canned {
    /// Status line, `Content-Type` and `Content-Length`; no final blank line.
    head: Box<[u8]>,
    body: Box<[u8]>,
}

impl Canned {
    fn new(status: &str, body: Vec<u8>) -> Canned {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            body.len()
        );
        Canned {
            head: head.into_bytes().into_boxed_slice(),
            body: body.into_boxed_slice(),
        }
    }
}

/// Read-only state built once and shared by every shard.
struct Shared {
    index: Canned,
    small: Canned,
    not_found: Canned,
    not_allowed: Canned,
    bad_request: Canned,
    pattern: Box<[u8]>,
    /// `--idle-close-ms`, when set.
    idle_close: Option<Duration>,
}

impl Shared {
    fn new(small_size: usize, idle_close_ms: u64) -> Shared {
        // The greeting, padded with dots (or cut) to the size, ending in '\n'.
        let mut small: Vec<u8> = GREETING
            .iter()
            .copied()
            .chain(std::iter::repeat(b'.'))
            .take(small_size)
            .collect();
        if let Some(last) = small.last_mut() {
            *last = b'\n';
        }
        Shared {
            index: Canned::new("200 OK", INDEX_BODY.to_vec()),
            small: Canned::new("200 OK", small),
            not_found: Canned::new("404 Not Found", b"not found\n".to_vec()),
            not_allowed: Canned::new("405 Method Not Allowed", b"method not allowed\n".to_vec()),
            bad_request: Canned::new("400 Bad Request", b"bad request\n".to_vec()),
            pattern: (0..PATTERN_LEN)
                .map(|i| (i % PATTERN_PERIOD) as u8)
                .collect(),
            idle_close: (idle_close_ms > 0).then(|| Duration::from_millis(idle_close_ms)),
        }
    }
}

/// What a request asks for, decided while its head is still borrowed from
/// the input buffer (so nothing is copied out).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Index,
    Small,
    Big(u64),
    /// Milliseconds to sleep, then the `/small` body or (`Some`) a `/big` body of that size.
    Slow(u64, Option<u64>),
    Reset(u64),
    Echo,
    NotFound,
    NotAllowed,
    BadRequest,
}

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// The parts of a parsed request the handlers need.
#[derive(Clone, Copy, Debug)]
struct Request {
    route: Route,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
    body: Body,
    expect_continue: bool,
}

impl Request {
    /// The `Connection` header line this response needs, if any.
    fn connection_line(&self) -> &'static [u8] {
        match (self.keep_alive, self.http10) {
            (false, _) => b"Connection: close\r\n",
            // HTTP/1.0 clients (e.g. `ab -k`) need keep-alive confirmed.
            (true, true) => b"Connection: keep-alive\r\n",
            (true, false) => b"",
        }
    }
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let cores = args.cores.max(1);
    // Leaked on purpose: it lives as long as the process and every shard
    // reads it without reference counting.
    let shared: &'static Shared =
        Box::leak(Box::new(Shared::new(args.small_size, args.idle_close_ms)));
    let requested = args.listen;

    // SO_REUSEPORT would let us silently share the port with another server
    // (say, an origin left over from an earlier run) and split its traffic.
    // A plain bind first fails loudly if anything already listens there.
    // It also fails for a minute after an earlier origin on this port was
    // stopped: its closed connections linger in TIME_WAIT carrying
    // SO_REUSEPORT only, which a plain (SO_REUSEADDR) bind conflicts with. So
    // "in use" only counts when something actually accepts connections there.
    if let Err(e) = std::net::TcpListener::bind(requested) {
        let mut probe = requested;
        if probe.ip().is_unspecified() {
            probe.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let listening = e.kind() != io::ErrorKind::AddrInUse
            || std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(500)).is_ok();
        if listening {
            eprintln!("origin: cannot listen on {requested}: {e}");
            std::process::exit(1);
        }
    }

    // Start-up coordination. The first shard binds the requested address and
    // publishes the actual one (this resolves port 0); the others then bind
    // that same address, which SO_REUSEPORT allows. The barrier makes sure the
    // ready line is printed only once every shard is accepting.
    let ticket = Arc::new(AtomicUsize::new(0));
    let actual = Arc::new((Mutex::new(None::<SocketAddr>), Condvar::new()));
    let all_bound = Arc::new(Barrier::new(cores));

    let pool = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(cores, None))
        .name("origin")
        .on_all_shards(move || async move {
            let first = ticket.fetch_add(1, Ordering::SeqCst) == 0;
            let addr = if first {
                requested
            } else {
                let (lock, cvar) = &*actual;
                let guard = cvar
                    .wait_while(lock.lock().unwrap(), |a| a.is_none())
                    .unwrap();
                guard.expect("set by the first shard")
            };
            let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
                eprintln!("origin: cannot listen on {addr}: {e}");
                std::process::exit(1);
            });
            let local = listener
                .local_addr()
                .expect("bound listener has an address");
            if first {
                let (lock, cvar) = &*actual;
                *lock.lock().unwrap() = Some(local);
                cvar.notify_all();
            }
            if all_bound.wait().is_leader() {
                println!("origin: listening on {local}");
                io::stdout().flush().ok();
            }
            accept_loop(listener, shared).await;
        });
    let pool = pool.unwrap_or_else(|e| {
        eprintln!("origin: cannot start {cores} executor(s): {e}");
        std::process::exit(1);
    });
    for res in pool.join_all() {
        if let Err(e) = res {
            eprintln!("origin: executor failed: {e}");
            std::process::exit(1);
        }
    }
}

/// Accepts forever; each connection becomes a task on this core.
async fn accept_loop(listener: TcpListener, shared: &'static Shared) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                // We batch writes ourselves, so Nagle would only add latency
                // (e.g. between a `/big` head and its body).
                stream.set_nodelay(true).ok();
                glommio::spawn_local(async move {
                    if let Err(e) = Conn::new(stream, shared).run().await {
                        log::debug!("connection ended: {e}");
                    }
                })
                .detach();
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning on accept.
                log::warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    shared: &'static Shared,
    /// Input buffer; unconsumed bytes are `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Responses not yet written, in request order.
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream, shared: &'static Shared) -> Conn {
        Conn {
            stream,
            shared,
            buf: vec![0; IN_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::with_capacity(4096),
        }
    }

    /// The request loop: parse, answer, and only flush when about to wait.
    async fn run(mut self) -> io::Result<()> {
        let mut served = false;
        loop {
            let req = match self.parse() {
                Ok(Some(req)) => req,
                Ok(None) => {
                    if self.start == 0 && self.end == self.buf.len() {
                        // The request head does not fit in the buffer.
                        return self.fail().await;
                    }
                    // Out of complete requests: answer the batch, then wait.
                    self.flush().await?;
                    // As a backend's keep-alive timeout: only after a request was answered
                    // (before the first one, the connection is not idle but new).
                    let between_requests = served && self.start == self.end;
                    match (self.shared.idle_close, between_requests) {
                        (Some(idle), true) => {
                            let read = futures_lite::future::or(
                                async { self.fill().await.map(Some) },
                                async {
                                    glommio::timer::sleep(idle).await;
                                    Ok(None)
                                },
                            );
                            match read.await? {
                                Some(0) => return Ok(()),
                                Some(_) => {}
                                None => {
                                    // Idle too long: close, as a keep-alive timeout does.
                                    self.stream.close().await.ok();
                                    return Ok(());
                                }
                            }
                        }
                        _ => {
                            if self.fill().await? == 0 {
                                return Ok(()); // client closed
                            }
                        }
                    }
                    continue;
                }
                Err(_) => return self.fail().await,
            };
            served = true;
            if !self.handle(req).await? {
                self.flush().await?;
                self.stream.close().await.ok();
                return Ok(());
            }
            if self.out.len() >= OUT_FLUSH {
                self.flush().await?;
            }
        }
    }

    /// Sends 400 and closes: used when the byte stream can't be trusted.
    async fn fail(&mut self) -> io::Result<()> {
        let canned = &self.shared.bad_request;
        self.out.extend_from_slice(&canned.head);
        self.out.extend_from_slice(b"Connection: close\r\n\r\n");
        self.out.extend_from_slice(&canned.body);
        self.flush().await?;
        self.stream.close().await.ok();
        Ok(())
    }

    /// Parses one request head from the buffer and consumes it.
    /// `Ok(None)` means more bytes are needed.
    fn parse(&mut self) -> Result<Option<Request>, ()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let len = match parsed.parse(&self.buf[self.start..self.end]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(()),
        };
        let http10 = parsed.version == Some(0);
        let method = parsed.method.unwrap_or("");
        let mut req = Request {
            route: route(method, parsed.path.unwrap_or("/")),
            head_only: method == "HEAD",
            // HTTP/1.1 defaults to keep-alive, HTTP/1.0 to close.
            keep_alive: !http10,
            http10,
            body: Body::None,
            expect_continue: false,
        };
        let mut length = None;
        let mut chunked = false;
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(())?;
                if length.is_some_and(|l| l != n) {
                    return Err(());
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only plain `chunked` is supported; anything else (gzip,
                // chunked not last, ...) would break our framing.
                if !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(());
                }
                chunked = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                if has_token(h.value, b"close") {
                    req.keep_alive = false;
                } else if has_token(h.value, b"keep-alive") {
                    req.keep_alive = true;
                }
            } else if h.name.eq_ignore_ascii_case("expect") {
                req.expect_continue = h.value.eq_ignore_ascii_case(b"100-continue");
            }
        }
        req.body = match (chunked, length) {
            // Both framings at once is a request-smuggling shape: refuse.
            (true, Some(_)) => return Err(()),
            (true, None) => Body::Chunked,
            (false, Some(n)) if n > 0 => Body::Length(n),
            (false, _) => Body::None,
        };
        if req.route == Route::BadRequest {
            req.keep_alive = false;
        }
        self.start += len;
        Ok(Some(req))
    }

    /// Answers one request. Returns whether the connection stays open.
    async fn handle(&mut self, req: Request) -> io::Result<bool> {
        let shared = self.shared;
        if req.body != Body::None && req.expect_continue && !req.http10 {
            // Without this curl waits a second before sending big bodies.
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.flush().await?;
        }
        if req.route == Route::Echo {
            self.echo(&req).await?;
            return Ok(req.keep_alive);
        }
        // Every other route ignores the body, but it still has to be read
        // past so the next pipelined request is found.
        self.body(req.body, false).await?;
        match req.route {
            Route::Index => self.canned(&shared.index, &req),
            Route::Small => self.canned(&shared.small, &req),
            Route::NotFound => self.canned(&shared.not_found, &req),
            Route::NotAllowed => self.canned(&shared.not_allowed, &req),
            Route::BadRequest => self.canned(&shared.bad_request, &req),
            Route::Slow(ms, size) => {
                // Don't hold earlier pipelined answers hostage to the sleep.
                self.flush().await?;
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                match size {
                    None => self.canned(&shared.small, &req),
                    Some(len) => self.big(len, &req).await?,
                }
            }
            Route::Big(len) => self.big(len, &req).await?,
            Route::Reset(len) => {
                self.reset(len, &req).await?;
                return Ok(false);
            }
            Route::Echo => unreachable!("handled above"),
        }
        Ok(req.keep_alive)
    }

    /// Queues a prebuilt response.
    fn canned(&mut self, canned: &Canned, req: &Request) {
        self.out.extend_from_slice(&canned.head);
        self.out.extend_from_slice(req.connection_line());
        self.out.extend_from_slice(b"\r\n");
        if !req.head_only {
            self.out.extend_from_slice(&canned.body);
        }
    }

    /// Queues a 200 head with the given framing header.
    fn head(&mut self, framing: std::fmt::Arguments, req: &Request) {
        // Writing into a Vec cannot fail.
        let _ = write!(
            self.out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n"
        );
        self.out.extend_from_slice(req.connection_line());
        self.out.extend_from_slice(b"\r\n");
    }

    /// `/big/<len>`: streams `len` bytes of the pattern.
    async fn big(&mut self, len: u64, req: &Request) -> io::Result<()> {
        self.head(format_args!("Content-Length: {len}"), req);
        if req.head_only {
            return Ok(());
        }
        let pattern = &self.shared.pattern;
        if len <= DIRECT_WRITE as u64 {
            self.out.extend_from_slice(&pattern[..len as usize]);
            return Ok(());
        }
        self.flush().await?;
        let mut left = len;
        while left > 0 {
            let n = left.min(pattern.len() as u64) as usize;
            self.stream.write_all(&pattern[..n]).await?;
            left -= n as u64;
        }
        Ok(())
    }

    /// `/reset/<len>`: announces `len` bytes, sends the first half, then resets the
    /// connection (SO_LINGER 0 turns the close into an RST).
    async fn reset(&mut self, len: u64, req: &Request) -> io::Result<()> {
        self.head(format_args!("Content-Length: {len}"), req);
        let half = (len / 2).min(self.shared.pattern.len() as u64) as usize;
        if !req.head_only {
            self.out.extend_from_slice(&self.shared.pattern[..half]);
        }
        self.flush().await?;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket descriptor and a correctly sized `linger`.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.stream),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        self.stream.close().await.ok();
        Ok(())
    }

    /// `/echo`: streams the request body back with the same framing.
    async fn echo(&mut self, req: &Request) -> io::Result<()> {
        match req.body {
            Body::Chunked => self.head(format_args!("Transfer-Encoding: chunked"), req),
            Body::Length(n) => self.head(format_args!("Content-Length: {n}"), req),
            Body::None => self.head(format_args!("Content-Length: 0"), req),
        }
        self.body(req.body, !req.head_only).await
    }

    /// Reads past a request body, echoing it if `echo` (chunked bodies are
    /// re-chunked, with one output chunk per input chunk).
    async fn body(&mut self, body: Body, echo: bool) -> io::Result<()> {
        match body {
            Body::None => Ok(()),
            Body::Length(n) => self.body_bytes(n, echo).await,
            Body::Chunked => loop {
                let (a, b) = self.line().await?;
                let size = chunk_size(&self.buf[a..b]).ok_or_else(|| bad("bad chunk size"))?;
                if size == 0 {
                    // Skip optional trailers up to the blank line.
                    loop {
                        let (a, b) = self.line().await?;
                        if a == b {
                            break;
                        }
                    }
                    if echo {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                    }
                    return Ok(());
                }
                if echo {
                    let _ = write!(self.out, "{size:x}\r\n");
                }
                self.body_bytes(size, echo).await?;
                let (a, b) = self.line().await?;
                if a != b {
                    return Err(bad("chunk data longer than its size"));
                }
                if echo {
                    self.out.extend_from_slice(b"\r\n");
                }
            },
        }
    }

    /// Consumes `n` body bytes, echoing them if asked.
    async fn body_bytes(&mut self, mut n: u64, echo: bool) -> io::Result<()> {
        while n > 0 {
            if self.start == self.end && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let k = n.min((self.end - self.start) as u64) as usize;
            let (a, b) = (self.start, self.start + k);
            self.start = b;
            n -= k as u64;
            if !echo {
                continue;
            }
            if k >= DIRECT_WRITE {
                // Big piece: write it from the input buffer, no copy.
                self.flush().await?;
                self.stream.write_all(&self.buf[a..b]).await?;
            } else {
                if self.out.len() + k > OUT_FLUSH {
                    self.flush().await?;
                }
                self.out.extend_from_slice(&self.buf[a..b]);
            }
        }
        Ok(())
    }

    /// Consumes one line (chunk-size line, chunk end or trailer) and returns
    /// the range of its content, without the line ending.
    async fn line(&mut self) -> io::Result<(usize, usize)> {
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(i) = window.iter().position(|&c| c == b'\n') {
                let a = self.start;
                let mut b = a + i;
                if b > a && self.buf[b - 1] == b'\r' {
                    b -= 1;
                }
                self.start = a + i + 1;
                return Ok((a, b));
            }
            if self.start == 0 && self.end == self.buf.len() {
                return Err(bad("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads more input after the unconsumed bytes; returns 0 at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // Make room by moving the unconsumed tail to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Writes out everything queued.
    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }
}

/// Maps method and path to a route; no allocation.
fn route(method: &str, target: &str) -> Route {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST" || method == "PUT";
    let known = match path {
        "/" => Some(Route::Index),
        "/small" => Some(Route::Small),
        "/echo" => Some(Route::Echo),
        _ => {
            // `/big/<n>` and `/slow/<n>`: a bad or too large number is a 400.
            let number = |prefix: &str, max: u64| {
                path.strip_prefix(prefix)
                    .map(|n| n.parse::<u64>().ok().filter(|&n| n <= max))
            };
            // `/slow/<ms>/<bytes>`: the sleep, then a `/big` body.
            let slow_big = path.strip_prefix("/slow/").and_then(|rest| {
                let (ms, bytes) = rest.split_once('/')?;
                Some(match (ms.parse::<u64>(), bytes.parse::<u64>()) {
                    (Ok(ms), Ok(n)) if ms <= SLOW_MAX_MS && n <= BIG_MAX => {
                        Route::Slow(ms, Some(n))
                    }
                    _ => Route::BadRequest,
                })
            });
            match (
                slow_big,
                number("/big/", BIG_MAX),
                number("/slow/", SLOW_MAX_MS),
                number("/reset/", BIG_MAX),
            ) {
                (Some(r), ..) => Some(r),
                (_, Some(Some(n)), ..) => Some(Route::Big(n)),
                (_, _, Some(Some(ms)), _) => Some(Route::Slow(ms, None)),
                (_, _, _, Some(Some(n))) => Some(Route::Reset(n)),
                (_, Some(None), ..) | (_, _, Some(None), _) | (.., Some(None)) => {
                    Some(Route::BadRequest)
                }
                (None, None, None, None) => None,
            }
        }
    };
    match known {
        None => Route::NotFound,
        Some(Route::Echo) if post => Route::Echo,
        Some(Route::Echo) => Route::NotAllowed,
        Some(r) if get => r,
        Some(_) => Route::NotAllowed,
    }
}

/// Whether a comma-separated header value contains `token` (ASCII case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Parses a chunk-size line: hex digits, optionally followed by `;ext`.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|&c| c == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    // 15 hex digits keep us far from overflow.
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}
