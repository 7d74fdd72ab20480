//! The forward phases: encode the request head for the backend, get a connection (pooled or
//! new, with one retry on a fresh connection after the stale keep-alive race), send the head
//! and the body, and read the response head.

use std::time::Instant;

use super::backend::{connect, BackendConn};
use super::body::{transfer, BodyIn, Outbox};
use super::error::{ErrorKind, ProxyError, Side};
use super::peer::Peer;
use super::request_id::HEADER;
use super::respond::read_head;
use super::shard::{GroupState, Scratch, Shard};
use crate::http1::{add_field, encode_request_to, ForwardInfo, RequestBody, CONTINUE_100};
use crate::metrics::Counter;

/// Encodes the head for the backend into `s.out` and consumes the client's head bytes, so
/// that what follows in its buffer is the body (or the next request). Returns the framing.
pub fn encode(client: &mut Peer, s: &mut Scratch, info: &ForwardInfo<'_>) -> BodyIn {
    s.out.clear();
    encode_request_to(client.buffered(), &s.req, Some(&s.target), info, &mut s.out);
    add_field(&mut s.out, HEADER, s.request_id.as_bytes());
    client.consume(s.req.head_len);
    // The head is in `s.out` now: unless body bytes or a pipelined request follow it, the
    // client's head buffer goes back before the connect, which may take a while (10,000
    // requests connecting at once would otherwise hold 40 MiB of head buffers).
    client.release_if_empty();
    match s.req.body {
        RequestBody::None | RequestBody::Length(0) => BodyIn::Empty,
        RequestBody::Length(n) => BodyIn::Length(n),
        RequestBody::Chunked => BodyIn::Chunked,
    }
}

/// The backend connection whose response head is parsed in `s.resp`.
pub struct Forwarded<'s> {
    pub backend: BackendConn<'s>,
    /// The backend answered before taking the whole request body: the rest of that body is
    /// still unread in the client connection.
    pub early_answer: bool,
    /// Set by the respond phase once the response was relayed and both sides allow reuse.
    pub reusable: bool,
}

/// Sends the encoded request (and its body) to a backend of `group` and reads the response
/// head. A request is sent again, once, on a fresh connection only if nothing of it can have
/// been used: idempotent, no body, and the reused connection died before any response byte.
pub async fn send<'s>(
    shard: &'s Shard,
    group: &'s GroupState,
    client: &mut Peer,
    s: &mut Scratch,
    body: BodyIn,
) -> Result<Forwarded<'s>, ProxyError> {
    let method = s.req.method;
    let replayable = method.is_idempotent() && body == BodyIn::Empty;
    let mut fresh = false;
    loop {
        let mut conn = connect(shard, group, fresh).await?;
        let slot = group.gauges.slot(conn.backend);
        shard.stats.backend_request(slot);
        s.log.backend = Some(slot);
        s.log.upstream = Some(conn.addr());
        let sent_at = Instant::now();
        s.log.upstream_started = Some(sent_at);
        let sent = if body == BodyIn::Empty {
            conn.peer.send(&mut s.out).await.map_err(|e| {
                // Nothing of a response can have arrived yet.
                let mut e = ProxyError::backend_io(e);
                e.retry_safe = matches!(e.kind, ErrorKind::BackendClosed);
                e
            })
        } else {
            send_body(shard, client, &mut conn, body, s).await
        };
        // The request is with the backend: unless pipelined bytes wait behind it, the client
        // needs no buffer until the next request, however long the backend takes.
        client.release_if_empty();
        let mut early_answer = false;
        let result = match sent {
            Ok(()) => read_head(&mut conn.peer, client, method, s).await,
            // A backend may refuse a body by answering before reading it (413, 401, ...) and
            // closing; its answer, if it arrived, is what the client should get, not a 502.
            Err(e) if body != BodyIn::Empty && e.side() == Side::Backend => {
                match read_head(&mut conn.peer, client, method, s).await {
                    Ok(()) => {
                        early_answer = true;
                        Ok(())
                    }
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        // Passive health: a response head clears the backend's failures; waiting for one in
        // vain counts as one (a refused connect is counted in `connect`).
        match &result {
            Ok(()) => group.balancer.succeeded(conn.backend),
            Err(e) if matches!(e.kind, ErrorKind::BackendTimeout) => {
                group.balancer.failed(conn.backend, Instant::now())
            }
            Err(_) => {}
        }
        match result {
            Ok(()) => {
                // The loop turn's time is when the head's bytes were reaped: no clock read.
                let head_at = shard.engine.now();
                shard
                    .stats
                    .head_time(slot, head_at.saturating_duration_since(sent_at));
                return Ok(Forwarded {
                    backend: conn,
                    early_answer,
                    reusable: false,
                });
            }
            Err(e) if conn.reused && replayable && !fresh && e.retry_safe => {
                // The stale keep-alive race: the backend closed this idle connection just as
                // we reused it. Try once more on a new connection.
                log::debug!("retrying on a fresh connection after {e}");
                shard.stats.inc(Counter::BackendRetries);
                fresh = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends the head and the request body; answers `Expect: 100-continue` itself once the
/// backend has the head, so that the client does not wait for a 100 the backend never sees.
async fn send_body(
    shard: &Shard,
    client: &mut Peer,
    conn: &mut BackendConn<'_>,
    body: BodyIn,
    s: &mut Scratch,
) -> Result<(), ProxyError> {
    if s.req.expect_continue && client.buffered().is_empty() {
        conn.peer
            .send(&mut s.out)
            .await
            .map_err(ProxyError::backend_io)?;
        s.out.clear();
        client
            .conn
            .send_static(CONTINUE_100)
            .await
            .map_err(ProxyError::client_io)?;
    }
    client
        .conn
        .set_read_timeout(Some(shard.config.client_body_timeout));
    let mut out = Outbox::new(&mut conn.peer.conn, &mut s.out);
    let limit = shard.config.client_max_body_size;
    let r = transfer(
        client,
        &mut out,
        body,
        true,
        limit,
        &shard.relay,
        &mut s.decoder,
    )
    .await;
    client.conn.set_read_timeout(None);
    r.map_err(|e| e.into_proxy(Side::Client))
}
