//! Status codes: canonical reason phrases and the small responses the proxy
//! generates itself (errors and 100 Continue; see `local` for OPTIONS/TRACE).

use std::io::Write;

use super::date::write_date_field;

/// Sent to the client when it asked for `Expect: 100-continue` and the proxy
/// is ready for the body.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The RFC 9110 reason phrase for `status`, or "" for codes without one
/// (the reason phrase is optional on the wire, so "" is always valid).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Appends a complete plain-text response: `"<status> <reason>\n"` as body,
/// with `Connection: close` when the proxy will close after sending it.
///
/// `head_request`: the response answers a HEAD, so it carries the same header
/// fields, Content-Length included, but no content (RFC 9110 §9.3.2; a body
/// would be read as the start of the next response, RFC 9112 §6.3 item 1).
///
/// Date is always sent: the proxy is the origin of this response and has a
/// clock (RFC 9110 §6.6.1 requires it for 2xx-4xx, allows it for 5xx).
pub fn error_response(status: u16, close: bool, head_request: bool, out: &mut Vec<u8>) {
    error_response_with(status, close, head_request, b"", out)
}

/// [`error_response`] with extra header lines (each ending in CRLF), such as
/// `WWW-Authenticate` for 401 or `Retry-After` for 503.
pub fn error_response_with(
    status: u16,
    close: bool,
    head_request: bool,
    extra: &[u8],
    out: &mut Vec<u8>,
) {
    error_response_because(status, close, head_request, extra, "", out)
}

/// [`error_response_with`] whose body also names why: `"400 Bad Request: <because>\n"`, so
/// a client (or its developer) sees what to fix without the proxy's debug log. `because`
/// must be one line of plain text: it is one of the codec's fixed reason strings, never
/// anything the client sent.
pub fn error_response_because(
    status: u16,
    close: bool,
    head_request: bool,
    extra: &[u8],
    because: &str,
    out: &mut Vec<u8>,
) {
    debug_assert!(!because.contains(['\r', '\n']));
    let reason = reason_phrase(status);
    // "<status> <reason>\n", or "<status>\n" for a code without a phrase; ": <because>"
    // before the newline when there is one.
    let because_len = if because.is_empty() {
        0
    } else {
        2 + because.len()
    };
    let body_len =
        decimal_len(status) + usize::from(!reason.is_empty()) + reason.len() + because_len + 1;
    // Writes into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n"
    );
    write_date_field(out);
    out.extend_from_slice(extra);
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_request {
        return;
    }
    let _ = write!(out, "{status}");
    if !reason.is_empty() {
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
    }
    if !because.is_empty() {
        out.extend_from_slice(b": ");
        out.extend_from_slice(because.as_bytes());
    }
    out.push(b'\n');
}

fn decimal_len(mut n: u16) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::date::without_date;

    #[test]
    fn required_reasons() {
        let expected = [
            (100, "Continue"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (411, "Length Required"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (417, "Expectation Failed"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (502, "Bad Gateway"),
            (503, "Service Unavailable"),
            (504, "Gateway Timeout"),
            (505, "HTTP Version Not Supported"),
        ];
        for (code, reason) in expected {
            assert_eq!(reason_phrase(code), reason);
        }
        assert_eq!(reason_phrase(599), "");
    }

    #[test]
    fn error_response_with_close() {
        let mut out = Vec::new();
        error_response(502, true, false, &mut out);
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\
             Connection: close\r\n\r\n502 Bad Gateway\n"
        );
    }

    #[test]
    fn error_response_names_its_reason() {
        let mut out = Vec::new();
        error_response_because(
            400,
            true,
            false,
            b"",
            "both Transfer-Encoding and Content-Length",
            &mut out,
        );
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 59\r\n\
             Connection: close\r\n\r\n400 Bad Request: both Transfer-Encoding and Content-Length\n"
        );
        assert_eq!(
            "400 Bad Request: both Transfer-Encoding and Content-Length\n".len(),
            59
        );
    }

    #[test]
    fn error_response_keep_alive() {
        let mut out = Vec::new();
        error_response(404, false, false, &mut out);
        assert_eq!(
            without_date(&out),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n\
             404 Not Found\n"
        );
    }

    #[test]
    fn error_response_to_head_has_no_content() {
        for close in [true, false] {
            let mut get = Vec::new();
            error_response(502, close, false, &mut get);
            let mut head = Vec::new();
            error_response(502, close, true, &mut head);
            // Same head (Content-Length of the GET answer included), no body.
            let get = without_date(&get);
            let head = without_date(&head);
            assert!(head.ends_with("\r\n\r\n"), "{head:?}");
            assert_eq!(get, format!("{head}502 Bad Gateway\n"));
            assert!(head.contains("Content-Length: 16\r\n"), "{head:?}");
        }
    }

    #[test]
    fn error_response_always_has_date() {
        for (code, close, head) in [(400, true, false), (503, false, true), (408, true, true)] {
            let mut out = Vec::new();
            error_response(code, close, head, &mut out);
            without_date(&out);
        }
    }

    #[test]
    fn error_response_body_length_matches() {
        for code in [0, 7, 100, 400, 413, 431, 505, 599, 1000] {
            let mut out = Vec::new();
            error_response(code, false, false, &mut out);
            let text = String::from_utf8(out).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let cl: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cl, body.len(), "{code}");
            assert!(body.starts_with(&code.to_string()));
        }
    }

    #[test]
    fn continue_100_bytes() {
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
    }
}
