//! `allocs`: heap allocations per keep-alive request in corelay's steady state.
//!
//! A counting global allocator wraps the system allocator. corelay runs in this process
//! (`corelay::run`, one shard on cpu 0); the origin runs as a separate process (the `origin`
//! binary next to this one), so its allocations don't count. The client is a blocking
//! socket loop on the main thread with fixed buffers, and its thread is excluded from the
//! count anyway. After a warm-up, N keep-alive requests are sent one after another on one
//! connection; allocations (alloc, alloc_zeroed and realloc calls) on every other thread,
//! i.e. corelay's, are divided by N.
//!
//! Usage: `allocs [--requests N] [--warmup N] [--backtraces N] [-- extra corelay flags]`.
//! `--backtraces N` prints where the first N counted allocations of each measured window
//! come from, to find them.
//! The target is 0 allocations per request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Backtraces still to print in this window (`--backtraces`).
static BACKTRACES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the client thread: its allocations are not corelay's.
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread captures a backtrace (which allocates itself).
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if !EXCLUDED.with(|e| e.get()) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
        if BACKTRACES.load(Ordering::Relaxed) > 0 && !TRACING.with(|t| t.replace(true)) {
            if BACKTRACES.fetch_sub(1, Ordering::Relaxed) > 0 {
                let bt = std::backtrace::Backtrace::force_capture();
                eprintln!("allocs: allocation of {size} bytes at\n{bt}");
            }
            TRACING.with(|t| t.set(false));
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut requests: u64 = 20_000;
    let mut warmup: u64 = 2_000;
    let mut backtraces: u64 = 0;
    let mut extra: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--requests" => {
                requests = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--requests N")
            }
            "--warmup" => warmup = it.next().and_then(|v| v.parse().ok()).expect("--warmup N"),
            "--backtraces" => {
                backtraces = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--backtraces N")
            }
            "--" => extra.extend(it.by_ref()),
            "-h" | "--help" => {
                println!("usage: allocs [--requests N] [--warmup N] [--backtraces N] [-- extra corelay flags]");
                return;
            }
            other => {
                eprintln!("allocs: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    EXCLUDED.with(|e| e.set(true));
    raise_memlock();

    // The origin, as its own process (on cpu 1 where there is one).
    let origin_bin = std::env::current_exe().unwrap().with_file_name("origin");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut cmd = if cpus > 1 && which("taskset") {
        let mut c = Command::new("taskset");
        c.arg("-c").arg((cpus - 1).to_string()).arg(&origin_bin);
        c
    } else {
        Command::new(&origin_bin)
    };
    let mut origin = cmd
        .args(["--listen", "127.0.0.1:0", "--cores", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", origin_bin.display()));
    let mut line = String::new();
    BufReader::new(origin.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let origin_addr = line.trim().rsplit(' ').next().unwrap().to_string();

    let mut args: Vec<String> = [
        "corelay",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &origin_addr,
        "--cpus",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra);
    let config = match corelay::config::parse_args(args.clone()) {
        Ok(corelay::config::Action::Run(c)) => *c,
        Ok(_) => {
            eprintln!("allocs: unexpected arguments {args:?}");
            origin.kill().ok();
            std::process::exit(2);
        }
        Err(t) => {
            eprintln!("allocs: {t}");
            origin.kill().ok();
            std::process::exit(2);
        }
    };
    let running = corelay::run(config).expect("corelay::run");
    let addr = running.server.local_addr();
    println!(
        "allocs: corelay in-process on {addr} -> origin {origin_addr}; flags: {:?}",
        &args[1..]
    );

    let body = vec![b'x'; 16 * 1024];
    let cases: [(&str, String, &[u8]); 3] = [
        (
            "GET /small (38 B)",
            "GET /small HTTP/1.1\r\nHost: bench\r\n\r\n".into(),
            &[],
        ),
        (
            "GET /big/102400",
            "GET /big/102400 HTTP/1.1\r\nHost: bench\r\n\r\n".into(),
            &[],
        ),
        (
            "POST /echo 16 KiB (chunked response)",
            format!(
                "POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            &body,
        ),
    ];
    let mut buf = vec![0u8; 256 * 1024];
    let mut worst = 0.0f64;
    for (name, head, body) in cases.iter() {
        let mut s = TcpStream::connect(addr).expect("connect corelay");
        s.set_nodelay(true).ok();
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        for _ in 0..warmup {
            exchange(&mut s, head.as_bytes(), body, &mut buf);
        }
        std::thread::sleep(Duration::from_millis(50));
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        BACKTRACES.store(backtraces, Ordering::Relaxed);
        for _ in 0..requests {
            exchange(&mut s, head.as_bytes(), body, &mut buf);
        }
        let (a1, b1) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        BACKTRACES.store(0, Ordering::Relaxed);
        let per = (a1 - a0) as f64 / requests as f64;
        worst = worst.max(per);
        println!(
            "allocs: {name:<38} {requests} keep-alive requests after {warmup} warm-up: {} allocations ({:.3} per request, {:.0} bytes per request)",
            a1 - a0,
            per,
            (b1 - b0) as f64 / requests as f64
        );
    }
    println!("allocs: worst case {worst:.3} heap allocations per keep-alive request (target 0)");

    // The same under load: 64 connections kept busy by 4 client threads. With requests in
    // flight the shard rarely parks, so what remains is the request path's own allocations
    // plus glommio's per-park ones (it allocates timer sources each time the thread parks).
    let engine = running.server.shards()[0].engine.clone();
    let parks = || engine.parks.load(Ordering::Relaxed);
    let per_thread = requests / 4;
    let warm = warmup / 4 + 1;
    // Connections are opened and warmed up before the window (their one-time allocations,
    // task and parse state, are per connection, not per request); both barriers bracket it.
    let start = std::sync::Arc::new(std::sync::Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                EXCLUDED.with(|e| e.set(true));
                let head = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n";
                let mut conns: Vec<TcpStream> = (0..16)
                    .map(|_| {
                        let s = TcpStream::connect(addr).expect("connect corelay");
                        s.set_nodelay(true).ok();
                        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        s
                    })
                    .collect();
                let mut buf = vec![0u8; 64 * 1024];
                let mut round = |n: u64| {
                    let mut done = 0;
                    while done < n {
                        for c in conns.iter_mut() {
                            c.write_all(head).expect("write");
                        }
                        for c in conns.iter_mut() {
                            read_response(c, &mut buf);
                        }
                        done += 16;
                    }
                    done
                };
                round(warm);
                start.wait();
                start.wait();
                round(per_thread)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(50));
    let (a0, p0) = (ALLOCS.load(Ordering::Relaxed), parks());
    BACKTRACES.store(backtraces, Ordering::Relaxed);
    start.wait();
    let done: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    BACKTRACES.store(0, Ordering::Relaxed);
    let (a1, p1) = (ALLOCS.load(Ordering::Relaxed), parks());
    println!(
        "allocs: GET /small at 64 connections      {done} requests: {} allocations ({:.3} per request), {} parks ({:.4} per request, {:.1} allocations per park)",
        a1 - a0,
        (a1 - a0) as f64 / done as f64,
        p1 - p0,
        (p1 - p0) as f64 / done as f64,
        (a1 - a0) as f64 / (p1 - p0).max(1) as f64,
    );
    origin.kill().ok();
    origin.wait().ok();
    // corelay's shards keep running; exiting the process ends them.
    std::process::exit(0);
}

/// One request and its whole response (Content-Length or chunked), fixed buffers only.
fn exchange(s: &mut TcpStream, head: &[u8], body: &[u8], buf: &mut [u8]) {
    s.write_all(head).expect("write head");
    if !body.is_empty() {
        s.write_all(body).expect("write body");
    }
    read_response(s, buf);
}

/// Reads one 200 response (Content-Length or chunked) into `buf`'s space.
fn read_response(s: &mut TcpStream, buf: &mut [u8]) {
    let mut end = 0;
    loop {
        let n = s.read(&mut buf[end..]).expect("read");
        assert!(n > 0, "corelay closed the connection");
        end += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = resp.parse(&buf[..end]) else {
            continue;
        };
        assert_eq!(resp.code, Some(200), "unexpected status");
        let cl = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            });
        match cl {
            Some(cl) => {
                let mut have = end - len;
                while have < cl {
                    let n = s.read(&mut buf[..]).expect("read body");
                    assert!(n > 0, "closed mid-body");
                    have += n;
                }
            }
            None => {
                // Chunked: the response ends with the last chunk and an empty trailer section.
                let mut tail = [0u8; 7];
                let mut tl = 0;
                let push = |bytes: &[u8], tail: &mut [u8; 7], tl: &mut usize| {
                    for &b in bytes {
                        if *tl == 7 {
                            tail.copy_within(1.., 0);
                            tail[6] = b;
                        } else {
                            tail[*tl] = b;
                            *tl += 1;
                        }
                    }
                };
                let (h, rest) = buf.split_at_mut(len);
                let _ = h;
                push(&rest[..end - len], &mut tail, &mut tl);
                while &tail[..tl.min(7)] != b"\r\n0\r\n\r\n" {
                    let n = s.read(&mut buf[..]).expect("read chunked body");
                    assert!(n > 0, "closed mid-body");
                    push(&buf[..n], &mut tail, &mut tl);
                }
            }
        }
        return;
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// glommio registers I/O memory with io_uring, which counts against RLIMIT_MEMLOCK.
fn raise_memlock() {
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
            let mut cur: libc::rlimit = std::mem::zeroed();
            libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
        }
    }
}
