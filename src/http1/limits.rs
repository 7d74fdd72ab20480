//! Size limits applied while parsing a message head.
//!
//! Every limit exists to bound the memory and CPU one connection can make a
//! shard spend before the proxy has decided anything about the request.

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

/// Limits for parsing one message head.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes a head may take, including the final CRLF.
    pub max_header_bytes: usize,
    /// Most header fields; values above [`MAX_HEADERS_LIMIT`] are clamped to it.
    pub max_headers: usize,
    /// Longest request-target, in bytes, as received (absolute-form included).
    pub max_target_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_target_len: DEFAULT_MAX_TARGET_LEN,
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
    fn content_length_cap_is_exact_in_f64() {
        assert_eq!(MAX_CONTENT_LENGTH as f64 as u64, MAX_CONTENT_LENGTH);
        assert_eq!(MAX_CONTENT_LENGTH, 9_007_199_254_740_991);
    }
}
