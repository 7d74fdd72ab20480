//! Chunked transfer coding (RFC 9112 §7.1): the decoder state machine that
//! tracks framing while the caller moves the data, and the encoder helpers.
//!
//! The decoder never copies body data. It reports how many framing bytes it
//! consumed and how long the next data run is; the caller forwards those
//! bytes however it likes (from its buffer or spliced from the socket).

use std::io::Write;
use std::ops::Range;

use super::chunk_line::{SizeLine, SizeLineScanner};
use super::trailer::{self, TrailerScanner};

/// Longest chunk-size line, extensions and CRLF included.
///
/// Extensions are unused in practice and must be skipped by us byte by byte;
/// 4 KiB leaves room for any real extension while bounding what a client can
/// make us buffer and scan between two chunks.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Largest trailer section, final empty line included.
///
/// Trailers are held in the buffer until complete (so they can be filtered
/// and forwarded as a whole); the cap matches the default head limit since
/// they are header fields in all but position.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Most field lines in a trailer section: the default header count limit, since backends
/// that merge trailers into the header section count them against their own (100 in
/// hyper and Apache).
pub const MAX_TRAILER_FIELDS: usize = super::limits::DEFAULT_MAX_HEADERS;

/// Ends every chunk's data.
pub const CHUNK_DATA_END: &[u8] = b"\r\n";

/// What the decoder found after the consumed framing bytes.
// Not Copy: `Range` is not Copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// The next `len` bytes of the stream are chunk data, to be moved by the
    /// caller and reported with `data_consumed`.
    Data { len: u64 },
    /// A line or the trailer section is incomplete: read more and call again
    /// with the unconsumed bytes.
    Incomplete,
    /// The body is complete; `input[trailers]` holds the trailer field lines
    /// (each ending CRLF, without the final empty line), possibly empty.
    End { trailers: Range<usize> },
}

/// Framing errors; each means the stream position is lost and the
/// connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    BadSizeLine,
    SizeOverflow,
    LineTooLong,
    MissingCrlfAfterData,
    BadTrailer,
    TrailersTooLarge,
}

impl ChunkError {
    /// A short reason, for logs and for the body of the 400 it causes.
    pub fn reason(self) -> &'static str {
        match self {
            ChunkError::BadSizeLine => "invalid chunk size line",
            ChunkError::SizeOverflow => "chunk size too large",
            ChunkError::LineTooLong => "chunk size line too long",
            ChunkError::MissingCrlfAfterData => "missing CRLF after chunk data",
            ChunkError::BadTrailer => "invalid trailer field",
            ChunkError::TrailersTooLarge => "trailer section too large",
        }
    }
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    SizeLine,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder of one chunked body; `reset` to reuse it.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: SizeLineScanner,
    trailers: TrailerScanner,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::SizeLine,
            line: SizeLineScanner::default(),
            trailers: TrailerScanner::default(),
        }
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Looks at framing bytes at the start of `input` and returns how many it
    /// consumed and what follows them. See [`Chunk`]. While chunk data
    /// remains, returns `(0, Data { len: remaining })`.
    ///
    /// After `Incomplete`, call again with `input[consumed..]` plus whatever
    /// was read since: the decoder remembers how far it validated.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Chunk), ChunkError> {
        let mut consumed = 0;
        loop {
            let rest = &input[consumed..];
            match self.state {
                State::Data { remaining } => return Ok((consumed, Chunk::Data { len: remaining })),
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        consumed += 2;
                        self.state = State::SizeLine;
                    }
                    [] | [b'\r'] => return Ok((consumed, Chunk::Incomplete)),
                    _ => return Err(ChunkError::MissingCrlfAfterData),
                },
                State::SizeLine => match self.line.scan(rest)? {
                    SizeLine::NeedMore => return Ok((consumed, Chunk::Incomplete)),
                    SizeLine::Done { len, size: 0 } => {
                        consumed += len;
                        self.state = State::Trailers;
                    }
                    SizeLine::Done { len, size } => {
                        consumed += len;
                        self.state = State::Data { remaining: size };
                    }
                },
                State::Trailers => match self.trailers.scan(rest)? {
                    None => return Ok((consumed, Chunk::Incomplete)),
                    Some(len) => {
                        let start = consumed;
                        consumed += len;
                        self.state = State::Done;
                        return Ok((
                            consumed,
                            Chunk::End {
                                trailers: start..consumed - 2,
                            },
                        ));
                    }
                },
                State::Done => {
                    return Ok((
                        consumed,
                        Chunk::End {
                            trailers: consumed..consumed,
                        },
                    ))
                }
            }
        }
    }

    /// Reports that `n` bytes of the current chunk's data were moved.
    /// `n` must not exceed the remaining length given by `Data`.
    pub fn data_consumed(&mut self, n: u64) {
        if let State::Data { remaining } = self.state {
            debug_assert!(n <= remaining, "consumed past the chunk");
            let left = remaining.saturating_sub(n);
            self.state = if left == 0 {
                State::DataEnd
            } else {
                State::Data { remaining: left }
            };
        } else {
            debug_assert!(n == 0, "data_consumed outside chunk data");
        }
    }

    /// Whether the last chunk and trailer section have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// Appends a chunk-size line, `"{hex}\r\n"`, for a chunk of `len` bytes.
pub fn encode_chunk_size(len: u64, out: &mut Vec<u8>) {
    // Writes into a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// Appends the last chunk `"0\r\n"`, the trailer lines of `trailers` that may
/// be forwarded (framing, routing, hop-by-hop and similar fields are
/// dropped), and the final `"\r\n"`.
pub fn encode_last_chunk(trailers: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    trailer::write_allowed(trailers, out);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::MAX_CHUNK_SIZE;

    /// What a caller sees: body data and trailers, or the first error.
    #[derive(Debug, PartialEq, Eq)]
    struct Decoded {
        data: Vec<u8>,
        trailers: Vec<u8>,
        /// Bytes of the input used by the body (framing + data).
        used: usize,
    }

    /// Decodes `input` delivered in pieces split at `splits`, moving data
    /// the way the relay does (only what is in its buffer).
    fn decode_split(input: &[u8], splits: &[usize]) -> Result<Option<Decoded>, ChunkError> {
        let mut dec = ChunkedDecoder::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Decoded {
            data: Vec::new(),
            trailers: Vec::new(),
            used: 0,
        };
        let mut fed = 0;
        let mut bounds = splits.to_vec();
        bounds.push(input.len());
        for &end in &bounds {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                let (n, ev) = dec.feed(&buf)?;
                if let Chunk::End { trailers } = &ev {
                    out.trailers = buf[trailers.clone()].to_vec();
                }
                buf.drain(..n);
                out.used += n;
                match ev {
                    Chunk::Data { len } => {
                        let take = (len as usize).min(buf.len());
                        if take == 0 {
                            break;
                        }
                        out.data.extend(buf.drain(..take));
                        out.used += take;
                        dec.data_consumed(take as u64);
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

    fn decode(input: &[u8]) -> Result<Option<Decoded>, ChunkError> {
        decode_split(input, &[])
    }

    /// The whole-input result, checked against every single split point and
    /// against byte-at-a-time feeding.
    fn decode_all_ways(input: &[u8]) -> Result<Option<Decoded>, ChunkError> {
        let whole = decode(input);
        for i in 0..=input.len() {
            assert_eq!(decode_split(input, &[i]), whole, "split at {i}");
        }
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(decode_split(input, &bytes), whole, "byte by byte");
        whole
    }

    fn ok(data: &[u8], trailers: &[u8], used: usize) -> Result<Option<Decoded>, ChunkError> {
        Ok(Some(Decoded {
            data: data.to_vec(),
            trailers: trailers.to_vec(),
            used,
        }))
    }

    #[test]
    fn simple_body() {
        let input = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nNEXT";
        assert_eq!(
            decode_all_ways(input),
            ok(b"Wikipedia in\r\n\r\nchunks.", b"", input.len() - 4)
        );
    }

    #[test]
    fn extensions_and_trailers() {
        let input = b"3;name=\"v;al\"\r\nabc\r\n0;last\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
        assert_eq!(
            decode_all_ways(input),
            ok(b"abc", b"X-Sum: 1\r\nY: 2\r\n", input.len())
        );
    }

    #[test]
    fn empty_body() {
        assert_eq!(decode_all_ways(b"0\r\n\r\n"), ok(b"", b"", 5));
        assert_eq!(decode_all_ways(b"000\r\n\r\n"), ok(b"", b"", 7));
    }

    #[test]
    fn incomplete_body() {
        assert_eq!(decode_all_ways(b"5\r\nab"), Ok(None));
        assert_eq!(decode_all_ways(b"5\r\nabcde\r\n0\r\nX: 1\r\n"), Ok(None));
    }

    #[test]
    fn feed_contract() {
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"5\r"), Ok((0, Chunk::Incomplete)));
        assert_eq!(d.feed(b"5\r\nhel"), Ok((3, Chunk::Data { len: 5 })));
        // Data pending: nothing more is consumed.
        assert_eq!(d.feed(b"hel"), Ok((0, Chunk::Data { len: 5 })));
        d.data_consumed(3);
        assert_eq!(d.feed(b"lo"), Ok((0, Chunk::Data { len: 2 })));
        d.data_consumed(2);
        // The CRLF after data is consumed even when the next line is partial.
        assert_eq!(d.feed(b"\r\n1"), Ok((2, Chunk::Incomplete)));
        assert_eq!(d.feed(b"1\r\nx\r\n0\r\nA"), Ok((3, Chunk::Data { len: 1 })));
        d.data_consumed(1);
        // The last-chunk line is consumed; the trailer section is not, until complete.
        assert_eq!(d.feed(b"\r\n0\r\nA"), Ok((5, Chunk::Incomplete)));
        assert_eq!(d.feed(b"A"), Ok((0, Chunk::Incomplete)));
        assert_eq!(
            d.feed(b"A: b\r\n\r\nrest"),
            Ok((8, Chunk::End { trailers: 0..6 }))
        );
        assert!(d.is_done());
        assert_eq!(d.feed(b"rest"), Ok((0, Chunk::End { trailers: 0..0 })));
        d.reset();
        assert!(!d.is_done());
        assert_eq!(d.feed(b"0\r\n\r\n"), Ok((5, Chunk::End { trailers: 3..3 })));
    }

    #[test]
    fn missing_crlf_after_data() {
        for bad in [
            &b"3\r\nabcX\r\n0\r\n\r\n"[..],
            b"3\r\nabc\rX0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nab\r\n0\r\n\r\n",
        ] {
            assert_eq!(
                decode_all_ways(bad),
                Err(ChunkError::MissingCrlfAfterData),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bad_size_lines() {
        for bad in [
            &b"\r\n"[..],
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-1\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"0\n\r\n",
            b"0 \r\n\r\n",
            b"5\r\nhello\r\n\r\n",
            b"5\r\nhello\r\nz\r\n",
        ] {
            assert_eq!(
                decode_all_ways(bad),
                Err(ChunkError::BadSizeLine),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn size_limits() {
        assert_eq!(
            decode_all_ways(b"10000000000000000\r\n"),
            Err(ChunkError::SizeOverflow)
        );
        // MAX_CHUNK_SIZE: at the bound, and one past it.
        let mut d = ChunkedDecoder::new();
        assert_eq!(
            d.feed(b"1fffffffffffff\r\n"),
            Ok((
                16,
                Chunk::Data {
                    len: MAX_CHUNK_SIZE
                }
            ))
        );
        assert_eq!(
            decode_all_ways(b"20000000000000\r\n"),
            Err(ChunkError::SizeOverflow)
        );
        assert_eq!(
            decode_all_ways(b"ffffffffffffffff\r\n"),
            Err(ChunkError::SizeOverflow)
        );
        let mut long = b"5;x=".to_vec();
        long.resize(MAX_CHUNK_LINE + 10, b'a');
        assert_eq!(decode(&long), Err(ChunkError::LineTooLong));
        let mut endless = b"0\r\nX: ".to_vec();
        endless.resize(MAX_TRAILER_BYTES + 10, b'v');
        assert_eq!(decode(&endless), Err(ChunkError::TrailersTooLarge));
    }

    #[test]
    fn bad_trailers() {
        for bad in [
            &b"0\r\nX: 1\n\r\n"[..],
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\nX: 1\r\n folded\r\n\r\n",
            b"0\r\nX: a\x00\r\n\r\n",
            b"0\r\nnocolon\r\n\r\n",
            b"0\r\n\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(
                decode_all_ways(bad),
                Err(ChunkError::BadTrailer),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn smuggling_shapes() {
        // A second request hidden after a lenient parser's idea of the end.
        let hidden = b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(decode_all_ways(hidden), ok(b"", b"", 5));
        // Size with trailing junk that lenient parsers skip.
        assert_eq!(
            decode_all_ways(b"5\x00\r\nhello\r\n0\r\n\r\n"),
            Err(ChunkError::BadSizeLine)
        );
        assert_eq!(
            decode_all_ways(b"5\t\r\nhello\r\n0\r\n\r\n"),
            Err(ChunkError::BadSizeLine)
        );
        // Bare LF as line terminator after data.
        assert_eq!(
            decode_all_ways(b"5\r\nhello\n0\r\n\r\n"),
            Err(ChunkError::MissingCrlfAfterData)
        );
        // Extension hiding a CRLF inside a quoted string.
        assert_eq!(
            decode_all_ways(b"5;a=\"\r\n\"\r\nhello\r\n0\r\n\r\n"),
            Err(ChunkError::BadSizeLine)
        );
    }

    #[test]
    fn encode_sizes() {
        let mut out = Vec::new();
        encode_chunk_size(0, &mut out);
        encode_chunk_size(255, &mut out);
        encode_chunk_size(u64::MAX, &mut out);
        assert_eq!(out, b"0\r\nff\r\nffffffffffffffff\r\n");
        assert_eq!(CHUNK_DATA_END, b"\r\n");
    }

    #[test]
    fn encode_last_chunk_filters_trailers() {
        let mut out = Vec::new();
        encode_last_chunk(b"", &mut out);
        assert_eq!(out, b"0\r\n\r\n");
        let mut out = Vec::new();
        encode_last_chunk(
            b"X-Sum: 1\r\nContent-Length: 9\r\nTransfer-Encoding: x\r\nHost: e\r\n\
              Connection: close\r\nKeep-Alive: 1\r\nTE: t\r\nTrailer: x\r\nUpgrade: u\r\n\
              Proxy-Connection: p\r\nServer-Timing: a\r\n",
            &mut out,
        );
        assert_eq!(out, b"0\r\nX-Sum: 1\r\nServer-Timing: a\r\n\r\n");
    }

    #[test]
    fn roundtrip_through_encoder() {
        let input = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nHost: evil\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let (n, ev) = d.feed(input).unwrap();
        assert_eq!(ev, Chunk::Data { len: 3 });
        encode_chunk_size(3, &mut out);
        out.extend_from_slice(&input[n..n + 3]);
        out.extend_from_slice(CHUNK_DATA_END);
        d.data_consumed(3);
        let rest = &input[n + 3..];
        let (m, ev) = d.feed(rest).unwrap();
        assert_eq!(m, rest.len());
        let Chunk::End { trailers } = ev else {
            panic!("{ev:?}")
        };
        encode_last_chunk(&rest[trailers], &mut out);
        assert_eq!(out, b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n");
        assert_eq!(decode(&out), ok(b"abc", b"X-Sum: 1\r\n", out.len()));
    }
}
