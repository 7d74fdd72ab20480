//! The chunked decoder, fed in random splits.
//!
//! Input: one split-seed byte, then a chunked body as a client or backend would send it.
//! Checks, beyond "no panic": the body fed in pieces (and byte by byte, when short) decodes
//! to the same data, chunk sizes, trailers and length, or the same error, as fed at once; a
//! decoded body re-encoded the way the proxy forwards it (same sizes, extensions dropped,
//! trailers filtered) decodes again to the same data and sizes.
#![no_main]

use corelay::http1::{encode_chunk_size, encode_last_chunk, CHUNK_DATA_END};
use corelay_fuzz::{dechunk, splits};
use libfuzzer_sys::fuzz_target;

/// Inputs up to this long are also fed one byte at a time (quadratic in the relay model's
/// buffer handling, so only for short ones).
const BYTEWISE_MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    let [seed, body @ ..] = data else {
        return;
    };
    let whole = dechunk(body, &[]);
    let pieces = dechunk(body, &splits(u64::from(*seed), body.len()));
    assert_eq!(pieces, whole, "fed in pieces vs at once");
    if body.len() <= BYTEWISE_MAX {
        let bytes: Vec<usize> = (1..body.len()).collect();
        assert_eq!(dechunk(body, &bytes), whole, "byte by byte vs at once");
    }
    let Ok(Some(d)) = whole else {
        return;
    };
    assert!(d.used <= body.len());
    assert_eq!(d.sizes.iter().sum::<u64>(), d.data.len() as u64);

    let mut again = Vec::new();
    let mut at = 0;
    for &size in &d.sizes {
        encode_chunk_size(size, &mut again);
        again.extend_from_slice(&d.data[at..at + size as usize]);
        again.extend_from_slice(CHUNK_DATA_END);
        at += size as usize;
    }
    encode_last_chunk(&d.trailers, &mut again);
    let r = dechunk(&again, &[])
        .unwrap_or_else(|e| panic!("re-encoded body refused: {e:?}"))
        .expect("re-encoded body is complete");
    assert_eq!(r.data, d.data);
    assert_eq!(r.sizes, d.sizes);
    assert_eq!(r.used, again.len());
});
