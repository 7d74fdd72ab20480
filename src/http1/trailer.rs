//! The trailer section of chunked coding (RFC 9112 §7.1.2): validating it
//! while decoding, and filtering it when re-encoding.
//!
//! Trailers are forwarded, so they get the same strictness as header fields:
//! `token ":" OWS value OWS CRLF`, no CTLs, no obs-fold, bare LF refused.

use super::chunked::{ChunkError, MAX_TRAILER_BYTES, MAX_TRAILER_FIELDS};
use super::syntax::{is_field_vchar, is_tchar, name_reads_as};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    LineStart,
    Name,
    Value,
    Cr,
    FinalLf,
}

/// Resumable scanner of a trailer section; like the size-line scanner it
/// remembers its position so piecewise feeding stays linear.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TrailerScanner {
    state: State,
    pos: usize,
    /// Field lines completed so far.
    fields: usize,
}

impl Default for TrailerScanner {
    fn default() -> Self {
        TrailerScanner {
            state: State::LineStart,
            pos: 0,
            fields: 0,
        }
    }
}

impl TrailerScanner {
    pub(crate) fn reset(&mut self) {
        *self = TrailerScanner::default();
    }

    /// Scans `input`, which starts at the trailer section. Ok(Some(len)): the
    /// section, with its final empty line, is `input[..len]`.
    pub(crate) fn scan(&mut self, input: &[u8]) -> Result<Option<usize>, ChunkError> {
        if self.pos > input.len() {
            self.reset();
        }
        while self.pos < input.len() {
            let b = input[self.pos];
            self.pos += 1;
            self.state = match (self.state, b) {
                (State::FinalLf, b'\n') => {
                    let len = self.pos;
                    self.reset();
                    return Ok(Some(len));
                }
                (State::LineStart, b'\r') => State::FinalLf,
                (State::LineStart | State::Name, b) if is_tchar(b) => State::Name,
                (State::Name, b':') => State::Value,
                (State::Value, b'\r') => State::Cr,
                (State::Value, b) if is_field_vchar(b) => State::Value,
                (State::Cr, b'\n') => {
                    self.fields += 1;
                    if self.fields > MAX_TRAILER_FIELDS {
                        return Err(ChunkError::TrailersTooLarge);
                    }
                    State::LineStart
                }
                // Leading whitespace (obs-fold), space before the colon, a
                // missing colon, CTLs, bare CR or LF.
                _ => return Err(ChunkError::BadTrailer),
            };
            if self.pos >= MAX_TRAILER_BYTES {
                return Err(ChunkError::TrailersTooLarge);
            }
        }
        Ok(None)
    }
}

/// Fields that must not be taken from trailers (RFC 9110 §6.5.1): framing,
/// routing, hop-by-hop, authentication, request modifiers, response control
/// and content metadata. A recipient that merges trailers into the header
/// section would otherwise let the sender override decisions already made.
const FORBIDDEN_IN_TRAILERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "max-forwards",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    "content-type",
    "content-encoding",
    "content-range",
    "cache-control",
    "pragma",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
];

/// Appends the lines of `trailers` (field lines each ending CRLF, as
/// validated by the decoder) that may be forwarded.
pub(crate) fn write_allowed(trailers: &[u8], out: &mut Vec<u8>) {
    let mut rest = trailers;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..=lf];
        rest = &rest[lf + 1..];
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        // An underscore spelling (`Content_Length`) is what CGI-style backends merge as the
        // field itself.
        let allowed = !FORBIDDEN_IN_TRAILERS
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f.as_bytes()) || name_reads_as(name, f.as_bytes()));
        if allowed && line.ends_with(b"\r\n") {
            out.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<Option<usize>, ChunkError> {
        TrailerScanner::default().scan(input)
    }

    fn incremental(input: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut s = TrailerScanner::default();
        for end in 0..input.len() {
            if let Some(n) = s.scan(&input[..end])? {
                return Ok(Some(n));
            }
        }
        s.scan(input)
    }

    fn both(input: &[u8]) -> Result<Option<usize>, ChunkError> {
        let w = whole(input);
        assert_eq!(
            w,
            incremental(input),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        w
    }

    #[test]
    fn valid_sections() {
        assert_eq!(both(b"\r\n"), Ok(Some(2)));
        assert_eq!(both(b"\r\nnext"), Ok(Some(2)));
        assert_eq!(both(b"A: b\r\n\r\n"), Ok(Some(8)));
        assert_eq!(both(b"A:b\r\nC:  d e\t\r\n\r\n"), Ok(Some(17)));
        assert_eq!(both(b"A:\r\n\r\n"), Ok(Some(6)));
        assert_eq!(both(b"X-Obs: caf\xc3\xa9\r\n\r\n"), Ok(Some(16)));
    }

    #[test]
    fn incomplete_sections() {
        assert_eq!(both(b""), Ok(None));
        assert_eq!(both(b"\r"), Ok(None));
        assert_eq!(both(b"A: b\r\n"), Ok(None));
        assert_eq!(both(b"A: b\r\n\r"), Ok(None));
    }

    #[test]
    fn malformed_sections() {
        for bad in [
            &b"\n"[..],
            b"A: b\n\r\n",
            b"A: b\r\n\n",
            b" A: b\r\n\r\n",
            b"A : b\r\n\r\n",
            b"A: b\r\n c\r\n\r\n",
            b"A: b\r\n\tc\r\n\r\n",
            b"A\r\n\r\n",
            b": b\r\n\r\n",
            b"A: b\x00c\r\n\r\n",
            b"A: b\x7f\r\n\r\n",
            b"A: b\rc\r\n\r\n",
            b"A(: b\r\n\r\n",
            b"\rx",
        ] {
            assert_eq!(
                both(bad),
                Err(ChunkError::BadTrailer),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn size_limit() {
        // A section of exactly MAX_TRAILER_BYTES (final CRLF included) passes.
        let mut ok = b"X: ".to_vec();
        ok.resize(MAX_TRAILER_BYTES - 4, b'v');
        ok.extend_from_slice(b"\r\n\r\n");
        assert_eq!(whole(&ok), Ok(Some(MAX_TRAILER_BYTES)));
        let mut big = b"X: ".to_vec();
        big.resize(MAX_TRAILER_BYTES - 3, b'v');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(whole(&big), Err(ChunkError::TrailersTooLarge));
        // MAX_TRAILER_FIELDS lines pass, one more does not, however short.
        let ok = "A: 1\r\n".repeat(MAX_TRAILER_FIELDS) + "\r\n";
        assert_eq!(both(ok.as_bytes()), Ok(Some(ok.len())));
        let many = "A: 1\r\n".repeat(MAX_TRAILER_FIELDS + 1) + "\r\n";
        assert_eq!(both(many.as_bytes()), Err(ChunkError::TrailersTooLarge));
        // Also without ever seeing the end.
        let endless = vec![b'v'; MAX_TRAILER_BYTES * 2];
        assert_eq!(whole(&endless), Err(ChunkError::TrailersTooLarge));
    }

    #[test]
    fn filtering() {
        let t = b"Content-Length: 5\r\nX-Checksum: abc\r\ntransfer-encoding: chunked\r\n\
                  HOST: evil\r\nConnection: close\r\nTE: trailers\r\nTrailer: x\r\n\
                  Upgrade: h2c\r\nKeep-Alive: 1\r\nProxy-Connection: x\r\nAuthorization: x\r\n\
                  Server-Timing: db;dur=5\r\nContent_Length: 1\r\nSet_Cookie: a=b\r\n\
                  X_Sum: 2\r\n";
        let mut out = Vec::new();
        write_allowed(t, &mut out);
        assert_eq!(
            out,
            b"X-Checksum: abc\r\nServer-Timing: db;dur=5\r\nX_Sum: 2\r\n"
        );
    }
}
