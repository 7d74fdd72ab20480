//! One request/response exchange: the forward and relay phases.
//!
//! Entered with a parsed request head at the front of the client's buffer; returns whether the
//! client connection may carry another request. The request body is sent completely before the
//! response is read (a backend that answers early still has its answer relayed after that).

use std::io;
use std::time::Instant;

use futures_lite::AsyncWriteExt;

use super::backend::{connect, BackendConn};
use super::body::{transfer, BodyError, BodyIn, Outbox, SourceError};
use super::error::{ErrorKind, ProxyError, Side};
use super::peer::Peer;
use super::{Scratch, Shard};
use crate::auth::Decision;
use crate::http1::{
    encode_options_response, encode_request_to, encode_response, encode_trace_response,
    parse_response, ForwardInfo, Method, OutFraming, RequestBody, RequestError, ResponseBody,
    ResponseError, Version, CONTINUE_100,
};
use crate::route;
use std::rc::Rc;

/// What the client connection does after a successful exchange.
pub enum Next {
    KeepAlive,
    Close,
}

pub async fn exchange(
    shard: &Shard,
    client: &mut Peer,
    s: &mut Scratch,
    info: &ForwardInfo<'_>,
) -> Result<Next, ProxyError> {
    // Route phase: the normalised target picks the route; it (rewritten by the route) is
    // also what the backend gets, so backend and route agree on the path.
    let buf = client.buffered();
    s.target.clear();
    s.req.write_target(buf, &mut s.target);
    s.norm.clear();
    route::normalize(&s.target, &mut s.norm).map_err(|_| {
        ProxyError::new(ErrorKind::BadRequest(RequestError::BadRequest(
            "ambiguous path (dot-segment or bad escape)",
        )))
    })?;
    let host = s.req.host.map(|h| h.get(buf)).unwrap_or(b"");
    let route = shard
        .routes
        .find(host, &s.norm)
        .map_err(|_| ProxyError::new(ErrorKind::NoRoute))?;
    let group = &shard.groups[route.group];
    s.target.clear();
    route::rewrite_target(route, &s.norm, &mut s.target);

    // Authorize phase: the route's scheme decides; its credential never reaches the backend
    // unless the route keeps it.
    let authz = &shard.authorizers[route.index];
    match authz.check(buf, &s.req) {
        Decision::Allow { user } => s.log.user = user,
        Decision::Missing => {
            return Err(ProxyError::new(ErrorKind::Unauthorized(
                authz.challenge().map(Rc::from),
            )))
        }
        Decision::Denied => return Err(ProxyError::new(ErrorKind::Forbidden)),
        Decision::Throttled => return Err(ProxyError::new(ErrorKind::Overloaded)),
        Decision::BadRequest(why) => {
            return Err(ProxyError::new(ErrorKind::BadRequest(
                RequestError::BadRequest(why),
            )))
        }
    }
    let strip_one;
    let info = ForwardInfo {
        strip: match authz.strip_header() {
            Some(h) => {
                strip_one = [h];
                &strip_one
            }
            None => &[],
        },
        ..*info
    };
    let info = &info;

    // The body limit is checked before any of the body is read or a backend is involved.
    let max_body = shard.config.client_max_body_size;
    if let RequestBody::Length(n) = s.req.body {
        if max_body > 0 && n > max_body {
            return Err(ProxyError::new(ErrorKind::BodyTooLarge));
        }
    }

    // Admit phase: past this point the request may hold a backend connection and buffers.
    let _permit = shard
        .admission
        .admit()
        .await
        .map_err(|_| ProxyError::new(ErrorKind::Overloaded))?;

    // Forward phase: the head for the backend is encoded once; the client's head bytes are
    // then consumed, so what follows in the buffer is the body (or the next request).
    s.out.clear();
    encode_request_to(client.buffered(), &s.req, Some(&s.target), info, &mut s.out);
    client.consume(s.req.head_len);
    let method = s.req.method;
    let body = match s.req.body {
        RequestBody::None | RequestBody::Length(0) => BodyIn::Empty,
        RequestBody::Length(n) => BodyIn::Length(n),
        RequestBody::Chunked => BodyIn::Chunked,
    };
    // A request can be sent again only if nothing of it is lost by the first attempt.
    let replayable = method.is_idempotent() && body == BodyIn::Empty;

    let mut fresh = false;
    // Set when the backend answered before taking the whole request body.
    let mut early_answer = false;
    let mut backend = loop {
        let mut conn = connect(shard, group, fresh).await?;
        s.log.upstream = Some(conn.addr());
        s.log.upstream_started = Some(Instant::now());
        let sent = if body == BodyIn::Empty {
            conn.peer.write_all(&s.out).await.map_err(|e| {
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
        let result = match sent {
            Ok(()) => read_response_head(&mut conn.peer, client, method, s).await,
            // A backend may refuse a body by answering before reading it (413, 401, ...) and
            // closing; its answer, if it arrived, is what the client should get, not a 502.
            Err(e) if body != BodyIn::Empty && e.side() == Side::Backend => {
                match read_response_head(&mut conn.peer, client, method, s).await {
                    Ok(()) => {
                        early_answer = true;
                        Ok(())
                    }
                    Err(_) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break conn,
            Err(e) => {
                if conn.reused && replayable && !fresh && e.retry_safe {
                    // The stale keep-alive race: the backend closed this idle connection
                    // just as we reused it. Try once more on a new connection.
                    log::debug!("retrying on a fresh connection after {e}");
                    shard.stats.inc(&shard.stats.backend_retries);
                    fresh = true;
                    continue;
                }
                return Err(e);
            }
        }
    };

    // Relay phase: the response head, then its body.
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
        super::VIA,
        &mut s.out,
    );
    backend.peer.consume(s.resp.head_len);
    s.log.status = s.resp.status;
    let backend_reusable = s.resp.keep_alive && !early_answer;
    let mut out = Outbox::new(&mut client.stream, &mut s.out);
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
    s.log.upstream_time = s.log.upstream_started.map(|t| t.elapsed());
    if let Err(err) = relayed {
        // The head goes out with the first body bytes: if nothing was written yet, nothing
        // reached the client and a 502 can still be sent.
        let mut e = match err {
            BodyError::Source(SourceError::Io(e)) => ProxyError::backend_io(e),
            BodyError::Source(SourceError::Eof) => ProxyError::new(ErrorKind::BackendClosed),
            BodyError::Source(SourceError::Chunk(c)) => {
                ProxyError::new(ErrorKind::BadResponseBody(c))
            }
            // Responses are relayed without a size limit (0), so this does not happen.
            BodyError::Source(SourceError::TooLarge) => ProxyError::new(ErrorKind::BadResponse(
                ResponseError::Malformed("response body over limit"),
            )),
            BodyError::Dest(e) => ProxyError::client_io(e),
        };
        e.response_started = response_started;
        return Err(e);
    }
    if backend_reusable && backend.peer.buffered().is_empty() {
        group
            .pool
            .put(backend.backend, backend.peer, Instant::now());
    }
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

/// The route phase's local answer: TRACE or OPTIONS with `Max-Forwards: 0` are answered by
/// corelay as the final recipient (RFC 9110 §7.6.2) and reach no backend. A body such a
/// request might carry is not read, so the connection then closes.
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
    }
    s.log.status = 200;
    s.log.bytes = s.out.len() as u64;
    client.consume(s.req.head_len);
    client
        .write_all(&s.out)
        .await
        .map_err(ProxyError::client_io)?;
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
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
            .write_all(&s.out)
            .await
            .map_err(ProxyError::backend_io)?;
        s.out.clear();
        client
            .stream
            .write_all(CONTINUE_100)
            .await
            .map_err(ProxyError::client_io)?;
    }
    let cfg = &shard.config;
    let _ = client
        .stream
        .set_read_timeout(Some(cfg.client_body_timeout));
    let mut out = Outbox::new(&mut conn.peer.stream, &mut s.out);
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
    let _ = client.stream.set_read_timeout(None);
    r.map_err(|err| match err {
        BodyError::Source(SourceError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
            // A client that stops sending its body gets 408, as with a slow head.
            ProxyError::new(ErrorKind::HeaderTimeout)
        }
        BodyError::Source(SourceError::Io(e)) => ProxyError::client_io(e),
        BodyError::Source(SourceError::Eof) => ProxyError::new(ErrorKind::ClientEof),
        BodyError::Source(SourceError::Chunk(c)) => ProxyError::new(ErrorKind::BadRequestBody(c)),
        BodyError::Source(SourceError::TooLarge) => ProxyError::new(ErrorKind::BodyTooLarge),
        BodyError::Dest(e) => ProxyError::backend_io(e),
    })
}

/// Reads the backend's response head into `s.resp`. Interim 1xx responses are relayed to
/// HTTP/1.1 clients as they come (RFC 9110 §15.2: a proxy forwards 1xx it did not cause),
/// except a 100 Continue when corelay already answered the client's Expect itself.
async fn read_response_head(
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
                                super::VIA,
                                &mut s.out,
                            );
                            client
                                .write_all(&s.out)
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
