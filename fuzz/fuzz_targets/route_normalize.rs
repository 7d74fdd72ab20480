//! Route normalisation (`route::normalize`), which decides which route, and so which
//! authorization, a path gets.
//!
//! Input: an origin-form target. Checks, beyond "no panic": a normalised path has no empty
//! or dot segments, no percent-encoded unreserved character, only upper-case escapes, the
//! query unchanged, and normalising it again changes nothing (so no second decoding pass, by
//! corelay or a backend doing the same, can reach another route).
#![no_main]

use corelay::route::normalize;
use libfuzzer_sys::fuzz_target;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let mut out = b"prefix".to_vec();
    let Ok(()) = normalize(data, &mut out) else {
        assert_eq!(out.len() >= 6, true);
        return;
    };
    assert_eq!(&out[..6], b"prefix", "wrote before its start");
    let normal = &out[6..];
    let query_at = data.iter().position(|&b| b == b'?').unwrap_or(data.len());
    let path_end = normal.len() - (data.len() - query_at);
    let (path, query) = normal.split_at(path_end);
    assert_eq!(query, &data[query_at..]);
    assert!(!path.windows(2).any(|w| w == b"//"), "{path:?}");
    assert!(
        !path.split(|&b| b == b'/').any(|s| s == b"." || s == b".."),
        "{path:?}"
    );
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let esc = &path[i + 1..i + 3];
            assert!(esc
                .iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)));
            let v = u8::from_str_radix(std::str::from_utf8(esc).unwrap(), 16).unwrap();
            assert!(
                !is_unreserved(v),
                "{path:?} keeps an escaped unreserved byte"
            );
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut twice = Vec::new();
    normalize(normal, &mut twice).expect("a normalised target normalises again");
    assert_eq!(twice, normal, "normalising is not idempotent");
});
