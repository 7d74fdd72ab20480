//! Offsets into the caller's buffer.
//!
//! Parsed heads hold spans instead of slices so that a head can be kept in a
//! reusable struct without borrowing the read buffer, and so that parsing never
//! copies or allocates per field.

/// A byte range `start..end` in the buffer the head was parsed from.
///
/// `u32` keeps [`HeaderSpan`] at 16 bytes; heads are capped far below 4 GiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end && end <= u32::MAX as usize);
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The bytes of this span; `buf` must be the buffer that was parsed.
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The span of `sub`, which must be a subslice of `buf` (as httparse returns).
    pub(crate) fn of(buf: &[u8], sub: &[u8]) -> Self {
        let start = (sub.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        debug_assert!(start + sub.len() <= buf.len(), "slice is not inside buffer");
        Span::new(start, start + sub.len())
    }

    /// The sub-span `from..to`, relative to this span's start.
    pub(crate) fn slice(&self, from: usize, to: usize) -> Self {
        debug_assert!(from <= to && to <= self.len());
        Span::new(self.start as usize + from, self.start as usize + to)
    }
}

/// One header field line: name and value (value without surrounding whitespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

impl HeaderSpan {
    pub(crate) fn of(buf: &[u8], h: &httparse::Header<'_>) -> Self {
        HeaderSpan {
            name: Span::of(buf, h.name.as_bytes()),
            value: Span::of(buf, h.value),
        }
    }

    /// Whether this field's name equals `name`, ignoring ASCII case.
    pub fn is(&self, buf: &[u8], name: &str) -> bool {
        self.name.get(buf).eq_ignore_ascii_case(name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_len_empty() {
        let buf = b"hello world";
        let s = Span::new(6, 11);
        assert_eq!(s.get(buf), b"world");
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert!(Span::default().is_empty());
        assert_eq!(Span::default().get(buf), b"");
    }

    #[test]
    fn of_subslice() {
        let buf = b"GET / HTTP/1.1";
        let s = Span::of(buf, &buf[4..5]);
        assert_eq!(s, Span::new(4, 5));
        assert_eq!(s.get(buf), b"/");
        let e = Span::of(buf, &buf[14..14]);
        assert!(e.is_empty());
    }

    #[test]
    fn slice_relative() {
        let s = Span::new(10, 20);
        assert_eq!(s.slice(2, 5), Span::new(12, 15));
    }

    #[test]
    fn header_name_match_is_case_insensitive() {
        let buf = b"Content-Length: 5";
        let h = HeaderSpan {
            name: Span::new(0, 14),
            value: Span::new(16, 17),
        };
        assert!(h.is(buf, "content-length"));
        assert!(!h.is(buf, "content-type"));
    }
}
