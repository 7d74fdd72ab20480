//! Request header names with an underscore (`--headers-with-underscores`).
//!
//! CGI, WSGI, Rack and PHP-FPM hand header fields to applications as `HTTP_<NAME>` variables,
//! where `-` becomes `_`: to such a backend `Content_Length: 5` *is* `Content-Length: 5`, and
//! `X_Forwarded_For` overwrites the `X-Forwarded-For` the proxy wrote. A field corelay passes
//! on as opaque could then frame the body or name the client differently at the backend, so
//! these names get the choice nginx (`underscores_in_headers`) and Envoy
//! (`headers_with_underscores_action`) give.

use super::syntax::name_reads_as;

/// What happens to a request header field whose name contains `_`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnderscoreAction {
    /// Forwarded, except a name that reads as one corelay interprets or rewrites
    /// ([`READS_AS`]), which gets 400: no setting lets such a field reach a backend.
    Allow,
    /// Left out: not forwarded, not interpreted (nginx's default).
    #[default]
    Drop,
    /// Any such name gets 400.
    Reject,
}

impl UnderscoreAction {
    /// The setting's values, as the flag and the config key spell them.
    pub const NAMES: [&'static str; 3] = ["allow", "drop", "reject"];

    pub fn from_name(name: &str) -> Option<UnderscoreAction> {
        match name {
            "allow" => Some(UnderscoreAction::Allow),
            "drop" => Some(UnderscoreAction::Drop),
            "reject" => Some(UnderscoreAction::Reject),
            _ => None,
        }
    }
}

/// Fields that a name with `_` in place of `-` must not stand in for: the framing fields,
/// the hop-by-hop ones with a `-`, and the ones the proxy writes itself. (Host, Connection,
/// Expect, TE and Via have no `-`, so no underscore spelling of them exists.)
pub const READS_AS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "max-forwards",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// What to do with one field, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    Drop,
    Refuse(&'static str),
}

pub(crate) fn judge(name: &[u8], action: UnderscoreAction) -> Verdict {
    if !name.contains(&b'_') {
        return Verdict::Keep;
    }
    match action {
        UnderscoreAction::Drop => Verdict::Drop,
        UnderscoreAction::Reject => Verdict::Refuse("underscore in header name"),
        UnderscoreAction::Allow if READS_AS.iter().any(|f| name_reads_as(name, f.as_bytes())) => {
            Verdict::Refuse("header name reads as a framing or proxy field")
        }
        UnderscoreAction::Allow => Verdict::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UnderscoreAction::*;

    #[test]
    fn names_without_underscore_are_kept_in_every_mode() {
        for action in [Allow, Drop, Reject] {
            assert_eq!(judge(b"Content-Length", action), Verdict::Keep);
            assert_eq!(judge(b"X-Api-Key", action), Verdict::Keep);
        }
    }

    #[test]
    fn allow_refuses_only_look_alikes() {
        for name in [
            &b"Content_Length"[..],
            b"transfer_encoding",
            b"TRANSFER_ENCODING",
            b"Keep_Alive",
            b"Proxy_Connection",
            b"Max_Forwards",
            b"X_Forwarded_For",
            b"x-forwarded_proto",
        ] {
            assert!(
                matches!(judge(name, Allow), Verdict::Refuse(_)),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        for name in [
            &b"X_Custom"[..],
            b"Content_Length2",
            b"Content__Length",
            b"_",
        ] {
            assert_eq!(judge(name, Allow), Verdict::Keep);
        }
    }

    #[test]
    fn drop_and_reject_take_every_underscore_name() {
        for name in [&b"Content_Length"[..], b"X_Custom", b"_"] {
            assert_eq!(judge(name, Drop), Verdict::Drop);
            assert!(matches!(judge(name, Reject), Verdict::Refuse(_)));
        }
    }

    #[test]
    fn names_round_trip() {
        for (i, name) in UnderscoreAction::NAMES.iter().enumerate() {
            let a = UnderscoreAction::from_name(name).unwrap();
            assert_eq!(a, [Allow, Drop, Reject][i]);
        }
        assert_eq!(UnderscoreAction::from_name("Drop"), None);
        assert_eq!(UnderscoreAction::default(), Drop);
    }
}
