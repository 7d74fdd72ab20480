//! The shard-local view of shutdown that connection handlers see.
//!
//! Handlers only need "has shutdown begun?" and "tell me when it does"; they
//! never see threads or file descriptors. The shard flips this after it has
//! stopped accepting, so a handler that observes it knows no new connections
//! are coming.

use crate::event::LocalEvent;

/// Shard-local shutdown signal (clone is cheap, Rc inside): the proxy checks
/// it between requests and awaits it while idle.
///
/// Not `Send`: each shard has its own, and a handler holding one stays on its
/// shard. Use [`ShutdownHandle`](crate::ShutdownHandle) to trigger shutdown
/// from another thread.
#[derive(Clone, Default)]
pub struct Shutdown {
    event: LocalEvent,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    pub(crate) fn new() -> Shutdown {
        Shutdown::default()
    }

    /// True once this shard has begun shutting down.
    pub fn is_triggered(&self) -> bool {
        self.event.is_set()
    }

    /// Resolves once shutdown begins (immediately if it already has).
    ///
    /// Cancel-safe and cheap to re-create, so it can sit in a select next to
    /// a keep-alive read.
    pub async fn wait(&self) {
        self.event.wait().await
    }

    pub(crate) fn trigger(&self) {
        self.event.set()
    }
}
