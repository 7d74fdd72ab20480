//! The response-head parser, and the head the proxy sends on to the client.
//!
//! Input: one control byte (request method, limits), one split-seed byte, then the bytes a
//! backend sent. Checks, beyond "no panic":
//! - incremental parsing: pieces give the same result as the whole;
//! - framing: an accepted head is strict per `reference`, and its body framing is the strict
//!   RFC 9112 §6.3 reading for the request's method (a refusal is always allowed);
//! - round trip: the head as `encode_response` writes it parses again to the same status,
//!   framing and end-to-end fields.
#![no_main]

use corelay::http1::{
    encode_response, parse_response, Limits, Method, OutFraming, ResponseBody, ResponseError,
    ResponseHead, Version,
};
use corelay_fuzz::reference::{self, Framing};
use corelay_fuzz::splits;
use libfuzzer_sys::fuzz_target;

const METHODS: [(Method, &[u8]); 4] = [
    (Method::Get, b"GET"),
    (Method::Head, b"HEAD"),
    (Method::Post, b"POST"),
    (Method::Options, b"OPTIONS"),
];

const NOT_FORWARDED: &[&str] = &[
    "transfer-encoding",
    "content-length",
    "via",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn framing_of(body: ResponseBody) -> Framing {
    match body {
        ResponseBody::None => Framing::None,
        ResponseBody::Length(n) => Framing::Length(u128::from(n)),
        ResponseBody::Chunked => Framing::Chunked,
        ResponseBody::CloseDelimited => Framing::Close,
    }
}

fn out_framing(body: ResponseBody) -> OutFraming {
    match body {
        ResponseBody::None => OutFraming::None,
        ResponseBody::Length(n) => OutFraming::Length(n),
        ResponseBody::Chunked => OutFraming::Chunked,
        ResponseBody::CloseDelimited => OutFraming::Close,
    }
}

fuzz_target!(|data: &[u8]| {
    let [ctl, seed, input @ ..] = data else {
        return;
    };
    let (method, method_name) = METHODS[usize::from(ctl & 3)];
    let mut limits = Limits::default();
    if ctl & 4 != 0 {
        limits.max_headers = 3;
        limits.max_header_bytes = 256;
    }
    let mut head = ResponseHead::new();
    let whole = parse_response(input, &limits, method, &mut head);

    let mut piecewise = ResponseHead::new();
    let mut points = splits(u64::from(*seed), input.len());
    points.push(input.len());
    let mut pieces: Result<bool, ResponseError> = Ok(false);
    for to in points {
        pieces = parse_response(&input[..to], &limits, method, &mut piecewise);
        if pieces != Ok(false) {
            break;
        }
    }
    assert_eq!(pieces, whole, "fed in pieces vs at once");
    if whole != Ok(true) {
        return;
    }
    assert_eq!(format!("{piecewise:?}"), format!("{head:?}"));
    assert!(head.head_len <= limits.max_header_bytes);

    let strict = match reference::split_head(input) {
        Some(Ok(h)) => h,
        other => panic!("accepted a head the strict reading refuses: {other:?}"),
    };
    assert_eq!(strict.len, head.head_len);
    assert_eq!(
        reference::response_framing(&strict, method_name),
        Ok(framing_of(head.body)),
        "framing differs from the strict reading"
    );

    // Round trip towards an HTTP/1.1 client that keeps the connection.
    let keep_alive = head.keep_alive;
    let mut out = Vec::new();
    let framing = out_framing(head.body);
    encode_response(
        input,
        &head,
        framing,
        Version::Http11,
        keep_alive,
        "corelay",
        &mut out,
    );
    let mut again = ResponseHead::new();
    let big = Limits {
        max_headers: 512,
        max_header_bytes: 1 << 20,
        ..limits
    };
    assert_eq!(
        parse_response(&out, &big, method, &mut again),
        Ok(true),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.status, head.status);
    assert_eq!(again.reason.get(&out), head.reason.get(input));
    assert_eq!(again.body, head.body, "{:?}", String::from_utf8_lossy(&out));
    let sent = match reference::split_head(&out) {
        Some(Ok(h)) => h,
        other => panic!("forwarded head is not strict: {other:?}"),
    };
    assert_eq!(
        reference::response_framing(&sent, method_name),
        Ok(framing_of(head.body))
    );
    // End-to-end fields keep their order and bytes (fields the backend's Connection names
    // are hop-by-hop too, so only the forwarded ones are compared, as a subsequence).
    let forwarded: Vec<(&[u8], &[u8])> = again
        .headers
        .iter()
        .map(|h| (h.name.get(&out), h.value.get(&out)))
        .filter(|(n, _)| {
            !NOT_FORWARDED
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f.as_bytes()))
        })
        .filter(|(n, _)| !n.eq_ignore_ascii_case(b"date"))
        .collect();
    let mut received = head
        .headers
        .iter()
        .map(|h| (h.name.get(input), h.value.get(input)));
    for f in &forwarded {
        assert!(
            received.any(|r| r == *f),
            "{f:?} was not received in this order"
        );
    }
});
