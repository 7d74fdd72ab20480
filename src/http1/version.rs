//! The HTTP-version of a request line, for the versions httparse refuses
//! outright: it accepts exactly `HTTP/1.0` and `HTTP/1.1`.
//!
//! RFC 9110 §2.5: a recipient "SHOULD process the message as if it were in
//! the highest minor version within that major version to which the recipient
//! is conformant", so HTTP/1.2..1.9 are rewritten to HTTP/1.1 before parsing.
//! Other majors are refused with 505 (RFC 9110 §15.6.6) when they are at least
//! well-formed versions, 400 otherwise.

/// `HTTP-version = HTTP-name "/" DIGIT "." DIGIT` (RFC 9112 §2.3).
const VERSION_LEN: usize = 8;
const HTTP_NAME_SLASH: &[u8] = b"HTTP/";
/// Offsets of the major and minor digit in a version.
const MAJOR_AT: usize = 5;
const DOT_AT: usize = 6;
const MINOR_AT: usize = 7;
/// The request line is `method SP request-target SP HTTP-version`.
const REQUEST_LINE_SPACES: usize = 2;

/// If the request line at the start of `buf` (after any empty lines, which
/// httparse skips too) is `... HTTP/1.<2-9>`, rewrites the minor digit to `1`
/// in place and returns true. Anything else is left alone, for the parser to
/// accept or refuse.
///
/// Works on an incomplete line too, as long as the version is its last token:
/// httparse refuses `HTTP/1.2` as soon as it has those 8 bytes, so a request
/// line split across reads must be normalised before it is complete. Should
/// more version bytes follow (`HTTP/1.23`), the line is invalid either way.
///
/// Call it before every `parse_request` of the same head; it returns true only
/// on the call that rewrote the digit.
pub fn normalize_request_version(buf: &mut [u8]) -> bool {
    let Some((start, end, _)) = version_token(buf) else {
        return false;
    };
    let v = &buf[start..end];
    if v.len() == VERSION_LEN && v.starts_with(b"HTTP/1.") && matches!(v[MINOR_AT], b'2'..=b'9') {
        buf[start + MINOR_AT] = b'1';
        true
    } else {
        false
    }
}

/// What the version of a request line that httparse refused says about the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefusedVersion {
    /// A well-formed version with a major other than 0 and 1 (`HTTP/2.0`, `HTTP/3.0`; the
    /// HTTP/2 preface): 505 rather than 400.
    UnsupportedMajor,
    /// The line is incomplete and its version could still become one of those: httparse
    /// refuses `HTTP/2` without waiting for more, so the answer waits for the line end, and
    /// is the same however the line arrives.
    Pending,
    /// Anything else: 400.
    Invalid,
}

pub(crate) fn refused_version(buf: &[u8]) -> RefusedVersion {
    let Some((start, end, complete)) = version_token(buf) else {
        return RefusedVersion::Invalid;
    };
    let v = &buf[start..end];
    let fits = v.iter().enumerate().all(|(i, &b)| match i {
        _ if i < MAJOR_AT => b == HTTP_NAME_SLASH[i],
        MAJOR_AT => matches!(b, b'2'..=b'9'),
        DOT_AT => b == b'.',
        MINOR_AT => b.is_ascii_digit(),
        _ => false,
    });
    match (fits, complete) {
        (true, true) if v.len() == VERSION_LEN => RefusedVersion::UnsupportedMajor,
        (true, false) if v.len() > MAJOR_AT => RefusedVersion::Pending,
        _ => RefusedVersion::Invalid,
    }
}

/// (start, end, line complete) of the last token of the first non-empty line
/// in `buf`, if that line has the shape of a request line (exactly two SP).
fn version_token(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let (mut end, complete) = match buf[start..].iter().position(|&b| b == b'\n') {
        Some(lf) => (start + lf, true),
        None => (buf.len(), false),
    };
    // CRLF, or a CR whose LF has not arrived yet.
    if buf[end - 1] == b'\r' {
        end -= 1;
    }
    let line = &buf[start..end];
    if line.iter().filter(|&&b| b == b' ').count() != REQUEST_LINE_SPACES {
        return None;
    }
    let sp = line.iter().rposition(|&b| b == b' ')?;
    Some((start + sp + 1, end, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(s: &str) -> (bool, String) {
        let mut buf = s.as_bytes().to_vec();
        let changed = normalize_request_version(&mut buf);
        (changed, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn higher_minor_becomes_1_1() {
        for minor in 2..=9 {
            let req = format!("GET / HTTP/1.{minor}\r\nHost: h\r\n\r\n");
            assert_eq!(
                normalized(&req),
                (true, "GET / HTTP/1.1\r\nHost: h\r\n\r\n".into())
            );
        }
        // After skipped empty lines, with a bare LF, and while incomplete.
        assert_eq!(
            normalized("\r\n\r\nPUT /x HTTP/1.5\r\n"),
            (true, "\r\n\r\nPUT /x HTTP/1.1\r\n".into())
        );
        assert_eq!(
            normalized("GET / HTTP/1.2\nHost: h\n\n"),
            (true, "GET / HTTP/1.1\nHost: h\n\n".into())
        );
        assert_eq!(
            normalized("GET / HTTP/1.9"),
            (true, "GET / HTTP/1.1".into())
        );
        assert_eq!(
            normalized("GET / HTTP/1.9\r"),
            (true, "GET / HTTP/1.1\r".into())
        );
        // Only the first line: a later line is not a request line.
        assert_eq!(
            normalized("GET / HTTP/1.1\r\nX: a b HTTP/1.2\r\n\r\n"),
            (false, "GET / HTTP/1.1\r\nX: a b HTTP/1.2\r\n\r\n".into())
        );
    }

    #[test]
    fn other_versions_are_left_alone() {
        for req in [
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTP/2.0\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/3.0\r\n",
            "GET / HTTP/0.9\r\n",
            "GET / HTTP/1.10\r\n",
            "GET / HTTP/1.2 \r\n",
            "GET / HTTP/11\r\n",
            "GET / http/1.2\r\n",
            "GET / HTTP/1.\r\n",
            "GET / HTTP/1.x\r\n",
            "GET /HTTP/1.2\r\n",
            "GET / x HTTP/1.2\r\n",
            "GET /\r\n",
            "GET / HTTP/1.",
            "",
            "\r\n",
        ] {
            assert_eq!(normalized(req), (false, req.into()), "{req:?}");
        }
    }

    #[test]
    fn normalizing_twice_is_a_no_op() {
        let mut buf = b"GET / HTTP/1.3\r\nHost: h\r\n\r\n".to_vec();
        assert!(normalize_request_version(&mut buf));
        assert!(!normalize_request_version(&mut buf));
        assert_eq!(buf, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }

    #[test]
    fn unsupported_majors() {
        use RefusedVersion::*;
        for req in [
            "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/3.0\r\n",
            "GET / HTTP/9.9\n",
            "\r\nGET / HTTP/2.1\r\n",
        ] {
            assert_eq!(refused_version(req.as_bytes()), UnsupportedMajor, "{req:?}");
        }
        // Incomplete lines that httparse already refuses: wait for the line end.
        for req in [
            "GET / HTTP/2",
            "GET / HTTP/2.",
            "GET / HTTP/2.0",
            "GET / HTTP/2.0\r",
        ] {
            assert_eq!(refused_version(req.as_bytes()), Pending, "{req:?}");
        }
        for req in [
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.2\r\n",
            "GET / HTTP/0.9\r\n",
            "GET / HTTP/2\r\n",
            "GET / HTTP/2.\r\n",
            "GET / HTTP/20\r\n",
            "GET / HTTP/2.0.1\r\n",
            "GET / HTTP/2.0x",
            "GET / HTTP/2.x\r\n",
            "GET / http/2.0\r\n",
            "GET / x HTTP/2.0\r\n",
            "GET / HTTP/",
            "GET / HTTP/0",
            "GET /\r\n",
            "",
        ] {
            assert_eq!(refused_version(req.as_bytes()), Invalid, "{req:?}");
        }
    }
}
