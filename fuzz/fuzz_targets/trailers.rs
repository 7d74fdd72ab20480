//! The trailer section parser (after a last chunk) and the trailer filter.
//!
//! Input: one split-seed byte, then the bytes after `0\r\n`. Checks, beyond "no panic":
//! pieces give the same result as the whole; an accepted section is strict (each line
//! `token ":" value CRLF`, no control characters); what `encode_last_chunk` forwards of it
//! parses again, keeps only lines of the section, in order, and none that must not be
//! taken from trailers.
#![no_main]

use corelay::http1::{encode_last_chunk, MAX_TRAILER_BYTES};
use corelay_fuzz::{dechunk, splits};
use libfuzzer_sys::fuzz_target;

/// Names that must never be forwarded from a trailer section (a subset of corelay's list,
/// written out here so the target does not just restate the code).
const FORBIDDEN: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "trailer",
    "authorization",
    "cookie",
    "set-cookie",
];

fn lines(section: &[u8]) -> Vec<&[u8]> {
    section.split_inclusive(|&b| b == b'\n').collect::<Vec<_>>()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let [seed, section @ ..] = data else {
        return;
    };
    let mut input = b"0\r\n".to_vec();
    input.extend_from_slice(section);
    let whole = dechunk(&input, &[]);
    let pieces = dechunk(&input, &splits(u64::from(*seed), input.len()));
    assert_eq!(pieces, whole, "fed in pieces vs at once");
    let Ok(Some(d)) = whole else {
        return;
    };
    assert!(d.data.is_empty());
    assert!(d.used - 3 <= MAX_TRAILER_BYTES);
    let received = lines(&d.trailers);
    for line in &received {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .expect("line without colon");
        assert!(
            colon > 0 && line[..colon].iter().all(|&b| is_tchar(b)),
            "{line:?}"
        );
        let value = &line[colon + 1..line.len() - 2];
        assert!(line.ends_with(b"\r\n"));
        assert!(
            value
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80),
            "{line:?}"
        );
    }

    let mut out = Vec::new();
    encode_last_chunk(&d.trailers, &mut out);
    let again = dechunk(&out, &[])
        .unwrap_or_else(|e| panic!("forwarded trailers refused: {e:?}"))
        .expect("forwarded trailers complete");
    assert_eq!(again.used, out.len());
    let mut rest = received.iter();
    for line in lines(&again.trailers) {
        assert!(
            rest.any(|r| *r == line),
            "{line:?} not received, or reordered"
        );
        let name = &line[..line.iter().position(|&b| b == b':').unwrap()];
        assert!(
            !FORBIDDEN
                .iter()
                .any(|f| name.eq_ignore_ascii_case(f.as_bytes())),
            "forwarded a forbidden trailer {line:?}"
        );
    }
});
