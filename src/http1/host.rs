//! Validation of `Host` values and absolute-form authorities:
//! `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2).
//!
//! The host is used for routing and forwarded verbatim, so anything that a
//! backend or a routing table could read in more than one way is refused.

use std::net::Ipv6Addr;

/// Checks `uri-host [ ":" port ]`, with a non-empty host.
///
/// IP-literals must hold an IPv6 address; IPvFuture is refused because no
/// backend we route to understands it. The port may be empty (RFC 3986 allows
/// `host:`), but must be digits only.
pub(crate) fn validate(value: &[u8]) -> Result<(), &'static str> {
    let (host, port) = split(value)?;
    if host.is_empty() {
        return Err("empty host");
    }
    if !port.iter().all(u8::is_ascii_digit) {
        return Err("invalid port");
    }
    if host[0] == b'[' {
        let inner = &host[1..host.len() - 1];
        let parsed = std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<Ipv6Addr>().ok());
        return parsed.map(|_| ()).ok_or("invalid IP literal");
    }
    if is_reg_name(host) {
        Ok(())
    } else {
        Err("invalid host")
    }
}

/// Splits into (host, port); port is empty when absent.
fn split(value: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if value.first() == Some(&b'[') {
        let close = value
            .iter()
            .position(|&b| b == b']')
            .ok_or("invalid IP literal")?;
        let (host, rest) = value.split_at(close + 1);
        return match rest {
            [] => Ok((host, rest)),
            [b':', port @ ..] => Ok((host, port)),
            _ => Err("invalid host"),
        };
    }
    match value.iter().position(|&b| b == b':') {
        Some(colon) => Ok((&value[..colon], &value[colon + 1..])),
        None => Ok((value, &[])),
    }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; IPv4 addresses
/// are a subset of it.
fn is_reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            let hex = s.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        if !unreserved && !sub_delim {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_hosts() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"example.com:",
            b"127.0.0.1",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:443",
            b"[2001:db8::1]:",
            b"xn--bcher-kva.example",
            b"my_host-1.local",
            b"a%20b",
            b"a!$&'()*+,;=b",
        ] {
            assert_eq!(validate(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn invalid_hosts() {
        for bad in [
            &b""[..],
            b":80",
            b"exa mple.com",
            b"example.com:8a",
            b"example.com:80:80",
            b"user@example.com",
            b"example.com/path",
            b"ex\tample",
            b"a%2",
            b"a%zz",
            b"[::1",
            b"[::1]x",
            b"[::1]:x",
            b"[]",
            b"[not-ip]",
            b"[v1.fe]",
            b"::1",
            b"ex\xc3\xa4mple",
            b"a\"b",
            b"a\\b",
        ] {
            assert!(validate(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
