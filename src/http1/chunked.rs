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

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSizeLine => "invalid chunk size line",
            ChunkError::SizeOverflow => "chunk size too large",
            ChunkError::LineTooLong => "chunk size line too long",
            ChunkError::MissingCrlfAfterData => "missing CRLF after chunk data",
            ChunkError::BadTrailer => "invalid trailer field",
            ChunkError::TrailersTooLarge => "trailer section too large",
        })
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
