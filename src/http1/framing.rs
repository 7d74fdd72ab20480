//! Message body framing fields: Content-Length and Transfer-Encoding
//! (RFC 9112 §6), shared by the request and response parsers.
//!
//! Both directions collect every framing field line first and decide at the
//! end, because the meaning of a field depends on the others (TE overrides CL,
//! all CL lines must agree, only the last coding matters for framing).

use super::limits::MAX_CONTENT_LENGTH;
use super::syntax::list_elements;

/// Why the framing fields were refused. The parsers map these onto their
/// own error types (400/501 for requests, 502 for responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// Content-Length element that is not 1*DIGIT.
    BadContentLength,
    /// Content-Length above [`MAX_CONTENT_LENGTH`].
    ContentLengthOverflow,
    /// Content-Length lines or elements that disagree.
    ConflictingContentLength,
    /// Transfer-Encoding present but with no codings at all.
    EmptyTransferEncoding,
    /// The final coding is not chunked: the body length cannot be known.
    NotChunkedLast,
    /// `chunked` applied more than once (RFC 9112 §6.1 forbids it).
    ChunkedTwice,
    /// Other codings before chunked: valid, but we do not decode them.
    UnsupportedCoding,
}

impl FramingError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            FramingError::BadContentLength => "invalid Content-Length",
            FramingError::ContentLengthOverflow => "Content-Length too large",
            FramingError::ConflictingContentLength => "conflicting Content-Length",
            FramingError::EmptyTransferEncoding => "empty Transfer-Encoding",
            FramingError::NotChunkedLast => "Transfer-Encoding does not end in chunked",
            FramingError::ChunkedTwice => "chunked applied twice",
            FramingError::UnsupportedCoding => "unsupported transfer coding",
        }
    }
}

/// Accumulates the Content-Length field lines of one message.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ContentLength {
    value: Option<u64>,
}

impl ContentLength {
    /// Adds one field line. A list like `5, 5` is accepted (RFC 9112 §6.3 item
    /// 5 allows it) because every element is the same; anything that differs
    /// is refused rather than guessed at, since a backend might pick another.
    pub(crate) fn add_line(&mut self, value: &[u8]) -> Result<(), FramingError> {
        for element in list_elements(value) {
            let n = parse_digits(element)?;
            match self.value {
                Some(prev) if prev != n => return Err(FramingError::ConflictingContentLength),
                _ => self.value = Some(n),
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self) -> Option<u64> {
        self.value
    }
}

/// `1*DIGIT`, bounded by [`MAX_CONTENT_LENGTH`]. No sign, no inner spaces, no
/// hex: every lenient reading here is a reading some backend does not share.
fn parse_digits(s: &[u8]) -> Result<u64, FramingError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::BadContentLength);
    }
    let mut n: u64 = 0;
    for &d in s {
        n = n * 10 + u64::from(d - b'0');
        if n > MAX_CONTENT_LENGTH {
            return Err(FramingError::ContentLengthOverflow);
        }
    }
    Ok(n)
}

/// Accumulates the Transfer-Encoding field lines of one message, which
/// together form a single list of codings (RFC 9110 §5.3).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TransferEncoding {
    present: bool,
    empty_line: bool,
    codings: usize,
    chunked: usize,
    last_is_chunked: bool,
}

impl TransferEncoding {
    pub(crate) fn add_line(&mut self, value: &[u8]) {
        self.present = true;
        let before = self.codings;
        for coding in list_elements(value).filter(|c| !c.is_empty()) {
            self.codings += 1;
            self.last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if self.last_is_chunked {
                self.chunked += 1;
            }
        }
        // A line without codings is refused even next to a valid one: a
        // backend that keeps only the last TE line would see no TE at all.
        self.empty_line |= self.codings == before;
    }

    pub(crate) fn is_present(&self) -> bool {
        self.present
    }

    /// Ok(()) only for exactly the single coding `chunked`.
    pub(crate) fn check_only_chunked(&self) -> Result<(), FramingError> {
        if self.empty_line {
            Err(FramingError::EmptyTransferEncoding)
        } else if !self.last_is_chunked {
            Err(FramingError::NotChunkedLast)
        } else if self.chunked > 1 {
            Err(FramingError::ChunkedTwice)
        } else if self.codings > 1 {
            Err(FramingError::UnsupportedCoding)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cl(lines: &[&[u8]]) -> Result<Option<u64>, FramingError> {
        let mut c = ContentLength::default();
        for l in lines {
            c.add_line(l)?;
        }
        Ok(c.get())
    }

    fn te(lines: &[&[u8]]) -> Result<(), FramingError> {
        let mut t = TransferEncoding::default();
        for l in lines {
            t.add_line(l);
        }
        assert!(t.is_present());
        t.check_only_chunked()
    }

    #[test]
    fn content_length_valid() {
        assert_eq!(cl(&[]), Ok(None));
        assert_eq!(cl(&[b"0"]), Ok(Some(0)));
        assert_eq!(cl(&[b"42"]), Ok(Some(42)));
        assert_eq!(cl(&[b"007"]), Ok(Some(7)));
        assert_eq!(cl(&[b"5, 5"]), Ok(Some(5)));
        assert_eq!(cl(&[b"5", b"5"]), Ok(Some(5)));
        assert_eq!(cl(&[b"9007199254740991"]), Ok(Some(MAX_CONTENT_LENGTH)));
    }

    #[test]
    fn content_length_invalid() {
        use FramingError::*;
        for bad in [
            &b""[..],
            b"+5",
            b"-5",
            b"5 5",
            b"0x10",
            b"5a",
            b"5,",
            b",5",
            b"5,,5",
            b"1.0",
        ] {
            assert_eq!(cl(&[bad]), Err(BadContentLength), "{:?}", bad);
        }
        assert_eq!(cl(&[b"9007199254740992"]), Err(ContentLengthOverflow));
        assert_eq!(
            cl(&[b"99999999999999999999999999"]),
            Err(ContentLengthOverflow)
        );
        assert_eq!(cl(&[b"5, 6"]), Err(ConflictingContentLength));
        assert_eq!(cl(&[b"5", b"6"]), Err(ConflictingContentLength));
    }

    #[test]
    fn transfer_encoding_rules() {
        use FramingError::*;
        assert_eq!(te(&[b"chunked"]), Ok(()));
        assert_eq!(te(&[b"Chunked"]), Ok(()));
        assert_eq!(te(&[b", chunked ,"]), Ok(()));
        assert_eq!(te(&[b""]), Err(EmptyTransferEncoding));
        assert_eq!(te(&[b" , "]), Err(EmptyTransferEncoding));
        assert_eq!(te(&[b"chunked", b""]), Err(EmptyTransferEncoding));
        assert_eq!(te(&[b"", b"chunked"]), Err(EmptyTransferEncoding));
        assert_eq!(te(&[b"gzip"]), Err(NotChunkedLast));
        assert_eq!(te(&[b"chunked, gzip"]), Err(NotChunkedLast));
        assert_eq!(te(&[b"chunked", b"gzip"]), Err(NotChunkedLast));
        assert_eq!(te(&[b"chunked;x=1"]), Err(NotChunkedLast));
        assert_eq!(te(&[b"chunked, chunked"]), Err(ChunkedTwice));
        assert_eq!(te(&[b"chunked", b"chunked"]), Err(ChunkedTwice));
        assert_eq!(te(&[b"gzip, chunked"]), Err(UnsupportedCoding));
        assert_eq!(te(&[b"gzip", b"chunked"]), Err(UnsupportedCoding));
    }
}
