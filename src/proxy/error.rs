//! Proxy errors: which side failed, and what that means for the client.
//!
//! Every failure on the request path becomes a [`ProxyError`]; [`ProxyError::status`] is the
//! one place that decides the status code the client gets (or that it gets none and the
//! connection is cut), in the manner of Pingora's error sides.

use std::io;

use crate::http1::{ChunkError, RequestError, ResponseError};

/// Who is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
}

#[derive(Debug)]
pub enum ErrorKind {
    /// The request head broke a rule of HTTP/1.1 or a limit.
    BadRequest(RequestError),
    /// The request body's chunked framing is invalid.
    BadRequestBody(ChunkError),
    /// The client did not send a complete head before the header deadline.
    HeaderTimeout,
    /// The client went away or its socket failed (nothing can be sent to it).
    ClientIo(io::Error),
    /// The client closed before sending the whole body it announced.
    ClientEof,
    /// No route matches the request's host and path.
    NoRoute,
    /// The announced body is larger than `client_max_body_size`.
    BodyTooLarge,
    /// The client address holds too many connections on this core.
    TooManyConnections,
    /// No credential for a route that requires one; carries the challenge to send.
    Unauthorized(Option<std::rc::Rc<str>>),
    /// A credential that is not accepted.
    Forbidden,
    /// The shard is at `max_requests_per_core` and the queue is full or timed out.
    Overloaded,
    /// No backend accepted a connection.
    Connect(io::Error),
    /// Connecting to every backend tried timed out.
    ConnectTimeout,
    /// The backend did not answer (or stopped sending) within the response timeout.
    BackendTimeout,
    /// The backend closed or reset the connection.
    BackendClosed,
    BackendIo(io::Error),
    /// The backend's response is not valid HTTP/1.1 or is ambiguous.
    BadResponse(ResponseError),
    BadResponseBody(ChunkError),
}

#[derive(Debug)]
pub struct ProxyError {
    pub kind: ErrorKind,
    /// Set once any byte of the response head went to the client: from then on the only
    /// honest way to report a failure is to cut the connection.
    pub response_started: bool,
    /// True when the request may be sent again on another connection: nothing of the
    /// response arrived, the connection was a reused one, and the request is idempotent and
    /// has no body that was already consumed.
    pub retry_safe: bool,
}

impl ProxyError {
    pub fn new(kind: ErrorKind) -> ProxyError {
        ProxyError {
            kind,
            response_started: false,
            retry_safe: false,
        }
    }

    pub fn side(&self) -> Side {
        match self.kind {
            ErrorKind::BadRequest(_)
            | ErrorKind::BadRequestBody(_)
            | ErrorKind::HeaderTimeout
            | ErrorKind::ClientIo(_)
            | ErrorKind::ClientEof
            | ErrorKind::NoRoute
            | ErrorKind::BodyTooLarge
            | ErrorKind::TooManyConnections
            | ErrorKind::Unauthorized(_)
            | ErrorKind::Forbidden
            | ErrorKind::Overloaded => Side::Client,
            ErrorKind::Connect(_)
            | ErrorKind::ConnectTimeout
            | ErrorKind::BackendTimeout
            | ErrorKind::BackendClosed
            | ErrorKind::BackendIo(_)
            | ErrorKind::BadResponse(_)
            | ErrorKind::BadResponseBody(_) => Side::Backend,
        }
    }

    /// The status to answer with, or `None` when the connection must simply be closed
    /// (the response already started, or the client cannot be written to).
    pub fn status(&self) -> Option<u16> {
        if self.response_started {
            return None;
        }
        Some(match &self.kind {
            ErrorKind::BadRequest(e) => e.status(),
            ErrorKind::BadRequestBody(_) => 400,
            ErrorKind::HeaderTimeout => 408,
            ErrorKind::ClientIo(_) | ErrorKind::ClientEof => return None,
            ErrorKind::NoRoute => 404,
            ErrorKind::BodyTooLarge => 413,
            ErrorKind::TooManyConnections => 429,
            ErrorKind::Unauthorized(_) => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Overloaded => 503,
            ErrorKind::ConnectTimeout | ErrorKind::BackendTimeout => 504,
            ErrorKind::Connect(_)
            | ErrorKind::BackendClosed
            | ErrorKind::BackendIo(_)
            | ErrorKind::BadResponse(_)
            | ErrorKind::BadResponseBody(_) => 502,
        })
    }

    /// Why the request was refused, in the codec's own words, when the status alone does not
    /// say (400, 501): sent as the response body and logged at info level.
    pub fn reason(&self) -> Option<&'static str> {
        match &self.kind {
            ErrorKind::BadRequest(RequestError::BadRequest(r))
            | ErrorKind::BadRequest(RequestError::NotImplemented(r)) => Some(r),
            ErrorKind::BadRequestBody(c) => Some(c.reason()),
            _ => None,
        }
    }

    /// Header lines the error response must carry besides the usual ones.
    pub fn extra_headers(&self, out: &mut Vec<u8>) {
        match &self.kind {
            ErrorKind::Unauthorized(Some(challenge)) => {
                out.extend_from_slice(b"WWW-Authenticate: ");
                out.extend_from_slice(challenge.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            // The queue frees up within about a second under a burst; clients that honour
            // this spread their retries instead of hammering.
            ErrorKind::Overloaded => out.extend_from_slice(b"Retry-After: 1\r\n"),
            _ => {}
        }
    }

    /// Classifies an I/O error on the backend socket.
    pub fn backend_io(e: io::Error) -> ProxyError {
        ProxyError::new(match e.kind() {
            io::ErrorKind::TimedOut => ErrorKind::BackendTimeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionAborted => ErrorKind::BackendClosed,
            _ => ErrorKind::BackendIo(e),
        })
    }

    pub fn client_io(e: io::Error) -> ProxyError {
        ProxyError::new(ErrorKind::ClientIo(e))
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} error: {:?}", self.side(), self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_failing_side() {
        let e = ProxyError::new(ErrorKind::BackendTimeout);
        assert_eq!((e.side(), e.status()), (Side::Backend, Some(504)));
        let e = ProxyError::backend_io(io::ErrorKind::ConnectionReset.into());
        assert_eq!(e.status(), Some(502));
        let e = ProxyError::new(ErrorKind::HeaderTimeout);
        assert_eq!((e.side(), e.status()), (Side::Client, Some(408)));
        let mut e = ProxyError::new(ErrorKind::BackendClosed);
        e.response_started = true;
        assert_eq!(e.status(), None);
        let e = ProxyError::new(ErrorKind::BadRequest(RequestError::UriTooLong));
        assert_eq!(e.status(), Some(414));
    }
}
