//! The chunk-size line of chunked coding (RFC 9112 §7.1):
//! `chunk-size [ chunk-ext ] CRLF`, validated byte by byte.
//!
//! httparse's `parse_chunk_size` is lenient (empty size, trailing spaces,
//! bare LF, NUL in extensions); a backend that is stricter or more lenient in
//! a different way would split the body elsewhere than we do, so this parser
//! accepts exactly the grammar and nothing else.
//!
//! The scanner is resumable: it remembers how far into the line it got, so
//! feeding a line in many small pieces costs O(line) in total, not O(line²).

use super::chunked::{ChunkError, MAX_CHUNK_LINE};
use super::limits::MAX_CHUNK_SIZE;
use super::syntax::{is_tchar, is_ws};

/// A u64 holds 16 hex digits; a 17th (even a leading zero) is refused rather
/// than skipped, so no backend can read a different size out of it.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Digits,
    /// Between extensions. `ws`: BWS was seen, so only `;` / `=` may follow
    /// (a trailing space before CRLF is not in the grammar). `after_name`:
    /// an extension name just ended, so `=` is allowed.
    Sep {
        ws: bool,
        after_name: bool,
    },
    BeforeName,
    Name,
    BeforeValue,
    Token,
    Quoted,
    QuotedPair,
    Cr,
}

/// Outcome of scanning a size line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SizeLine {
    /// The line (`len` bytes including CRLF) is complete.
    Done {
        len: usize,
        size: u64,
    },
    NeedMore,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct SizeLineScanner {
    state: State,
    pos: usize,
    size: u64,
    digits: u8,
}

impl Default for SizeLineScanner {
    fn default() -> Self {
        SizeLineScanner {
            state: State::Digits,
            pos: 0,
            size: 0,
            digits: 0,
        }
    }
}

impl SizeLineScanner {
    pub(crate) fn reset(&mut self) {
        *self = SizeLineScanner::default();
    }

    /// Scans `line`, which starts at the start of the size line and must hold
    /// at least the bytes given in earlier calls (nothing of it is consumed
    /// until `Done`).
    pub(crate) fn scan(&mut self, line: &[u8]) -> Result<SizeLine, ChunkError> {
        if self.pos > line.len() {
            // The caller gave fewer bytes than before: start over rather
            // than trust bytes we cannot see.
            self.reset();
        }
        while self.pos < line.len() {
            let b = line[self.pos];
            self.pos += 1;
            if self.state == State::Cr {
                if b != b'\n' {
                    return Err(ChunkError::BadSizeLine);
                }
                let done = SizeLine::Done {
                    len: self.pos,
                    size: self.size,
                };
                self.reset();
                return Ok(done);
            }
            self.state = self.step(b)?;
            if self.pos >= MAX_CHUNK_LINE {
                // Even a CRLF right now would make the line longer than allowed.
                return Err(ChunkError::LineTooLong);
            }
        }
        Ok(SizeLine::NeedMore)
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        use State::*;
        let bad = Err(ChunkError::BadSizeLine);
        match self.state {
            Digits => match (b as char).to_digit(16) {
                Some(_) if self.digits == MAX_SIZE_DIGITS => Err(ChunkError::SizeOverflow),
                Some(d) => {
                    self.size = self.size << 4 | u64::from(d);
                    self.digits += 1;
                    if self.size > MAX_CHUNK_SIZE {
                        return Err(ChunkError::SizeOverflow);
                    }
                    Ok(Digits)
                }
                None if self.digits == 0 => bad,
                None => separator(b, false, false),
            },
            Sep { ws, after_name } => separator(b, ws, after_name),
            BeforeName if is_ws(b) => Ok(BeforeName),
            BeforeName if is_tchar(b) => Ok(Name),
            BeforeName => bad,
            Name if is_tchar(b) => Ok(Name),
            Name => separator(b, false, true),
            BeforeValue if is_ws(b) => Ok(BeforeValue),
            BeforeValue if is_tchar(b) => Ok(Token),
            BeforeValue if b == b'"' => Ok(Quoted),
            BeforeValue => bad,
            Token if is_tchar(b) => Ok(Token),
            Token => separator(b, false, false),
            Quoted if b == b'"' => Ok(Sep {
                ws: false,
                after_name: false,
            }),
            Quoted if b == b'\\' => Ok(QuotedPair),
            Quoted if is_qdtext(b) => Ok(Quoted),
            Quoted => bad,
            QuotedPair if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80 => {
                Ok(Quoted)
            }
            QuotedPair => bad,
            Cr => bad,
        }
    }
}

/// The byte after a size, name or value: BWS, `;`, `=` (after a name) or
/// the CR that ends the line (only when no BWS preceded it).
fn separator(b: u8, ws: bool, after_name: bool) -> Result<State, ChunkError> {
    match b {
        b' ' | b'\t' => Ok(State::Sep {
            ws: true,
            after_name,
        }),
        b';' => Ok(State::BeforeName),
        b'=' if after_name => Ok(State::BeforeValue),
        b'\r' if !ws => Ok(State::Cr),
        _ => Err(ChunkError::BadSizeLine),
    }
}

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(line: &[u8]) -> Result<SizeLine, ChunkError> {
        SizeLineScanner::default().scan(line)
    }

    /// Feeds growing prefixes, as a caller does who reads more each time.
    fn incremental(line: &[u8]) -> Result<SizeLine, ChunkError> {
        let mut s = SizeLineScanner::default();
        for end in 0..line.len() {
            match s.scan(&line[..end])? {
                SizeLine::NeedMore => {}
                done => return Ok(done),
            }
        }
        s.scan(line)
    }

    fn both(line: &[u8]) -> Result<SizeLine, ChunkError> {
        let w = whole(line);
        assert_eq!(w, incremental(line), "{:?}", String::from_utf8_lossy(line));
        w
    }

    fn done(len: usize, size: u64) -> Result<SizeLine, ChunkError> {
        Ok(SizeLine::Done { len, size })
    }

    #[test]
    fn sizes() {
        assert_eq!(both(b"0\r\n"), done(3, 0));
        assert_eq!(both(b"a\r\n"), done(3, 10));
        assert_eq!(both(b"Ff\r\nrest"), done(4, 255));
        assert_eq!(both(b"000010\r\n"), done(8, 16));
        assert_eq!(both(b"00000000000000ff\r\n"), done(18, 255));
    }

    #[test]
    fn size_bound() {
        // MAX_CHUNK_SIZE is 2^53 - 1: at the bound, and one past it.
        assert_eq!(both(b"1fffffffffffff\r\n"), done(16, MAX_CHUNK_SIZE));
        assert_eq!(both(b"001fffffffffffff\r\n"), done(18, MAX_CHUNK_SIZE));
        assert_eq!(both(b"20000000000000\r\n"), Err(ChunkError::SizeOverflow));
        // Refused as soon as the digits pass it, before the line ends.
        assert_eq!(both(b"20000000000000"), Err(ChunkError::SizeOverflow));
        assert_eq!(both(b"ffffffffffffffff\r\n"), Err(ChunkError::SizeOverflow));
    }

    #[test]
    fn size_overflow() {
        assert_eq!(
            both(b"10000000000000000\r\n"),
            Err(ChunkError::SizeOverflow)
        );
        assert_eq!(
            both(b"00000000000000001\r\n"),
            Err(ChunkError::SizeOverflow)
        );
    }

    #[test]
    fn extensions() {
        assert_eq!(both(b"5;a\r\n"), done(5, 5));
        assert_eq!(both(b"5;a=b\r\n"), done(7, 5));
        assert_eq!(both(b"5 ; a = b ; c\r\n"), done(15, 5));
        assert_eq!(both(b"5;a=\"q \\\" ;\"\r\n"), done(14, 5));
        assert_eq!(both(b"5;a=\"\"\r\n"), done(8, 5));
        assert_eq!(both(b"5;a;b=c\r\n"), done(9, 5));
        assert_eq!(both(b"5\t;a\r\n"), done(6, 5));
        assert_eq!(both(b"5;a=\"\x80\t\"\r\n"), done(10, 5));
    }

    #[test]
    fn bad_lines() {
        for bad in [
            &b"\r\n"[..],
            b";a\r\n",
            b"5 \r\n",
            b"5\t\r\n",
            b"5\n",
            b"5\r\r\n",
            b"5\rx",
            b"0x10\r\n",
            b"+5\r\n",
            b"-5\r\n",
            b" 5\r\n",
            b"5g\r\n",
            b"5;\r\n",
            b"5;a \r\n",
            b"5;a=\r\n",
            b"5;a= \r\n",
            b"5;a=b \r\n",
            b"5;a=\"x\" \r\n",
            b"5;=b\r\n",
            b"5;a=b=c\r\n",
            b"5;a\"b\r\n",
            b"5;a=\"unterminated\r\n",
            b"5;a=\"x\x00\"\r\n",
            b"5;a=\"x\x7f\"\r\n",
            b"5;a=\"\\\x00\"\r\n",
            b"5;a\x00\r\n",
            b"5\x00\r\n",
            b"5;a=b\nc\r\n",
            b"5;a,b\r\n",
        ] {
            assert_eq!(
                both(bad),
                Err(ChunkError::BadSizeLine),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn need_more() {
        assert_eq!(both(b""), Ok(SizeLine::NeedMore));
        assert_eq!(both(b"5"), Ok(SizeLine::NeedMore));
        assert_eq!(both(b"5;a=\"x"), Ok(SizeLine::NeedMore));
        assert_eq!(both(b"5\r"), Ok(SizeLine::NeedMore));
    }

    #[test]
    fn line_length_limit() {
        // Exactly MAX_CHUNK_LINE bytes including CRLF is accepted.
        let mut line = b"5;a=".to_vec();
        line.resize(MAX_CHUNK_LINE - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(both(&line), done(MAX_CHUNK_LINE, 5));
        // One more byte is refused, even before the CRLF arrives.
        let mut long = b"5;a=".to_vec();
        long.resize(MAX_CHUNK_LINE - 1, b'x');
        assert_eq!(both(&long), Ok(SizeLine::NeedMore));
        long.push(b'x');
        assert_eq!(both(&long), Err(ChunkError::LineTooLong));
        long.extend_from_slice(b"\r\n");
        assert_eq!(both(&long), Err(ChunkError::LineTooLong));
    }

    #[test]
    fn shrinking_input_restarts_the_scan() {
        let mut s = SizeLineScanner::default();
        assert_eq!(s.scan(b"5;a"), Ok(SizeLine::NeedMore));
        assert_eq!(s.scan(b"5"), Ok(SizeLine::NeedMore));
        assert_eq!(s.scan(b"5\r\n"), done(3, 5));
    }
}
