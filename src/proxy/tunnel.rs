//! The tunnel phase: after a backend's 101 to an upgrade offer (RFC 9110 §7.8, RFC 6455),
//! the client and backend connections carry the new protocol, and corelay moves their bytes
//! both ways until both sides close, one fails, or nothing moves for `tunnel_idle_timeout`.
//!
//! The 101 goes to the client as the backend sent it. Bytes that either side sent past the
//! handshake (a server's first push, a client's first frame sent without waiting) were read
//! into their head buffers with it, and go first. Only after the 101: before it, the client's
//! bytes are read as its next request, since the backend may still refuse the upgrade.
//!
//! The bytes themselves move in the shard engine (`shards::tunnel`). The connection ends with
//! the tunnel: neither side can carry HTTP again, and the backend connection is not pooled.

use super::error::ProxyError;
use super::exchange::Next;
use super::forward::Forwarded;
use super::peer::Peer;
use super::shard::{Scratch, Shard};

/// Whether the backend switched protocols: `read_head` accepts a 101 only for a request that
/// went out with an Upgrade offer.
pub fn switched(s: &Scratch) -> bool {
    s.resp.status == 101
}

/// Relays the 101 and the bytes around it, then tunnels until the end. Ok(Next::Close) once
/// the 101 reached the client, however the tunnel ended (how is logged).
pub async fn run(
    shard: &Shard,
    client: &mut Peer,
    fwd: Forwarded<'_>,
    s: &mut Scratch,
) -> Result<Next, ProxyError> {
    let mut backend = fwd.backend;
    s.log.status = 101;
    s.log.source = crate::metrics::Source::Backend;
    // Counted before the client can see the 101, so that a scrape after the handshake sees it.
    let _open = shard.stats.tunnel_opened();
    // The 101 and whatever the backend sent after it.
    let head_len = s.resp.head_len;
    s.out.clear();
    s.out.extend_from_slice(backend.peer.buffered());
    backend.peer.consume(s.out.len());
    backend.peer.release_if_empty();
    let mut down = (s.out.len() - head_len) as u64;
    client
        .send(&mut s.out)
        .await
        .map_err(ProxyError::client_io)?;
    // The client's first bytes of the new protocol, if it sent them with the request.
    s.out.clear();
    s.out.extend_from_slice(client.buffered());
    client.consume(s.out.len());
    client.release_if_empty();
    let mut up = s.out.len() as u64;
    if !s.out.is_empty() {
        if let Err(e) = backend.peer.send(&mut s.out).await {
            log::debug!("{}: tunnel: backend send failed: {e}", backend.addr());
            s.log.tunnelled(head_len as u64, down, up);
            return Ok(Next::Close);
        }
    }
    let report = shards::tunnel(
        &mut client.conn,
        &mut backend.peer.conn,
        shard.config.tunnel_idle_timeout,
    )
    .await;
    up += report.a_to_b;
    down += report.b_to_a;
    log::debug!(
        "{}: tunnel to {} ended ({:?}): {up} bytes up, {down} down",
        client.conn.peer_addr(),
        backend.addr(),
        report.end
    );
    s.log.tunnelled(head_len as u64, down, up);
    Ok(Next::Close)
}
