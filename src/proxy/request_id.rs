//! Request IDs: every request carries an `X-Request-Id` to the backend, back to the client
//! and into the access log, so that a client's failed request can be found in corelay's and
//! the backend's logs.
//!
//! A generated ID is `PPPPPPPPPPPPPPPP-SSSS-CCCCCCCCCCCC` (hex): a 64-bit prefix read from
//! the kernel's random source once per process, the shard index, and a per-shard counter.
//! The prefix makes IDs unique across restarts and hosts, the shard index across cores, the
//! counter within a shard; making one is a counter increment and twelve hex digits, with no
//! syscall, lock or allocation.

use std::cell::Cell;
use std::io::Read;
use std::sync::OnceLock;

use crate::config::RequestIdMode;
use crate::http1::RequestHead;

/// Longest incoming ID kept: longer ones are replaced. 128 holds any UUID, trace ID or
/// composite of them that a real client sends, and bounds what a client can make corelay
/// copy into every request it forwards and every log line.
pub const MAX_REQUEST_ID: usize = 128;

/// The field name, as written.
pub const HEADER: &[u8] = b"X-Request-Id";

/// A generated ID's length: 16 + 1 + 4 + 1 + 12.
const GENERATED_LEN: usize = 34;
const PREFIX_LEN: usize = 22;
const COUNTER_DIGITS: usize = 12;

/// One request's ID, kept inline (no allocation per connection or request).
pub struct RequestId {
    len: u8,
    bytes: [u8; MAX_REQUEST_ID],
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId {
            len: 0,
            bytes: [0; MAX_REQUEST_ID],
        }
    }
}

impl RequestId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    fn set(&mut self, v: &[u8]) {
        self.bytes[..v.len()].copy_from_slice(v);
        self.len = v.len() as u8;
    }
}

/// What an incoming ID must be to be kept: 1 to [`MAX_REQUEST_ID`] visible ASCII characters
/// (no space or control byte, so it is one token in a log line and a header value as is).
pub fn is_valid(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len()) && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The client's ID, if it sent exactly one valid `X-Request-Id` (two are ambiguous).
fn incoming<'a>(buf: &'a [u8], req: &RequestHead) -> Option<&'a [u8]> {
    let mut found = None;
    for h in &req.headers {
        if h.name.get(buf).eq_ignore_ascii_case(HEADER) {
            if found.is_some() {
                return None;
            }
            found = Some(h.value.get(buf));
        }
    }
    found.filter(|v| is_valid(v))
}

/// A shard's ID maker.
pub struct Generator {
    mode: RequestIdMode,
    /// `PPPPPPPPPPPPPPPP-SSSS-`.
    prefix: [u8; PREFIX_LEN],
    next: Cell<u64>,
}

impl Generator {
    pub fn new(mode: RequestIdMode, shard: usize) -> Generator {
        Generator::with_prefix(mode, process_prefix(), shard)
    }

    fn with_prefix(mode: RequestIdMode, process: u64, shard: usize) -> Generator {
        let mut prefix = [b'-'; PREFIX_LEN];
        hex(process, &mut prefix[..16]);
        hex(shard as u64, &mut prefix[17..21]);
        Generator {
            mode,
            prefix,
            next: Cell::new(0),
        }
    }

    /// The ID of a request whose head is parsed: the client's under `keep` when valid, else a
    /// new one.
    pub fn assign(&self, buf: &[u8], req: &RequestHead, id: &mut RequestId) {
        if self.mode == RequestIdMode::Keep {
            if let Some(v) = incoming(buf, req) {
                id.set(v);
                return;
            }
        }
        self.generate(id);
    }

    pub fn generate(&self, id: &mut RequestId) {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        id.bytes[..PREFIX_LEN].copy_from_slice(&self.prefix);
        hex(n, &mut id.bytes[PREFIX_LEN..GENERATED_LEN]);
        id.len = GENERATED_LEN as u8;
    }
}

/// Writes the low `out.len()` hex digits of `v`, zero-padded.
fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

const _: () = assert!(COUNTER_DIGITS == GENERATED_LEN - PREFIX_LEN);

/// The process's random prefix, read once. Without `/dev/urandom` (a chroot without it), the
/// clock and the process id stand in: unique across restarts all the same, only guessable.
fn process_prefix() -> u64 {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
            Ok(()) => u64::from_ne_bytes(b),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                t ^ (u64::from(std::process::id()) << 40)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{parse_request, Limits};

    fn parsed(raw: &[u8]) -> RequestHead {
        let mut req = RequestHead::new();
        assert_eq!(parse_request(raw, &Limits::default(), &mut req), Ok(true));
        req
    }

    #[test]
    fn generated_ids_count_up_per_shard() {
        let g = Generator::with_prefix(RequestIdMode::Generate, 0x0123_4567_89ab_cdef, 3);
        let mut id = RequestId::default();
        g.generate(&mut id);
        assert_eq!(id.as_bytes(), b"0123456789abcdef-0003-000000000000");
        g.generate(&mut id);
        assert_eq!(id.as_bytes(), b"0123456789abcdef-0003-000000000001");
        assert!(is_valid(id.as_bytes()));
    }

    #[test]
    fn keep_takes_one_valid_incoming_id_only() {
        let keep = Generator::with_prefix(RequestIdMode::Keep, 1, 0);
        let generate = Generator::with_prefix(RequestIdMode::Generate, 1, 0);
        let mut id = RequestId::default();
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nx-request-id: abc-123\r\n\r\n";
        keep.assign(raw, &parsed(raw), &mut id);
        assert_eq!(id.as_bytes(), b"abc-123");
        generate.assign(raw, &parsed(raw), &mut id);
        assert_eq!(id.as_bytes(), b"0000000000000001-0000-000000000000");
        let two = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n";
        keep.assign(two, &parsed(two), &mut id);
        assert_eq!(id.as_bytes().len(), GENERATED_LEN);
    }

    #[test]
    fn validity() {
        assert!(is_valid(b"a"));
        assert!(is_valid(&[b'~'; MAX_REQUEST_ID]));
        assert!(!is_valid(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!is_valid(b""));
        assert!(!is_valid(b"a b"));
        assert!(!is_valid(b"a\x7f"));
        assert!(!is_valid("é".as_bytes()));
    }
}
