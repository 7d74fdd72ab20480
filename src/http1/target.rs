//! Request-target forms (RFC 9112 §3.2) and what of each is forwarded.
//!
//! What is forwarded is almost always a part of the received target, so it is
//! kept as a span; the two cases where the bytes to send are not in the
//! buffer ("/" before a bare query, "*" for an OPTIONS to an empty path) are
//! described by a [`TargetPrefix`] written before the span.

use super::host;
use super::request::{Method, RequestError};
use super::span::Span;

/// What is sent before the target span; see `RequestHead::target`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetPrefix {
    /// The span is the whole target to forward.
    #[default]
    None,
    /// `/` then the span (a `?query`): absolute-form with an empty path and
    /// a query, RFC 9112 §3.2.1 ("If the target URI's path component is
    /// empty, the client MUST send "/" as the path").
    Slash,
    /// `*` and an empty span: an OPTIONS in absolute-form with an empty path
    /// and no query, RFC 9112 §3.2.4 (the last proxy "MUST send a
    /// request-target of "*"").
    Asterisk,
}

impl TargetPrefix {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            TargetPrefix::None => b"",
            TargetPrefix::Slash => b"/",
            TargetPrefix::Asterisk => b"*",
        }
    }
}

/// A request-target reduced to what the proxy needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Written before `forward`.
    pub(crate) prefix: TargetPrefix,
    /// The origin-form to send to the backend (or `*`), after `prefix`.
    pub(crate) forward: Span,
    /// The authority of an absolute-form target, validated like a Host value.
    pub(crate) authority: Option<Span>,
}

/// Classifies the target at `target` in `buf` for a request with `method`.
///
/// Characters: httparse already refuses CTLs and spaces; here non-ASCII is
/// refused too (RFC 3986 has no raw non-ASCII, and backends disagree on how to
/// decode it) and so is `#`, because a fragment must never be sent and
/// backends differ on whether they strip it or route on it.
pub(crate) fn classify(buf: &[u8], target: Span, method: Method) -> Result<Target, RequestError> {
    let t = target.get(buf);
    if t.iter().any(|&b| b >= 0x80 || b == b'#') {
        return Err(RequestError::BadRequest("invalid character in target"));
    }
    if t.first() == Some(&b'/') {
        return Ok(Target {
            prefix: TargetPrefix::None,
            forward: target,
            authority: None,
        });
    }
    if t == b"*" {
        return if method == Method::Options {
            Ok(Target {
                prefix: TargetPrefix::None,
                forward: target,
                authority: None,
            })
        } else {
            Err(RequestError::BadRequest(
                "asterisk-form is only for OPTIONS",
            ))
        };
    }
    absolute(t, target, method)
}

/// absolute-form: `http(s)://authority[/path][?query]`.
///
/// RFC 9112 §3.2.2: a server MUST accept it; the proxy forwards the path and
/// query in origin-form (the only form a server must accept in turn) and the
/// authority as Host.
fn absolute(t: &[u8], target: Span, method: Method) -> Result<Target, RequestError> {
    let scheme_len = if starts_with_ci(t, b"http://") {
        7
    } else if starts_with_ci(t, b"https://") {
        8
    } else {
        return Err(RequestError::BadRequest("invalid request-target"));
    };
    let rest = &t[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    // RFC 9110 §4.2.4: userinfo is deprecated and a known phishing vector.
    if authority.contains(&b'@') {
        return Err(RequestError::BadRequest("userinfo in request-target"));
    }
    host::validate(authority).map_err(RequestError::BadRequest)?;
    let auth_start = scheme_len;
    let path_start = auth_start + auth_len;
    let (prefix, forward) = match rest.get(auth_len) {
        Some(b'/') => (TargetPrefix::None, target.slice(path_start, t.len())),
        // RFC 9112 §3.2.4: "OPTIONS http://www.example.org:8001 HTTP/1.1" is
        // forwarded as "OPTIONS * HTTP/1.1": the request is about the server,
        // not a resource.
        None if method == Method::Options => {
            (TargetPrefix::Asterisk, target.slice(t.len(), t.len()))
        }
        // An empty path means "/" (RFC 9112 §3.2.1); borrow the last slash of
        // "://", so that `forward` alone is still the whole target.
        None => (TargetPrefix::None, target.slice(scheme_len - 1, scheme_len)),
        // "http://h?q" (path-abempty, then a query) is "/?q"; the "/" is not
        // in the buffer.
        _ => (TargetPrefix::Slash, target.slice(path_start, t.len())),
    };
    Ok(Target {
        prefix,
        forward,
        authority: Some(target.slice(auth_start, path_start)),
    })
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (what is forwarded, authority).
    fn run(t: &str, m: Method) -> Result<(String, Option<String>), RequestError> {
        let buf = t.as_bytes();
        let r = classify(buf, Span::new(0, buf.len()), m)?;
        let s = |sp: Span| String::from_utf8(sp.get(buf).to_vec()).unwrap();
        let prefix = std::str::from_utf8(r.prefix.as_bytes()).unwrap();
        Ok((format!("{prefix}{}", s(r.forward)), r.authority.map(s)))
    }

    #[test]
    fn origin_form() {
        assert_eq!(run("/a/b?c=d", Method::Get), Ok(("/a/b?c=d".into(), None)));
        assert_eq!(run("/", Method::Post), Ok(("/".into(), None)));
        assert_eq!(run("//x", Method::Get), Ok(("//x".into(), None)));
    }

    #[test]
    fn asterisk_form_only_options() {
        assert_eq!(run("*", Method::Options), Ok(("*".into(), None)));
        assert!(matches!(
            run("*", Method::Get),
            Err(RequestError::BadRequest(_))
        ));
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            run("http://example.com/p?q=1", Method::Get),
            Ok(("/p?q=1".into(), Some("example.com".into())))
        );
        assert_eq!(
            run("HTTPS://Example.com:8443/", Method::Get),
            Ok(("/".into(), Some("Example.com:8443".into())))
        );
        assert_eq!(
            run("http://example.com", Method::Get),
            Ok(("/".into(), Some("example.com".into())))
        );
        assert_eq!(
            run("http://[::1]:80/x", Method::Get),
            Ok(("/x".into(), Some("[::1]:80".into())))
        );
    }

    #[test]
    fn absolute_form_with_empty_path() {
        // RFC 9112 §3.2.1: an empty path is sent as "/", also before a query.
        let buf = b"http://h?q=1";
        let t = classify(buf, Span::new(0, buf.len()), Method::Get).unwrap();
        assert_eq!(t.prefix, TargetPrefix::Slash);
        assert_eq!(t.forward.get(buf), b"?q=1");
        assert_eq!(t.authority.unwrap().get(buf), b"h");
        assert_eq!(
            run("http://h:81?", Method::Get),
            Ok(("/?".into(), Some("h:81".into())))
        );
        // Without a query the span alone is "/" (no prefix needed).
        let buf = b"http://h";
        let t = classify(buf, Span::new(0, buf.len()), Method::Get).unwrap();
        assert_eq!(
            (t.prefix, t.forward.get(buf)),
            (TargetPrefix::None, &b"/"[..])
        );
        // OPTIONS: the query keeps the "/" form, only a bare authority is "*"
        // (RFC 9112 §3.2.4, "an empty path and no query component").
        assert_eq!(
            run("http://h?x", Method::Options),
            Ok(("/?x".into(), Some("h".into())))
        );
        let buf = b"http://www.example.org:8001";
        let t = classify(buf, Span::new(0, buf.len()), Method::Options).unwrap();
        assert_eq!(t.prefix, TargetPrefix::Asterisk);
        assert!(t.forward.is_empty());
        assert_eq!(t.authority.unwrap().get(buf), b"www.example.org:8001");
        assert_eq!(
            run("http://h/", Method::Options),
            Ok(("/".into(), Some("h".into())))
        );
    }

    #[test]
    fn rejected_targets() {
        for t in [
            "example.com:443",
            "ftp://example.com/",
            "http:/example.com/",
            "http://",
            "http://?q",
            "http:///path",
            "http://user@example.com/",
            "http://exa mple/",
            "/a#frag",
            "/caf\u{e9}",
            "a/b",
        ] {
            assert!(
                matches!(run(t, Method::Get), Err(RequestError::BadRequest(_))),
                "{t}"
            );
        }
    }
}
