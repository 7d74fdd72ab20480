//! The respond phases: read the response head (relaying 1xx), choose the client-side
//! framing, relay the body, and give the backend connection back to the pool. Also the
//! answers corelay gives itself as the final recipient (TRACE / OPTIONS with
//! `Max-Forwards: 0`).

use std::io;
use std::time::Instant;

use super::body::{transfer, BodyIn, Outbox};
use super::error::{ErrorKind, ProxyError, Side};
use super::forward::Forwarded;
use super::peer::Peer;
use super::request_id::HEADER;
use super::shard::{Scratch, Shard, VIA};
use crate::http1::{
    add_field, encode_options_response, encode_response, encode_trace_response, parse_response,
    Method, OutFraming, RequestBody, ResponseBody, ResponseError, Version,
};
use crate::metrics::Source;

/// What the client connection does after a successful exchange.
pub enum Next {
    KeepAlive,
    Close,
}

/// Reads the backend's response head into `s.resp`. Interim 1xx responses are relayed to
/// HTTP/1.1 clients as they come (RFC 9110 §15.2: a proxy forwards 1xx it did not cause),
/// except a 100 Continue when corelay already answered the client's Expect itself.
pub async fn read_head(
    peer: &mut Peer,
    client: &mut Peer,
    method: Method,
    s: &mut Scratch,
) -> Result<(), ProxyError> {
    let mut got_bytes = false;
    loop {
        if !peer.buffered().is_empty() {
            got_bytes = true;
            let complete = parse_response(peer.buffered(), &s.limits, method, &mut s.resp)
                .map_err(|e| ProxyError::new(ErrorKind::BadResponse(e)))?;
            if complete {
                match s.resp.status {
                    // RFC 9110 §15.2.2: the 101 names the protocol switched to; the tunnel
                    // phase takes over.
                    101 if s.upgrade_sent
                        && s.resp.header(peer.buffered(), "upgrade").is_some() =>
                    {
                        return Ok(())
                    }
                    101 => {
                        return Err(ProxyError::new(ErrorKind::BadResponse(
                            ResponseError::Malformed("101 without an upgrade request"),
                        )))
                    }
                    100..=199 => {
                        let ours = s.resp.status == 100 && s.req.expect_continue;
                        if s.req.version == Version::Http11 && !ours {
                            s.out.clear();
                            encode_response(
                                peer.buffered(),
                                &s.resp,
                                OutFraming::None,
                                Version::Http11,
                                true,
                                VIA,
                                &mut s.out,
                            );
                            client
                                .send(&mut s.out)
                                .await
                                .map_err(ProxyError::client_io)?;
                        }
                        peer.consume(s.resp.head_len);
                        continue;
                    }
                    _ => return Ok(()),
                }
            }
        }
        match peer.fill().await {
            Ok(0) => {
                let mut e = ProxyError::new(if got_bytes {
                    ErrorKind::BadResponse(ResponseError::Malformed("truncated head"))
                } else {
                    ErrorKind::BackendClosed
                });
                e.retry_safe = !got_bytes;
                return Err(e);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(ProxyError::new(ErrorKind::BadResponse(
                    ResponseError::HeaderTooLarge,
                )))
            }
            Err(e) => {
                let mut e = ProxyError::backend_io(e);
                e.retry_safe = !got_bytes && matches!(e.kind, ErrorKind::BackendClosed);
                return Err(e);
            }
        }
    }
}

/// Sends the response head and relays the body to the client; notes in `fwd` whether the
/// backend connection may carry another request. Returns whether the client connection
/// carries on.
pub async fn relay(
    shard: &Shard,
    client: &mut Peer,
    fwd: &mut Forwarded<'_>,
    s: &mut Scratch,
) -> Result<Next, ProxyError> {
    let early_answer = fwd.early_answer;
    let backend = &mut fwd.backend;
    let resp_body = match s.resp.body {
        ResponseBody::None => BodyIn::Empty,
        ResponseBody::Length(n) => BodyIn::Length(n),
        ResponseBody::Chunked => BodyIn::Chunked,
        ResponseBody::CloseDelimited => BodyIn::UntilClose,
    };
    let client_version = s.req.version;
    let (framing, rechunk) = match resp_body {
        BodyIn::Empty => (OutFraming::None, false),
        BodyIn::Length(n) => (OutFraming::Length(n), false),
        BodyIn::Chunked if client_version == Version::Http11 => (OutFraming::Chunked, true),
        // HTTP/1.0 clients do not know chunked: they get the data, delimited by close.
        BodyIn::Chunked | BodyIn::UntilClose => (OutFraming::Close, false),
    };
    // After an early answer the rest of the request body is still unread in the client
    // connection, so it cannot carry another request.
    let keep_alive = s.req.keep_alive
        && framing != OutFraming::Close
        && !early_answer
        && !shard.shutdown.is_triggered();
    s.out.clear();
    encode_response(
        backend.peer.buffered(),
        &s.resp,
        framing,
        client_version,
        keep_alive,
        VIA,
        &mut s.out,
    );
    add_field(&mut s.out, HEADER, s.request_id.as_bytes());
    backend.peer.consume(s.resp.head_len);
    s.log.status = s.resp.status;
    // The head goes out first, with the body's first bytes.
    let head_bytes = s.out.len() as u64;
    s.log.source = Source::Backend;
    let backend_reusable = s.resp.keep_alive && !early_answer;
    let mut out = Outbox::new(&mut client.conn, &mut s.out);
    let relayed = transfer(
        &mut backend.peer,
        &mut out,
        resp_body,
        rechunk,
        0,
        &shard.relay,
        &mut s.decoder,
    )
    .await;
    let response_started = out.wrote;
    s.log.bytes = out.sent;
    s.log.head_bytes = head_bytes.min(out.sent);
    s.log.upstream_time = s.log.upstream_started.map(|t| t.elapsed());
    if let Err(err) = relayed {
        // The head goes out with the first body bytes: if nothing was written yet, nothing
        // reached the client and a 502 can still be sent.
        let mut e = err.into_proxy(Side::Backend);
        e.response_started = response_started;
        return Err(e);
    }
    fwd.reusable = backend_reusable && fwd.backend.peer.buffered().is_empty();
    // A drain that began while the body was relayed ends the connection too: requests the
    // client pipelined behind this one must not reach a backend now (the head already went
    // out without `Connection: close`, so the client sees an ordinary close and retries them).
    Ok(if keep_alive && !shard.shutdown.is_triggered() {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

/// Back to the pool: a backend connection whose response was relayed completely, and that
/// both sides allow to be reused, waits there for the next request.
pub fn back_to_pool(fwd: Forwarded<'_>) {
    if fwd.reusable {
        let b = fwd.backend;
        b.group.pool.put(b.backend, b.peer, Instant::now());
    }
}

/// The local answer: TRACE or OPTIONS with `Max-Forwards: 0` are answered by corelay as the
/// final recipient (RFC 9110 §7.6.2) and reach no backend. A body such a request might carry
/// is not read, so the connection then closes.
pub async fn answer_locally(
    shard: &Shard,
    client: &mut Peer,
    s: &mut Scratch,
) -> Result<Next, ProxyError> {
    let keep_alive =
        s.req.keep_alive && s.req.body == RequestBody::None && !shard.shutdown.is_triggered();
    s.out.clear();
    if s.req.method == Method::Trace {
        encode_trace_response(client.buffered(), &s.req, keep_alive, &mut s.out);
    } else {
        encode_options_response(&s.req, keep_alive, &mut s.out);
        // A TRACE answer's body is the request as received, with the client's own ID if any.
        add_field(&mut s.out, HEADER, s.request_id.as_bytes());
    }
    s.log.status = 200;
    s.log.sent_local(&s.out);
    client.consume(s.req.head_len);
    client
        .send(&mut s.out)
        .await
        .map_err(ProxyError::client_io)?;
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}
