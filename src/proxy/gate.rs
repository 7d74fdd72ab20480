//! The gate phases, before anything reaches a backend: route, authorize, body limit, admit.
//!
//! Each refuses with a [`ProxyError`] of its own kind; none reads the body or holds a backend
//! connection. Past [`admit`], a request may hold a backend connection and relay buffers.

use std::rc::Rc;

use super::admission::Permit;
use super::error::{ErrorKind, ProxyError};
use super::peer::Peer;
use super::shard::{GroupState, Scratch, Shard};
use crate::auth::Decision;
use crate::http1::{RequestBody, RequestError};
use crate::route::{self, Route, RouteError};

/// Route phase: the normalised target picks the route; it (rewritten by the route) is also
/// what the backend gets, in `s.target`, so backend and route agree on the path.
pub fn route<'s>(
    shard: &'s Shard,
    client: &Peer,
    s: &mut Scratch,
) -> Result<(&'s Route, &'s GroupState), ProxyError> {
    let buf = client.buffered();
    s.target.clear();
    s.req.write_target(buf, &mut s.target);
    s.norm.clear();
    let refused = |e: RouteError| {
        ProxyError::new(match e {
            RouteError::NoRoute => ErrorKind::NoRoute,
            RouteError::AmbiguousPath => ErrorKind::BadRequest(RequestError::BadRequest(
                "ambiguous path (dot-segment, bad or ambiguous escape, ';' or '\\')",
            )),
            RouteError::AmbiguousHost => {
                ErrorKind::BadRequest(RequestError::BadRequest("ambiguous host (percent-encoded)"))
            }
        })
    };
    route::normalize(&s.target, &mut s.norm).map_err(refused)?;
    let host = s.req.host.map(|h| h.get(buf)).unwrap_or(b"");
    let route = shard.routes.find(host, &s.norm).map_err(refused)?;
    s.target.clear();
    route::rewrite_target(route, &s.norm, &mut s.target);
    s.log.route = Some(route.index);
    Ok((route, &shard.groups[route.group]))
}

/// Authorize phase: the route's scheme decides. Returns the credential header to strip, so
/// that it never reaches the backend unless the route keeps it.
pub fn authorize<'s>(
    shard: &'s Shard,
    route: &Route,
    client: &Peer,
    s: &mut Scratch,
) -> Result<Option<&'s [u8]>, ProxyError> {
    let authz = &shard.authorizers[route.index];
    match authz.check(client.buffered(), &s.req) {
        Decision::Allow { user } => {
            s.log.user = user;
            Ok(authz.strip_header())
        }
        Decision::Missing => Err(ProxyError::new(ErrorKind::Unauthorized(
            authz.challenge().map(Rc::from),
        ))),
        Decision::Denied => Err(ProxyError::new(ErrorKind::Forbidden)),
        Decision::Throttled => Err(ProxyError::new(ErrorKind::Overloaded)),
        Decision::BadRequest(why) => Err(ProxyError::new(ErrorKind::BadRequest(
            RequestError::BadRequest(why),
        ))),
    }
}

/// Body limit: a declared length over `client_max_body_size` is refused before any of the
/// body is read (a chunked body is counted as it streams, in `body.rs`).
pub fn body_limit(shard: &Shard, s: &Scratch) -> Result<(), ProxyError> {
    let max = shard.config.client_max_body_size;
    match s.req.body {
        RequestBody::Length(n) if max > 0 && n > max => {
            Err(ProxyError::new(ErrorKind::BodyTooLarge))
        }
        _ => Ok(()),
    }
}

/// Upgrade phase: the protocols the request may switch to, as the route allows them; empty
/// when it offers none of them (Upgrade is then stripped like any hop-by-hop field). Notes in
/// `s.upgrade_sent` that a 101 may answer it.
pub fn upgrade<'s>(
    shard: &'s Shard,
    route: &Route,
    client: &Peer,
    s: &mut Scratch,
) -> &'s [String] {
    let allow = &shard.config.routes[route.index].upgrade;
    s.upgrade_sent = s.req.upgrade_offered(client.buffered(), allow);
    if s.upgrade_sent {
        allow
    } else {
        &[]
    }
}

/// Admit phase: the shard's cap on requests in flight, with its queue (503 beyond it).
pub async fn admit(shard: &Shard) -> Result<Permit, ProxyError> {
    shard
        .admission
        .admit()
        .await
        .map_err(|_| ProxyError::new(ErrorKind::Overloaded))
}
