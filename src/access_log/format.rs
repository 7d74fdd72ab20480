//! One access-log line, in the nginx "combined" format (plus upstream and timings) or as a
//! JSON object, appended to the shard's buffer.
//!
//! Everything here is a pure function of an [`Entry`] and the shard's [`Clock`], so the exact
//! bytes are unit-tested without threads or an executor. Three rules shape it:
//!
//! - **Untrusted bytes never reach the log raw.** Method, target, user, Referer and User-Agent
//!   come from the client. A raw CR or LF would let a client forge a second line, and a raw
//!   `"` would let it shift the fields of its own line; so every byte outside printable ASCII,
//!   and the quoting characters, are escaped (`\xHH` like nginx in combined, `\u00XX` in JSON).
//! - **No allocation.** The caller reserves [`max_line_len`] bytes in the buffer first, so the
//!   appends below never grow it; numbers are formatted by hand, addresses through `fmt` into
//!   the same `Vec` (no heap either).
//! - **Bounded lines.** Each untrusted field is cut at a named limit (marked with `...`), so a
//!   line always fits one shard buffer whatever the client sent.

use crate::http1::date::{civil_from_days, two_digits};
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Entry, Format};

/// Longest method logged. Registered methods are at most 16 bytes (`BASELINE-CONTROL`); the
/// parser already limits it, this only bounds the line for any caller.
pub(crate) const MAX_METHOD_BYTES: usize = 32;

/// Longest request-target logged: half the default `--max-target-len` (8192). Longer targets
/// are rare (huge query strings) and their start is what identifies them; the limit keeps a
/// worst-case JSON line (every byte escaped, ×6) well inside one 64 KiB buffer.
pub(crate) const MAX_TARGET_BYTES: usize = 4096;

/// Longest Referer logged: it is a URL too, usually a shorter one than the target.
pub(crate) const MAX_REFERER_BYTES: usize = 2048;

/// Longest User-Agent logged. Real ones are under 512 bytes; anything longer is noise or abuse.
pub(crate) const MAX_USER_AGENT_BYTES: usize = 1024;

/// Longest user name logged (from authorization, issue 5).
pub(crate) const MAX_USER_BYTES: usize = 256;

/// Longest protocol logged. It is a `&'static str` chosen by the caller (`HTTP/1.1`), so this
/// only keeps [`max_line_len`] a closed formula.
pub(crate) const MAX_PROTOCOL_BYTES: usize = 16;

/// Longest request ID logged: the longest corelay forwards.
pub(crate) const MAX_REQUEST_ID_BYTES: usize = crate::proxy::MAX_REQUEST_ID;

/// Marks a field cut at its limit. Inside the quotes/string, so the line still parses.
const TRUNCATED: &[u8] = b"...";

/// Upper bound of everything in a line that is not an untrusted field: keys, quotes, spaces,
/// the dates, the client and upstream addresses (at most 47 and 65 bytes as text: IPv6 with an
/// embedded IPv4 part, `[addr%scope]:port`), status, byte count and three durations (at most
/// 20 + 1 + 3 digits each), and a `...` marker per field. About 330 in the worst case; 512
/// leaves room for a key added later without re-deriving it.
const FIXED_MAX: usize = 512;

/// Worst-case growth of one input byte: `\xHH` in combined, `\u00XX` in JSON.
pub(super) const COMBINED_EXPANSION: usize = 4;
const JSON_EXPANSION: usize = 6;

/// Every field at its limit, every byte escaped, as JSON (the larger expansion). The shard
/// buffer must hold at least this much (checked where the buffer size is defined).
pub(crate) const MAX_LINE_LEN: usize = FIXED_MAX
    + JSON_EXPANSION
        * (MAX_METHOD_BYTES
            + MAX_TARGET_BYTES
            + MAX_REFERER_BYTES
            + MAX_USER_AGENT_BYTES
            + MAX_USER_BYTES
            + MAX_PROTOCOL_BYTES
            + MAX_REQUEST_ID_BYTES);

/// The last second a 4-digit year can express: 9999-12-31T23:59:59Z. A clock beyond it is
/// broken; we print this instead of an ill-formed date (as `http1::date` does).
const MAX_SECS: u64 = 253_402_300_799;

const SECS_PER_DAY: u64 = 86_400;

const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `10/Oct/2000:13:55:36 +0000`: nginx's `$time_local`, always in UTC here (a proxy's logs
/// from several hosts should line up without knowing each host's zone).
pub(crate) const TIME_LOCAL_LEN: usize = 26;

/// `2000-10-10T13:55:36`: the RFC 3339 date-time up to the seconds; milliseconds and `Z` are
/// appended per line.
pub(crate) const RFC3339_SECS_LEN: usize = 19;

/// Nginx escapes with upper-case hex digits; JSON's `\u` conventionally with lower case.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// No clamped second is `u64::MAX`, so a new clock starts out stale.
const NEVER: u64 = u64::MAX;

/// The shard's formatted current second, in both formats, rebuilt only when the second changes
/// (at most once a second under load, instead of calendar arithmetic per line).
pub(crate) struct Clock {
    secs: u64,
    time_local: [u8; TIME_LOCAL_LEN],
    rfc3339: [u8; RFC3339_SECS_LEN],
}

impl Clock {
    pub(crate) const fn new() -> Clock {
        Clock {
            secs: NEVER,
            time_local: [0; TIME_LOCAL_LEN],
            rfc3339: [0; RFC3339_SECS_LEN],
        }
    }

    /// Makes the cached texts those of `secs` (at most `MAX_SECS`).
    fn set(&mut self, secs: u64) {
        if self.secs == secs {
            return;
        }
        self.secs = secs;
        let days = secs / SECS_PER_DAY;
        let of_day = secs % SECS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);

        let t = &mut self.time_local;
        two_digits(&mut t[0..2], day);
        t[2] = b'/';
        t[3..6].copy_from_slice(MONTH_NAMES[(month - 1) as usize]);
        t[6] = b'/';
        two_digits(&mut t[7..9], year / 100);
        two_digits(&mut t[9..11], year % 100);
        t[11] = b':';
        two_digits(&mut t[12..14], h);
        t[14] = b':';
        two_digits(&mut t[15..17], m);
        t[17] = b':';
        two_digits(&mut t[18..20], s);
        t[20..].copy_from_slice(b" +0000");

        let r = &mut self.rfc3339;
        two_digits(&mut r[0..2], year / 100);
        two_digits(&mut r[2..4], year % 100);
        r[4] = b'-';
        two_digits(&mut r[5..7], month);
        r[7] = b'-';
        two_digits(&mut r[8..10], day);
        r[10] = b'T';
        two_digits(&mut r[11..13], h);
        r[13] = b':';
        two_digits(&mut r[14..16], m);
        r[16] = b':';
        two_digits(&mut r[17..19], s);
    }

    #[cfg(test)]
    pub(crate) fn cached_secs(&self) -> u64 {
        self.secs
    }

    /// The current second's `$time_local`.
    pub(super) fn time_local(&self) -> &[u8] {
        &self.time_local
    }

    /// The current second's RFC 3339 date-time, without fraction or zone.
    pub(super) fn rfc3339_secs(&self) -> &[u8] {
        &self.rfc3339
    }

    /// The current second, since the epoch.
    pub(super) fn secs(&self) -> u64 {
        self.secs
    }
}

/// Seconds and milliseconds since the epoch, clamped to what the formats can express: a clock
/// before 1970 prints as the epoch, one after 9999 as its end.
fn split_time(t: SystemTime) -> (u64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) if d.as_secs() <= MAX_SECS => (d.as_secs(), d.subsec_millis()),
        Ok(_) => (MAX_SECS, 999),
        Err(_) => (0, 0),
    }
}

/// An upper bound of the bytes [`write_line`] appends for `e`, cheap enough to compute per
/// line (six lengths), never above [`MAX_LINE_LEN`].
pub(crate) fn max_line_len(format: &Format, e: &Entry) -> usize {
    let expansion = match format {
        Format::Combined => COMBINED_EXPANSION,
        Format::Json => JSON_EXPANSION,
        Format::Template(t) => return t.max_line_len(e),
    };
    let field = |len: usize, max: usize| len.min(max);
    FIXED_MAX
        + expansion
            * (field(e.method.len(), MAX_METHOD_BYTES)
                + field(e.target.len(), MAX_TARGET_BYTES)
                + field(e.protocol.len(), MAX_PROTOCOL_BYTES)
                + e.user.map_or(0, |u| field(u.len(), MAX_USER_BYTES))
                + e.referer.map_or(0, |r| field(r.len(), MAX_REFERER_BYTES))
                + e.user_agent
                    .map_or(0, |u| field(u.len(), MAX_USER_AGENT_BYTES))
                + field(e.request_id.len(), MAX_REQUEST_ID_BYTES))
}

/// Appends `e` as one line ending in `\n` (the only LF in it). `out` should have
/// [`max_line_len`] bytes of spare capacity, or it grows.
pub(crate) fn write_line(format: &Format, out: &mut Vec<u8>, e: &Entry, clock: &mut Clock) {
    let (secs, millis) = split_time(e.time);
    clock.set(secs);
    match format {
        Format::Combined => combined(out, e, clock),
        Format::Json => json(out, e, clock, millis),
        Format::Template(t) => t.write(out, e, clock, millis),
    }
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" upstream=.. upstream_time=.. request_time=..
/// request_id=..`
///
/// As in nginx, a missing or empty value prints as `-`.
fn combined(out: &mut Vec<u8>, e: &Entry, clock: &Clock) {
    push_ip(out, e.client);
    out.extend_from_slice(b" - ");
    match e.user {
        // Unquoted field: a space would shift every later field, so it is escaped too.
        Some(u) if !u.is_empty() => combined_field(out, u.as_bytes(), MAX_USER_BYTES, true),
        _ => out.push(b'-'),
    }
    out.extend_from_slice(b" [");
    out.extend_from_slice(&clock.time_local);
    out.extend_from_slice(b"] \"");
    request_line(out, e);
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(e.status));
    out.push(b' ');
    push_u64(out, e.body_bytes_sent);
    out.extend_from_slice(b" \"");
    combined_optional(out, e.referer, MAX_REFERER_BYTES);
    out.extend_from_slice(b"\" \"");
    combined_optional(out, e.user_agent, MAX_USER_AGENT_BYTES);
    out.extend_from_slice(b"\" upstream=");
    match e.upstream {
        Some(a) => push_socket_addr(out, a),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" upstream_time=");
    match e.upstream_time {
        Some(d) => push_secs(out, d),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" request_time=");
    push_secs(out, e.request_time);
    if let Some(n) = e.bytes_received {
        out.extend_from_slice(b" bytes_received=");
        push_u64(out, n);
    }
    out.extend_from_slice(b" request_id=");
    match e.request_id {
        [] => out.push(b'-'),
        id => combined_field(out, id, MAX_REQUEST_ID_BYTES, true),
    }
    out.push(b'\n');
}

/// nginx's `$request`, the request line: the non-empty parts joined by spaces, escaped; `-`
/// when there is none.
pub(super) fn request_line(out: &mut Vec<u8>, e: &Entry) {
    let mut parts = [
        (e.method, MAX_METHOD_BYTES),
        (e.target, MAX_TARGET_BYTES),
        (e.protocol.as_bytes(), MAX_PROTOCOL_BYTES),
    ]
    .into_iter()
    .filter(|(p, _)| !p.is_empty())
    .peekable();
    if parts.peek().is_none() {
        out.push(b'-');
    }
    let mut first = true;
    for (part, max) in parts {
        if !first {
            out.push(b' ');
        }
        first = false;
        combined_field(out, part, max, false);
    }
}

/// The client address as text (no heap: see [`push_socket_addr`]).
pub(super) fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    let _ = write!(out, "{ip}");
}

fn combined_optional(out: &mut Vec<u8>, value: Option<&[u8]>, max: usize) {
    match value {
        Some(v) if !v.is_empty() => combined_field(out, v, max, false),
        _ => out.push(b'-'),
    }
}

/// nginx's default log escaping (`ngx_http_log_escape`): `"`, `\`, control bytes and every
/// byte from 0x7f up become `\xHH`; with `space`, so does ` `. Safe runs are copied whole.
pub(super) fn combined_field(out: &mut Vec<u8>, value: &[u8], max: usize, space: bool) {
    let (value, cut) = cut(value, max);
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        let escape = !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\' || (space && b == b' ');
        if escape {
            out.extend_from_slice(&value[start..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&value[start..]);
    if cut {
        out.extend_from_slice(TRUNCATED);
    }
}

/// `{"time":..,"client":..,"user":..,"method":..,"target":..,"protocol":..,"status":..,
/// "bytes":..,"referer":..,"user_agent":..,"upstream":..,"upstream_time":..,"request_time":..,
/// "request_id":..}`
///
/// Unlike combined, a missing value is `null` (and an empty one `""`), and times are numbers
/// of seconds with millisecond precision.
fn json(out: &mut Vec<u8>, e: &Entry, clock: &Clock, millis: u32) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&clock.rfc3339);
    out.push(b'.');
    push_padded(out, u64::from(millis), 3);
    out.extend_from_slice(b"Z\",\"client\":\"");
    let _ = write!(out, "{}", e.client);
    out.extend_from_slice(b"\",\"user\":");
    json_optional(out, e.user.map(str::as_bytes), MAX_USER_BYTES);
    out.extend_from_slice(b",\"method\":");
    json_string(out, e.method, MAX_METHOD_BYTES);
    out.extend_from_slice(b",\"target\":");
    json_string(out, e.target, MAX_TARGET_BYTES);
    out.extend_from_slice(b",\"protocol\":");
    json_string(out, e.protocol.as_bytes(), MAX_PROTOCOL_BYTES);
    out.extend_from_slice(b",\"status\":");
    push_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"bytes\":");
    push_u64(out, e.body_bytes_sent);
    out.extend_from_slice(b",\"referer\":");
    json_optional(out, e.referer, MAX_REFERER_BYTES);
    out.extend_from_slice(b",\"user_agent\":");
    json_optional(out, e.user_agent, MAX_USER_AGENT_BYTES);
    out.extend_from_slice(b",\"upstream\":");
    match e.upstream {
        Some(a) => {
            out.push(b'"');
            push_socket_addr(out, a);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"upstream_time\":");
    match e.upstream_time {
        Some(d) => push_secs(out, d),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"request_time\":");
    push_secs(out, e.request_time);
    if let Some(n) = e.bytes_received {
        out.extend_from_slice(b",\"bytes_received\":");
        push_u64(out, n);
    }
    out.extend_from_slice(b",\"request_id\":");
    json_optional(
        out,
        Some(e.request_id).filter(|id| !id.is_empty()),
        MAX_REQUEST_ID_BYTES,
    );
    out.extend_from_slice(b"}\n");
}

fn json_optional(out: &mut Vec<u8>, value: Option<&[u8]>, max: usize) {
    match value {
        Some(v) => json_string(out, v, max),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string of `value` read as Latin-1: printable ASCII as is, `"` and `\` with a
/// backslash, every other byte as `\u00XX`. The output is pure ASCII and always valid JSON
/// whatever the input (no invalid UTF-8 reaches the file), and it is lossless: each decoded
/// character is below U+0100 and maps back to exactly the byte the client sent. HTTP fields are
/// ASCII by specification, so real traffic is unaffected; only hostile or broken bytes show up
/// escaped.
fn json_string(out: &mut Vec<u8>, value: &[u8], max: usize) {
    let (value, cut) = cut(value, max);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x20..=0x7e => continue,
            _ => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_LOWER[usize::from(b >> 4)],
                HEX_LOWER[usize::from(b & 0xf)],
            ],
        };
        out.extend_from_slice(&value[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&value[start..]);
    if cut {
        out.extend_from_slice(TRUNCATED);
    }
    out.push(b'"');
}

fn cut(value: &[u8], max: usize) -> (&[u8], bool) {
    if value.len() > max {
        (&value[..max], true)
    } else {
        (value, false)
    }
}

pub(super) fn push_socket_addr(out: &mut Vec<u8>, a: SocketAddr) {
    // `Display` for addresses writes through the formatter with no heap buffer, and `out` has
    // room reserved, so this does not allocate.
    let _ = write!(out, "{a}");
}

/// Seconds with millisecond resolution, truncated (`0.003`), as nginx's `$request_time`.
pub(super) fn push_secs(out: &mut Vec<u8>, d: Duration) {
    push_u64(out, d.as_secs());
    out.push(b'.');
    push_padded(out, u64::from(d.subsec_millis()), 3);
}

/// Decimal `n`, without `fmt`'s machinery (this runs several times per line).
pub(super) fn push_u64(out: &mut Vec<u8>, n: u64) {
    push_padded(out, n, 1);
}

/// Decimal `n` with at least `width` digits (leading zeros).
pub(super) fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n > 0 || digits.len() - at < width {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// 2000-10-10T13:55:36Z, nginx's documentation example.
    pub(crate) const EXAMPLE_SECS: u64 = 971_186_136;

    pub(crate) fn example_entry<'a>() -> Entry<'a> {
        Entry {
            client: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            user: Some("frank"),
            time: UNIX_EPOCH + Duration::from_millis(EXAMPLE_SECS * 1000 + 42),
            method: b"GET",
            target: b"/apache_pb.gif?a=1&b=2",
            protocol: "HTTP/1.1",
            status: 200,
            bytes_sent: 2326 + 150,
            body_bytes_sent: 2326,
            referer: Some(b"http://www.example.com/start.html"),
            user_agent: Some(b"Mozilla/4.08 [en] (Win98; I ;Nav)"),
            upstream: Some("10.0.0.5:9000".parse().unwrap()),
            upstream_time: Some(Duration::from_micros(3_999)),
            request_time: Duration::from_micros(4_100),
            request_id: b"3f2a-0001-00000000002a",
            bytes_received: None,
        }
    }

    pub(crate) fn bare_entry<'a>() -> Entry<'a> {
        Entry {
            client: IpAddr::V6(Ipv6Addr::LOCALHOST),
            user: None,
            time: UNIX_EPOCH + Duration::from_secs(EXAMPLE_SECS),
            method: b"POST",
            target: b"/",
            protocol: "HTTP/1.0",
            status: 502,
            bytes_sent: 0,
            body_bytes_sent: 0,
            referer: None,
            user_agent: None,
            upstream: None,
            upstream_time: None,
            request_time: Duration::ZERO,
            request_id: b"",
            bytes_received: None,
        }
    }

    pub(crate) fn line(format: Format, e: &Entry) -> String {
        let mut out = Vec::new();
        write_line(&format, &mut out, e, &mut Clock::new());
        assert!(out.len() <= max_line_len(&format, e), "{out:?}");
        String::from_utf8(out).expect("log lines are ASCII")
    }

    /// Every byte value, for the escaping tests.
    fn all_bytes() -> Vec<u8> {
        (0..=255u8).collect()
    }

    // --- A small JSON reader, strict enough to prove validity, for these tests only. ---

    #[derive(Debug, PartialEq)]
    pub(crate) enum Json {
        Null,
        Num(String),
        Str(String),
    }

    /// Parses `text` as one JSON object of scalar values (what a log line is), strictly per
    /// RFC 8259: string escapes, number grammar, no trailing bytes. Keys in order.
    pub(crate) fn parse_object(text: &str) -> Result<Vec<(String, Json)>, String> {
        let b = text.as_bytes();
        let mut p = Parser { b, at: 0 };
        p.expect(b'{')?;
        let mut fields = Vec::new();
        loop {
            let key = p.string()?;
            p.expect(b':')?;
            let value = match p.peek()? {
                b'"' => Json::Str(p.string()?),
                b'n' => {
                    p.literal(b"null")?;
                    Json::Null
                }
                _ => Json::Num(p.number()?),
            };
            fields.push((key, value));
            match p.next()? {
                b',' => continue,
                b'}' => break,
                c => return Err(format!("unexpected {:?} at {}", c as char, p.at)),
            }
        }
        if p.at != b.len() {
            return Err(format!("trailing bytes at {}", p.at));
        }
        Ok(fields)
    }

    struct Parser<'a> {
        b: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Result<u8, String> {
            self.b.get(self.at).copied().ok_or("end of input".into())
        }
        fn next(&mut self) -> Result<u8, String> {
            let c = self.peek()?;
            self.at += 1;
            Ok(c)
        }
        fn expect(&mut self, c: u8) -> Result<(), String> {
            match self.next()? {
                x if x == c => Ok(()),
                x => Err(format!(
                    "expected {:?}, got {:?} at {}",
                    c as char, x as char, self.at
                )),
            }
        }
        fn literal(&mut self, lit: &[u8]) -> Result<(), String> {
            lit.iter().try_for_each(|&c| self.expect(c))
        }
        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut s = String::new();
            loop {
                match self.next()? {
                    b'"' => return Ok(s),
                    b'\\' => match self.next()? {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\u{8}'),
                        b'f' => s.push('\u{c}'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let hex = self.b.get(self.at..self.at + 4).ok_or("short \\u")?;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            self.at += 4;
                            s.push(char::from_u32(code).ok_or("surrogate")?);
                        }
                        c => return Err(format!("bad escape {:?}", c as char)),
                    },
                    c if c < 0x20 => return Err(format!("raw control byte {c:#x} in string")),
                    c if c >= 0x80 => return Err(format!("non-ASCII byte {c:#x} in string")),
                    c => s.push(c as char),
                }
            }
        }
        fn number(&mut self) -> Result<String, String> {
            // -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
            let start = self.at;
            let digits = |p: &mut Parser| {
                let from = p.at;
                while p.peek().is_ok_and(|c| c.is_ascii_digit()) {
                    p.at += 1;
                }
                p.at - from
            };
            if self.peek()? == b'-' {
                self.at += 1;
            }
            if self.peek()? == b'0' {
                self.at += 1;
            } else if digits(self) == 0 {
                return Err(format!("bad number at {start}"));
            }
            if self.peek()? == b'.' {
                self.at += 1;
                if digits(self) == 0 {
                    return Err(format!("bad fraction at {start}"));
                }
            }
            if matches!(self.peek()?, b'e' | b'E') {
                self.at += 1;
                if matches!(self.peek()?, b'+' | b'-') {
                    self.at += 1;
                }
                if digits(self) == 0 {
                    return Err(format!("bad exponent at {start}"));
                }
            }
            Ok(String::from_utf8(self.b[start..self.at].to_vec()).unwrap())
        }
    }

    /// The keys of a JSON line, in order.
    pub(crate) const JSON_KEYS: [&str; 14] = [
        "time",
        "client",
        "user",
        "method",
        "target",
        "protocol",
        "status",
        "bytes",
        "referer",
        "user_agent",
        "upstream",
        "upstream_time",
        "request_time",
        "request_id",
    ];

    /// Checks one JSON log line (with its `\n`) and returns its fields.
    pub(crate) fn check_json_line(line: &str) -> Vec<(String, Json)> {
        let body = line.strip_suffix('\n').expect("ends in LF");
        assert!(!body.contains(['\n', '\r']), "{line:?}");
        let fields = parse_object(body).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, JSON_KEYS, "{line:?}");
        fields
    }

    /// Decodes a JSON string value back to the bytes it was made from (Latin-1).
    fn latin1(s: &str) -> Vec<u8> {
        s.chars()
            .map(|c| u8::try_from(u32::from(c)).expect("below U+0100"))
            .collect()
    }

    fn field<'a>(fields: &'a [(String, Json)], key: &str) -> &'a Json {
        &fields.iter().find(|(k, _)| k == key).unwrap().1
    }

    #[test]
    fn parser_rejects_invalid_json() {
        for bad in [
            r#"{"a":1"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":"x\q"}"#,
            "{\"a\":\"x\ny\"}",
            r#"{"a":nul}"#,
            r#"{"a":1}x"#,
            r#"{"a":"\u00"}"#,
        ] {
            assert!(parse_object(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_object(r#"{"a":null,"b":-0.5e+3,"c":"\u0041\n"}"#).unwrap(),
            vec![
                ("a".into(), Json::Null),
                ("b".into(), Json::Num("-0.5e+3".into())),
                ("c".into(), Json::Str("A\n".into())),
            ]
        );
    }

    // --- Exact lines. ---

    #[test]
    fn combined_exact() {
        assert_eq!(
            line(Format::Combined, &example_entry()),
            "127.0.0.1 - frank [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?a=1&b=2 HTTP/1.1\" \
             200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\" \
             upstream=10.0.0.5:9000 upstream_time=0.003 request_time=0.004 \
             request_id=3f2a-0001-00000000002a\n"
        );
    }

    #[test]
    fn combined_missing_values_are_dashes() {
        assert_eq!(
            line(Format::Combined, &bare_entry()),
            "::1 - - [10/Oct/2000:13:55:36 +0000] \"POST / HTTP/1.0\" 502 0 \"-\" \"-\" \
             upstream=- upstream_time=- request_time=0.000 request_id=-\n"
        );
        // Empty values too, as nginx does; and an empty request line is "-".
        let e = Entry {
            user: Some(""),
            referer: Some(b""),
            user_agent: Some(b""),
            method: b"",
            target: b"",
            protocol: "",
            status: 400,
            ..bare_entry()
        };
        assert_eq!(
            line(Format::Combined, &e),
            "::1 - - [10/Oct/2000:13:55:36 +0000] \"-\" 400 0 \"-\" \"-\" \
             upstream=- upstream_time=- request_time=0.000 request_id=-\n"
        );
        // A partial request line keeps what there is, without doubled spaces.
        let e = Entry {
            target: b"",
            protocol: "",
            ..bare_entry()
        };
        assert!(line(Format::Combined, &e).contains(" \"POST\" 502 "));
    }

    #[test]
    fn json_exact() {
        assert_eq!(
            line(Format::Json, &example_entry()),
            "{\"time\":\"2000-10-10T13:55:36.042Z\",\"client\":\"127.0.0.1\",\"user\":\"frank\",\
             \"method\":\"GET\",\"target\":\"/apache_pb.gif?a=1&b=2\",\"protocol\":\"HTTP/1.1\",\
             \"status\":200,\"bytes\":2326,\"referer\":\"http://www.example.com/start.html\",\
             \"user_agent\":\"Mozilla/4.08 [en] (Win98; I ;Nav)\",\"upstream\":\"10.0.0.5:9000\",\
             \"upstream_time\":0.003,\"request_time\":0.004,\"request_id\":\"3f2a-0001-00000000002a\"}\n"
        );
        check_json_line(&line(Format::Json, &example_entry()));
    }

    #[test]
    fn json_missing_values_are_null() {
        let text = line(Format::Json, &bare_entry());
        assert_eq!(
            text,
            "{\"time\":\"2000-10-10T13:55:36.000Z\",\"client\":\"::1\",\"user\":null,\
             \"method\":\"POST\",\"target\":\"/\",\"protocol\":\"HTTP/1.0\",\"status\":502,\
             \"bytes\":0,\"referer\":null,\"user_agent\":null,\"upstream\":null,\
             \"upstream_time\":null,\"request_time\":0.000,\"request_id\":null}\n"
        );
        check_json_line(&text);
        // Empty is not missing in JSON.
        let e = Entry {
            referer: Some(b""),
            ..bare_entry()
        };
        assert!(line(Format::Json, &e).contains(",\"referer\":\"\","));
    }

    #[test]
    fn ipv6_addresses() {
        let e = Entry {
            client: "2001:db8::7".parse().unwrap(),
            upstream: Some("[fe80::1%3]:8443".parse().unwrap()),
            ..example_entry()
        };
        let c = line(Format::Combined, &e);
        assert!(c.starts_with("2001:db8::7 - frank ["), "{c}");
        assert!(c.contains(" upstream=[fe80::1%3]:8443 "), "{c}");
        let j = line(Format::Json, &e);
        let fields = check_json_line(&j);
        assert_eq!(field(&fields, "client"), &Json::Str("2001:db8::7".into()));
        assert_eq!(
            field(&fields, "upstream"),
            &Json::Str("[fe80::1%3]:8443".into())
        );
    }

    // --- Escaping. ---

    #[test]
    fn combined_escapes_hostile_bytes() {
        let e = Entry {
            target: b"/a\"b\\c\nd\re\x00f\x7fg\xffh\xc3\xa9 i",
            user_agent: Some(b"x\" \"injected\nforged 1.2.3.4 - - [01/Jan/1970"),
            user: Some("a b\"c"),
            ..example_entry()
        };
        let text = line(Format::Combined, &e);
        assert!(
            text.contains(r#""GET /a\x22b\x5Cc\x0Ad\x0De\x00f\x7Fg\xFFh\xC3\xA9 i HTTP/1.1" "#),
            "{text}"
        );
        assert!(
            text.contains(r#" "x\x22 \x22injected\x0Aforged 1.2.3.4 - - [01/Jan/1970" "#),
            "{text}"
        );
        assert!(text.contains(" - a\\x20b\\x22c ["), "{text}");
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n') && !text.contains('\r'));
    }

    #[test]
    fn combined_escapes_exactly_nginx_set() {
        let e = Entry {
            target: &all_bytes(),
            ..bare_entry()
        };
        let text = line(Format::Combined, &e);
        let start = text.find("\"POST ").unwrap() + "\"POST ".len();
        let end = text.find(" HTTP/1.0\"").unwrap();
        let mut want = String::new();
        for b in 0..=255u8 {
            if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\' {
                want.push_str(&format!("\\x{b:02X}"));
            } else {
                want.push(b as char);
            }
        }
        assert_eq!(&text[start..end], want);
    }

    #[test]
    fn json_escapes_every_unsafe_byte_losslessly() {
        let bytes = all_bytes();
        let e = Entry {
            method: b"G\"T",
            target: &bytes,
            referer: Some(b"\xff\xfe\x00"),
            user_agent: Some(b"\\\"\n{\"status\":200}"),
            user: Some("\u{e9}t\u{e9}"),
            ..example_entry()
        };
        let text = line(Format::Json, &e);
        assert!(text.is_ascii());
        assert!(text.contains(r#""referer":"\u00ff\u00fe\u0000""#), "{text}");
        assert!(
            text.contains(r#""user_agent":"\\\"\u000a{\"status\":200}""#),
            "{text}"
        );
        let fields = check_json_line(&text);
        let str_of = |key| match field(&fields, key) {
            Json::Str(s) => latin1(s),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(str_of("target"), bytes);
        assert_eq!(str_of("method"), b"G\"T");
        assert_eq!(str_of("referer"), b"\xff\xfe\x00");
        assert_eq!(str_of("user_agent"), b"\\\"\n{\"status\":200}");
        assert_eq!(str_of("user"), "\u{e9}t\u{e9}".as_bytes());
        assert_eq!(field(&fields, "status"), &Json::Num("200".into()));
    }

    /// A small deterministic generator, so the property test needs no crate.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_hostile_entries_stay_one_well_formed_line() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        let mut gen = |max: usize| -> Vec<u8> {
            let len = (xorshift(&mut seed) as usize) % max;
            // Bias towards the interesting bytes.
            const NASTY: &[u8] = b"\"\\\r\n\x00\x7f\xff \t{}[]:,";
            (0..len)
                .map(|_| {
                    let r = xorshift(&mut seed);
                    if r % 3 == 0 {
                        NASTY[(r >> 8) as usize % NASTY.len()]
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect()
        };
        for _ in 0..500 {
            let (method, target, referer, ua) = (gen(40), gen(6000), gen(3000), gen(1500));
            let user = String::from_utf8_lossy(&gen(300)).into_owned();
            let e = Entry {
                user: Some(&user),
                method: &method,
                target: &target,
                referer: Some(&referer),
                user_agent: Some(&ua),
                ..example_entry()
            };
            let c = line(Format::Combined, &e);
            assert!(c.len() <= MAX_LINE_LEN);
            assert_eq!(c.matches('\n').count(), 1);
            assert!(c.ends_with('\n'));
            assert!(c.bytes().all(|b| b == b'\n' || (0x20..0x7f).contains(&b)));
            // Exactly three quoted fields: request, referer, user agent.
            assert_eq!(c.matches('"').count(), 6, "{c}");
            assert!(c.contains(
                " upstream=10.0.0.5:9000 upstream_time=0.003 request_time=0.004 \
             request_id=3f2a-0001-00000000002a\n"
            ));

            let j = line(Format::Json, &e);
            assert!(j.len() <= MAX_LINE_LEN);
            let fields = check_json_line(&j);
            let Json::Str(t) = field(&fields, "target") else {
                panic!()
            };
            let t = latin1(t);
            if target.len() > MAX_TARGET_BYTES {
                assert_eq!(&t[..MAX_TARGET_BYTES], &target[..MAX_TARGET_BYTES]);
                assert_eq!(&t[MAX_TARGET_BYTES..], TRUNCATED);
            } else {
                assert_eq!(t, target);
            }
        }
    }

    #[test]
    fn long_fields_are_cut_and_marked() {
        let target = vec![b'a'; 100_000];
        let ua = vec![b'\n'; 100_000];
        let e = Entry {
            target: &target,
            user_agent: Some(&ua),
            ..example_entry()
        };
        let c = line(Format::Combined, &e);
        assert!(
            c.contains(&format!(
                "\"GET {}... HTTP/1.1\"",
                "a".repeat(MAX_TARGET_BYTES)
            )),
            "{}",
            &c[..200]
        );
        assert!(c.contains(&format!(
            " \"{}...\" upstream=",
            "\\x0A".repeat(MAX_USER_AGENT_BYTES)
        )));
        let j = line(Format::Json, &e);
        let fields = check_json_line(&j);
        assert_eq!(
            field(&fields, "target"),
            &Json::Str(format!("{}...", "a".repeat(MAX_TARGET_BYTES)))
        );
        // The worst case fits the formula and the formula the limit.
        let all = vec![0u8; 100_000];
        let user = "\u{7f}".repeat(10_000);
        let worst = Entry {
            user: Some(&user),
            method: &all,
            target: &all,
            referer: Some(&all),
            user_agent: Some(&all),
            client: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
            upstream: Some(
                "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535"
                    .parse()
                    .unwrap(),
            ),
            bytes_sent: u64::MAX,
            body_bytes_sent: u64::MAX,
            status: u16::MAX,
            upstream_time: Some(Duration::MAX),
            request_time: Duration::MAX,
            time: UNIX_EPOCH + Duration::from_secs(MAX_SECS),
            protocol: "HTTP/1.1 AND A LONG TAIL",
            request_id: &all,
            bytes_received: None,
        };
        for format in [Format::Combined, Format::Json] {
            let n = line(format.clone(), &worst).len();
            assert!(n <= max_line_len(&format, &worst));
            assert!(max_line_len(&format, &worst) <= MAX_LINE_LEN);
        }
        assert_eq!(max_line_len(&Format::Json, &worst), MAX_LINE_LEN);
        // The fixed part's real worst case leaves the margin the constant claims.
        let fixed = line(Format::Json, &worst).len()
            - JSON_EXPANSION
                * (MAX_METHOD_BYTES
                    + MAX_TARGET_BYTES
                    + MAX_REFERER_BYTES
                    + MAX_USER_AGENT_BYTES
                    + MAX_USER_BYTES
                    + MAX_REQUEST_ID_BYTES)
            - MAX_PROTOCOL_BYTES;
        assert!(fixed < 400, "{fixed}");
    }

    // --- Time and numbers. ---

    #[test]
    fn clock_formats_known_dates() {
        let cases = [
            (0, "01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00"),
            (
                EXAMPLE_SECS,
                "10/Oct/2000:13:55:36 +0000",
                "2000-10-10T13:55:36",
            ),
            (
                951_782_400,
                "29/Feb/2000:00:00:00 +0000",
                "2000-02-29T00:00:00",
            ),
            (
                1_234_567_890,
                "13/Feb/2009:23:31:30 +0000",
                "2009-02-13T23:31:30",
            ),
            (
                4_107_542_400,
                "01/Mar/2100:00:00:00 +0000",
                "2100-03-01T00:00:00",
            ),
            (
                MAX_SECS,
                "31/Dec/9999:23:59:59 +0000",
                "9999-12-31T23:59:59",
            ),
        ];
        let mut clock = Clock::new();
        for (secs, local, rfc) in cases {
            clock.set(secs);
            assert_eq!(std::str::from_utf8(&clock.time_local).unwrap(), local);
            assert_eq!(std::str::from_utf8(&clock.rfc3339).unwrap(), rfc);
        }
    }

    #[test]
    fn clock_is_reformatted_only_when_the_second_changes() {
        let mut clock = Clock::new();
        assert_eq!(clock.cached_secs(), NEVER);
        let at = |ms: u64| Entry {
            time: UNIX_EPOCH + Duration::from_millis(ms),
            ..bare_entry()
        };
        let mut out = Vec::new();
        write_line(
            &Format::Combined,
            &mut out,
            &at(EXAMPLE_SECS * 1000),
            &mut clock,
        );
        assert_eq!(clock.cached_secs(), EXAMPLE_SECS);
        // Scribble on the cache: a line in the same second must use it as is.
        clock.time_local[0] = b'X';
        out.clear();
        write_line(
            &Format::Combined,
            &mut out,
            &at(EXAMPLE_SECS * 1000 + 999),
            &mut clock,
        );
        assert!(String::from_utf8_lossy(&out).contains("[X0/Oct/2000:13:55:36 +0000]"));
        // The next second reformats it.
        out.clear();
        write_line(
            &Format::Combined,
            &mut out,
            &at(EXAMPLE_SECS * 1000 + 1000),
            &mut clock,
        );
        assert!(String::from_utf8_lossy(&out).contains("[10/Oct/2000:13:55:37 +0000]"));
        assert_eq!(clock.cached_secs(), EXAMPLE_SECS + 1);
        // So does a step back.
        out.clear();
        write_line(&Format::Json, &mut out, &at(1), &mut clock);
        assert!(String::from_utf8_lossy(&out).starts_with("{\"time\":\"1970-01-01T00:00:00.001Z\""));
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        assert_eq!(split_time(UNIX_EPOCH - Duration::from_secs(5)), (0, 0));
        assert_eq!(
            split_time(UNIX_EPOCH + Duration::from_secs(MAX_SECS + 10)),
            (MAX_SECS, 999)
        );
        assert_eq!(
            split_time(UNIX_EPOCH + Duration::from_millis(1_500)),
            (1, 500)
        );
    }

    #[test]
    fn durations_and_integers() {
        let secs = |d: Duration| {
            let mut out = Vec::new();
            push_secs(&mut out, d);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(secs(Duration::ZERO), "0.000");
        assert_eq!(secs(Duration::from_micros(999)), "0.000");
        assert_eq!(secs(Duration::from_millis(3)), "0.003");
        assert_eq!(secs(Duration::from_micros(1_234_567)), "1.234");
        assert_eq!(secs(Duration::from_secs(3600)), "3600.000");
        assert_eq!(secs(Duration::MAX), "18446744073709551615.999");
        let int = |n: u64| {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            String::from_utf8(out).unwrap()
        };
        for n in [0, 7, 10, 200, 65_535, 1_000_000, u64::MAX] {
            assert_eq!(int(n), n.to_string());
        }
    }
}
