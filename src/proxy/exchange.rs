//! One request/response exchange, as the list of its phases.
//!
//! Entered with a parsed request head at the front of the client's buffer; returns whether the
//! client connection may carry another request. The request body is sent completely before the
//! response is read (a backend that answers early still has its answer relayed after that).
//! A 101 to an upgrade offer turns the exchange into a tunnel, which leaves admission: a
//! long-lived WebSocket must not hold a request slot.

use super::error::ProxyError;
use super::peer::Peer;
use super::shard::{Scratch, Shard};
use super::{forward, gate, respond, tunnel};
use crate::http1::ForwardInfo;

pub use respond::{answer_locally, Next};

pub async fn exchange(
    shard: &Shard,
    client: &mut Peer,
    s: &mut Scratch,
    info: &ForwardInfo<'_>,
) -> Result<Next, ProxyError> {
    let (route, group) = gate::route(shard, client, s)?;
    let strip = gate::authorize(shard, route, client, s)?;
    gate::body_limit(shard, s)?;
    let permit = gate::admit(shard).await?;
    let upgrade = gate::upgrade(shard, route, client, s);
    // A temporary, so that it is not held in the task across the awaits below.
    let body = forward::encode(
        client,
        s,
        &ForwardInfo {
            strip: strip.as_slice(),
            upgrade,
            ..*info
        },
    );
    let mut forwarded = forward::send(shard, group, client, s, body).await?;
    if tunnel::switched(s) {
        drop(permit);
        return tunnel::run(shard, client, forwarded, s).await;
    }
    let next = respond::relay(shard, client, &mut forwarded, s).await?;
    respond::back_to_pool(forwarded);
    drop(permit);
    Ok(next)
}
