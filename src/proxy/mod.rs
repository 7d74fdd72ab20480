//! The proxy: what one shard runs for each client connection.
//!
//! A request passes through named phases, one file each, and [`exchange`] reads as the list
//! of them: accept (`shards` crate) → decode ([`client`]) → route, authorize, body limit,
//! admit ([`gate`]) → encode, connect with retry, send the body ([`forward`], connections from
//! [`backend`]) → response head, framing, relay, back to the pool ([`respond`], bodies in
//! [`body`] through the relay seam) → log ([`log_record`]); a 101 to an upgrade offer becomes a
//! [`tunnel`] instead of a relay. Errors from every phase become a
//! [`ProxyError`], which alone decides the status code. Shared state is in [`shard`].

mod admission;
mod backend;
mod balancer;
mod body;
mod client;
pub mod connect_warnings;
mod error;
mod exchange;
mod forward;
mod gate;
mod health;
mod log_record;
mod peer;
mod pool;
mod request_id;
mod respond;
mod shard;
mod tunnel;

pub use error::{ErrorKind, ProxyError, Side};
pub use health::HealthTable;
pub use request_id::{is_valid as is_valid_request_id, MAX_REQUEST_ID};
pub use shard::{handler, GroupState, Scratch, Shard, VIA};
