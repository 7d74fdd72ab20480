//! Accepting on the shard's SO_REUSEPORT listener into direct descriptors.
//!
//! Single-shot `ACCEPT`s, a few in flight, each with its own address buffer, rather than one
//! multishot accept: a multishot accept has one address buffer for all its completions, and
//! 6.18 has no io_uring way to ask a direct descriptor for its peer address afterwards, while
//! the proxy needs that address for every connection (forwarding headers, per-client limits,
//! logs). The extra SQE per connection costs no syscall: it rides in the loop turn's enter.

use std::io;
use std::os::fd::RawFd;
use std::task::Poll;

use io_uring::{opcode, types};

use super::conn::{nodelay_sqe, SockAddr};
use super::{cqe_error, Conn, Engine, Hold, Kind};

/// Accepts in flight at most: enough that a burst of connections is taken several per loop
/// turn, few enough that a limit is overshot by no more than this.
pub const ACCEPT_DEPTH: usize = 8;

struct Pending {
    idx: u32,
}

/// The accept side of one shard's listener.
pub struct Acceptor {
    engine: Engine,
    listener: RawFd,
    pending: Vec<Pending>,
    /// Address buffers not in flight, reused.
    spare: Vec<Box<SockAddr>>,
}

impl Acceptor {
    /// `listener` must stay open while the acceptor lives.
    pub fn new(engine: &Engine, listener: RawFd) -> Acceptor {
        Acceptor {
            engine: engine.clone(),
            listener,
            pending: Vec::with_capacity(ACCEPT_DEPTH),
            spare: Vec::new(),
        }
    }

    /// Accepts in flight now.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Waits for the next connection, keeping up to `depth` accepts in the kernel. The new
    /// connection has TCP_NODELAY set.
    pub async fn accept(&mut self, depth: usize) -> io::Result<Conn> {
        let depth = depth.clamp(1, ACCEPT_DEPTH);
        while self.pending.len() < depth {
            let mut addr = self
                .spare
                .pop()
                .unwrap_or_else(|| Box::new(SockAddr::empty()));
            addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let sqe = opcode::Accept::new(
                types::Fd(self.listener),
                (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                &mut addr.len,
            )
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build();
            let idx = self.engine.start(sqe, Kind::NewFile, Hold::Addr(addr));
            self.pending.push(Pending { idx });
        }
        std::future::poll_fn(|cx| {
            for i in 0..self.pending.len() {
                if let Poll::Ready((res, _, hold)) = self.engine.poll_op(self.pending[i].idx, cx) {
                    self.pending.swap_remove(i);
                    let Hold::Addr(addr) = hold else {
                        unreachable!("accept holds its address")
                    };
                    let peer = addr.to_std();
                    self.spare.push(addr);
                    if res < 0 {
                        return Poll::Ready(Err(cqe_error(res)));
                    }
                    let fd = res as u32;
                    self.engine.file_opened();
                    let Some(peer) = peer else {
                        let c = Conn::new(&self.engine, fd, "0.0.0.0:0".parse().unwrap());
                        drop(c);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "accepted a connection without an IP peer address",
                        )));
                    };
                    self.engine.fire(nodelay_sqe(fd));
                    return Poll::Ready(Ok(Conn::new(&self.engine, fd, peer)));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Cancels the accepts in flight; one that completes anyway has its descriptor closed.
    pub fn cancel(&mut self) {
        for p in self.pending.drain(..) {
            self.engine.abandon(p.idx);
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.cancel();
    }
}
