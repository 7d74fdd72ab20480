//! A shard-local, set-once event that any number of tasks can await.
//!
//! Single-threaded on purpose (Rc/Cell/RefCell): it lives inside one shard,
//! so it needs no atomics. Cross-thread wake-ups go through `signal.rs`.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

#[derive(Default)]
struct Inner {
    set: Cell<bool>,
    /// One slot per pending `wait()`; freed slots are reused. A waiter keeps
    /// its slot across polls so that a connection re-polling `wait()` inside a
    /// select on every read does not grow the list without bound.
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

#[derive(Clone, Default)]
pub(crate) struct LocalEvent(Rc<Inner>);

impl LocalEvent {
    pub(crate) fn is_set(&self) -> bool {
        self.0.set.get()
    }

    /// Sets the event and wakes every waiter. Idempotent.
    pub(crate) fn set(&self) {
        if self.0.set.replace(true) {
            return;
        }
        // Take the wakers out first: a woken task may run arbitrary code, but
        // not before we return, and we must not hold the borrow while waking.
        let wakers = std::mem::take(&mut *self.0.waiters.borrow_mut());
        self.0.free.borrow_mut().clear();
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// Resolves once [`set`](Self::set) has been called.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            slot: None,
        }
    }
}

pub(crate) struct Wait<'a> {
    event: &'a LocalEvent,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = &self.event.0;
        if inner.set.get() {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = inner.waiters.borrow_mut();
        match self.slot {
            Some(i) => match &mut waiters[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            },
            None => {
                let waker = Some(cx.waker().clone());
                let i = match inner.free.borrow_mut().pop() {
                    Some(i) => {
                        waiters[i] = waker;
                        i
                    }
                    None => {
                        waiters.push(waker);
                        waiters.len() - 1
                    }
                };
                drop(waiters);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let inner = &self.event.0;
        // After set() the slots were cleared; nothing to give back.
        if let (Some(i), false) = (self.slot, inner.set.get()) {
            inner.waiters.borrow_mut()[i] = None;
            inner.free.borrow_mut().push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn wakes_all_waiters_and_reuses_slots() {
        let ev = LocalEvent::default();
        let mut a = Box::pin(ev.wait());
        let mut b = Box::pin(ev.wait());
        assert!(future::block_on(future::poll_once(&mut a)).is_none());
        assert!(future::block_on(future::poll_once(&mut b)).is_none());
        // Re-polling keeps the same slot.
        for _ in 0..10 {
            assert!(future::block_on(future::poll_once(&mut a)).is_none());
        }
        assert_eq!(ev.0.waiters.borrow().len(), 2);
        drop(b);
        let mut c = Box::pin(ev.wait());
        assert!(future::block_on(future::poll_once(&mut c)).is_none());
        assert_eq!(ev.0.waiters.borrow().len(), 2);

        ev.set();
        assert!(ev.is_set());
        future::block_on(a);
        future::block_on(c);
        future::block_on(ev.wait());
    }
}
