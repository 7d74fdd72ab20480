//! Request-target forms (RFC 9112 §3.2) and what of each is forwarded.

use super::host;
use super::request::{Method, RequestError};
use super::span::Span;

/// A request-target reduced to what the proxy needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The origin-form to send to the backend (or `*`).
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
            forward: target,
            authority: None,
        });
    }
    if t == b"*" {
        return if method == Method::Options {
            Ok(Target {
                forward: target,
                authority: None,
            })
        } else {
            Err(RequestError::BadRequest(
                "asterisk-form is only for OPTIONS",
            ))
        };
    }
    absolute(t, target)
}

/// absolute-form: `http(s)://authority[/path][?query]`.
fn absolute(t: &[u8], target: Span) -> Result<Target, RequestError> {
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
    let forward = match rest.get(auth_len) {
        Some(b'/') => target.slice(path_start, t.len()),
        // An empty path means "/" (RFC 9112 §3.2.1); borrow the last slash of "://".
        None => target.slice(scheme_len - 1, scheme_len),
        // "http://h?q" would need "/?q" which is not in the buffer; clients
        // never send it, so refusing is simpler than synthesizing bytes.
        _ => return Err(RequestError::BadRequest("absolute-form without path")),
    };
    Ok(Target {
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

    fn run(t: &str, m: Method) -> Result<(String, Option<String>), RequestError> {
        let buf = t.as_bytes();
        let r = classify(buf, Span::new(0, buf.len()), m)?;
        let s = |sp: Span| String::from_utf8(sp.get(buf).to_vec()).unwrap();
        Ok((s(r.forward), r.authority.map(s)))
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
    fn rejected_targets() {
        for t in [
            "example.com:443",
            "ftp://example.com/",
            "http:/example.com/",
            "http://",
            "http:///path",
            "http://user@example.com/",
            "http://exa mple/",
            "http://example.com?q",
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
