//! Size limits applied while parsing a message head.
//!
//! Every limit exists to bound the memory and CPU one connection can make a
//! shard spend before the proxy has decided anything about the request.

use super::underscores::UnderscoreAction;

/// Default cap on the whole head (start line + header fields + final CRLF).
///
/// 16 KiB is above what real browsers and API clients send (large cookies
/// included), and the same order as nginx's `large_client_header_buffers` and
/// Apache's default field limits, so backends behind us accept what we accept.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Default cap on the number of header fields.
///
/// 100 matches hyper's and Apache's defaults; more is almost always an attack
/// on per-field processing cost rather than a legitimate request.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Header slots a head reserves up front; the vector grows (once, and keeps its capacity for
/// the connection's later requests) when a message has more. Typical heads have 5-20 fields,
/// and 10,000 connections each reserving 100 slots would cost 16 MiB for nothing.
pub const INITIAL_HEADER_CAPACITY: usize = 16;

/// Default cap on the request-target.
///
/// RFC 9112 §3 recommends supporting at least 8000 octets of request-line;
/// 8 KiB is that recommendation rounded to a power of two.
pub const DEFAULT_MAX_TARGET_LEN: usize = 8 * 1024;

/// Hard upper bound on `max_headers` accepted by config.
///
/// httparse parses into a caller-provided array that lives on the stack for the
/// duration of one parse; 512 entries is 16 KiB of stack, which is safe on any
/// executor thread, and is five times the default.
pub const MAX_HEADERS_LIMIT: usize = 512;

/// Largest Content-Length value accepted, 2^53 - 1.
///
/// Far above any real body, and it is the largest integer an IEEE double holds
/// exactly: a backend that parses lengths into a JavaScript number or a float
/// would read a larger value differently from us, which is exactly the kind of
/// framing disagreement that enables request smuggling.
pub const MAX_CONTENT_LENGTH: u64 = (1 << 53) - 1;

/// Largest chunk size accepted, the same as [`MAX_CONTENT_LENGTH`].
///
/// A chunk-size is a body length too, and backends parse it into the same types (Java's
/// `Long.parseLong(s, 16)` goes negative above 2^63 - 1, JavaScript's `parseInt` rounds
/// above 2^53), so a larger one would split the body somewhere else there.
pub const MAX_CHUNK_SIZE: u64 = MAX_CONTENT_LENGTH;

/// Largest `max_header_bytes` a configuration may set, 1 MiB.
///
/// Go's default (`http.DefaultMaxHeaderBytes`) and far above nginx's, Apache's and Node's
/// (8-32 KiB): a larger head would be refused by the backend anyway. It also keeps every
/// offset in a head well inside the `u32` of a `Span`.
pub const MAX_HEADER_BYTES_LIMIT: usize = 1 << 20;

/// Largest Max-Forwards value kept: larger ones are read as this (RFC 9110 §7.6.2 lets a
/// proxy forward its own maximum), so the value sent on fits a signed 32-bit integer,
/// which is what backends parse hop counts into.
pub const MAX_FORWARDS_LIMIT: u64 = i32::MAX as u64;

/// Limits for parsing one message head, and the one policy choice that goes with them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes a head may take, including the final CRLF.
    pub max_header_bytes: usize,
    /// Most header fields; values above [`MAX_HEADERS_LIMIT`] are clamped to it.
    pub max_headers: usize,
    /// Longest request-target, in bytes, as received (absolute-form included).
    pub max_target_len: usize,
    /// Request header fields whose name contains `_` (see [`UnderscoreAction`]).
    pub underscores: UnderscoreAction,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_target_len: DEFAULT_MAX_TARGET_LEN,
            underscores: UnderscoreAction::default(),
        }
    }
}

impl Limits {
    /// `max_headers` clamped to the size of the stack array httparse parses into.
    pub fn effective_max_headers(&self) -> usize {
        self.max_headers.min(MAX_HEADERS_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(l.max_header_bytes, 16 * 1024);
        assert_eq!(l.max_headers, 100);
        assert_eq!(l.max_target_len, 8 * 1024);
    }

    #[test]
    fn max_headers_is_clamped() {
        let l = Limits {
            max_headers: 10_000,
            ..Limits::default()
        };
        assert_eq!(l.effective_max_headers(), MAX_HEADERS_LIMIT);
        let l = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        assert_eq!(l.effective_max_headers(), 3);
    }

    #[test]
    fn bounds_fit_every_backend_integer() {
        // Lengths fit a signed 64-bit integer and a double; counts fit a signed 32-bit one.
        assert!(MAX_CHUNK_SIZE <= i64::MAX as u64);
        assert_eq!(MAX_CHUNK_SIZE as f64 as u64, MAX_CHUNK_SIZE);
        assert!(MAX_HEADER_BYTES_LIMIT < u32::MAX as usize);
        assert!(MAX_FORWARDS_LIMIT <= i32::MAX as u64);
        assert!(MAX_HEADERS_LIMIT <= i32::MAX as usize);
    }

    #[test]
    fn content_length_cap_is_exact_in_f64() {
        assert_eq!(MAX_CONTENT_LENGTH as f64 as u64, MAX_CONTENT_LENGTH);
        assert_eq!(MAX_CONTENT_LENGTH, 9_007_199_254_740_991);
    }
}
