//! Connection management fields (RFC 9110 §7.6.1): the Connection header's
//! options and the hop-by-hop fields a proxy must not forward.

use super::span::HeaderSpan;
use super::syntax::{list_contains, list_elements};

/// Fields that describe one hop and are never forwarded, in either direction.
/// `Proxy-Connection` and `Keep-Alive` are not in RFC 9110's list but are
/// widely sent by old clients, and forwarding them would let a client steer
/// our connection to the backend.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Whether `name` is a fixed hop-by-hop field.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Whether any Connection field line lists `token` (case-insensitive).
pub(crate) fn has_option(buf: &[u8], headers: &[HeaderSpan], token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.is(buf, "connection"))
        .any(|h| list_contains(h.value.get(buf), token))
}

/// Whether `name` is nominated as hop-by-hop by a Connection option.
///
/// Linear in the number of Connection options per call; heads are small and
/// this avoids building a set (and allocating) per message.
pub(crate) fn is_nominated(buf: &[u8], headers: &[HeaderSpan], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| h.is(buf, "connection"))
        .any(|h| list_elements(h.value.get(buf)).any(|t| t.eq_ignore_ascii_case(name)))
}

/// Whether a field must be dropped when forwarding because of the hop it
/// came over (fixed list or nominated by Connection).
pub(crate) fn is_hop_field(buf: &[u8], headers: &[HeaderSpan], name: &[u8]) -> bool {
    is_hop_by_hop(name) || is_nominated(buf, headers, name)
}

/// The Upgrade field of a request that asks to switch protocols (RFC 9110 §7.8): an
/// HTTP/1.1 GET whose Connection lists `upgrade`, with exactly one Upgrade line. Two lines
/// could be joined differently by the backend, so they are not an offer (and are stripped).
pub(crate) fn upgrade_offer(buf: &[u8], headers: &[HeaderSpan]) -> Option<super::span::Span> {
    if !has_option(buf, headers, "upgrade") {
        return None;
    }
    let mut lines = headers.iter().filter(|h| h.is(buf, "upgrade"));
    match (lines.next(), lines.next()) {
        (Some(h), None) => Some(h.value),
        _ => None,
    }
}

/// Whether one element of an Upgrade list (`protocol-name ["/" protocol-version]`) names a
/// protocol on `allow` (lower-case names). `h2c` never does: HTTP/2 over cleartext would
/// carry requests past every check this proxy makes.
pub fn upgrade_allowed(element: &[u8], allow: &[String]) -> bool {
    let name = element.split(|&b| b == b'/').next().unwrap_or(b"");
    !name.is_empty()
        && !name.eq_ignore_ascii_case(b"h2c")
        && allow
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a.as_bytes()))
}

/// The elements of the Upgrade value `value` that `allow` permits.
pub(crate) fn allowed_upgrades<'a>(
    value: &'a [u8],
    allow: &'a [String],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    list_elements(value).filter(move |e| upgrade_allowed(e, allow))
}

/// The keep-alive decision of RFC 9112 §9.3: HTTP/1.1 persists unless `close`
/// is given; HTTP/1.0 only with `keep-alive` (and `close` always wins).
pub(crate) fn persists(buf: &[u8], headers: &[HeaderSpan], http11: bool) -> bool {
    if has_option(buf, headers, "close") {
        false
    } else {
        http11 || has_option(buf, headers, "keep-alive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::span::Span;

    /// Builds header spans over a "Name: value\n" per line buffer.
    fn headers(buf: &[u8]) -> Vec<HeaderSpan> {
        let mut out = Vec::new();
        let mut pos = 0;
        for line in buf.split(|&b| b == b'\n') {
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                out.push(HeaderSpan {
                    name: Span::new(pos, pos + colon),
                    value: Span::new(pos + colon + 2, pos + line.len()),
                });
            }
            pos += line.len() + 1;
        }
        out
    }

    #[test]
    fn fixed_hop_by_hop() {
        for n in [
            "Connection",
            "KEEP-ALIVE",
            "proxy-connection",
            "TE",
            "Trailer",
            "Upgrade",
        ] {
            assert!(is_hop_by_hop(n.as_bytes()), "{n}");
        }
        assert!(!is_hop_by_hop(b"Trailers"));
        assert!(!is_hop_by_hop(b"Host"));
    }

    #[test]
    fn nominated_fields() {
        let buf = b"Connection: close, X-Secret\nConnection: foo\nX-Secret: 1";
        let h = headers(buf);
        assert!(is_nominated(buf, &h, b"x-secret"));
        assert!(is_nominated(buf, &h, b"Foo"));
        assert!(!is_nominated(buf, &h, b"X-Other"));
        assert!(is_hop_field(buf, &h, b"upgrade"));
    }

    #[test]
    fn persistence() {
        let b = b"Connection: Keep-Alive";
        assert!(persists(b, &headers(b), false));
        assert!(persists(b, &headers(b), true));
        let b = b"Connection: upgrade\nConnection: CLOSE";
        assert!(!persists(b, &headers(b), true));
        let b = b"Connection: keep-alive, close";
        assert!(!persists(b, &headers(b), false));
        let b = b"X: y";
        assert!(persists(b, &headers(b), true));
        assert!(!persists(b, &headers(b), false));
    }
}
