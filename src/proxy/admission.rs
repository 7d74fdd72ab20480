//! The admit phase: a per-shard cap on requests in flight, with a bounded FIFO queue.
//!
//! This is the throttle that keeps a flood of slow requests from exhausting a core's
//! memory: at most `max_requests_per_core` requests are past this phase at once; up to
//! `queue_size` more wait, in arrival order, for at most `queue_timeout`; the rest, and those
//! that time out, are answered 503 with `Retry-After` at once. A waiting request holds no
//! backend connection and no relay buffer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures_lite::future;

use crate::metrics::{Counter, ProxyStats};

#[derive(Default)]
struct Slot {
    waker: RefCell<Option<Waker>>,
    /// Set by the releasing request: the permit is handed over without going through the
    /// counter, so a newcomer can never overtake the queue.
    granted: Cell<bool>,
}

struct Inner {
    max: usize,
    queue_size: usize,
    in_flight: Cell<usize>,
    queue: RefCell<VecDeque<Rc<Slot>>>,
    /// Where `corelay_admission_in_flight` and `_queued` are published, after every change.
    gauges: RefCell<Option<Arc<ProxyStats>>>,
}

impl Inner {
    fn publish(&self) {
        if let Some(g) = &*self.gauges.borrow() {
            g.set(Counter::AdmissionInFlight, self.in_flight.get() as u64);
            g.set(Counter::AdmissionQueued, self.queue.borrow().len() as u64);
        }
    }

    /// Hands the permit to the oldest waiter, or returns it to the counter.
    fn release(&self) {
        if let Some(slot) = self.queue.borrow_mut().pop_front() {
            slot.granted.set(true);
            if let Some(w) = slot.waker.borrow_mut().take() {
                w.wake();
            }
        } else {
            self.in_flight.set(self.in_flight.get() - 1);
        }
        self.publish();
    }
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    QueueFull,
    QueueTimeout,
}

#[derive(Clone)]
pub struct Admission {
    inner: Rc<Inner>,
    queue_timeout: Duration,
}

/// A request's right to proceed; released when dropped, however the request ends.
pub struct Permit {
    inner: Rc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.release();
    }
}

impl Admission {
    pub fn new(max: usize, queue_size: usize, queue_timeout: Duration) -> Admission {
        Admission::publishing(max, queue_size, queue_timeout, None)
    }

    /// [`Admission::new`], publishing its in-flight and queued counts to `gauges`.
    pub fn publishing(
        max: usize,
        queue_size: usize,
        queue_timeout: Duration,
        gauges: Option<Arc<ProxyStats>>,
    ) -> Admission {
        Admission {
            inner: Rc::new(Inner {
                max,
                queue_size,
                in_flight: Cell::new(0),
                queue: RefCell::new(VecDeque::new()),
                gauges: RefCell::new(gauges),
            }),
            queue_timeout,
        }
    }

    /// Publishes to `gauges` from now on (a reload that changed the metrics' layout).
    pub fn republish(&self, gauges: Arc<ProxyStats>) {
        *self.inner.gauges.borrow_mut() = Some(gauges);
        self.inner.publish();
    }

    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.get()
    }

    pub fn queued(&self) -> usize {
        self.inner.queue.borrow().len()
    }

    pub async fn admit(&self) -> Result<Permit, Rejected> {
        let inner = &self.inner;
        if inner.in_flight.get() < inner.max && inner.queue.borrow().is_empty() {
            inner.in_flight.set(inner.in_flight.get() + 1);
            inner.publish();
            return Ok(Permit {
                inner: inner.clone(),
            });
        }
        if inner.queue.borrow().len() >= inner.queue_size {
            return Err(Rejected::QueueFull);
        }
        let slot = Rc::new(Slot::default());
        inner.queue.borrow_mut().push_back(slot.clone());
        inner.publish();
        // Whatever happens to this future (timeout, or the connection task dropped), the
        // slot must leave the queue, and a permit handed to it must not be lost.
        let guard = QueueGuard {
            inner: inner.clone(),
            slot: slot.clone(),
        };
        let granted = future::or(
            poll_fn(|cx| {
                if slot.granted.get() {
                    Poll::Ready(true)
                } else {
                    *slot.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }),
            async {
                glommio::timer::sleep(self.queue_timeout).await;
                false
            },
        )
        .await;
        if granted || slot.granted.get() {
            std::mem::forget(guard);
            Ok(Permit {
                inner: inner.clone(),
            })
        } else {
            drop(guard);
            Err(Rejected::QueueTimeout)
        }
    }
}

struct QueueGuard {
    inner: Rc<Inner>,
    slot: Rc<Slot>,
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        if self.slot.granted.get() {
            // Granted, but nobody will use it: pass it on.
            self.inner.release();
        } else {
            self.inner
                .queue
                .borrow_mut()
                .retain(|s| !Rc::ptr_eq(s, &self.slot));
            self.inner.publish();
        }
    }
}

/// Open connections per client address on this shard (`max_connections_per_client`).
#[derive(Default)]
pub struct ClientCounts {
    counts: RefCell<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection counted against its address until dropped. Owns its counts, since the
/// connection outlives the configuration generation it was accepted under.
pub struct ClientSlot {
    counts: Rc<ClientCounts>,
    ip: std::net::IpAddr,
}

impl ClientCounts {
    /// Counts a connection from `ip`, or refuses it when the address already holds `max`.
    pub fn enter(self: &Rc<Self>, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut counts = self.counts.borrow_mut();
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.borrow_mut();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Keeps the map as small as the set of connected addresses.
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
        glommio::LocalExecutor::default().run(f);
    }

    #[test]
    fn admits_up_to_max_then_queues_then_rejects() {
        run(async {
            let a = Admission::new(2, 1, Duration::from_secs(5));
            let p1 = a.admit().await.unwrap();
            let _p2 = a.admit().await.unwrap();
            let a2 = a.clone();
            let waiter = glommio::spawn_local(async move { a2.admit().await.map(|_| ()) });
            glommio::yield_if_needed().await;
            glommio::timer::sleep(Duration::from_millis(1)).await;
            assert_eq!(a.queued(), 1);
            assert_eq!(a.admit().await.err(), Some(Rejected::QueueFull));
            drop(p1);
            assert_eq!(waiter.await, Ok(()));
            // The waiter's permit was dropped by its task: one in flight remains.
            assert_eq!(a.in_flight(), 1);
            assert_eq!(a.queued(), 0);
        });
    }

    #[test]
    fn client_counts_cap_per_address() {
        let c = Rc::new(ClientCounts::default());
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let a = c.enter(ip, 2).unwrap();
        let _b = c.enter(ip, 2).unwrap();
        assert!(c.enter(ip, 2).is_none());
        assert!(c.enter(other, 2).is_some());
        drop(a);
        assert!(c.enter(ip, 2).is_some());
    }

    #[test]
    fn queue_times_out_and_leaves_no_slot_behind() {
        run(async {
            let a = Admission::new(1, 4, Duration::from_millis(50));
            let p = a.admit().await.unwrap();
            let t = Instant::now();
            assert_eq!(a.admit().await.err(), Some(Rejected::QueueTimeout));
            assert!(t.elapsed() >= Duration::from_millis(50));
            assert_eq!(a.queued(), 0);
            drop(p);
            assert_eq!(a.in_flight(), 0);
            let _p = a.admit().await.unwrap();
        });
    }

    #[test]
    fn fifo_order_and_dropped_waiters_pass_the_permit_on() {
        run(async {
            let a = Admission::new(1, 8, Duration::from_secs(5));
            let p = a.admit().await.unwrap();
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..3 {
                let (a, order) = (a.clone(), order.clone());
                tasks.push(glommio::spawn_local(async move {
                    let _permit = a.admit().await.unwrap();
                    order.borrow_mut().push(i);
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }));
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            // A waiter whose task is cancelled leaves the queue.
            let a3 = a.clone();
            let cancelled = glommio::spawn_local(async move {
                let _ = a3.admit().await;
            });
            glommio::timer::sleep(Duration::from_millis(1)).await;
            assert_eq!(a.queued(), 4);
            cancelled.cancel().await;
            assert_eq!(a.queued(), 3);
            drop(p);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![0, 1, 2]);
            assert_eq!(a.in_flight(), 0);
        });
    }
}
