//! Shared helpers for corelay's black-box integration tests.
//!
//! Everything here talks to real sockets on 127.0.0.1 and uses std only:
//! * [`Corelay`] spawns the proxy binary and kills it (SIGKILL) on drop.
//! * [`Backend`] is a scripted origin server: it accepts connections, records
//!   every byte it receives per connection and answers through a closure.
//! * [`Wire`] is a small buffered HTTP/1.1 reader (heads, Content-Length,
//!   chunked and close-delimited bodies) used by both the client and the
//!   backend side, with strict chunked parsing.
//! * [`Client`] is a raw client connection with read timeouts.
//! * metrics helpers scrape `GET /metrics`.
//!
//! Every blocking read has a timeout so a hung proxy fails a test instead of
//! hanging CI.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Read/write timeout of test clients.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Read/write timeout of backend connections (a backend thread never blocks forever).
pub const BACKEND_IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for `corelay: ready`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

mod sys {
    use std::ffi::c_void;
    extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn setsockopt(
            fd: i32,
            level: i32,
            optname: i32,
            optval: *const c_void,
            optlen: u32,
        ) -> i32;
    }
    #[repr(C)]
    pub struct Linger {
        pub l_onoff: i32,
        pub l_linger: i32,
    }
    pub const SOL_SOCKET: i32 = 1;
    pub const SO_LINGER: i32 = 13;
}

/// Sends `sig` to `pid`.
pub fn send_signal(pid: u32, sig: i32) {
    let rc = unsafe { sys::kill(pid as i32, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        io::Error::last_os_error()
    );
}

/// Closes `stream` with a TCP RST (SO_LINGER with a zero timeout).
pub fn reset_connection(stream: TcpStream) {
    use std::os::unix::io::AsRawFd;
    let l = sys::Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        sys::setsockopt(
            stream.as_raw_fd(),
            sys::SOL_SOCKET,
            sys::SO_LINGER,
            &l as *const sys::Linger as *const std::ffi::c_void,
            std::mem::size_of::<sys::Linger>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        io::Error::last_os_error()
    );
    drop(stream);
}

// ---------------------------------------------------------------------------
// corelay process
// ---------------------------------------------------------------------------

pub fn corelay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_corelay")
}

/// A running corelay process. SIGKILLed on drop unless it already exited.
pub struct Corelay {
    child: Child,
    exited: Option<ExitStatus>,
    /// Address of shard 0's listener.
    pub addr: SocketAddr,
    /// Listener address of every shard, in shard order.
    pub shard_addrs: Vec<SocketAddr>,
    /// `(shard, cpu)` of every shard line.
    pub shards: Vec<(usize, usize)>,
    pub metrics_addr: Option<SocketAddr>,
    /// Every stdout line up to and including `corelay: ready`.
    pub startup_lines: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl Corelay {
    /// Starts corelay with `--listen 127.0.0.1:0`, `--cores 1` (unless `extra`
    /// has `--cores` or `--cpus`), one `--backend` per entry and `extra`.
    pub fn start(backends: &[SocketAddr], extra: &[&str]) -> Corelay {
        let mut args: Vec<String> = vec!["--listen".into(), "127.0.0.1:0".into()];
        if !extra.iter().any(|a| *a == "--cores" || *a == "--cpus") {
            args.push("--cores".into());
            args.push("1".into());
        }
        for b in backends {
            args.push("--backend".into());
            args.push(b.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Corelay::start_with_args(&args)
    }

    /// Like [`Corelay::start`] with `--metrics-listen 127.0.0.1:0` added.
    pub fn start_with_metrics(backends: &[SocketAddr], extra: &[&str]) -> Corelay {
        let mut e: Vec<&str> = extra.to_vec();
        e.push("--metrics-listen");
        e.push("127.0.0.1:0");
        let c = Corelay::start(backends, &e);
        assert!(
            c.metrics_addr.is_some(),
            "no metrics line in {:?}",
            c.startup_lines
        );
        c
    }

    /// Unless `args` say otherwise, with `--backend-probe=false`: the start-up probe's
    /// connection would be one more accepted connection for every scripted [`Backend`] and
    /// every count of backend connections (tests/backend_warnings.rs turns it on).
    pub fn start_with_args(args: &[String]) -> Corelay {
        let mut args = args.to_vec();
        if !args.iter().any(|a| a.starts_with("--backend-probe")) {
            args.push("--backend-probe=false".into());
        }
        let args = &args[..];
        let mut child = Command::new(corelay_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corelay");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = {
            let pipe = child.stderr.take().unwrap();
            let buf = stderr.clone();
            thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => buf.lock().unwrap().push_str(&line),
                    }
                }
            })
        };
        let (tx, rx) = mpsc::channel::<Option<String>>();
        {
            let pipe = child.stdout.take().unwrap();
            // Keeps draining stdout for the whole life of the process.
            thread::spawn(move || {
                let r = BufReader::new(pipe);
                for line in r.lines() {
                    match line {
                        Ok(l) => {
                            let _ = tx.send(Some(l));
                        }
                        Err(_) => break,
                    }
                }
                let _ = tx.send(None);
            });
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut lines = Vec::new();
        let mut me = Corelay {
            child,
            exited: None,
            addr: "0.0.0.0:0".parse().unwrap(),
            shard_addrs: Vec::new(),
            shards: Vec::new(),
            metrics_addr: None,
            startup_lines: Vec::new(),
            stderr,
            stderr_thread: Some(stderr_thread),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(l)) => {
                    let done = l.trim_end() == "corelay: ready";
                    lines.push(l);
                    if done {
                        break;
                    }
                }
                Ok(None) => {
                    let st = me.wait_exit(Duration::from_secs(5));
                    panic!(
                        "corelay {:?} closed stdout before `corelay: ready` (exit {:?}); stdout {:?}; stderr:\n{}",
                        args,
                        st,
                        lines,
                        me.stderr()
                    );
                }
                Err(_) => {
                    me.kill();
                    panic!(
                        "corelay {:?} did not print `corelay: ready` within {:?}; stdout {:?}; stderr:\n{}",
                        args,
                        STARTUP_TIMEOUT,
                        lines,
                        me.stderr()
                    );
                }
            }
        }
        for l in &lines {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["corelay:", "metrics", "on", a] => {
                    me.metrics_addr = Some(
                        a.parse()
                            .unwrap_or_else(|_| panic!("bad metrics line {l:?}")),
                    )
                }
                ["corelay:", "shard", i, "on", "cpu", c, "listening", "on", a] => {
                    me.shards.push((
                        i.parse().unwrap_or_else(|_| panic!("bad shard line {l:?}")),
                        c.parse().unwrap_or_else(|_| panic!("bad shard line {l:?}")),
                    ));
                    me.shard_addrs
                        .push(a.parse().unwrap_or_else(|_| panic!("bad shard line {l:?}")));
                }
                _ => {}
            }
        }
        assert!(
            !me.shard_addrs.is_empty(),
            "no shard line in corelay stdout {lines:?}"
        );
        me.addr = me.shard_addrs[0];
        me.startup_lines = lines;
        me
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        send_signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(st);
                if let Some(t) = self.stderr_thread.take() {
                    let _ = t.join();
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap. All of corelay's sockets are closed when this returns.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.exited = Some(st);
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sum of a metric over all label sets (needs `--metrics-listen`).
    pub fn metric(&self, name: &str) -> f64 {
        metric_sum(
            &scrape_metrics(self.metrics_addr.expect("started without --metrics-listen")),
            name,
        )
    }
}

impl Drop for Corelay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs corelay with `args`, expecting it to exit by itself within 10 s.
/// Returns (status, stdout, stderr).
pub fn run_corelay_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(corelay_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corelay");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "corelay {:?} did not exit within 10 s; stdout {:?}; stderr {:?}",
                args,
                out_t.join().unwrap(),
                err_t.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    (status, out_t.join().unwrap(), err_t.join().unwrap())
}

// ---------------------------------------------------------------------------
// HTTP/1.1 wire reading
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Clean EOF before any byte of a new message.
    Eof,
    /// EOF in the middle of a message; the number of bytes of that message
    /// already received (head and body bytes read so far).
    Truncated(usize),
    /// ECONNRESET / EPIPE / ECONNABORTED.
    Reset,
    /// The read timeout expired.
    Timeout,
    Io(String),
    Malformed(String),
}

impl WireError {
    /// The peer closed or reset the connection (not a timeout, not a parse error).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            WireError::Eof | WireError::Truncated(_) | WireError::Reset
        )
    }
}

fn map_io(e: io::Error) -> WireError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => WireError::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => WireError::Reset,
        _ => WireError::Io(e.to_string()),
    }
}

pub type Headers = Vec<(String, String)>;

fn hdr<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn hdr_all<'a>(h: &'a Headers, name: &str) -> Vec<&'a str> {
    h.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// All comma-separated list elements of every `name` field, trimmed.
fn hdr_list(h: &Headers, name: &str) -> Vec<String> {
    hdr_all(h, name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses the field lines of a head (everything after the start line).
fn parse_field_lines(lines: &[&[u8]]) -> Result<Headers, WireError> {
    let mut out = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(WireError::Malformed(format!(
                "obs-fold line {:?}",
                String::from_utf8_lossy(line)
            )));
        }
        let colon = line.iter().position(|&c| c == b':').ok_or_else(|| {
            WireError::Malformed(format!(
                "field line without colon {:?}",
                String::from_utf8_lossy(line)
            ))
        })?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(WireError::Malformed(format!(
                "bad field name {:?}",
                String::from_utf8_lossy(line)
            )));
        }
        let value = String::from_utf8_lossy(&line[colon + 1..]);
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            value.trim_matches(|c| c == ' ' || c == '\t').to_string(),
        ));
    }
    Ok(out)
}

/// Splits a head (ending in CRLFCRLF) into its start line and field lines.
/// Every line must end in CRLF.
fn split_head(head: &[u8]) -> Result<(String, Headers), WireError> {
    let body = head
        .strip_suffix(b"\r\n\r\n")
        .ok_or_else(|| WireError::Malformed("head not CRLFCRLF-terminated".into()))?;
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\n' {
            if i == 0 || body[i - 1] != b'\r' {
                return Err(WireError::Malformed("bare LF in head".into()));
            }
            lines.push(&body[start..i - 1]);
            start = i + 1;
        }
        i += 1;
    }
    lines.push(&body[start..]);
    let start_line = String::from_utf8_lossy(lines[0]).into_owned();
    let headers = parse_field_lines(&lines[1..])?;
    Ok((start_line, headers))
}

/// Parses a chunk-size line (without its CRLF) strictly by RFC 9112 7.1:
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
pub fn parse_chunk_size_line(line: &[u8]) -> Result<u64, String> {
    let bad = || format!("bad chunk-size line {:?}", String::from_utf8_lossy(line));
    let ndig = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if ndig == 0 || ndig > 15 {
        return Err(bad());
    }
    let size =
        u64::from_str_radix(std::str::from_utf8(&line[..ndig]).unwrap(), 16).map_err(|_| bad())?;
    let mut i = ndig;
    let ws = |i: &mut usize| {
        while *i < line.len() && (line[*i] == b' ' || line[*i] == b'\t') {
            *i += 1;
        }
    };
    while i < line.len() {
        ws(&mut i);
        if i >= line.len() || line[i] != b';' {
            return Err(bad());
        }
        i += 1;
        ws(&mut i);
        let s = i;
        while i < line.len() && is_tchar(line[i]) {
            i += 1;
        }
        if i == s {
            return Err(bad());
        }
        let save = i;
        ws(&mut i);
        if i < line.len() && line[i] == b'=' {
            i += 1;
            ws(&mut i);
            if i < line.len() && line[i] == b'"' {
                i += 1;
                loop {
                    if i >= line.len() {
                        return Err(bad());
                    }
                    match line[i] {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            if i + 1 >= line.len() {
                                return Err(bad());
                            }
                            let c = line[i + 1];
                            if c != b'\t' && (c < 0x20 || c == 0x7f) {
                                return Err(bad());
                            }
                            i += 2;
                        }
                        c if c == b'\t' || (c >= 0x20 && c != 0x7f) => i += 1,
                        _ => return Err(bad()),
                    }
                }
            } else {
                let s = i;
                while i < line.len() && is_tchar(line[i]) {
                    i += 1;
                }
                if i == s {
                    return Err(bad());
                }
            }
        } else {
            i = save;
        }
    }
    Ok(size)
}

/// Result of strictly decoding a chunked body from a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// A complete, validly terminated chunked body: data, trailers, bytes used.
    Complete {
        body: Vec<u8>,
        trailers: Headers,
        consumed: usize,
    },
    /// Valid so far but not terminated.
    Incomplete,
    Invalid(String),
}

/// Strictly decodes a chunked body at the start of `b`.
pub fn decode_chunked(b: &[u8]) -> Chunked {
    let mut pos = 0;
    let mut body = Vec::new();
    let line_at = |pos: usize| -> Result<Option<(usize, usize)>, String> {
        // returns (line_end_exclusive_of_crlf, next_pos)
        match b[pos..].iter().position(|&c| c == b'\n') {
            None => Ok(None),
            Some(off) => {
                let lf = pos + off;
                if lf == pos || b[lf - 1] != b'\r' {
                    return Err(format!("bare LF at offset {lf}"));
                }
                Ok(Some((lf - 1, lf + 1)))
            }
        }
    };
    loop {
        let (end, next) = match line_at(pos) {
            Ok(Some(x)) => x,
            Ok(None) => return Chunked::Incomplete,
            Err(e) => return Chunked::Invalid(e),
        };
        let size = match parse_chunk_size_line(&b[pos..end]) {
            Ok(s) => s as usize,
            Err(e) => return Chunked::Invalid(e),
        };
        pos = next;
        if size == 0 {
            let mut trailer_lines: Vec<&[u8]> = Vec::new();
            loop {
                let (end, next) = match line_at(pos) {
                    Ok(Some(x)) => x,
                    Ok(None) => return Chunked::Incomplete,
                    Err(e) => return Chunked::Invalid(e),
                };
                if end == pos {
                    let trailers = match parse_field_lines(&trailer_lines) {
                        Ok(t) => t,
                        Err(e) => return Chunked::Invalid(format!("{e:?}")),
                    };
                    return Chunked::Complete {
                        body,
                        trailers,
                        consumed: next,
                    };
                }
                trailer_lines.push(&b[pos..end]);
                pos = next;
            }
        }
        if b.len() < pos + size + 2 {
            if b.len() > pos + size && b[pos + size] != b'\r' {
                return Chunked::Invalid("chunk data not followed by CRLF".into());
            }
            return Chunked::Incomplete;
        }
        body.extend_from_slice(&b[pos..pos + size]);
        if &b[pos + size..pos + size + 2] != b"\r\n" {
            return Chunked::Invalid("chunk data not followed by CRLF".into());
        }
        pos += size + 2;
    }
}

/// Encodes `body` as chunked with chunks of at most `chunk` bytes.
pub fn chunk_encode(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 8);
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304) or none declared in a request.
    NoBody,
    Length(usize),
    Chunked,
    Close,
}

#[derive(Debug, Clone)]
pub struct Request {
    /// Index of the backend connection it arrived on.
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    pub request_line: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub framing: Framing,
    pub trailers: Headers,
    pub raw_head: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        hdr(&self.headers, name)
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        hdr_all(&self.headers, name)
    }
    pub fn header_list(&self, name: &str) -> Vec<String> {
        hdr_list(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub status_line: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub framing: Framing,
    pub trailers: Headers,
    pub raw_head: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        hdr(&self.headers, name)
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        hdr_all(&self.headers, name)
    }
    pub fn header_list(&self, name: &str) -> Vec<String> {
        hdr_list(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
    /// `Connection` contains the `close` option.
    pub fn conn_close(&self) -> bool {
        self.header_list("connection")
            .iter()
            .any(|t| t.eq_ignore_ascii_case("close"))
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A buffered reader/writer over a TcpStream, optionally recording every
/// byte read into a shared buffer.
pub struct Wire {
    pub stream: TcpStream,
    buf: Vec<u8>,
    record: Option<Arc<Mutex<Vec<u8>>>>,
}

fn find(h: &[u8], n: &[u8], from: usize) -> Option<usize> {
    if h.len() < n.len() {
        return None;
    }
    (from..=h.len() - n.len()).find(|&i| &h[i..i + n.len()] == n)
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            record: None,
        }
    }

    pub fn recording(stream: TcpStream, record: Arc<Mutex<Vec<u8>>>) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            record: Some(record),
        }
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once more from the socket. `Err(Eof)` on EOF.
    fn fill(&mut self) -> Result<usize, WireError> {
        let mut tmp = vec![0u8; 65536];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(WireError::Eof),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    if let Some(r) = &self.record {
                        r.lock().unwrap().extend_from_slice(&tmp[..n]);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(map_io(e)),
            }
        }
    }

    fn fill_in_message(&mut self, got: usize) -> Result<(), WireError> {
        match self.fill() {
            Ok(_) => Ok(()),
            Err(WireError::Eof) => Err(WireError::Truncated(got + self.buf.len())),
            Err(e) => Err(e),
        }
    }

    pub fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b)?;
        self.stream.flush()
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.stream.set_read_timeout(Some(d)).unwrap();
    }

    /// Reads a message head up to and including the empty line.
    pub fn read_head(&mut self, limit: usize) -> Result<Vec<u8>, WireError> {
        let mut scanned: usize = 0;
        loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n", scanned.saturating_sub(3)) {
                return Ok(self.buf.drain(..p + 4).collect());
            }
            scanned = self.buf.len();
            if self.buf.len() > limit {
                return Err(WireError::Malformed(format!(
                    "head larger than {limit} bytes"
                )));
            }
            match self.fill() {
                Ok(_) => {}
                Err(WireError::Eof) if self.buf.is_empty() => return Err(WireError::Eof),
                Err(WireError::Eof) => return Err(WireError::Truncated(self.buf.len())),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads exactly `n` bytes (part of a message of which `got` bytes were already read).
    pub fn read_n(&mut self, n: usize, got: usize) -> Result<Vec<u8>, WireError> {
        while self.buf.len() < n {
            self.fill_in_message(got)?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one CRLF-terminated line, returned without the CRLF. Bare LF is an error.
    fn read_crlf_line(&mut self, got: usize, limit: usize) -> Result<Vec<u8>, WireError> {
        let mut scanned: usize = 0;
        loop {
            if let Some(off) = self.buf[scanned..].iter().position(|&c| c == b'\n') {
                let lf = scanned + off;
                if lf == 0 || self.buf[lf - 1] != b'\r' {
                    return Err(WireError::Malformed("bare LF".into()));
                }
                let line: Vec<u8> = self.buf[..lf - 1].to_vec();
                self.buf.drain(..lf + 1);
                return Ok(line);
            }
            scanned = self.buf.len();
            if scanned > limit {
                return Err(WireError::Malformed("line too long".into()));
            }
            self.fill_in_message(got)?;
        }
    }

    /// Reads a chunked body strictly; returns (data, trailers).
    pub fn read_chunked(&mut self, got: usize) -> Result<(Vec<u8>, Headers), WireError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_crlf_line(got + body.len(), 65536)?;
            let size = parse_chunk_size_line(&line).map_err(WireError::Malformed)? as usize;
            if size == 0 {
                let mut lines = Vec::new();
                loop {
                    let l = self.read_crlf_line(got + body.len(), 65536)?;
                    if l.is_empty() {
                        break;
                    }
                    lines.push(l);
                }
                let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
                let trailers = parse_field_lines(&refs)?;
                return Ok((body, trailers));
            }
            let data = self.read_n(size, got + body.len())?;
            body.extend_from_slice(&data);
            let crlf = self.read_n(2, got + body.len())?;
            if crlf != b"\r\n" {
                return Err(WireError::Malformed(
                    "chunk data not followed by CRLF".into(),
                ));
            }
        }
    }

    /// Reads until EOF. Returns everything (buffered + new) on clean EOF,
    /// or the error together with what was received before it.
    pub fn read_to_eof(&mut self) -> Result<Vec<u8>, (WireError, Vec<u8>)> {
        loop {
            match self.fill() {
                Ok(_) => {}
                Err(WireError::Eof) => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => return Err((e, std::mem::take(&mut self.buf))),
            }
        }
    }

    /// Reads one request (backend side).
    pub fn read_request(&mut self) -> Result<Request, WireError> {
        let raw_head = self.read_head(1 << 20)?;
        let (line, headers) = split_head(&raw_head)?;
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != 3 {
            return Err(WireError::Malformed(format!("bad request line {line:?}")));
        }
        let te = hdr_list(&headers, "transfer-encoding");
        let cls = hdr_list(&headers, "content-length");
        let (framing, body, trailers) = if !te.is_empty() {
            if !te.last().unwrap().eq_ignore_ascii_case("chunked") {
                return Err(WireError::Malformed(format!("request TE {te:?}")));
            }
            let (b, t) = self.read_chunked(raw_head.len())?;
            (Framing::Chunked, b, t)
        } else if !cls.is_empty() {
            let n: usize = cls[0]
                .parse()
                .map_err(|_| WireError::Malformed(format!("CL {cls:?}")))?;
            if cls.iter().any(|c| *c != cls[0]) {
                return Err(WireError::Malformed(format!("CL {cls:?}")));
            }
            (
                Framing::Length(n),
                self.read_n(n, raw_head.len())?,
                Vec::new(),
            )
        } else {
            (Framing::NoBody, Vec::new(), Vec::new())
        };
        Ok(Request {
            conn: usize::MAX,
            method: parts[0].to_string(),
            target: parts[1].to_string(),
            version: parts[2].to_string(),
            request_line: line.clone(),
            headers,
            body,
            framing,
            trailers,
            raw_head,
        })
    }

    /// Reads just a response head (no body).
    pub fn read_response_head(&mut self) -> Result<Response, WireError> {
        let raw_head = self.read_head(1 << 20)?;
        let (line, headers) = split_head(&raw_head)?;
        let (version, rest) = line
            .split_once(' ')
            .ok_or_else(|| WireError::Malformed(format!("bad status line {line:?}")))?;
        let code = rest.get(..3).unwrap_or("");
        if !code.bytes().all(|c| c.is_ascii_digit())
            || code.len() != 3
            || !(rest.len() == 3 || rest.as_bytes()[3] == b' ')
        {
            return Err(WireError::Malformed(format!("bad status line {line:?}")));
        }
        if !version.starts_with("HTTP/") {
            return Err(WireError::Malformed(format!("bad status line {line:?}")));
        }
        Ok(Response {
            version: version.to_string(),
            status: code.parse().unwrap(),
            reason: rest.get(4..).unwrap_or("").to_string(),
            status_line: line.clone(),
            headers,
            body: Vec::new(),
            framing: Framing::NoBody,
            trailers: Vec::new(),
            raw_head,
        })
    }

    /// Reads one response to a request; `head_request` if the request was HEAD.
    pub fn read_response(&mut self, head_request: bool) -> Result<Response, WireError> {
        let mut r = self.read_response_head()?;
        let got = r.raw_head.len();
        let te = r.header_list("transfer-encoding");
        let cls = r.header_list("content-length");
        if head_request || (100..200).contains(&r.status) || r.status == 204 || r.status == 304 {
            r.framing = Framing::NoBody;
        } else if !te.is_empty() {
            if te.last().unwrap().eq_ignore_ascii_case("chunked") {
                r.framing = Framing::Chunked;
                let (b, t) = self.read_chunked(got)?;
                r.body = b;
                r.trailers = t;
            } else {
                r.framing = Framing::Close;
            }
        } else if !cls.is_empty() {
            let n: usize = cls[0]
                .parse()
                .map_err(|_| WireError::Malformed(format!("response CL {cls:?}")))?;
            if cls.iter().any(|c| *c != cls[0]) {
                return Err(WireError::Malformed(format!("response CL {cls:?}")));
            }
            r.framing = Framing::Length(n);
            r.body = self.read_n(n, got)?;
        } else {
            r.framing = Framing::Close;
        }
        if r.framing == Framing::Close {
            match self.read_to_eof() {
                Ok(b) => r.body = b,
                Err((e, _)) => return Err(e),
            }
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------
// client
// ---------------------------------------------------------------------------

pub struct Client {
    pub wire: Wire,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to corelay {addr}: {e}"));
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client { wire: Wire::new(s) }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.wire.stream
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.wire.set_read_timeout(d);
    }

    pub fn send(&mut self, b: &[u8]) {
        self.wire
            .write_all(b)
            .unwrap_or_else(|e| panic!("client write failed: {e}"));
    }

    pub fn try_send(&mut self, b: &[u8]) -> io::Result<()> {
        self.wire.write_all(b)
    }

    pub fn read_response(&mut self) -> Result<Response, WireError> {
        self.wire.read_response(false)
    }

    pub fn read_head_response(&mut self) -> Result<Response, WireError> {
        self.wire.read_response(true)
    }

    /// Sends `req` and reads the response, panicking on any error.
    pub fn roundtrip(&mut self, req: &[u8]) -> Response {
        self.send(req);
        self.read_response().unwrap_or_else(|e| {
            panic!(
                "no valid response to {:?}: {:?}",
                String::from_utf8_lossy(&req[..req.len().min(200)]),
                e
            )
        })
    }

    /// Expects the connection to be closed (EOF or reset) with no further
    /// bytes. Panics on timeout or unexpected data.
    pub fn expect_closed(&mut self) {
        match self.wire.read_to_eof() {
            Ok(b) if b.is_empty() => {}
            Err((WireError::Reset, b)) if b.is_empty() => {}
            Ok(b) | Err((_, b)) if !b.is_empty() => {
                panic!(
                    "expected the connection to close, got bytes {:?}",
                    String::from_utf8_lossy(&b)
                )
            }
            Err((e, _)) => panic!("expected the connection to close, got {e:?}"),
            _ => unreachable!(),
        }
    }
}

// ---------------------------------------------------------------------------
// scripted backend
// ---------------------------------------------------------------------------

struct ConnSlot {
    received: Arc<Mutex<Vec<u8>>>,
    done: bool,
}

#[derive(Default)]
struct BState {
    conns: Vec<ConnSlot>,
    requests: Vec<Request>,
    sentinels_pending: Vec<SocketAddr>,
    sentinels_seen: usize,
    panics: Vec<String>,
}

struct BInner {
    state: Mutex<BState>,
    cond: Condvar,
    stop: AtomicBool,
}

/// One accepted backend connection, handed to the backend's script.
pub struct BackendConn {
    pub wire: Wire,
    pub index: usize,
    inner: Arc<BInner>,
}

impl BackendConn {
    /// Reads one request and records it in the backend's request list.
    pub fn read_request(&mut self) -> Result<Request, WireError> {
        let mut r = self.wire.read_request()?;
        r.conn = self.index;
        let mut st = self.inner.state.lock().unwrap();
        st.requests.push(r.clone());
        self.inner.cond.notify_all();
        Ok(r)
    }

    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.wire.write_all(b)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.wire.stream
    }

    /// Closes the connection with a TCP RST.
    pub fn reset(self) {
        reset_connection(self.wire.stream);
    }

    /// Reads and discards until EOF/reset/timeout.
    pub fn drain_to_eof(&mut self) -> WireError {
        match self.wire.read_to_eof() {
            Ok(_) => WireError::Eof,
            Err((e, _)) => e,
        }
    }
}

/// A scripted origin server on 127.0.0.1:0.
pub struct Backend {
    pub addr: SocketAddr,
    inner: Arc<BInner>,
}

/// Whether the backend must close after writing `resp` to `req`.
fn response_closes(req: &Request, resp: &[u8]) -> bool {
    if req
        .header_list("connection")
        .iter()
        .any(|t| t.eq_ignore_ascii_case("close"))
    {
        return true;
    }
    let end = match find(resp, b"\r\n\r\n", 0) {
        Some(e) => e + 4,
        None => return true,
    };
    let (line, h) = match split_head(&resp[..end]) {
        Ok(x) => x,
        Err(_) => return true,
    };
    let conn = hdr_list(&h, "connection");
    if conn.iter().any(|t| t.eq_ignore_ascii_case("close")) {
        return true;
    }
    if line.starts_with("HTTP/1.0") && !conn.iter().any(|t| t.eq_ignore_ascii_case("keep-alive")) {
        return true;
    }
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let bodyless =
        req.method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    !bodyless && hdr(&h, "content-length").is_none() && hdr(&h, "transfer-encoding").is_none()
}

impl Backend {
    /// Starts a backend running `script` on a new thread for every connection.
    pub fn start<F>(script: F) -> Backend
    where
        F: Fn(BackendConn) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(BInner {
            state: Mutex::new(BState::default()),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let script: Arc<dyn Fn(BackendConn) + Send + Sync> = Arc::new(script);
        let inner2 = inner.clone();
        thread::spawn(move || {
            for s in listener.incoming() {
                if inner2.stop.load(Ordering::SeqCst) {
                    break;
                }
                let stream = match s {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                let peer = stream.peer_addr().ok();
                let mut st = inner2.state.lock().unwrap();
                if let Some(p) = peer {
                    if let Some(i) = st.sentinels_pending.iter().position(|x| *x == p) {
                        st.sentinels_pending.remove(i);
                        st.sentinels_seen += 1;
                        inner2.cond.notify_all();
                        continue;
                    }
                }
                let rec = Arc::new(Mutex::new(Vec::new()));
                st.conns.push(ConnSlot {
                    received: rec.clone(),
                    done: false,
                });
                let index = st.conns.len() - 1;
                inner2.cond.notify_all();
                drop(st);
                let inner3 = inner2.clone();
                let script = script.clone();
                thread::spawn(move || {
                    stream.set_read_timeout(Some(BACKEND_IO_TIMEOUT)).unwrap();
                    stream.set_write_timeout(Some(BACKEND_IO_TIMEOUT)).unwrap();
                    let _ = stream.set_nodelay(true);
                    let conn = BackendConn {
                        wire: Wire::recording(stream, rec),
                        index,
                        inner: inner3.clone(),
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| script(conn)));
                    let mut st = inner3.state.lock().unwrap();
                    if let Err(p) = r {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        st.panics.push(format!("backend conn {index}: {msg}"));
                    }
                    st.conns[index].done = true;
                    inner3.cond.notify_all();
                });
            }
        });
        Backend { addr, inner }
    }

    /// A keep-alive HTTP backend: reads requests and writes `respond(req)`
    /// (raw response bytes) until the connection closes.
    pub fn http<F>(respond: F) -> Backend
    where
        F: Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
    {
        Backend::start(move |mut conn| loop {
            let req = match conn.read_request() {
                Ok(r) => r,
                Err(_) => return,
            };
            let resp = respond(&req);
            if conn.write(&resp).is_err() {
                return;
            }
            if response_closes(&req, &resp) {
                let _ = conn.stream().shutdown(Shutdown::Write);
                let _ = conn.drain_to_eof();
                return;
            }
        })
    }

    /// A backend answering every request with 200 and `body`.
    pub fn ok(body: &'static [u8]) -> Backend {
        Backend::http(move |_| ok_response(body))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.state.lock().unwrap().conns.len()
    }

    /// Bytes received on connection `i`.
    pub fn received(&self, i: usize) -> Vec<u8> {
        let st = self.inner.state.lock().unwrap();
        let r = st.conns[i].received.clone();
        drop(st);
        let v = r.lock().unwrap().clone();
        v
    }

    /// Bytes received on all connections, per connection.
    pub fn all_received(&self) -> Vec<Vec<u8>> {
        (0..self.connections()).map(|i| self.received(i)).collect()
    }

    pub fn total_received(&self) -> usize {
        self.all_received().iter().map(|v| v.len()).sum()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests were read (panics after `timeout`).
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.state.lock().unwrap();
        while st.requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "backend got {} requests, expected {n} within {timeout:?}",
                    st.requests.len()
                );
            }
            st = self.inner.cond.wait_timeout(st, left).unwrap().0;
        }
        st.requests.clone()
    }

    /// Waits until at least `n` connections were accepted.
    pub fn wait_connections(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.state.lock().unwrap();
        while st.conns.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "backend accepted {} connections, expected {n} within {timeout:?}",
                    st.conns.len()
                );
            }
            st = self.inner.cond.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Number of connection scripts that have finished.
    pub fn finished_connections(&self) -> usize {
        self.inner
            .state
            .lock()
            .unwrap()
            .conns
            .iter()
            .filter(|c| c.done)
            .count()
    }

    /// Waits until connection `i`'s script has finished.
    pub fn wait_conn_done(&self, i: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.state.lock().unwrap();
        loop {
            if st.conns.get(i).map(|c| c.done).unwrap_or(false) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.inner.cond.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Makes the backend quiescent: every connection that reached its
    /// listener before this call has been accepted and its script has
    /// finished. Use after killing corelay (which closes all its sockets) to
    /// inspect exactly what the backend received.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        {
            // Connect while holding the lock so the accept loop cannot look
            // the sentinel up before it is registered.
            let mut st = self.inner.state.lock().unwrap();
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
                .expect("sentinel connect");
            st.sentinels_pending.push(s.local_addr().unwrap());
            let want = st.sentinels_seen + 1;
            drop(st);
            let mut st = self.inner.state.lock().unwrap();
            while st.sentinels_seen < want {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "backend accept loop did not reach the sentinel"
                );
                st = self.inner.cond.wait_timeout(st, left).unwrap().0;
            }
            drop(s);
        }
        let mut st = self.inner.state.lock().unwrap();
        while st.conns.iter().any(|c| !c.done) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "backend connection scripts did not finish (is corelay still holding them open?)"
            );
            st = self.inner.cond.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Panics raised inside connection scripts (assertions in scripts).
    pub fn panics(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().panics.clone()
    }

    pub fn assert_no_panics(&self) {
        let p = self.panics();
        assert!(p.is_empty(), "backend script panicked: {p:?}");
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
    }
}

/// A 127.0.0.1 port with nothing listening on it.
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

// ---------------------------------------------------------------------------
// message builders and byte helpers
// ---------------------------------------------------------------------------

pub const HOST: &str = "corelay.test";

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes()
}

pub fn get_close(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").into_bytes()
}

pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

pub fn ok_response(body: &[u8]) -> Vec<u8> {
    response(200, "OK", &[], body)
}

/// `HTTP/1.1 code reason` with `headers` and a Content-Length body.
pub fn response(code: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 {code} {reason}\r\n").into_bytes();
    for (n, val) in headers {
        v.extend_from_slice(format!("{n}: {val}\r\n").as_bytes());
    }
    v.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    v.extend_from_slice(body);
    v
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &c in b {
        h ^= c as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Byte equality with a short message (first difference) instead of a dump.
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    let ctx = |b: &[u8]| {
        String::from_utf8_lossy(
            &b[first.saturating_sub(16).min(b.len())..(first + 48).min(b.len())],
        )
        .into_owned()
    };
    panic!(
        "{what}: {} bytes received, {} expected; first difference at offset {first}: got {:?} expected {:?}",
        actual.len(),
        expected.len(),
        ctx(actual),
        ctx(expected)
    );
}

/// Whether `id` has the form of an `X-Request-Id` corelay generates:
/// `PPPPPPPPPPPPPPPP-SSSS-CCCCCCCCCCCC`, lowercase hex.
pub fn is_generated_request_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 3
        && [16, 4, 12].iter().zip(&parts).all(|(n, p)| {
            p.len() == *n
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// `bytes` (a message as forwarded by corelay) without the `X-Request-Id` line corelay adds
/// as the last field of the first head, and that line's value. Panics unless the line is there,
/// in that place; callers check the value (see `tests/request_id.rs` for what it must be).
pub fn split_request_id(bytes: &[u8]) -> (Vec<u8>, String) {
    const FIELD: &[u8] = b"\r\nX-Request-Id: ";
    let end = find(bytes, b"\r\n\r\n", 0).expect("a complete head");
    let head = &bytes[..end];
    let at = (0..head.len())
        .rev()
        .find(|&i| head[i..].starts_with(FIELD))
        .unwrap_or_else(|| {
            panic!(
                "no X-Request-Id at the end of {:?}",
                String::from_utf8_lossy(head)
            )
        });
    let value = String::from_utf8_lossy(&head[at + FIELD.len()..]).into_owned();
    assert!(
        !value.contains("\r\n"),
        "X-Request-Id is not the last field: {value:?}"
    );
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&bytes[end..]);
    (out, value)
}

/// [`split_request_id`], checking that the ID is a generated one.
pub fn without_generated_request_id(bytes: &[u8]) -> Vec<u8> {
    let (out, id) = split_request_id(bytes);
    assert!(is_generated_request_id(&id), "X-Request-Id {id:?}");
    out
}

pub fn contains(h: &[u8], n: &[u8]) -> bool {
    find(h, n, 0).is_some()
}

/// Polls `f` every 20 ms until it returns true; panics after `timeout`.
pub fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut f: F) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

/// `GET /metrics` on `addr`; returns the body text.
pub fn scrape_metrics(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    let r = c
        .read_response()
        .unwrap_or_else(|e| panic!("metrics scrape on {addr}: {e:?}"));
    assert_eq!(r.status, 200, "metrics status: {}", r.status_line);
    r.body_str()
}

/// `(labels, value)` of every sample of `name` (labels text without braces).
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, labels) = match series.find('{') {
            Some(i) => (&series[..i], series[i + 1..].trim_end_matches('}')),
            None => (series, ""),
        };
        if n == name {
            if let Ok(v) = value.trim().parse::<f64>() {
                out.push((labels.to_string(), v));
            }
        }
    }
    out
}

pub fn metric_sum(text: &str, name: &str) -> f64 {
    let s = metric_samples(text, name);
    assert!(!s.is_empty(), "metric {name} not found in:\n{text}");
    s.iter().map(|(_, v)| v).sum()
}

// ---------------------------------------------------------------------------
// config files
// ---------------------------------------------------------------------------

/// A config file written to a fresh temporary directory, removed on drop.
pub struct TempConfig {
    pub path: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl TempConfig {
    /// Writes `text` to `<tmp>/corelay-test-<pid>-<n>/<name>`.
    pub fn new(name: &str, text: &str) -> TempConfig {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("corelay-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp config dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write temp config");
        TempConfig { path, dir }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Corelay {
    /// Starts corelay with `--config FILE` followed by `extra`, and nothing else: no
    /// `--listen`, `--cores` or `--backend` is added, so the file must provide them (or
    /// `extra` must).
    pub fn start_with_config(config: &std::path::Path, extra: &[&str]) -> Corelay {
        let mut args: Vec<String> = vec![
            "--config".into(),
            config.to_str().expect("config path is UTF-8").into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Corelay::start_with_args(&args)
    }
}

/// `corelay hash-password` with `password` on stdin; returns the stored form it prints.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(corelay_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn corelay hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .expect("write password to corelay hash-password");
    // stdin is closed here (dropped), so the command sees EOF after the password.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("corelay hash-password did not exit within 30 s")
        .expect("wait for corelay hash-password");
    assert!(
        out.status.success(),
        "corelay hash-password failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).expect("hash is UTF-8");
    let line = s.trim_end().to_string();
    assert!(!line.contains('\n'), "one line expected: {s:?}");
    line
}

/// Standard base64 with padding (RFC 4648 §4), for `Authorization: Basic`.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// events between a test and its scripted peers
// ---------------------------------------------------------------------------

/// A backend that holds `/slow` until `gate` opens, then answers `drained`; other requests
/// get `other`'s answer. A held request keeps a draining corelay from exiting, so what the
/// test sees meanwhile happens during the drain.
pub fn backend_holding_slow(
    gate: &Gate,
    other: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
) -> Backend {
    let held = gate.clone();
    Backend::http(move |req| {
        if req.target == "/slow" {
            assert!(held.wait(Duration::from_secs(20)), "never released");
            ok_response(b"drained")
        } else {
            other(req)
        }
    })
}

/// A latch a test opens once; scripts (backends, origins) wait on it, so a test decides when
/// a peer moves on instead of sleeping and hoping the other side got there.
#[derive(Clone, Default)]
pub struct Gate {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        *self.inner.0.lock().unwrap() = true;
        self.inner.1.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.inner.0.lock().unwrap()
    }

    /// Waits until the gate is open; false if `timeout` passed first.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut open = self.inner.0.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            open = self.inner.1.wait_timeout(open, left).unwrap().0;
        }
        true
    }
}

impl Corelay {
    /// Waits until metric `name` (summed over shards) equals `value`.
    pub fn wait_metric(&self, name: &str, value: f64) {
        eventually(
            Duration::from_secs(10),
            &format!("{name} == {value}"),
            || self.metric(name) == value,
        );
    }

    /// The relay buffers all free and no head buffer held: what every test that cuts a
    /// transfer checks at its end.
    pub fn wait_buffers_back(&self) {
        let total = self.metric("corelay_relay_buffers_total");
        self.wait_metric("corelay_relay_buffers_free", total);
        self.wait_metric("corelay_engine_head_buffers_held", 0.0);
    }

    /// Nothing held at all: no client connection, no pooled backend connection, every buffer
    /// back, and in the kernel only the listeners' accepts (every orphaned operation
    /// completed; an open connection would have its receive there). The operations gauge is
    /// written once per loop turn, so call this after some traffic, not right after start.
    pub fn wait_at_rest(&self) {
        self.wait_metric("corelay_connections_open", 0.0);
        self.wait_metric("corelay_backend_idle_connections", 0.0);
        self.wait_buffers_back();
        let accepts = (shards::engine::ACCEPT_DEPTH * self.shard_addrs.len()) as f64;
        self.wait_metric("corelay_engine_ops_in_flight", accepts);
    }
}
