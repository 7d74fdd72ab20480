//! The access log: one line per request, nginx "combined" (plus upstream and timings), JSON,
//! or an nginx-style template (`template.rs`), written to a file, to stderr, or nowhere.
//!
//! This module owns the whole path from a finished request to the bytes in the file:
//! formatting (`format.rs`, `template.rs`), the shard-side batching (here), and the one writer thread
//! (`writer.rs`). It is designed around the thread-per-core rule that the request path never
//! blocks and never shares a lock:
//!
//! ```text
//!  shard 0: ShardLog::log ─▶ [64 KiB buffer] ─full / every 100 ms─┐ try_send
//!  shard 1: ShardLog::log ─▶ [64 KiB buffer] ─────────────────────┤ (bounded)
//!                                                                 ▼
//!                                     writer thread: write(2) per buffer, in arrival order
//!                                                                 │
//!  shard N ◀── emptied buffer, on that shard's own return queue ──┘
//! ```
//!
//! - A line is formatted straight into the shard's current buffer (no allocation, no syscall).
//!   The buffer goes to the writer when the next line might not fit, or when the shard's
//!   flusher task finds it non-empty (every [`FLUSH_INTERVAL`]), so a quiet shard's lines
//!   still appear promptly.
//! - Each shard owns at most [`BUFFERS_PER_SHARD`] buffers; the writer sends each one back
//!   emptied, so in steady state nothing is allocated and log memory is fixed.
//! - When the writer cannot keep up (every buffer of the shard is queued or being written),
//!   the shard drops the line and counts it in its `dropped` counter (a relaxed atomic the
//!   metrics thread can read): a slow disk costs log lines, never latency or unbounded memory.
//! - SIGUSR1 reopens the file ([`Sink::reopen`]): the writer switches files between two
//!   buffers, so no line is lost or split across the old and the new file.
//! - Nothing is lost on graceful shutdown: [`ShardLog::flush`] (and dropping the last
//!   `ShardLog`) hands over the partial buffer, the writer drains its queue and exits once
//!   every shard's handle is gone, and [`Sink::finish`] joins it.

mod format;
mod template;
mod writer;

pub use template::Template;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use format::Clock;
pub(crate) use format::{MAX_METHOD_BYTES, MAX_TARGET_BYTES};

/// Size of one shard buffer: large enough that a busy shard writes a few hundred lines per
/// write(2) (a combined line is ~200-300 bytes), small enough that the lines of a quiet shard
/// are not held long, and that [`BUFFERS_PER_SHARD`] of them per core is a modest fixed cost.
pub const BUFFER_CAPACITY: usize = 64 * 1024;

/// Buffers each shard may own: one being filled and up to three queued or being written. This
/// absorbs a writer stall of about three buffers' worth of lines per shard (~750 requests)
/// before lines are dropped, at 256 KiB per core.
pub const BUFFERS_PER_SHARD: usize = 4;

/// How often a shard's flusher hands over a partly filled buffer: lines reach the file within
/// about this long on a quiet shard, and an idle shard wakes only ten times a second (a tick
/// with an empty buffer does nothing).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// How long the final [`ShardLog::flush`] waits for room in the writer's queue before counting
/// its lines as dropped. The queue `Sink::open` makes holds every shard buffer, so this is a
/// safeguard that should never wait; if it ever does, shutdown must still end.
pub const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Poll step of that wait: the writer frees a queue slot within one write(2).
const FINAL_FLUSH_POLL: Duration = Duration::from_millis(1);

// Any line, whatever the client sent, fits an empty buffer (`format.rs` bounds each field).
const _: () = assert!(format::MAX_LINE_LEN <= BUFFER_CAPACITY);

/// How lines are written (`access_log_format`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// nginx "combined" plus ` upstream=.. upstream_time=.. request_time=..`.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
    /// An nginx-style template of `$variables`, parsed once (shared by the shards).
    Template(Arc<Template>),
}

impl std::str::FromStr for Format {
    type Err = String;

    /// `combined`, `json`, or a template (anything with a `$variable` in it).
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "combined" => Ok(Format::Combined),
            "json" => Ok(Format::Json),
            t if t.contains('$') => Ok(Format::Template(Arc::new(Template::parse(t)?))),
            _ => Err(format!(
                "unknown access log format {s:?} (combined, json, or a template of $variables \
                 such as '$remote_addr \"$request\" $status')"
            )),
        }
    }
}

/// Where lines go (`access_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Off,
    Stderr,
    /// Appended to; created if missing.
    File(PathBuf),
}

impl Destination {
    /// `off` (or empty), `stderr`, or else a file path.
    pub fn parse(s: &str) -> Destination {
        match s {
            "off" | "" => Destination::Off,
            "stderr" => Destination::Stderr,
            path => Destination::File(PathBuf::from(path)),
        }
    }
}

/// One finished request, borrowed from the connection's state for the duration of
/// [`ShardLog::log`]. Byte fields are the client's bytes as received; they are escaped when
/// written.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub client: IpAddr,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    /// When the request happened (nginx logs the time the request ended).
    pub time: SystemTime,
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub protocol: &'static str,
    pub status: u16,
    /// Bytes sent to the client, head included (nginx's `$bytes_sent`).
    pub bytes_sent: u64,
    /// Bytes of the response body sent to the client (nginx's `$body_bytes_sent`): what the
    /// combined and JSON lines show.
    pub body_bytes_sent: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// The backend that answered; `None` if no backend was involved.
    pub upstream: Option<SocketAddr>,
    /// From sending the request to the backend to the end of its response.
    pub upstream_time: Option<Duration>,
    /// From the complete request head (or the failed read of one) to the last byte of the
    /// response.
    pub request_time: Duration,
    /// The request's `X-Request-Id` (visible ASCII, at most `MAX_REQUEST_ID` bytes).
    pub request_id: &'a [u8],
    /// For a tunnel (an upgraded connection): the bytes from the client through it. The
    /// line then also says how long the tunnel lasted (`request_time`) and what went down
    /// (`body_bytes_sent`).
    pub bytes_received: Option<u64>,
}

/// A buffer of whole lines on its way to the writer.
struct Batch {
    shard: usize,
    /// Lines in `buf`, counted as dropped if the write fails.
    lines: u64,
    buf: Vec<u8>,
}

/// One shard's counters, on a cache line of its own (shards never share a line).
#[repr(align(64))]
#[derive(Default)]
struct ShardCounters {
    /// Lines this shard could not hand to the writer, or that the writer failed to write.
    dropped: AtomicU64,
}

/// What the shards, the writer and the [`Sink`] share: counters only.
struct Shared {
    shards: Box<[ShardCounters]>,
    /// Successful write(2) batches, for tests and diagnostics.
    writes: AtomicU64,
    /// Set by [`Sink::reopen`], taken by the writer between two buffers.
    reopen: AtomicBool,
}

impl Shared {
    fn new(shards: usize) -> Shared {
        Shared {
            shards: (0..shards).map(|_| ShardCounters::default()).collect(),
            writes: AtomicU64::new(0),
            reopen: AtomicBool::new(false),
        }
    }

    fn add_dropped(&self, shard: usize, lines: u64) {
        if lines > 0 {
            // The writer adds too (failed writes), so this is a real RMW; it only runs when
            // lines are lost.
            self.shards[shard]
                .dropped
                .fetch_add(lines, Ordering::Relaxed);
        }
    }
}

/// The access log as a whole: the writer thread, and what each shard needs to reach it.
/// `Send + Sync`, so it can be shared (`Arc`) with the code that starts the shards.
pub struct Sink {
    format: Format,
    shared: Arc<Shared>,
    /// Handed out by [`Sink::shard_logger`]; `None` for `Off` and after [`Sink::finish`].
    links: Mutex<Links>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Links {
    tx: Option<SyncSender<Batch>>,
    /// Each shard's return queue, taken by its `shard_logger`.
    returns: Vec<Option<Receiver<Vec<u8>>>>,
}

impl Sink {
    /// Opens `dest` (a file is created if missing and appended to) and starts the writer
    /// thread, for shards `0..shards`. `Off` starts nothing. The error names the path.
    pub fn open(dest: &Destination, format: Format, shards: usize) -> std::io::Result<Sink> {
        let shared = Arc::new(Shared::new(shards));
        let output = match dest {
            Destination::Off => {
                return Ok(Sink {
                    format,
                    shared,
                    links: Mutex::default(),
                    thread: Mutex::new(None),
                })
            }
            Destination::Stderr => writer::Output::Stderr,
            Destination::File(path) => writer::Output::open(path)?,
        };
        // The queue holds every buffer the shards own, so the only limit a shard meets is its
        // own BUFFERS_PER_SHARD: one shard's burst cannot take another shard's slots.
        let (tx, rx) = mpsc::sync_channel(shards.max(1) * BUFFERS_PER_SHARD);
        // Bounded too (an unbounded channel allocates as it goes); a shard never has more
        // than BUFFERS_PER_SHARD buffers in circulation, so the writer never finds it full.
        let (return_txs, returns): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::sync_channel(BUFFERS_PER_SHARD);
                (tx, Some(rx))
            })
            .unzip();
        let thread = writer::spawn(rx, output, return_txs, shared.clone())?;
        Ok(Sink {
            format,
            shared,
            links: Mutex::new(Links {
                tx: Some(tx),
                returns,
            }),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The handle for shard `index`, to be moved to its thread and made into a [`ShardLog`]
    /// there. One per shard: asking twice for the same index panics. When the log is off, or
    /// after [`Sink::finish`], the handle logs nothing.
    pub fn shard_logger(&self, index: usize) -> ShardLogWriter {
        assert!(
            index < self.shared.shards.len(),
            "access log: shard {index} of {}",
            self.shared.shards.len()
        );
        let mut links = lock(&self.links);
        let link = match &links.tx {
            Some(tx) => {
                let tx = tx.clone();
                let returns = links.returns[index]
                    .take()
                    .unwrap_or_else(|| panic!("access log: shard_logger({index}) called twice"));
                Some(Link { tx, returns })
            }
            None => None,
        };
        ShardLogWriter {
            index,
            format: self.format.clone(),
            shared: self.shared.clone(),
            link,
        }
    }

    /// Asks the writer to reopen the file (SIGUSR1, after logrotate moved it). Returns at
    /// once; the writer reopens before its next write, or within [`writer::REOPEN_POLL`]
    /// when idle, so every line goes whole to either the old file or the new one. Nothing
    /// happens for `stderr` or `off`.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }

    /// Lines dropped so far, over all shards.
    pub fn dropped(&self) -> u64 {
        (0..self.shared.shards.len())
            .map(|i| self.shard_dropped(i))
            .sum()
    }

    /// Lines shard `index` dropped so far (for per-shard metrics).
    pub fn shard_dropped(&self, index: usize) -> u64 {
        self.shared.shards[index].dropped.load(Ordering::Relaxed)
    }

    /// Stops handing out loggers and waits until the writer has written everything queued and
    /// exited. The writer exits when the last shard handle is dropped, so call this after the
    /// shards have ended (it blocks until then). Idempotent; takes `&self` so that a `Sink`
    /// shared through an `Arc` can be finished too.
    pub fn finish(&self) {
        let mut links = lock(&self.links);
        links.tx = None;
        links.returns.clear();
        drop(links);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("access log: writer thread panicked; lines queued to it are lost");
            }
        }
    }

    #[cfg(test)]
    fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    /// Without [`Sink::finish`], the writer still drains and exits once the shards drop their
    /// handles; it is just not waited for.
    fn drop(&mut self) {
        lock(&self.links).tx = None;
    }
}

/// A poisoned lock here only means a panic elsewhere while holding it; the data (channel
/// ends) is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The channel ends one shard uses.
struct Link {
    tx: SyncSender<Batch>,
    returns: Receiver<Vec<u8>>,
}

/// A shard's way to the writer, made on the main thread and moved to the shard (`Send`).
pub struct ShardLogWriter {
    index: usize,
    format: Format,
    shared: Arc<Shared>,
    /// `None` when the log is off.
    link: Option<Link>,
}

/// The shard's access log: `Rc` inside, cloned into whatever logs (connection tasks). Not
/// `Send`: it lives and dies on its shard.
#[derive(Clone)]
pub struct ShardLog(Rc<Inner>);

struct Inner {
    index: usize,
    format: Format,
    shared: Arc<Shared>,
    link: Option<Link>,
    /// Only borrowed inside `log`/`flush`, which never await, so never contended.
    state: RefCell<State>,
}

struct State {
    /// The buffer being filled; `None` before the first line and while every buffer of the
    /// shard is with the writer.
    current: Option<Vec<u8>>,
    /// Lines in `current`.
    lines: u64,
    /// Buffers this shard has allocated (at most `BUFFERS_PER_SHARD`).
    allocated: usize,
    clock: Clock,
}

impl ShardLog {
    pub fn new(writer: ShardLogWriter) -> ShardLog {
        ShardLog(Rc::new(Inner {
            index: writer.index,
            format: writer.format,
            shared: writer.shared,
            link: writer.link,
            state: RefCell::new(State {
                current: None,
                lines: 0,
                allocated: 0,
                clock: Clock::new(),
            }),
        }))
    }

    /// Whether lines go anywhere (callers may skip gathering an entry when not).
    pub fn enabled(&self) -> bool {
        self.0.link.is_some()
    }

    /// Spawns, on the current glommio executor, the task that hands over a partly filled
    /// buffer every [`FLUSH_INTERVAL`]. It holds only a weak reference, and ends once the
    /// last `ShardLog` is dropped. Panics outside an executor, as `glommio::spawn_local` does.
    pub fn spawn_flusher(&self) {
        if !self.enabled() {
            return;
        }
        let weak: Weak<Inner> = Rc::downgrade(&self.0);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(FLUSH_INTERVAL).await;
                let Some(inner) = weak.upgrade() else { return };
                // A full queue is fine here: the buffer stays, and the next tick or line
                // tries again.
                inner.try_hand_off(&mut inner.state.borrow_mut());
            }
        })
        .detach();
    }

    /// Appends one line. Never blocks and, in steady state, never allocates or makes a
    /// syscall; when the writer is behind, the line is dropped and counted.
    pub fn log(&self, e: &Entry) {
        let inner = &*self.0;
        if inner.link.is_none() {
            return;
        }
        let state = &mut *inner.state.borrow_mut();
        let bound = format::max_line_len(&inner.format, e);
        if !inner.make_room(state, bound) {
            inner.shared.add_dropped(inner.index, 1);
            return;
        }
        let buf = state.current.as_mut().expect("make_room leaves a buffer");
        let before = (buf.as_ptr(), buf.capacity());
        format::write_line(&inner.format, buf, e, &mut state.clock);
        debug_assert_eq!(before, (buf.as_ptr(), buf.capacity()), "the buffer grew");
        state.lines += 1;
    }

    /// Hands the partly filled buffer to the writer: call at the end of the shard's drain.
    /// If the writer's queue is full it waits (blocking the thread, up to
    /// [`FINAL_FLUSH_WAIT`]) rather than lose the lines; what still cannot be handed over is
    /// counted as dropped. Dropping the last `ShardLog` does the same.
    pub fn flush(&self) {
        self.0.final_flush();
    }

    /// Lines this shard dropped so far.
    pub fn dropped(&self) -> u64 {
        self.0.shared.shards[self.0.index]
            .dropped
            .load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Makes `state.current` a buffer with `bound` spare bytes: the current one if it has
    /// room, else a returned or (up to the limit) new one after handing the current one over.
    /// False if there is none to be had without waiting: the line must be dropped.
    fn make_room(&self, state: &mut State, bound: usize) -> bool {
        if let Some(buf) = &state.current {
            if buf.capacity() - buf.len() >= bound {
                return true;
            }
            // Drop-newest when the queue is full: the buffer (and its lines) stays, and is
            // tried again on the next line or tick.
            if !self.try_hand_off(state) {
                return false;
            }
            // The writer is gone: `try_hand_off` kept the emptied buffer (which fits any line).
            if state.current.is_some() {
                return true;
            }
        }
        let link = self.link.as_ref().expect("only called when enabled");
        let buf = match link.returns.try_recv() {
            Ok(buf) => buf,
            Err(_) if state.allocated < BUFFERS_PER_SHARD => {
                state.allocated += 1;
                Vec::with_capacity(BUFFER_CAPACITY)
            }
            // Every buffer of this shard is queued or being written.
            Err(_) => return false,
        };
        debug_assert!(buf.is_empty() && buf.capacity() >= bound);
        state.current = Some(buf);
        true
    }

    /// Sends the current buffer if it holds any line. False only if the queue is full (the
    /// buffer is kept); if the writer is gone its lines are counted as dropped and the
    /// emptied buffer is kept, so memory stays bounded.
    fn try_hand_off(&self, state: &mut State) -> bool {
        let Some(link) = &self.link else { return true };
        let Some(buf) = state.current.take_if(|b| !b.is_empty()) else {
            return true;
        };
        let batch = Batch {
            shard: self.index,
            lines: state.lines,
            buf,
        };
        match link.tx.try_send(batch) {
            Ok(()) => {
                state.lines = 0;
                true
            }
            Err(TrySendError::Full(batch)) => {
                state.current = Some(batch.buf);
                false
            }
            Err(TrySendError::Disconnected(mut batch)) => {
                self.shared.add_dropped(self.index, batch.lines);
                state.lines = 0;
                batch.buf.clear();
                state.current = Some(batch.buf);
                true
            }
        }
    }

    fn final_flush(&self) {
        let state = &mut *self.state.borrow_mut();
        let deadline = Instant::now() + FINAL_FLUSH_WAIT;
        while !self.try_hand_off(state) {
            if Instant::now() >= deadline {
                self.shared.add_dropped(self.index, state.lines);
                state.lines = 0;
                if let Some(buf) = &mut state.current {
                    buf.clear();
                }
                return;
            }
            std::thread::sleep(FINAL_FLUSH_POLL);
        }
    }
}

impl Drop for Inner {
    /// The last `ShardLog` on a shard going away (its executor ending, or a panic unwinding
    /// it) still delivers its lines; then the channel end drops, which is what lets the
    /// writer exit.
    fn drop(&mut self) {
        self.final_flush();
    }
}

#[cfg(test)]
mod tests;
