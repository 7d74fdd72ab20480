//! Lexical rules of RFC 9110 §5.6 shared by the parsers and encoders:
//! tokens, optional whitespace and comma-separated lists.

/// `tchar` (RFC 9110 §5.6.2): the characters allowed in a token.
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `OWS` / `BWS` whitespace: SP or HTAB.
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte allowed in a field value (RFC 9110 §5.5): VCHAR, SP, HTAB, obs-text.
/// Everything else is a control character we refuse to pass on.
pub(crate) fn is_field_vchar(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// `s` without leading and trailing OWS.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// The elements of a `#rule` list (RFC 9110 §5.6.1), OWS-trimmed.
///
/// Empty elements are yielded too: some fields (Transfer-Encoding) must ignore
/// them and others (Content-Length) must reject them, so the caller decides.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// Whether the comma list `value` contains `token`, ignoring ASCII case.
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether field name `name` is `field` as a backend that reads `_` as `-` sees it (CGI and
/// WSGI do): equal ignoring ASCII case, with at least one `_` where `field` has `-`.
pub(crate) fn name_reads_as(name: &[u8], field: &[u8]) -> bool {
    name.len() == field.len()
        && name.contains(&b'_')
        && name
            .iter()
            .zip(field)
            .all(|(&n, &f)| n.eq_ignore_ascii_case(&f) || (n == b'_' && f == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_set() {
        for b in b"!#$%&'*+-.^_`|~09azAZ" {
            assert!(is_tchar(*b), "{}", *b as char);
        }
        for b in b" \t\"(),/:;<=>?@[\\]{}\x00\x7f\x80" {
            assert!(!is_tchar(*b), "{}", *b);
        }
    }

    #[test]
    fn field_vchar() {
        assert!(is_field_vchar(b'\t'));
        assert!(is_field_vchar(b' '));
        assert!(is_field_vchar(0xff));
        assert!(!is_field_vchar(0));
        assert!(!is_field_vchar(b'\r'));
        assert!(!is_field_vchar(b'\n'));
        assert!(!is_field_vchar(0x7f));
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_ows(b"  a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }

    #[test]
    fn underscore_spellings() {
        assert!(name_reads_as(b"Content_Length", b"content-length"));
        assert!(name_reads_as(b"x_forwarded-FOR", b"X-Forwarded-For"));
        assert!(!name_reads_as(b"Content-Length", b"content-length"));
        assert!(!name_reads_as(b"Content_Lengths", b"content-length"));
        assert!(!name_reads_as(b"Content_Lengt", b"content-length"));
        assert!(!name_reads_as(b"Content_Lenhth", b"content-length"));
        assert!(!name_reads_as(b"Content-Length", b"content_length"));
    }

    #[test]
    fn lists() {
        let v: Vec<&[u8]> = list_elements(b"a, b ,,\tc,").collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"", b"c", b""]);
        assert!(list_contains(b"keep-alive, Close", "close"));
        assert!(!list_contains(b"closed", "close"));
    }
}
