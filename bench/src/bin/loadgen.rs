//! `loadgen`: the bench suite's closed-loop HTTP/1.1 load client, for what wrk can't do:
//! 10,000 keep-alive connections each waiting on a slow response, large request bodies
//! (1 MiB uploads), and single timed downloads.
//!
//! Every connection runs a loop: send a request (head + optional body), read the whole
//! response (Content-Length, chunked or close-delimited), record the latency in an
//! HdrHistogram, repeat. Connections are opened first (at most `--connect-concurrency` at a
//! time, so listen backlogs never overflow), then all start at once; no new request starts
//! after `--duration` (or once `--requests` were started), and the requests in flight are
//! awaited, so the rate is completed requests / time from start to the last completion.
//!
//! Each `--threads` thread runs its own current-thread tokio runtime with its share of the
//! connections and its own histogram. The request writer and the response reader run
//! concurrently, so an echoing server can't deadlock against a large upload.
//!
//! The last line printed is `loadgen: key=value ...` for the driver; `client_cpu_pct` is
//! this process's CPU time over wall time (100 = one core busy): when it stays well below
//! the cores it was given, the client was not the bottleneck. `done_per_s` lists the
//! completions in each second after the start; with `--steady-from A --steady-to B`,
//! `steady_done` counts the completions at A <= t < B seconds after the start and
//! `steady_rps` = steady_done / (B - A), a rate that leaves the ramp-up out.
//!
//! For the soak (`scripts/soak.sh`) it also plays the clients a proxy must survive:
//! `--verify` checks every 2xx body byte for byte against the origin's pattern (and sends
//! uploads in that pattern, so `/echo` answers check too), `--abort-after` and
//! `--abort-upload-after` hang up mid-body, `--read-chunk`/`--read-pause-ms` read slowly,
//! `--think-ms` idles between requests, and `--expect-cut` counts responses that a failing
//! backend cut short (`cut`) apart from real errors. `timeouts` is the part of `errors` that
//! were request timeouts; `mismatches` counts answers with a wrong byte or length (and, with
//! `--expect-cut`, complete 2xx answers to a request the backend never finished).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    about = "Closed-loop HTTP/1.1 load client for corelay's benches"
)]
struct Args {
    /// Server to load.
    #[arg(long)]
    addr: SocketAddr,
    /// Request path.
    #[arg(long, default_value = "/small")]
    path: String,
    /// Concurrent keep-alive connections.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Stop starting requests after this many seconds (fractions allowed).
    #[arg(long, short = 'd', default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many requests in total (overrides --duration when set).
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request body size in bytes (sent with Content-Length; 0 = no body).
    #[arg(long, default_value_t = 0)]
    body_size: usize,
    /// Client threads (each with its own runtime and share of the connections).
    #[arg(long, short = 't', default_value_t = 1)]
    threads: usize,
    /// Most connection attempts in flight at once while connecting (per thread).
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Per-request timeout in seconds (counted as an error; the connection is reopened).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Host header value.
    #[arg(long, default_value = "bench")]
    host: String,
    /// Start (seconds after the start) of the window whose completions give `steady_rps`.
    #[arg(long, requires = "steady_to")]
    steady_from: Option<f64>,
    /// End (seconds after the start, exclusive) of the `steady_rps` window.
    #[arg(long, requires = "steady_from")]
    steady_to: Option<f64>,
    /// Check every 2xx body: byte i must be i % 251 (the origin's `/big` pattern). Uploads
    /// are sent in that pattern, so `/echo` answers are checked too.
    #[arg(long)]
    verify: bool,
    /// With --verify: the body length every 2xx answer must have.
    #[arg(long, requires = "verify")]
    expect_len: Option<u64>,
    /// Hang up (close) after this many response body bytes: a client that aborts a download.
    #[arg(long)]
    abort_after: Option<u64>,
    /// Send only this many bytes of the `--body-size` body, then hang up: an aborted upload.
    #[arg(long)]
    abort_upload_after: Option<usize>,
    /// Slow reader: read at most this many bytes at a time (0: as much as fits)...
    #[arg(long, default_value_t = 0)]
    read_chunk: usize,
    /// ...and pause this long after each read.
    #[arg(long, default_value_t = 0)]
    read_pause_ms: u64,
    /// Pause between two requests on a connection: uniformly 0 to twice this, in ms.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// The backend cuts its responses: one that breaks off after its head, or a 502, counts
    /// in `cut`; a complete 2xx counts in `mismatches`.
    #[arg(long)]
    expect_cut: bool,
}

/// The origin's `/big` pattern: byte i is `i % PATTERN_PERIOD`.
const PATTERN_PERIOD: u64 = 251;

fn pattern_byte(offset: u64) -> u8 {
    (offset % PATTERN_PERIOD) as u8
}

#[derive(Default, Clone, Copy)]
struct Counts {
    ok: u64,
    non2xx: u64,
    errors: u64,
    connect_errors: u64,
    bytes: u64,
    timeouts: u64,
    mismatches: u64,
    aborted: u64,
    cut: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.ok += o.ok;
        self.non2xx += o.non2xx;
        self.errors += o.errors;
        self.connect_errors += o.connect_errors;
        self.bytes += o.bytes;
        self.timeouts += o.timeouts;
        self.mismatches += o.mismatches;
        self.aborted += o.aborted;
        self.cut += o.cut;
    }
}

struct Totals {
    counts: Counts,
    hist: Histogram<u64>,
    last_done: Instant,
    steady_done: u64,
    per_s: Vec<u64>,
}

fn main() {
    let args = Args::parse();
    raise_nofile((args.connections + 1024) as u64);
    let threads = args.threads.max(1).min(args.connections.max(1));
    let head = build_head(&args);
    let body: Arc<[u8]> = if args.verify {
        (0..args.body_size as u64).map(pattern_byte).collect()
    } else {
        vec![b'x'; args.body_size].into()
    };
    let cpu0 = cpu_time();

    // Every thread connects its share, then waits at the barrier so all start together.
    let barrier = Arc::new(std::sync::Barrier::new(threads + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns = args.connections / threads + usize::from(t < args.connections % threads);
        let reqs = args
            .requests
            .map(|n| n / threads as u64 + u64::from((t as u64) < n % threads as u64));
        let (args, head, body, barrier, start_at) = (
            args.clone(),
            head.clone(),
            body.clone(),
            barrier.clone(),
            start_at.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &rt,
                run_thread(args, conns, reqs, head, body, barrier, start_at),
            )
        }));
    }
    barrier.wait(); // all connected
    let start = Instant::now();
    start_at.set(start).ok();
    barrier.wait(); // go

    let mut counts = Counts::default();
    let mut hist = new_hist();
    let mut last = start;
    let mut steady_done = 0u64;
    let mut per_s: Vec<u64> = Vec::new();
    for h in handles {
        let t = h.join().expect("loadgen thread");
        counts.add(&t.counts);
        hist.add(&t.hist).ok();
        last = last.max(t.last_done);
        steady_done += t.steady_done;
        if per_s.len() < t.per_s.len() {
            per_s.resize(t.per_s.len(), 0);
        }
        for (i, n) in t.per_s.iter().enumerate() {
            per_s[i] += n;
        }
    }
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-9);
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu0;
    let done = counts.ok + counts.non2xx;
    let pct = |q: f64| {
        if hist.is_empty() {
            0
        } else {
            hist.value_at_quantile(q)
        }
    };
    let steady = match (args.steady_from, args.steady_to) {
        (Some(a), Some(b)) if b > a => format!(
            " steady_done={steady_done} steady_rps={:.1}",
            steady_done as f64 / (b - a)
        ),
        _ => String::new(),
    };
    let per_s = per_s
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "loadgen: requests={done} errors={} connect_errors={} non2xx={} elapsed_s={elapsed:.4} \
         rps={:.1} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} mean_us={:.0} \
         bytes={} client_cpu_pct={:.1}{steady} timeouts={} mismatches={} aborted={} cut={} \
         done_per_s={per_s}",
        counts.errors,
        counts.connect_errors,
        counts.non2xx,
        done as f64 / elapsed,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        hist.max(),
        hist.mean(),
        counts.bytes,
        100.0 * cpu / wall.max(1e-9),
        counts.timeouts,
        counts.mismatches,
        counts.aborted,
        counts.cut,
    );
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn build_head(args: &Args) -> Arc<[u8]> {
    let mut h = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        args.method, args.path, args.host
    );
    if args.body_size > 0 || args.method == "POST" || args.method == "PUT" {
        h.push_str(&format!("Content-Length: {}\r\n", args.body_size));
    }
    h.push_str("\r\n");
    h.into_bytes().into()
}

struct Shared {
    counts: Counts,
    hist: Histogram<u64>,
    last_done: Instant,
    /// Requests this thread may still start (when --requests was given).
    budget: Option<u64>,
    /// Set when all threads start; completion times are counted from it.
    start: Instant,
    /// The `--steady-from/--steady-to` window, and its completions.
    steady: Option<(Duration, Duration)>,
    steady_done: u64,
    /// Completions per second since `start`.
    per_s: Vec<u64>,
    /// Unexpected answers reported on stderr so far (at most [`MAX_REPORTS`]).
    reports: u32,
}

/// Unexpected answers (a non-2xx under --verify, an error) described on stderr, per thread:
/// enough to see what went wrong without flooding the log of a long run.
const MAX_REPORTS: u32 = 20;

impl Shared {
    fn report(&mut self, what: std::fmt::Arguments) {
        if self.reports < MAX_REPORTS {
            self.reports += 1;
            eprintln!("loadgen: {what}");
        }
    }
}

async fn run_thread(
    args: Args,
    conns: usize,
    reqs: Option<u64>,
    head: Arc<[u8]>,
    body: Arc<[u8]>,
    barrier: Arc<std::sync::Barrier>,
    start_at: Arc<std::sync::OnceLock<Instant>>,
) -> Totals {
    let shared = Rc::new(RefCell::new(Shared {
        counts: Counts::default(),
        hist: new_hist(),
        last_done: Instant::now(),
        budget: reqs,
        start: Instant::now(),
        steady: match (args.steady_from, args.steady_to) {
            (Some(a), Some(b)) => Some((
                Duration::from_secs_f64(a.max(0.0)),
                Duration::from_secs_f64(b.max(0.0)),
            )),
            _ => None,
        },
        steady_done: 0,
        per_s: Vec::new(),
        reports: 0,
    }));
    // Connect phase, bounded concurrency.
    let mut streams: Vec<Option<TcpStream>> = Vec::with_capacity(conns);
    let mut pending = tokio::task::JoinSet::new();
    let mut launched = 0;
    while launched < conns || !pending.is_empty() {
        while launched < conns && pending.len() < args.connect_concurrency.max(1) {
            let addr = args.addr;
            pending.spawn_local(async move { connect(addr).await });
            launched += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(s))) => streams.push(Some(s)),
            _ => {
                shared.borrow_mut().counts.connect_errors += 1;
                streams.push(None);
            }
        }
    }
    // Block this thread's runtime at the barrier: nothing else runs yet anyway.
    barrier.wait();
    barrier.wait();
    let start = *start_at.get().expect("start time set before go");
    shared.borrow_mut().start = start;
    let deadline = match reqs {
        Some(_) => start + Duration::from_secs(3600),
        None => start + Duration::from_secs_f64(args.duration),
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut tasks = tokio::task::JoinSet::new();
    let behaviour = Rc::new(Behaviour::new(&args));
    for (i, s) in streams.into_iter().enumerate() {
        let (shared, head, body, addr) = (shared.clone(), head.clone(), body.clone(), args.addr);
        let b = behaviour.clone();
        let seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        tasks.spawn_local(conn_loop(
            s, addr, shared, head, body, deadline, timeout, b, seed,
        ));
    }
    while tasks.join_next().await.is_some() {}
    let s = Rc::try_unwrap(shared)
        .ok()
        .expect("all tasks done")
        .into_inner();
    Totals {
        counts: s.counts,
        hist: s.hist,
        last_done: s.last_done,
        steady_done: s.steady_done,
        per_s: s.per_s,
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How each connection behaves beyond "send, read, repeat" (the soak's client kinds).
struct Behaviour {
    verify: bool,
    expect_len: Option<u64>,
    abort_after: Option<u64>,
    abort_upload_after: Option<usize>,
    read_chunk: usize,
    read_pause: Duration,
    think_ms: u64,
    expect_cut: bool,
}

impl Behaviour {
    fn new(a: &Args) -> Behaviour {
        Behaviour {
            verify: a.verify,
            expect_len: a.expect_len,
            abort_after: a.abort_after,
            abort_upload_after: a.abort_upload_after,
            read_chunk: a.read_chunk,
            read_pause: Duration::from_millis(a.read_pause_ms),
            think_ms: a.think_ms,
            expect_cut: a.expect_cut,
        }
    }
}

enum Outcome {
    Done {
        status: u16,
        keep_alive: bool,
        bytes: u64,
        /// A body byte or the length differed from what `--verify` expects.
        mismatch: bool,
    },
    /// We hung up on purpose (`--abort-after`, `--abort-upload-after`).
    Aborted,
}

/// What one response's reader has seen, kept when it fails midway.
#[derive(Default)]
struct Progress {
    head_seen: bool,
    status: u16,
    /// Body bytes received so far.
    offset: u64,
    mismatch: bool,
}

impl Progress {
    /// Counts (and with --verify checks) the next piece of a body.
    fn body(&mut self, data: &[u8], verify: bool) {
        if verify && (200..300).contains(&self.status) && !self.mismatch {
            let at = self.offset;
            self.mismatch = data
                .iter()
                .enumerate()
                .any(|(i, &b)| b != pattern_byte(at + i as u64));
        }
        self.offset += data.len() as u64;
    }
}

#[allow(clippy::too_many_arguments)]
async fn conn_loop(
    mut stream: Option<TcpStream>,
    addr: SocketAddr,
    shared: Rc<RefCell<Shared>>,
    head: Arc<[u8]>,
    body: Arc<[u8]>,
    deadline: Instant,
    timeout: Duration,
    how: Rc<Behaviour>,
    mut seed: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        if !first && how.think_ms > 0 {
            // xorshift64: a cheap, reproducible jitter so connections don't move in lockstep.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            tokio::time::sleep(Duration::from_millis(seed % (2 * how.think_ms + 1))).await;
        }
        first = false;
        if Instant::now() >= deadline {
            return;
        }
        {
            let mut s = shared.borrow_mut();
            match &mut s.budget {
                Some(0) => return,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        let mut conn = match stream.take() {
            Some(c) => c,
            None => match connect(addr).await {
                Ok(c) => c,
                Err(_) => {
                    shared.borrow_mut().counts.connect_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t0 = Instant::now();
        let mut progress = Progress::default();
        let res = tokio::time::timeout(
            timeout,
            exchange(&mut conn, &head, &body, &mut buf, &how, &mut progress),
        )
        .await;
        let now = Instant::now();
        let mut s = shared.borrow_mut();
        match res {
            Ok(Ok(Outcome::Aborted)) => {
                s.counts.aborted += 1;
                s.counts.bytes += progress.offset;
                s.last_done = s.last_done.max(now);
            }
            Ok(Ok(Outcome::Done {
                status,
                keep_alive,
                bytes,
                mismatch,
            })) => {
                let us = now.duration_since(t0).as_micros().max(1) as u64;
                s.hist.saturating_record(us);
                let ok = (200..300).contains(&status);
                if how.expect_cut && (ok || status == 502) {
                    // A complete 2xx is a body the backend never sent.
                    if ok {
                        s.counts.mismatches += 1;
                    } else {
                        s.counts.cut += 1;
                    }
                } else if ok {
                    s.counts.ok += 1;
                } else {
                    s.counts.non2xx += 1;
                    if how.verify {
                        s.report(format_args!("status {status} after {bytes} body bytes"));
                    }
                }
                if mismatch {
                    s.counts.mismatches += 1;
                    s.report(format_args!(
                        "status {status}: body differs ({bytes} bytes)"
                    ));
                }
                s.counts.bytes += bytes;
                s.last_done = s.last_done.max(now);
                let since = now.saturating_duration_since(s.start);
                if let Some((a, b)) = s.steady {
                    if since >= a && since < b {
                        s.steady_done += 1;
                    }
                }
                let sec = since.as_secs() as usize;
                if s.per_s.len() <= sec {
                    s.per_s.resize(sec + 1, 0);
                }
                s.per_s[sec] += 1;
                if keep_alive {
                    stream = Some(conn);
                }
            }
            Ok(Err(_)) if how.expect_cut && progress.head_seen => {
                s.counts.cut += 1;
                s.last_done = s.last_done.max(now);
            }
            Ok(Err(e)) => {
                s.counts.errors += 1;
                s.last_done = s.last_done.max(now);
                let head = if progress.head_seen {
                    "after"
                } else {
                    "before"
                };
                s.report(format_args!(
                    "error {head} the head (status {}, {} body bytes): {e}",
                    progress.status, progress.offset
                ));
            }
            Err(_) => {
                s.counts.errors += 1;
                s.counts.timeouts += 1;
                s.last_done = s.last_done.max(now);
            }
        }
    }
}

/// One request/response exchange; the writer and reader run concurrently.
async fn exchange(
    conn: &mut TcpStream,
    head: &[u8],
    body: &[u8],
    buf: &mut [u8],
    how: &Behaviour,
    progress: &mut Progress,
) -> io::Result<Outcome> {
    if let Some(n) = how.abort_upload_after {
        conn.write_all(head).await?;
        conn.write_all(&body[..n.min(body.len())]).await?;
        // Long enough for the proxy to be relaying the body, then hang up.
        tokio::time::sleep(Duration::from_millis(2)).await;
        return Ok(Outcome::Aborted);
    }
    let (mut r, mut w) = conn.split();
    let write = async {
        if body.is_empty() {
            w.write_all(head).await
        } else {
            w.write_all(head).await?;
            w.write_all(body).await
        }
    };
    let read = read_response(&mut r, buf, how, progress);
    let ((), outcome) = tokio::try_join!(write, read)?;
    Ok(outcome)
}

/// One read, as small and slow as `--read-chunk`/`--read-pause-ms` ask.
async fn read_some<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    how: &Behaviour,
) -> io::Result<usize> {
    let n = if how.read_chunk > 0 {
        let k = how.read_chunk.min(buf.len());
        r.read(&mut buf[..k]).await?
    } else {
        r.read(buf).await?
    };
    if !how.read_pause.is_zero() {
        tokio::time::sleep(how.read_pause).await;
    }
    Ok(n)
}

fn bad(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads one whole response; any bytes after it are a protocol error (we never pipeline).
async fn read_response<R: AsyncReadExt + Unpin>(
    r: &mut R,
    buf: &mut [u8],
    how: &Behaviour,
    p: &mut Progress,
) -> io::Result<Outcome> {
    let mut end = 0;
    // Head.
    let (status, keep_alive, framing, head_len) = loop {
        if end == buf.len() {
            return Err(bad("response head too large"));
        }
        let n = read_some(r, &mut buf[end..], how).await?;
        if n == 0 {
            return Err(bad("closed before response head"));
        }
        end += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let mut keep_alive = resp.version == Some(1);
                let mut framing = Framing::Close;
                for h in resp.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let v = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or_else(|| bad("bad content-length"))?;
                        framing = Framing::Length(v);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        framing = Framing::Chunked;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        let v = h.value.to_ascii_lowercase();
                        if v.windows(5).any(|w| w == b"close") {
                            keep_alive = false;
                        } else if v.windows(10).any(|w| w == b"keep-alive") {
                            keep_alive = true;
                        }
                    }
                }
                if status == 204 || status == 304 || (100..200).contains(&status) {
                    framing = Framing::Length(0);
                }
                if (100..200).contains(&status) {
                    // Interim response (e.g. 100 Continue): drop it and read on.
                    buf.copy_within(len..end, 0);
                    end -= len;
                    continue;
                }
                p.head_seen = true;
                p.status = status;
                break (status, keep_alive, framing, len);
            }
            Ok(httparse::Status::Partial) => continue,
            Err(_) => return Err(bad("malformed response head")),
        }
    };
    let verify = how.verify;
    let aborting = |p: &Progress| how.abort_after.is_some_and(|a| p.offset >= a);
    // The end of a body: with --verify, its length is checked too.
    let done = |p: &mut Progress, keep_alive: bool| {
        if verify && (200..300).contains(&status) && how.expect_len.is_some_and(|n| n != p.offset) {
            p.mismatch = true;
        }
        Outcome::Done {
            status,
            keep_alive,
            bytes: p.offset,
            mismatch: p.mismatch,
        }
    };
    let mut have = end - head_len; // body bytes already in buf[head_len..end]
    match framing {
        Framing::Length(n) => {
            if have as u64 > n {
                return Err(bad("bytes after the response"));
            }
            let mut left = n - have as u64;
            p.body(&buf[head_len..end], verify);
            while left > 0 {
                if aborting(p) {
                    return Ok(Outcome::Aborted);
                }
                let want = (left as usize).min(buf.len());
                let k = read_some(r, &mut buf[..want], how).await?;
                if k == 0 {
                    return Err(bad("closed mid-body"));
                }
                left -= k as u64;
                p.body(&buf[..k], verify);
            }
            Ok(done(p, keep_alive))
        }
        Framing::Close => {
            p.body(&buf[head_len..end], verify);
            loop {
                if aborting(p) {
                    return Ok(Outcome::Aborted);
                }
                let k = read_some(r, buf, how).await?;
                if k == 0 {
                    return Ok(done(p, false));
                }
                p.body(&buf[..k], verify);
            }
        }
        Framing::Chunked => {
            // Move the leftover to the front and decode incrementally.
            buf.copy_within(head_len..end, 0);
            let mut pos = 0; // parse position
            let mut chunk_left: u64 = 0; // data bytes still to skip (+2 for CRLF handled below)
            let mut state = ChunkState::Size;
            loop {
                match state {
                    ChunkState::Data => {
                        let avail = (have - pos) as u64;
                        let take = avail.min(chunk_left);
                        p.body(&buf[pos..pos + take as usize], verify);
                        pos += take as usize;
                        chunk_left -= take;
                        if aborting(p) {
                            return Ok(Outcome::Aborted);
                        }
                        if chunk_left == 0 {
                            state = ChunkState::DataCrlf;
                            continue;
                        }
                    }
                    ChunkState::DataCrlf | ChunkState::Size | ChunkState::Trailer => {
                        if let Some(i) = buf[pos..have].windows(2).position(|w| w == b"\r\n") {
                            let line = &buf[pos..pos + i];
                            pos += i + 2;
                            match state {
                                ChunkState::DataCrlf => {
                                    if !line.is_empty() {
                                        return Err(bad("chunk data not followed by CRLF"));
                                    }
                                    state = ChunkState::Size;
                                }
                                ChunkState::Size => {
                                    let digits = line.split(|&c| c == b';').next().unwrap_or(b"");
                                    let text = std::str::from_utf8(digits)
                                        .map_err(|_| bad("bad chunk size"))?;
                                    let n = u64::from_str_radix(text.trim(), 16)
                                        .map_err(|_| bad("bad chunk size"))?;
                                    if n == 0 {
                                        state = ChunkState::Trailer;
                                    } else {
                                        chunk_left = n;
                                        state = ChunkState::Data;
                                    }
                                }
                                _ => {
                                    if line.is_empty() {
                                        if pos != have {
                                            return Err(bad("bytes after the response"));
                                        }
                                        return Ok(done(p, keep_alive));
                                    }
                                }
                            }
                            continue;
                        }
                    }
                }
                // Need more bytes: keep the unparsed tail, refill.
                buf.copy_within(pos..have, 0);
                have -= pos;
                pos = 0;
                if have == buf.len() {
                    return Err(bad("chunk line too long"));
                }
                let k = read_some(r, &mut buf[have..], how).await?;
                if k == 0 {
                    return Err(bad("closed mid-body"));
                }
                have += k;
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

#[derive(Clone, Copy)]
enum ChunkState {
    Size,
    Data,
    DataCrlf,
    Trailer,
}

/// This process's user+system CPU time in seconds.
fn cpu_time() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises RLIMIT_NOFILE to at least `want` (up to the hard limit, which root may raise too).
fn raise_nofile(want: u64) {
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur >= want {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: want.max(lim.rlim_cur),
            rlim_max: want.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            if lim.rlim_cur < want {
                eprintln!(
                    "loadgen: warning: RLIMIT_NOFILE is {}, below the {want} this run needs",
                    lim.rlim_cur
                );
            }
        }
    }
}
