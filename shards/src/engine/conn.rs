//! A TCP connection on the engine: a direct descriptor with at most one receive armed.
//!
//! Receives use buffer select from the head group, so a connection holds no buffer while it
//! waits: the kernel picks one when bytes arrive, [`Conn::take_into`] copies them out and
//! gives it back. The armed receive belongs to the connection, not to the future awaiting it:
//! a wait that is given up (a shutdown race, a pooled connection) leaves it armed, and the
//! next wait collects it. An idle pooled backend connection keeps one armed, so its close
//! (or stray bytes) is seen the moment it happens ([`Conn::is_quiet`]), with no syscall.
//!
//! Sends own their bytes while the kernel has them (see `mod.rs`: a dropped send leaves them
//! with the orphaned slot until its completion).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types};

use super::bufs::{Group, HEAD_BUFFER_SIZE};
use super::{cqe_error, Engine, Hold, Kind, Op, State};

/// A socket address the kernel reads or writes while an operation is in flight.
pub struct SockAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl SockAddr {
    pub(crate) fn empty() -> SockAddr {
        // SAFETY: all-zero is a valid sockaddr_storage.
        SockAddr {
            storage: unsafe { std::mem::zeroed() },
            len: std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    fn from_std(addr: SocketAddr) -> SockAddr {
        let s = socket2::SockAddr::from(addr);
        let mut out = SockAddr::empty();
        // SAFETY: copies s.len() bytes of a valid sockaddr into a sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.as_ptr() as *const u8,
                (&mut out.storage as *mut libc::sockaddr_storage).cast::<u8>(),
                s.len() as usize,
            );
        }
        out.len = s.len();
        out
    }

    pub(crate) fn to_std(&self) -> Option<SocketAddr> {
        // SAFETY: the kernel filled `len` bytes of `storage`.
        let s = unsafe { socket2::SockAddr::new(self.storage, self.len) };
        s.as_socket()
    }
}

/// `SOCKET_URING_OP_SETSOCKOPT` (linux/io_uring.h; private in the io-uring crate).
const SOCKET_URING_OP_SETSOCKOPT: u32 = 3;

static ONE: libc::c_int = 1;
static LINGER_RESET: libc::linger = libc::linger {
    l_onoff: 1,
    l_linger: 0,
};

/// `setsockopt` as an io_uring command (`SOCKET_URING_OP_SETSOCKOPT`, Linux 6.7): the only
/// way to set an option on a direct descriptor. The io-uring crate has no builder for its
/// `level`/`optname`/`optlen`/`optval` fields, so they are placed at their ABI offsets.
pub(crate) fn setsockopt_sqe<T>(fd: u32, level: i32, name: i32, val: &'static T) -> squeue::Entry {
    let mut cmd = [0u8; 16];
    cmd[..8].copy_from_slice(&(val as *const T as u64).to_ne_bytes());
    let mut sqe = opcode::UringCmd16::new(types::Fixed(fd), SOCKET_URING_OP_SETSOCKOPT)
        .cmd(cmd)
        .addr(Some((level as u32 as u64) | ((name as u32 as u64) << 32)))
        .build();
    // SAFETY: `squeue::Entry` is `repr(C)` around the 64-byte `io_uring_sqe`; `optlen` is
    // the u32 at offset 44 (the `splice_fd_in`/`file_index` union).
    unsafe {
        let p = (&mut sqe as *mut squeue::Entry).cast::<u8>();
        p.add(44)
            .cast::<u32>()
            .write_unaligned(std::mem::size_of::<T>() as u32);
    }
    sqe
}

pub(crate) fn shutdown_sqe(fd: u32) -> squeue::Entry {
    opcode::Shutdown::new(types::Fixed(fd), libc::SHUT_WR).build()
}

pub(crate) fn nodelay_sqe(fd: u32) -> squeue::Entry {
    setsockopt_sqe(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &ONE)
}

/// A connection: client or backend.
pub struct Conn {
    engine: Engine,
    fd: u32,
    peer: SocketAddr,
    /// In milliseconds (4 bytes each: every held connection carries two `Conn`s).
    read_timeout: Option<std::num::NonZeroU32>,
    write_timeout: Option<std::num::NonZeroU32>,
    /// The armed receive's slot, until its completion is collected.
    armed: Option<u32>,
    /// A collected receive's bytes not yet copied out: head buffer, offset, end.
    ready: Option<(u16, u16, u16)>,
    /// A collected end of stream (0) or error, to report once `ready` is drained.
    ended: Option<i32>,
}

impl Conn {
    pub(crate) fn new(engine: &Engine, fd: u32, peer: SocketAddr) -> Conn {
        Conn {
            engine: engine.clone(),
            fd,
            peer,
            read_timeout: None,
            write_timeout: None,
            armed: None,
            ready: None,
            ended: None,
        }
    }

    /// Connects to `addr` within `timeout`. The socket is a direct descriptor with
    /// TCP_NODELAY. `ENFILE` means the shard's descriptor table is full.
    pub async fn connect(engine: &Engine, addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let sqe = opcode::Socket::new(domain, libc::SOCK_STREAM, 0)
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build();
        let idx = engine.start(sqe, Kind::NewFile, Hold::None);
        let (res, _, _) = Op::new(engine, idx).await;
        if res < 0 {
            return Err(cqe_error(res));
        }
        engine.file_opened();
        let conn = Conn::new(engine, res as u32, addr);
        engine.fire(nodelay_sqe(conn.fd));
        let sa = Box::new(SockAddr::from_std(addr));
        let sqe = opcode::Connect::new(
            types::Fixed(conn.fd),
            (&sa.storage as *const libc::sockaddr_storage).cast(),
            sa.len,
        )
        .build();
        let idx = engine.start(sqe, Kind::Other, Hold::Addr(sa));
        let deadline = engine.now() + timeout;
        match with_deadline(engine, Some(deadline), Op::new(engine, idx)).await {
            Some((res, _, _)) if res < 0 => Err(cqe_error(res)),
            Some(_) => Ok(conn),
            None => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        }
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn fd(&self) -> u32 {
        self.fd
    }

    /// Each wait for bytes (and each relay read) fails with `TimedOut` after this long.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t.map(millis);
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
            .map(|m| Duration::from_millis(m.get() as u64))
    }

    /// Each send (and each relay write) fails with `TimedOut` after this long.
    pub fn set_write_timeout(&mut self, t: Option<Duration>) {
        self.write_timeout = t.map(millis);
    }

    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout
            .map(|m| Duration::from_millis(m.get() as u64))
    }

    /// Arms a receive if none is armed, so that the peer's next bytes or close are seen.
    pub fn arm(&mut self) {
        if self.armed.is_none() && self.ready.is_none() && self.ended.is_none() {
            let sqe = opcode::Recv::new(
                types::Fixed(self.fd),
                std::ptr::null_mut(),
                HEAD_BUFFER_SIZE as u32,
            )
            .buf_group(Group::Head as u16)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
            self.armed = Some(self.engine.start(sqe, Kind::Recv(Group::Head), Hold::None));
        }
    }

    /// True while nothing has arrived: no bytes, no close, no error. A pooled connection that
    /// is not quiet must not carry a request: EOF means the backend closed it, and bytes it
    /// sent unasked would be taken as the next request's response.
    pub fn is_quiet(&self) -> bool {
        if self.ready.is_some() || self.ended.is_some() {
            return false;
        }
        match self.armed {
            Some(idx) => matches!(
                self.engine.inner().ops.borrow().slots[idx as usize].state,
                State::Pending(_)
            ),
            None => true,
        }
    }

    /// Bytes received and not yet taken.
    pub fn ready_len(&self) -> usize {
        self.ready.map_or(0, |(_, off, end)| (end - off) as usize)
    }

    /// Waits until bytes are ready (returns how many), or the peer closed (0). Honours the
    /// read timeout. Dropping the future leaves the receive armed.
    pub async fn wait_data(&mut self) -> io::Result<usize> {
        let engine = self.engine.clone();
        let deadline = self.read_timeout().map(|t| engine.now() + t);
        let data = std::future::poll_fn(|cx| match self.poll_data(cx) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        });
        with_deadline(&engine, deadline, data)
            .await
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::TimedOut, "receive timed out")))
    }

    pub(super) fn poll_data(&mut self, cx: &mut Context<'_>) -> Option<io::Result<usize>> {
        loop {
            if self.ready.is_some() {
                return Some(Ok(self.ready_len()));
            }
            if let Some(res) = self.ended {
                return Some(if res == 0 { Ok(0) } else { Err(cqe_error(res)) });
            }
            self.arm();
            let idx = self.armed.expect("armed");
            let (res, flags, _) = match self.engine.poll_op(idx, cx) {
                Poll::Ready(r) => r,
                Poll::Pending => return None,
            };
            self.armed = None;
            if res == -libc::ENOBUFS {
                // Every head buffer was taken in this turn; they come back within it.
                self.engine
                    .stats()
                    .no_buffers
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            if res <= 0 {
                self.ended = Some(res);
                continue;
            }
            let bid = cqueue::buffer_select(flags).expect("receive with buffer select");
            self.engine.inner().bufs.picked(Group::Head);
            self.ready = Some((bid, 0, res as u16));
        }
    }

    /// Copies ready bytes into `dst`; returns how many. The head buffer goes back to the
    /// kernel once it is empty.
    pub fn take_into(&mut self, dst: &mut [u8]) -> usize {
        let Some((bid, off, end)) = self.ready else {
            return 0;
        };
        let n = dst.len().min((end - off) as usize);
        let bufs = &self.engine.inner().bufs;
        // SAFETY: we own `bid` (collected from a completed receive) and `end` ≤ its size.
        let src = unsafe { bufs.bytes(Group::Head, bid, end as usize) };
        dst[..n].copy_from_slice(&src[off as usize..off as usize + n]);
        if off as usize + n == end as usize {
            bufs.recycle(Group::Head, bid);
            self.ready = None;
        } else {
            self.ready = Some((bid, off + n as u16, end));
        }
        n
    }

    /// Receives into `dst`: waits for bytes, copies what fits. 0 at end of stream.
    pub async fn recv(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if self.wait_data().await? == 0 {
            return Ok(0);
        }
        Ok(self.take_into(dst))
    }

    /// Sends all of `buf`, which the kernel owns until each send completes. Returns it
    /// (cleared of nothing: the caller decides) for reuse.
    pub async fn send(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        send_on(&self.engine, self.fd, self.write_timeout(), buf).await
    }

    /// Sends static bytes (fixed answers such as `100 Continue`).
    pub async fn send_static(&mut self, bytes: &'static [u8]) -> io::Result<()> {
        let mut off = 0;
        while off < bytes.len() {
            let (n, _) = send_raw(
                &self.engine,
                self.fd,
                self.write_timeout(),
                bytes[off..].as_ptr(),
                bytes.len() - off,
                Hold::None,
            )
            .await?;
            off += n;
        }
        Ok(())
    }

    /// Half-closes: the peer reads end of stream after what was sent.
    pub fn shutdown_write(&self) {
        self.engine.fire(shutdown_sqe(self.fd));
    }

    /// Makes the close send RST instead of FIN (SO_LINGER 0), so a peer cannot mistake a cut
    /// message for a complete close-delimited one.
    pub fn reset_on_close(&self) {
        self.engine.fire(setsockopt_sqe(
            self.fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &LINGER_RESET,
        ));
    }

    /// Appends up to `max` of the received bytes not taken yet to `out` (a relay source
    /// starting with them: the caller sends them first). Returns how many.
    pub fn drain_ready(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let n = self.ready_len().min(max);
        let at = out.len();
        out.resize(at + n, 0);
        self.take_into(&mut out[at..])
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((bid, _, _)) = self.ready.take() {
            self.engine.inner().bufs.recycle(Group::Head, bid);
        }
        if let Some(idx) = self.armed.take() {
            // Cancelled before the close; the orphan's completion gives back any buffer.
            self.engine.abandon(idx);
        }
        self.engine.close_file(self.fd);
    }
}

/// A timeout in whole milliseconds, at least 1.
fn millis(t: Duration) -> std::num::NonZeroU32 {
    let ms = t.as_millis().clamp(1, u32::MAX as u128) as u32;
    std::num::NonZeroU32::new(ms).expect("at least 1")
}

/// Runs `op` until it completes (`Some`) or `deadline` passes (`None`; the op is dropped, and
/// so abandoned).
pub(crate) async fn with_deadline<F: Future>(
    engine: &Engine,
    deadline: Option<Instant>,
    op: F,
) -> Option<F::Output> {
    let mut op = std::pin::pin!(op);
    let mut sleep = deadline.map(|d| engine.sleep_until(d));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = op.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        if let Some(s) = sleep.as_mut() {
            if Pin::new(s).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await
}

/// Sends all of `buf` on descriptor `fd`. A free function, so that a tunnel can send on one
/// connection while its other direction waits on that connection's receive.
pub(crate) async fn send_on(
    engine: &Engine,
    fd: u32,
    timeout: Option<Duration>,
    buf: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    let (ptr, len) = (buf.as_ptr(), buf.len());
    let mut hold = Hold::Bytes(buf);
    let mut off = 0;
    let mut result = Ok(());
    while off < len {
        // SAFETY: `ptr..ptr+len` is the Vec's heap memory, owned by the slot (`hold`) until
        // the completion, so it stays valid even if this future is dropped.
        let r = send_raw(
            engine,
            fd,
            timeout,
            unsafe { ptr.add(off) },
            len - off,
            hold,
        )
        .await;
        match r {
            Ok((n, h)) => {
                hold = h;
                off += n;
            }
            Err(e) => {
                result = Err(e);
                hold = Hold::None;
                break;
            }
        }
    }
    let buf = match hold {
        Hold::Bytes(b) => b,
        _ => Vec::new(),
    };
    (result, buf)
}

async fn send_raw(
    engine: &Engine,
    fd: u32,
    timeout: Option<Duration>,
    ptr: *const u8,
    len: usize,
    hold: Hold,
) -> io::Result<(usize, Hold)> {
    let sqe = opcode::Send::new(types::Fixed(fd), ptr, len as u32)
        .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
        .build();
    let idx = engine.start(sqe, Kind::Send, hold);
    let deadline = timeout.map(|t| engine.now() + t);
    match with_deadline(engine, deadline, Op::new(engine, idx)).await {
        Some((res, _, hold)) if res > 0 => Ok((res as usize, hold)),
        Some((0, _, _)) => Err(io::Error::new(io::ErrorKind::WriteZero, "send returned 0")),
        Some((res, _, _)) => Err(cqe_error(res)),
        None => Err(io::Error::new(io::ErrorKind::TimedOut, "send timed out")),
    }
}
