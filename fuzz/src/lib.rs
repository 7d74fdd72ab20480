//! What the fuzz targets share: the strict RFC 9112 reference reading the framing checks
//! compare corelay against ([`reference`]), and the split points that feed one input in
//! pieces ([`splits`]).

pub mod reference;

/// Split points `0 < p1 < p2 < ... < len` for feeding `len` bytes in pieces, derived from
/// `seed` so that libFuzzer can steer them. Includes one-byte pieces and large ones.
pub fn splits(seed: u64, len: usize) -> Vec<usize> {
    // xorshift64*: tiny, deterministic, and good enough to spread split points.
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut points = Vec::new();
    let mut at = 0;
    while at < len {
        // Mostly small steps (where resumable scanners go wrong), sometimes big ones.
        let r = next();
        let step = if r % 4 == 0 {
            1 + (r >> 8) as usize % 256
        } else {
            1 + (r >> 8) as usize % 8
        };
        at += step;
        if at < len {
            points.push(at);
        }
    }
    points
}

/// The first `n` bytes of `data` as a little-endian number, and the rest.
pub fn take_u64(data: &[u8], n: usize) -> (u64, &[u8]) {
    let n = n.min(8).min(data.len());
    let mut v = 0u64;
    for (i, &b) in data[..n].iter().enumerate() {
        v |= u64::from(b) << (8 * i);
    }
    (v, &data[n..])
}

/// What a reader of a chunked body ends with: the data, the trailer lines, and how many
/// input bytes the body took.
#[derive(Debug, PartialEq, Eq)]
pub struct Dechunked {
    pub data: Vec<u8>,
    /// The decoded chunk sizes, in order.
    pub sizes: Vec<u64>,
    pub trailers: Vec<u8>,
    pub used: usize,
}

/// Decodes `input` with corelay's [`ChunkedDecoder`], delivered in pieces ending at
/// `points` (then the rest), moving data as the proxy's relay does: only what is buffered,
/// and the framing bytes the decoder consumed. `Ok(None)`: the input ended mid-body.
pub fn dechunk(
    input: &[u8],
    points: &[usize],
) -> Result<Option<Dechunked>, corelay::http1::ChunkError> {
    use corelay::http1::{Chunk, ChunkedDecoder};
    let mut dec = ChunkedDecoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Dechunked {
        data: Vec::new(),
        sizes: Vec::new(),
        trailers: Vec::new(),
        used: 0,
    };
    let mut fed = 0;
    // Whether the current Data event starts a chunk (the decoder repeats it while data
    // remains).
    let mut in_chunk = false;
    for &end in points.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let (n, ev) = dec.feed(&buf)?;
            assert!(n <= buf.len());
            if let Chunk::End { trailers } = &ev {
                out.trailers = buf[trailers.clone()].to_vec();
            }
            buf.drain(..n);
            out.used += n;
            match ev {
                Chunk::Data { len } => {
                    assert!(len > 0, "empty data run");
                    if !in_chunk {
                        out.sizes.push(len);
                        in_chunk = true;
                    }
                    let take = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
                    if take == 0 {
                        break;
                    }
                    out.data.extend(buf.drain(..take));
                    out.used += take;
                    dec.data_consumed(take as u64);
                    if take as u64 == len {
                        in_chunk = false;
                    }
                }
                Chunk::Incomplete => break,
                Chunk::End { .. } => {
                    assert!(dec.is_done());
                    return Ok(Some(out));
                }
            }
        }
    }
    Ok(None)
}
