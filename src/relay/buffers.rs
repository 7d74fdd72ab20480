//! The shard's fixed pool of body buffers.
//!
//! Memory for bodies is allocated once per shard at start-up (`--buffer-ring-size` buffers of
//! `--buffer-size` bytes) and never grows: a transfer that finds the pool empty waits for a
//! buffer instead of allocating, which is what keeps memory flat under any load.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Inner {
    free: Vec<Box<[u8]>>,
    waiters: VecDeque<Waker>,
    total: usize,
    buffer_size: usize,
}

/// Shard-local (not `Send`): each shard owns its own pool.
#[derive(Clone)]
pub struct BufferPool {
    inner: Rc<RefCell<Inner>>,
}

/// A buffer on loan from the pool; it goes back when dropped, whatever way the transfer ends.
pub struct PooledBuffer {
    buf: Option<Box<[u8]>>,
    pool: BufferPool,
}

impl BufferPool {
    pub fn new(count: usize, buffer_size: usize) -> BufferPool {
        let free = (0..count)
            .map(|_| vec![0u8; buffer_size].into_boxed_slice())
            .collect();
        BufferPool {
            inner: Rc::new(RefCell::new(Inner {
                free,
                waiters: VecDeque::new(),
                total: count,
                buffer_size,
            })),
        }
    }

    pub fn free(&self) -> usize {
        self.inner.borrow().free.len()
    }

    pub fn total(&self) -> usize {
        self.inner.borrow().total
    }

    pub fn buffer_size(&self) -> usize {
        self.inner.borrow().buffer_size
    }

    /// Waits until a buffer is free and takes it.
    pub async fn acquire(&self) -> PooledBuffer {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            let mut inner = self.inner.borrow_mut();
            match inner.free.pop() {
                Some(buf) => Poll::Ready(PooledBuffer {
                    buf: Some(buf),
                    pool: self.clone(),
                }),
                None => {
                    inner.waiters.push_back(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl std::ops::Deref for PooledBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.as_deref().expect("buffer present until drop")
    }
}

impl std::ops::DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("buffer present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let mut inner = self.pool.inner.borrow_mut();
            inner.free.push(buf);
            // Wake one waiter; a waiter whose task was dropped wakes nobody, so on the next
            // release another one gets its turn (a spurious wake costs one poll).
            if let Some(w) = inner.waiters.pop_front() {
                w.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_return_on_drop_and_waiters_wake() {
        glommio::LocalExecutor::default().run(async {
            let pool = BufferPool::new(2, 1024);
            let a = pool.acquire().await;
            let b = pool.acquire().await;
            assert_eq!(pool.free(), 0);
            assert_eq!(a.len(), 1024);
            let p2 = pool.clone();
            let waiter = glommio::spawn_local(async move { p2.acquire().await.len() });
            glommio::yield_if_needed().await;
            drop(a);
            assert_eq!(waiter.await, 1024);
            drop(b);
            assert_eq!(pool.free(), 2);
        });
    }
}
