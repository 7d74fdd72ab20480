//! A strict, deliberately naive reading of an HTTP/1.1 message head and its body framing
//! (RFC 9112 §2-§6), written without looking at corelay's code or using any of it: the
//! oracle the request and response targets compare corelay's framing decision against.
//!
//! Where the RFC leaves a message open to two readings (Content-Length with
//! Transfer-Encoding, lengths that disagree, Transfer-Encoding in HTTP/1.0, a field name a
//! CGI-style backend would read as a framing field), the answer is `Invalid`: such a message
//! must be refused, whatever corelay makes of it.

/// The body length a head decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    Length(u128),
    Chunked,
    /// A response body that runs until the connection closes.
    Close,
}

/// A head cut into its parts, or why it is not a head.
#[derive(Debug)]
pub struct Head<'a> {
    pub start_line: &'a [u8],
    pub fields: Vec<(&'a [u8], &'a [u8])>,
    /// Bytes up to and including the empty line that ends the head.
    pub len: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Splits a head into lines. RFC 9112 §2.2 lets a recipient take a lone LF as a line end
/// (ignoring a CR before it), and corelay re-encodes every head with CRLFs, so both are
/// accepted here; a CR anywhere else is not. `None` while no empty line has arrived;
/// `Some(Err)` for any field line that is not strictly `field-name ":" OWS field-value OWS`
/// (obs-fold, whitespace before the colon, control characters).
pub fn split_head(buf: &[u8]) -> Option<Result<Head<'_>, &'static str>> {
    let mut lines = Vec::new();
    let mut pos = 0;
    let len = loop {
        let lf = buf[pos..].iter().position(|&b| b == b'\n')? + pos;
        let line = &buf[pos..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = lf + 1;
        if line.is_empty() {
            // §2.2: empty lines before the start line may be ignored.
            if lines.is_empty() {
                continue;
            }
            break pos;
        }
        lines.push(line);
    };
    if lines.iter().any(|l| l.contains(&b'\r')) {
        return Some(Err("bare CR"));
    }
    let (start_line, field_lines) = lines.split_first()?;
    let mut fields = Vec::new();
    for line in field_lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Some(Err("field line without colon"));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Some(Err("bad field name"));
        }
        let value = trim(&line[colon + 1..]);
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
        {
            return Some(Err("control character in field value"));
        }
        fields.push((name, value));
    }
    Some(Ok(Head {
        start_line,
        fields,
        len,
    }))
}

/// `HTTP/1.0` or `HTTP/1.1` as (is 1.1).
fn version(v: &[u8]) -> Option<bool> {
    match v {
        b"HTTP/1.0" => Some(false),
        b"HTTP/1.1" => Some(true),
        _ => None,
    }
}

/// The request line's method and whether it is HTTP/1.1.
pub fn request_line(line: &[u8]) -> Result<(&[u8], bool), &'static str> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, v] = parts[..] else {
        return Err("request line is not three parts");
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err("bad method");
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err("bad target");
    }
    Ok((method, version(v).ok_or("bad version")?))
}

/// The status line's code and whether it is HTTP/1.1.
pub fn status_line(line: &[u8]) -> Result<(u16, bool), &'static str> {
    let http11 = version(line.get(..8).ok_or("short status line")?).ok_or("bad version")?;
    let code = line.get(9..12).ok_or("short status line")?;
    if line[8] != b' ' || !code.iter().all(u8::is_ascii_digit) {
        return Err("bad status code");
    }
    if line.len() > 12 && line[12] != b' ' {
        return Err("bad status line");
    }
    let code = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    Ok((code, http11))
}

/// A name that some backends read as `framing` (CGI and WSGI turn `-` into `_`).
fn looks_like(name: &[u8], framing: &str) -> bool {
    name.contains(&b'_')
        && name.len() == framing.len()
        && name
            .iter()
            .zip(framing.bytes())
            .all(|(&a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// The framing fields of a head, as every recipient would collect them.
struct FramingFields<'a> {
    te: Vec<&'a [u8]>,
    cl: Vec<&'a [u8]>,
}

fn framing_fields<'a>(
    fields: &[(&'a [u8], &'a [u8])],
    underscored: Underscored,
) -> Result<FramingFields<'a>, &'static str> {
    let mut f = FramingFields {
        te: Vec::new(),
        cl: Vec::new(),
    };
    for &(name, value) in fields {
        if name.contains(&b'_') {
            match underscored {
                Underscored::Dropped => continue,
                Underscored::Kept
                    if looks_like(name, "content-length")
                        || looks_like(name, "transfer-encoding") =>
                {
                    return Err("framing field look-alike");
                }
                Underscored::Kept => {}
            }
        }
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.te.push(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            f.cl.push(value);
        }
    }
    Ok(f)
}

/// What happens to fields whose name has an underscore on the way to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underscored {
    /// They are not forwarded, so they cannot be read as anything.
    Dropped,
    /// They are forwarded: a look-alike of a framing field is a second reading.
    Kept,
}

/// Transfer-Encoding lines: `Ok(true)` when chunked is the last and only chunked coding,
/// `Ok(false)` when chunked is not last (a response then runs to close).
fn chunked_last(lines: &[&[u8]]) -> Result<bool, &'static str> {
    let mut codings = Vec::new();
    for line in lines {
        let before = codings.len();
        codings.extend(
            line.split(|&b| b == b',')
                .map(trim)
                .filter(|c| !c.is_empty()),
        );
        if codings.len() == before {
            return Err("Transfer-Encoding line without codings");
        }
    }
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count();
    let last = codings
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
    match (chunked, last) {
        (1, true) => Ok(true),
        (0, false) => Ok(false),
        _ => Err("chunked applied twice or not last"),
    }
}

/// All Content-Length elements, which must be one and the same 1*DIGIT number.
fn content_length(lines: &[&[u8]]) -> Result<u128, &'static str> {
    let mut value = None;
    for line in lines {
        for element in line.split(|&b| b == b',').map(trim) {
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return Err("Content-Length is not 1*DIGIT");
            }
            let n = element.iter().try_fold(0u128, |n, &d| {
                n.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            });
            let n = n.ok_or("Content-Length beyond any integer type")?;
            if value.is_some_and(|v| v != n) {
                return Err("Content-Length values disagree");
            }
            value = Some(n);
        }
    }
    value.ok_or("no Content-Length")
}

/// RFC 9112 §6.3 for a request: its body length, or why it has no single one.
pub fn request_framing(head: &Head<'_>, underscored: Underscored) -> Result<Framing, &'static str> {
    let (_, http11) = request_line(head.start_line)?;
    let f = framing_fields(&head.fields, underscored)?;
    if !f.te.is_empty() {
        if !http11 {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        if !f.cl.is_empty() {
            return Err("Transfer-Encoding and Content-Length");
        }
        // §6.3 item 4: a request whose last coding is not chunked has no knowable length.
        return match chunked_last(&f.te)? {
            true => Ok(Framing::Chunked),
            false => Err("request Transfer-Encoding does not end in chunked"),
        };
    }
    if f.cl.is_empty() {
        return Ok(Framing::None);
    }
    content_length(&f.cl).map(Framing::Length)
}

/// RFC 9112 §6.3 for a response to a request with `method`.
pub fn response_framing(head: &Head<'_>, method: &[u8]) -> Result<Framing, &'static str> {
    let (status, http11) = status_line(head.start_line)?;
    if !(100..=599).contains(&status) {
        return Err("status out of range");
    }
    if method == b"HEAD" || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let f = framing_fields(&head.fields, Underscored::Dropped)?;
    if !f.te.is_empty() {
        if !http11 {
            return Err("Transfer-Encoding in HTTP/1.0");
        }
        if !f.cl.is_empty() {
            return Err("Transfer-Encoding and Content-Length");
        }
        return match chunked_last(&f.te)? {
            true => Ok(Framing::Chunked),
            false => Ok(Framing::Close),
        };
    }
    if f.cl.is_empty() {
        return Ok(Framing::Close);
    }
    content_length(&f.cl).map(Framing::Length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str, u: Underscored) -> Result<Framing, &'static str> {
        let head = split_head(s.as_bytes()).unwrap()?;
        request_framing(&head, u)
    }

    #[test]
    fn readings() {
        use Underscored::*;
        let r = |s| req(s, Kept);
        assert_eq!(r("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Ok(Framing::None));
        assert_eq!(
            r("POST / HTTP/1.1\r\nContent-Length: 5, 05\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            r("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert!(
            r("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n")
                .is_err()
        );
        assert!(r("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(r("POST / HTTP/1.1\r\nContent_Length: 5\r\n\r\n").is_err());
        assert_eq!(
            req("POST / HTTP/1.1\r\nContent_Length: 5\r\n\r\n", Dropped),
            Ok(Framing::None)
        );
        assert!(r("POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n").is_err());
        assert!(r("POST / HTTP/1.1\r\n Content-Length: 5\r\n\r\n").is_err());
    }
}
