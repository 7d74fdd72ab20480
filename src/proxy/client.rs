//! A client connection: the accept-to-close loop and the decode phase.
//!
//! State between requests is explicit: a connection is either waiting for the first byte of
//! a request (keep-alive idle, closed silently on timeout or shutdown) or reading a head under
//! an absolute deadline (408 when it passes, against slowloris), then handing the parsed head
//! to [`exchange`]. Pipelined requests are served in order from the same buffer.

use std::net::SocketAddr;
use std::time::Instant;

use futures_lite::future;
use shards::Conn;

use super::error::{ErrorKind, ProxyError};
use super::exchange::{answer_locally, exchange, Next};
use super::peer::Peer;
use super::request_id::{self, RequestId};
use super::shard::{Current, Scratch, Shard};
use crate::http1::{
    error_response_because, error_response_with, normalize_request_version, parse_request,
    reason_phrase, ForwardInfo, Method, RequestError,
};
use crate::metrics::{Failure, Source};
use crate::proxy_protocol::{self, Header, Parsed};

/// Serves one client connection until it closes, fails, times out or the shard drains.
///
/// A plain function returning the connection's future, which owns its captures directly: an
/// `async fn` would keep a second copy of every argument in the task's state, for each of
/// 10,000 held connections.
pub fn serve(
    current: Current,
    mut conn: Conn,
    peer_addr: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let shard = current.get();
    conn.set_write_timeout(Some(shard.config.send_timeout));
    let client = Peer::new(conn, shard.head_buffer_max, shard.head_buffers.clone());
    drop(shard);
    serve_peer(current, client, peer_addr)
}

fn serve_peer(
    current: Current,
    mut client: Peer,
    peer_addr: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    async move {
        let accepted = Instant::now();
        let shard = current.get();
        let cfg = &shard.config;
        // Behind an L4 balancer the real client comes in the PROXY header, read under the same
        // deadline as a request head; a connection without a valid one is closed unanswered.
        let client_ip = if cfg.proxy_protocol {
            match read_proxy_header(&mut client, accepted + cfg.client_header_timeout).await {
                Some(Header::Proxied { source, .. }) => source.ip(),
                Some(Header::Local) => peer_addr.ip(),
                None => return,
            }
        } else {
            peer_addr.ip()
        };
        let mut s = Scratch::new(cfg.limits);
        let _slot = if cfg.max_connections_per_client > 0 {
            match shard
                .clients
                .enter(client_ip, cfg.max_connections_per_client)
            {
                Some(slot) => Some(slot),
                None => {
                    let e = ProxyError::new(ErrorKind::TooManyConnections);
                    shard.stats.count_error(&e);
                    s.log.begin_unparsed(false, b"");
                    shard.request_ids.generate(&mut s.request_id);
                    request_id_field(&s.request_id, &mut s.norm);
                    error_response_with(429, true, false, &s.norm, &mut s.out);
                    let _ = client.send(&mut s.out).await;
                    s.log.status = 429;
                    s.log.sent_local(&s.out);
                    s.log.finish(&shard, client_ip, s.request_id.as_bytes());
                    return;
                }
            }
        } else {
            None
        };
        // The generation the connection was accepted under is not held past this point.
        drop(shard);
        let mut first = true;
        loop {
            // Between requests: the newest configuration generation (a reload applies here).
            let shard = current.get();
            s.limits = shard.config.limits;
            let head = read_head(&shard, &mut client, &mut s, first, accepted).await;
            first = false;
            // A reload while the connection waited applies to the request that ended the wait.
            let shard = if shard.superseded() {
                current.get()
            } else {
                shard
            };
            let info = ForwardInfo {
                client_ip,
                proto: "http",
                via: super::VIA,
                default_host: &shard.default_host,
                strip: &[],
                upgrade: &[],
            };
            let result = match head {
                Ok(true) => {
                    s.log
                        .begin(shard.access_log.enabled(), client.buffered(), &s.req);
                    shard
                        .request_ids
                        .assign(client.buffered(), &s.req, &mut s.request_id);
                    if s.req.answer_locally() {
                        answer_locally(&shard, &mut client, &mut s).await
                    } else {
                        exchange(&shard, &mut client, &mut s, &info).await
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    // A head that could not be parsed is still a request to log, with "-" for
                    // what could not be read, and to answer with an ID of its own.
                    s.log
                        .begin_unparsed(shard.access_log.enabled(), client.buffered());
                    shard.request_ids.generate(&mut s.request_id);
                    Err(e)
                }
            };
            let e = match result {
                Ok(next) => {
                    // Log phase: one line per request, answered or not.
                    s.log.finish(&shard, client_ip, s.request_id.as_bytes());
                    match next {
                        Next::KeepAlive => continue,
                        Next::Close => return,
                    }
                }
                Err(e) => e,
            };
            shard.stats.count_error(&e);
            if let (Some(f), Some(b)) = (Failure::of(&e), s.log.backend) {
                shard.stats.backend_failure(b, f);
            }
            log::debug!("{peer_addr}: {e}");
            if e.response_started {
                // A clean close could pass for the end of a close-delimited body: a reset
                // tells the client the message is incomplete.
                client.conn.reset_on_close();
            }
            if let Some(status) = e.status() {
                s.out.clear();
                // RFC 9110 §9.3.2: no content in a response to HEAD. `s.req` is the
                // failed request once its request line was parsed; before that,
                // parse_request cleared it and the method is not Head.
                let head_request = s.req.method == Method::Head;
                request_id_field(&s.request_id, &mut s.norm);
                e.extra_headers(&mut s.norm);
                let because = e.reason().unwrap_or("");
                if !because.is_empty() {
                    log::info!("{client_ip}: {status} {}: {because}", reason_phrase(status));
                }
                error_response_because(status, true, head_request, &s.norm, because, &mut s.out);
                let _ = client.send(&mut s.out).await;
                s.log.sent_local(&s.out);
            }
            if !e.response_started {
                // nginx's 499: the client went away before an answer.
                s.log.status = e.status().unwrap_or(499);
                s.log.source = Source::Proxy;
            }
            s.log.finish(&shard, client_ip, s.request_id.as_bytes());
            return;
        }
    }
}

/// Starts `out` with the `X-Request-Id` line of a response corelay makes itself.
fn request_id_field(id: &RequestId, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(request_id::HEADER);
    out.extend_from_slice(b": ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The decode phase. Ok(true): a request head is parsed into `s.req` and sits at the front
/// of the client's buffer. Ok(false): the connection ends quietly (closed by the client,
/// idle timeout, or shutdown while idle).
async fn read_head(
    shard: &Shard,
    client: &mut Peer,
    s: &mut Scratch,
    first: bool,
    accepted: Instant,
) -> Result<bool, ProxyError> {
    let cfg = &shard.config;
    if client.buffered().is_empty() {
        // Idle: the first request of a connection has the header timeout from accept, later
        // ones the keep-alive timeout. Shutdown closes idle connections at once.
        let idle_deadline = if first {
            accepted + cfg.client_header_timeout
        } else {
            Instant::now() + cfg.client_keepalive_timeout
        };
        if shard.shutdown.is_triggered() {
            return Ok(false);
        }
        let read = future::or(client.fill_until(idle_deadline), async {
            shard.shutdown.wait().await;
            Ok(None)
        })
        .await;
        match read {
            Ok(Some(n)) if n > 0 => {}
            _ => return Ok(false),
        }
    }
    let deadline = if first {
        accepted + cfg.client_header_timeout
    } else {
        Instant::now() + cfg.client_header_timeout
    };
    loop {
        // HTTP/1.2 to 1.9 are read as HTTP/1.1 (RFC 9110 §2.5).
        normalize_request_version(client.buffered_mut());
        match parse_request(client.buffered(), &cfg.limits, &mut s.req) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) => return Err(ProxyError::new(ErrorKind::BadRequest(e))),
        }
        if client.is_full() {
            return Err(ProxyError::new(ErrorKind::BadRequest(
                RequestError::HeaderTooLarge,
            )));
        }
        match client.fill_until(deadline).await {
            Ok(Some(0)) => return Ok(false),
            Ok(Some(_)) => {}
            Ok(None) => return Err(ProxyError::new(ErrorKind::HeaderTimeout)),
            Err(e) => return Err(ProxyError::client_io(e)),
        }
    }
}

/// Reads and removes the PROXY protocol header. `None` when it is missing, malformed, or not
/// complete by `deadline`: the connection is then closed without a word.
async fn read_proxy_header(client: &mut Peer, deadline: Instant) -> Option<Header> {
    loop {
        match proxy_protocol::parse(client.buffered()) {
            Ok(Parsed::Complete { header, consumed }) => {
                client.consume(consumed);
                return Some(header);
            }
            Ok(Parsed::Incomplete) => {}
            Err(e) => {
                log::debug!("PROXY header refused: {e}");
                return None;
            }
        }
        match client.fill_until(deadline).await {
            Ok(Some(n)) if n > 0 => {}
            _ => return None,
        }
    }
}
