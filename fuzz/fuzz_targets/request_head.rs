//! The request-head parser, and what the proxy does with a head it accepts.
//!
//! Input: one control byte (limits), one split-seed byte, then the bytes a client sent.
//! Beyond "no panic", for every input:
//! - incremental parsing: the bytes fed in pieces (as the proxy reads them, normalising the
//!   version on its buffer each time) give the same result as all at once;
//! - framing: an accepted head is a strict head per `reference`, and its body framing is the
//!   one strict RFC 9112 reading; an input with two readings is never accepted;
//! - round trip: the head as `encode_request` sends it to the backend parses again, with
//!   corelay's parser and with the reference, to the same method, target, version, framing
//!   and header list.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use corelay::http1::{
    encode_request, normalize_request_version, parse_request, ForwardInfo, Limits, Method,
    RequestBody, RequestError, RequestHead, UnderscoreAction, Version,
};
use corelay_fuzz::reference::{self, Framing, Underscored};
use corelay_fuzz::splits;
use libfuzzer_sys::fuzz_target;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// Fields `encode_request` writes itself or never forwards, besides hop-by-hop ones.
const REWRITTEN: &[&str] = &[
    "host",
    "transfer-encoding",
    "content-length",
    "expect",
    "x-forwarded-proto",
    "x-forwarded-for",
    "via",
    // corelay sends its own (the proxy phase adds it after the encoder).
    "x-request-id",
];
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];
const STRIP: &[&[u8]] = &[b"authorization"];

/// Limits from bits 0-1 of the control byte, the underscore setting from bits 2-3.
fn limits(ctl: u8) -> Limits {
    let mut l = Limits::default();
    l.underscores = match (ctl >> 2) & 3 {
        1 => UnderscoreAction::Allow,
        2 => UnderscoreAction::Reject,
        _ => UnderscoreAction::Drop,
    };
    match ctl & 3 {
        1 => {
            l.max_headers = 3;
            l.max_header_bytes = 256;
            l.max_target_len = 64;
        }
        2 => {
            // Room for what encode_request adds (six fields) below the 512-slot hard limit.
            l.max_headers = 500;
            l.max_header_bytes = 64 * 1024;
        }
        _ => {}
    }
    l
}

/// What the reference reading makes of underscore names under corelay's setting.
fn underscored(limits: &Limits) -> Underscored {
    match limits.underscores {
        UnderscoreAction::Drop => Underscored::Dropped,
        UnderscoreAction::Allow | UnderscoreAction::Reject => Underscored::Kept,
    }
}

/// The first non-`Ok(false)` result of parsing a buffer that grows by `input`'s pieces, as
/// the proxy's read loop does, with the buffer it ended with.
fn parse_in_pieces(
    input: &[u8],
    seed: u64,
    limits: &Limits,
    head: &mut RequestHead,
) -> (Result<bool, RequestError>, Vec<u8>) {
    let mut acc = Vec::with_capacity(input.len());
    let mut from = 0;
    let mut points = splits(seed, input.len());
    points.push(input.len());
    for to in points {
        acc.extend_from_slice(&input[from..to]);
        from = to;
        normalize_request_version(&mut acc);
        let r = parse_request(&acc, limits, head);
        if r != Ok(false) {
            return (r, acc);
        }
    }
    (Ok(false), acc)
}

fn framing_of(body: RequestBody) -> Framing {
    match body {
        RequestBody::None => Framing::None,
        RequestBody::Length(n) => Framing::Length(u128::from(n)),
        RequestBody::Chunked => Framing::Chunked,
    }
}

fn listed(list: &[&str], name: &[u8]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let [ctl, seed, input @ ..] = data else {
        return;
    };
    let limits = limits(*ctl);
    let mut buf = input.to_vec();
    normalize_request_version(&mut buf);
    let mut head = RequestHead::new();
    let whole = parse_request(&buf, &limits, &mut head);

    // Incremental parsing.
    let mut piecewise = RequestHead::new();
    let (pieces, acc) = parse_in_pieces(input, u64::from(*seed), &limits, &mut piecewise);
    // The answer on the wire must agree; the reason text may not (a version normalised on a
    // partial line, then followed by more bytes, is refused for its line end instead).
    assert_eq!(
        pieces.map_err(|e| e.status()),
        whole.map_err(|e| e.status()),
        "fed in pieces vs at once: {pieces:?} vs {whole:?}"
    );
    if whole == Ok(true) {
        assert_eq!(&acc[..head.head_len], &buf[..head.head_len]);
        assert_eq!(format!("{piecewise:?}"), format!("{head:?}"));
    }

    match whole {
        Ok(true) => {}
        Ok(false) => {
            assert!(buf.len() < limits.max_header_bytes);
            return;
        }
        Err(e) => {
            assert!(
                [400, 414, 417, 431, 501, 505].contains(&e.status()),
                "{e:?}"
            );
            return;
        }
    }
    assert!(head.head_len <= limits.max_header_bytes);
    assert!(head.headers.len() <= limits.max_headers);

    // Framing: the head is a strict head, with one reading.
    let strict = match reference::split_head(&buf) {
        Some(Ok(h)) => h,
        other => panic!("accepted a head the strict reading refuses: {other:?}"),
    };
    assert_eq!(strict.len, head.head_len, "head ends elsewhere");
    let mode = underscored(&limits);
    let framing = reference::request_framing(&strict, mode);
    assert_eq!(
        framing,
        Ok(framing_of(head.body)),
        "framing differs from the strict reading"
    );
    let http11 = reference::request_line(strict.start_line).unwrap().1;
    assert_eq!(http11, head.version == Version::Http11);

    // The field list corelay keeps is the strict reading's (minus dropped fields).
    let kept: Vec<(&[u8], &[u8])> = strict
        .fields
        .iter()
        .copied()
        .filter(|(n, _)| mode == Underscored::Kept || !n.contains(&b'_'))
        .collect();
    let parsed: Vec<(&[u8], &[u8])> = head
        .headers
        .iter()
        .map(|h| (h.name.get(&buf), h.value.get(&buf)))
        .collect();
    assert_eq!(parsed, kept, "header list");

    // Round trip: what the backend gets.
    let info = ForwardInfo {
        client_ip: CLIENT,
        proto: "http",
        via: "corelay",
        default_host: "backend.invalid",
        strip: STRIP,
        // Upgrade offers are stripped here, as for a route that allows none; the encoder's
        // own tests cover passing them.
        upgrade: &[],
    };
    let mut out = Vec::new();
    encode_request(&buf, &head, &info, &mut out);
    let big = Limits {
        max_headers: 512,
        max_header_bytes: 1 << 20,
        max_target_len: 1 << 20,
        ..limits
    };
    let mut again = RequestHead::new();
    assert_eq!(
        parse_request(&out, &big, &mut again),
        Ok(true),
        "forwarded head does not parse: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.method_span.get(&out), head.method_span.get(&buf));
    let mut target = Vec::new();
    head.write_target(&buf, &mut target);
    assert_eq!(again.target.get(&out), &target[..]);
    assert_eq!(again.version, Version::Http11);
    let sent_body = match head.body {
        RequestBody::None if matches!(head.method, Method::Post | Method::Put | Method::Patch) => {
            RequestBody::Length(0)
        }
        b => b,
    };
    assert_eq!(again.body, sent_body);
    let host: &[u8] = match head.host {
        Some(h) => h.get(&buf),
        None => info.default_host.as_bytes(),
    };
    assert_eq!(again.host.map(|h| h.get(&out)), Some(host));

    // The header list: Host, the forwardable fields in order, then what the proxy adds.
    let nominated = |name: &[u8]| {
        kept.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| reference_trim(t).eq_ignore_ascii_case(name))
    };
    let hops_max_forwards =
        matches!(head.method, Method::Trace | Method::Options) && head.max_forwards.is_some();
    let mut expected: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        vec![(b"Host".to_vec(), Some(host.to_vec()))];
    for (name, value) in &kept {
        let dropped = listed(REWRITTEN, name)
            || listed(HOP_BY_HOP, name)
            || nominated(name)
            || STRIP.iter().any(|s| name.eq_ignore_ascii_case(s))
            || (hops_max_forwards && name.eq_ignore_ascii_case(b"max-forwards"));
        if !dropped {
            expected.push((name.to_vec(), Some(value.to_vec())));
        }
    }
    if let (true, Some(n)) = (hops_max_forwards, head.max_forwards) {
        expected.push((
            b"Max-Forwards".to_vec(),
            Some(n.saturating_sub(1).to_string().into_bytes()),
        ));
    }
    expected.push((b"X-Forwarded-For".to_vec(), None));
    expected.push((b"X-Forwarded-Proto".to_vec(), Some(b"http".to_vec())));
    expected.push((b"Via".to_vec(), None));
    match sent_body {
        RequestBody::Length(n) => {
            expected.push((b"Content-Length".to_vec(), Some(n.to_string().into_bytes())))
        }
        RequestBody::Chunked => {
            expected.push((b"Transfer-Encoding".to_vec(), Some(b"chunked".to_vec())))
        }
        RequestBody::None => {}
    }
    let got: Vec<(&[u8], &[u8])> = again
        .headers
        .iter()
        .map(|h| (h.name.get(&out), h.value.get(&out)))
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    for ((name, value), (want_name, want_value)) in got.iter().zip(&expected) {
        assert_eq!(name, &&want_name[..]);
        if let Some(v) = want_value {
            assert_eq!(value, &&v[..], "{:?}", String::from_utf8_lossy(&out));
        }
    }
    let xff = again.header(&out, "x-forwarded-for").unwrap();
    assert!(xff.ends_with(CLIENT.to_string().as_bytes()));

    // The backend's strict reading of the forwarded head has the one framing too.
    let sent = match reference::split_head(&out) {
        Some(Ok(h)) => h,
        other => panic!("forwarded head is not strict: {other:?}"),
    };
    assert_eq!(sent.len, out.len());
    assert_eq!(
        reference::request_framing(&sent, Underscored::Kept),
        Ok(framing_of(sent_body)),
        "forwarded framing: {:?}",
        String::from_utf8_lossy(&out)
    );
});

fn reference_trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}
