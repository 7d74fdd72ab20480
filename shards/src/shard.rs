//! What runs on one shard thread: build the pinned executor, create the
//! handler, accept connections until shutdown, then drain.
//!
//! Everything created here (handler, `Shutdown`, connection tasks) stays on
//! this thread; the only things shared with other threads are the stats
//! (atomics, written only here) and the shutdown eventfd.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    rc::Rc,
    sync::{atomic::Ordering::Relaxed, mpsc, Arc},
    time::Duration,
};

use futures_lite::future;
use glommio::{GlommioError, LocalExecutorBuilder, Placement};

use crate::{
    engine::{Acceptor, Conn, Engine, EngineConfig, EngineStats, RingGauges, ACCEPT_DEPTH},
    event::LocalEvent,
    memlock,
    server::ShardContext,
    signal::RemoteWake,
    stats::ShardStats,
    Shutdown,
};

/// Pause after a failed accept. ENFILE/ENOMEM leave the connection in the
/// backlog, so retrying at once would spin; a short pause lets handlers close
/// connections meanwhile without making the listener look dead.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(25);

/// Everything one shard thread needs, moved into it at spawn.
pub(crate) struct ShardSetup<F> {
    pub index: usize,
    pub cpu: usize,
    pub listener: OwnedFd,
    pub local_addr: SocketAddr,
    pub stats: Arc<ShardStats>,
    pub wake: RemoteWake,
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub engine: EngineConfig,
    pub gauges: Arc<RingGauges>,
    pub engine_stats: Arc<EngineStats>,
    pub make_handler: Arc<F>,
    /// Reports once whether the shard came up, so `Server::start` can fail
    /// instead of leaving a silently dead shard.
    pub ready: mpsc::Sender<io::Result<()>>,
}

/// Body of a shard thread. Returns when the shard has shut down.
pub(crate) fn run<F, H, Fut>(setup: ShardSetup<F>) -> io::Result<()>
where
    F: Fn(&ShardContext) -> H,
    H: Fn(Conn, SocketAddr) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (index, cpu) = (setup.index, setup.cpu);
    let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&format!("shard-{index}"))
        .make();
    match executor {
        Ok(executor) => executor.run(serve(setup)),
        Err(e) => {
            let e = executor_error(index, cpu, e);
            // io::Error is not Clone; the copy for start() keeps kind and text.
            let _ = setup
                .ready
                .send(Err(io::Error::new(e.kind(), e.to_string())));
            Err(e)
        }
    }
}

/// Turns glommio's executor-construction errors into one line that says what
/// to change on the host.
fn executor_error(index: usize, cpu: usize, e: GlommioError<()>) -> io::Error {
    let prefix = format!("shard {index} (CPU {cpu}): cannot start glommio executor");
    // glommio's own MemLockLimit error reaches us flattened into an io::Error
    // string ("MemLockLimit(262144/524288)"), so check the limit itself.
    if let Some(msg) = memlock::too_low_for_glommio() {
        return io::Error::other(format!("{prefix}: {msg}"));
    }
    let e = io::Error::from(e);
    let hint = match e.raw_os_error() {
        Some(libc::ENOMEM) => format!("; {}", memlock::FIX_HINT),
        Some(libc::EPERM) => {
            "; io_uring is not permitted here (check sysctl kernel.io_uring_disabled \
                              or the container's seccomp profile)"
                .into()
        }
        Some(libc::ENOSYS) => {
            "; this kernel has no io_uring (glommio needs Linux 5.8 or newer)".into()
        }
        _ => String::new(),
    };
    io::Error::new(e.kind(), format!("{prefix}: {e}{hint}"))
}

/// Shard-local bookkeeping shared by the accept loop and connection guards.
struct Tracker {
    stats: Arc<ShardStats>,
    shutdown: Shutdown,
    /// Set when the last connection closes after shutdown began, so draining
    /// waits for an event rather than polling the counter.
    drained: LocalEvent,
    /// Set when the drain timeout passes; every connection task races its
    /// handler against it. Needed because glommio does not drop pending tasks
    /// when an executor is dropped: a task parked on socket I/O would leak,
    /// fd and all, instead of being closed.
    abort: LocalEvent,
    /// The accept loop, parked while the shard is at `max_connections`.
    accept_waker: std::cell::Cell<Option<std::task::Waker>>,
}

/// Counts a connection as open for as long as its task exists. A drop guard,
/// so the count is right however the task ends: completion, panic unwinding,
/// or abort at the drain timeout.
struct ConnGuard(Rc<Tracker>);

impl ConnGuard {
    fn new(tracker: &Rc<Tracker>) -> ConnGuard {
        tracker.stats.connections_open.fetch_add(1, Relaxed);
        ConnGuard(tracker.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let t = &self.0;
        if t.stats.connections_open.fetch_sub(1, Relaxed) == 1 && t.shutdown.is_triggered() {
            t.drained.set();
        }
        if let Some(w) = t.accept_waker.take() {
            w.wake();
        }
    }
}

async fn serve<F, H, Fut>(setup: ShardSetup<F>) -> io::Result<()>
where
    F: Fn(&ShardContext) -> H,
    H: Fn(Conn, SocketAddr) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let ShardSetup {
        index,
        cpu,
        listener,
        local_addr,
        stats,
        wake,
        drain_timeout,
        max_connections,
        engine,
        gauges,
        engine_stats,
        make_handler,
        ready,
    } = setup;
    let engine = match Engine::new(&engine, gauges, engine_stats) {
        Ok(e) => e,
        Err(e) => {
            let e = io::Error::new(e.kind(), format!("shard {index} (CPU {cpu}): {e}"));
            let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(e);
        }
    };
    let driver = glommio::spawn_local(engine.clone().drive());
    let listener_fd = listener.as_raw_fd();
    let shutdown = Shutdown::new();
    let ctx = ShardContext {
        index,
        cpu,
        stats: stats.clone(),
        shutdown: shutdown.clone(),
        local_addr,
        engine: engine.clone(),
    };
    let handler = make_handler(&ctx);
    let _ = ready.send(Ok(()));
    drop(ready);

    let tracker = Rc::new(Tracker {
        stats,
        shutdown,
        drained: LocalEvent::default(),
        abort: LocalEvent::default(),
        accept_waker: std::cell::Cell::new(None),
    });
    // The accept loop never ends by itself; the remote wake ends it, and
    // dropping its future cancels the in-flight accept.
    //
    // The remote wake is awaited on a task of its own and passed on through a
    // LocalEvent: it is a glommio file read, whose `collect_rw` stores a new
    // waker on every poll, and the accept loop's task is polled once per
    // accepted connection for the life of the process. Awaited here, it would
    // pile up one waker per accept until glommio's `i16` reference count of the
    // task overflowed and panicked the shard (after 32,767 accepts,
    // tests/accept_wakeups.rs). The LocalEvent keeps one waker per waiter.
    let remote = LocalEvent::default();
    glommio::spawn_local({
        let remote = remote.clone();
        async move {
            wake.wait().await;
            remote.set();
        }
    })
    .detach();
    let mut acceptor = Acceptor::new(&engine, listener_fd);
    // Every client may need one backend socket: accept at most half the descriptor table.
    let files_limit = (engine.files_capacity() / 2).max(1) as usize;
    let limit = if max_connections > 0 {
        max_connections.min(files_limit)
    } else {
        files_limit
    };
    future::or(
        accept_loop(index, &mut acceptor, &engine, &handler, &tracker, limit),
        remote.wait(),
    )
    .await;
    // Close the listener before telling handlers: anything still in its
    // backlog is reset now rather than accepted by a shard that is leaving.
    stop_listening(listener_fd);
    drop(acceptor);
    drop(listener);
    tracker.shutdown.trigger();
    drain(index, &tracker, &engine, drain_timeout).await;
    drop(handler);
    drop(ctx);
    engine.close();
    driver.await;
    Ok(())
}

async fn accept_loop<H, Fut>(
    index: usize,
    acceptor: &mut Acceptor,
    engine: &Engine,
    handler: &H,
    tracker: &Rc<Tracker>,
    limit: usize,
) where
    H: Fn(Conn, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let stats = &tracker.stats;
    loop {
        // Accepts in flight count against the limit, so it is never overshot; at the limit
        // new connections wait in the kernel's backlog until one closes.
        let room = std::future::poll_fn(|cx| {
            let open = stats.connections_open.load(Relaxed) as usize;
            let room = limit.saturating_sub(open + acceptor.in_flight());
            if room > 0 || acceptor.in_flight() > 0 {
                std::task::Poll::Ready(room)
            } else {
                tracker.accept_waker.set(Some(cx.waker().clone()));
                std::task::Poll::Pending
            }
        })
        .await;
        let depth = (acceptor.in_flight() + room).min(ACCEPT_DEPTH);
        let conn = match acceptor.accept(depth).await {
            Ok(conn) => conn,
            Err(e) => {
                if e.kind() == io::ErrorKind::ConnectionAborted {
                    // The client gave up while queued; nothing to fix here.
                    continue;
                }
                stats.accept_errors.fetch_add(1, Relaxed);
                log::warn!("shard {index}: accept failed: {e}; retrying in {ACCEPT_BACKOFF:?}");
                engine
                    .sleep_until(std::time::Instant::now() + ACCEPT_BACKOFF)
                    .await;
                continue;
            }
        };
        stats.connections_accepted.fetch_add(1, Relaxed);
        let peer = conn.peer_addr();
        let guard = ConnGuard::new(tracker);
        let conn = handler(conn, peer);
        let abort = tracker.abort.clone();
        glommio::spawn_local(async move {
            let _guard = guard;
            future::or(conn, async { abort.wait().await }).await
        })
        .detach();
    }
}

/// Waits until every connection has closed or `timeout` passes.
async fn drain(index: usize, tracker: &Tracker, engine: &Engine, timeout: Duration) {
    let open = tracker.stats.connections_open.load(Relaxed);
    if open == 0 {
        return;
    }
    log::info!("shard {index}: draining {open} open connection(s), up to {timeout:?}");
    let drained = future::or(
        async {
            tracker.drained.wait().await;
            true
        },
        async {
            engine
                .sleep_until(std::time::Instant::now() + timeout)
                .await;
            false
        },
    )
    .await;
    if !drained {
        log::warn!(
            "shard {index}: drain timeout ({timeout:?}) passed with {} connection(s) still open; dropping them",
            tracker.stats.connections_open.load(Relaxed)
        );
        // Each task finishes on its next poll, dropping its handler future
        // and so closing its socket; the last guard then sets `drained`.
        tracker.abort.set();
        tracker.drained.wait().await;
    }
}

/// Takes the listening socket out of the LISTEN state.
///
/// Closing our fd is not enough: an io_uring accept being cancelled still
/// holds a reference to the socket until the kernel processes the
/// cancellation, and until then the kernel keeps completing handshakes into
/// the backlog of a shard that will never accept them. shutdown(2) on a
/// listening socket stops it at once, whoever else holds a reference.
fn stop_listening(fd: RawFd) {
    // SAFETY: fd is the listener we still own.
    if unsafe { libc::shutdown(fd, libc::SHUT_RDWR) } != 0 {
        log::debug!("shutdown(listener): {}", io::Error::last_os_error());
    }
}
