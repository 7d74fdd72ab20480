//! The access log (`--access-log off|stderr|PATH`, `--access-log-format combined|json`): one
//! well-formed line per request, all of them on disk after a graceful shutdown, statuses and
//! byte counts as the client saw them, no credential ever written, and no way for a client to
//! forge a line.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// helpers: run, stop, read the log
// ---------------------------------------------------------------------------------------------

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// SIGTERM, wait for a clean exit, and return the log file's text.
fn stop_and_read(cr: &mut Corelay, log: &TempConfig) -> String {
    cr.signal(SIGTERM);
    let st = cr
        .wait_exit(Duration::from_secs(10))
        .expect("corelay did not exit within 10 s of SIGTERM");
    assert!(st.success(), "exit {st:?}; stderr:\n{}", cr.stderr());
    let bytes = std::fs::read(&log.path).expect("read the access log");
    String::from_utf8(bytes).expect("the access log is not valid UTF-8")
}

/// The lines of `text`, which must end in a newline (no partial last line).
fn lines_of(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    assert!(
        text.ends_with('\n'),
        "the log ends in a partial line: {:?}",
        &text[text.len().saturating_sub(200)..]
    );
    text[..text.len() - 1].split('\n').collect()
}

// ---------------------------------------------------------------------------------------------
// combined format
// ---------------------------------------------------------------------------------------------

/// One parsed combined line:
/// `client - user [dd/Mon/yyyy:hh:mm:ss +0000] "request" status bytes "referer" "ua"
///  upstream=.. upstream_time=.. request_time=.. request_id=..`
#[derive(Debug, Clone)]
struct Combined {
    client: String,
    user: String,
    /// Seconds since the epoch of the bracketed time.
    time: u64,
    request: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
    upstream: String,
    upstream_time: Option<f64>,
    request_time: f64,
    request_id: String,
}

impl Combined {
    fn target(&self) -> &str {
        self.request.split(' ').nth(1).unwrap_or("")
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn digits(s: &str, n: usize) -> Result<u64, String> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected {n} digits, got {s:?}"));
    }
    Ok(s.parse().unwrap())
}

/// `dd/Mon/yyyy:hh:mm:ss +0000` to seconds since the epoch.
fn parse_time_local(t: &str) -> Result<u64, String> {
    let b = t.as_bytes();
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || &t[20..] != " +0000"
    {
        return Err(format!("bad time {t:?}"));
    }
    let day = digits(&t[0..2], 2)?;
    let month = MONTHS
        .iter()
        .position(|m| *m == &t[3..6])
        .ok_or_else(|| format!("bad month in {t:?}"))? as i64
        + 1;
    let year = digits(&t[7..11], 4)?;
    let (h, mi, s) = (
        digits(&t[12..14], 2)?,
        digits(&t[15..17], 2)?,
        digits(&t[18..20], 2)?,
    );
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return Err(format!("bad time {t:?}"));
    }
    let days = days_from_civil(year as i64, month, day as i64);
    Ok(days as u64 * 86400 + h * 3600 + mi * 60 + s)
}

/// `digits.ddd`: seconds with exactly three decimals.
fn parse_secs(s: &str) -> Result<f64, String> {
    let (a, b) = s
        .split_once('.')
        .ok_or_else(|| format!("bad seconds {s:?}"))?;
    if a.is_empty() || !a.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad seconds {s:?}"));
    }
    digits(b, 3)?;
    Ok(s.parse().unwrap())
}

/// Splits at the first `sep`.
fn until<'a>(s: &'a str, sep: &str) -> Result<(&'a str, &'a str), String> {
    s.split_once(sep)
        .ok_or_else(|| format!("no {sep:?} in {:?}", &s[..s.len().min(40)]))
}

/// A quoted field: printable ASCII without a raw `"` or `\` except in `\xHH` escapes.
fn check_quoted(field: &str) -> Result<(), String> {
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if b.get(i + 1) != Some(&b'x')
                    || !b.get(i + 2).copied().is_some_and(hex)
                    || !b.get(i + 3).copied().is_some_and(hex)
                {
                    return Err(format!("bad escape in {field:?}"));
                }
                i += 4;
            }
            b'"' => return Err(format!("raw quote in {field:?}")),
            0x20..=0x7e => i += 1,
            c => return Err(format!("raw byte {c:#x} in {field:?}")),
        }
    }
    Ok(())
}

/// Parses (and so validates) one combined line.
fn parse_combined(line: &str) -> Result<Combined, String> {
    let (client, rest) = until(line, " - ")?;
    client
        .parse::<std::net::IpAddr>()
        .map_err(|_| format!("bad client {client:?}"))?;
    let (user, rest) = until(rest, " [")?;
    if user.is_empty() || user.contains(' ') {
        return Err(format!("bad user {user:?}"));
    }
    check_quoted(user)?;
    let (time, rest) = until(rest, "] \"")?;
    let time = parse_time_local(time)?;
    let (request, rest) = until(rest, "\" ")?;
    check_quoted(request)?;
    let (status, rest) = until(rest, " ")?;
    let status = digits(status, 3)? as u16;
    let (bytes, rest) = until(rest, " \"")?;
    if bytes.is_empty() || !bytes.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("bad bytes {bytes:?}"));
    }
    let (referer, rest) = until(rest, "\" \"")?;
    check_quoted(referer)?;
    let (user_agent, rest) = until(rest, "\" upstream=")?;
    check_quoted(user_agent)?;
    let (upstream, rest) = until(rest, " upstream_time=")?;
    if upstream != "-" {
        upstream
            .parse::<SocketAddr>()
            .map_err(|_| format!("bad upstream {upstream:?}"))?;
    }
    let (upstream_time, rest) = until(rest, " request_time=")?;
    let upstream_time = match upstream_time {
        "-" => None,
        t => Some(parse_secs(t)?),
    };
    let (request_time, request_id) = until(rest, " request_id=")?;
    let request_time = parse_secs(request_time)?;
    if request_id.is_empty() || !request_id.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(format!("bad request_id {request_id:?}"));
    }
    Ok(Combined {
        client: client.to_string(),
        user: user.to_string(),
        time,
        request: request.to_string(),
        status,
        bytes: bytes.parse().unwrap(),
        referer: referer.to_string(),
        user_agent: user_agent.to_string(),
        upstream: upstream.to_string(),
        upstream_time,
        request_time,
        request_id: request_id.to_string(),
    })
}

fn parse_all_combined(text: &str) -> Vec<Combined> {
    lines_of(text)
        .iter()
        .enumerate()
        .map(|(i, l)| parse_combined(l).unwrap_or_else(|e| panic!("line {}: {e}\n{l:?}", i + 1)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// JSON: a tiny strict parser (RFC 8259), enough to validate one object per line
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    /// Keys in order of appearance.
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(kv) => kv
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            _ => panic!("not a number: {self:?}"),
        }
    }
}

struct JsonParser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> JsonParser<'a> {
    fn parse_document(text: &'a str) -> Result<Json, String> {
        let mut p = JsonParser {
            b: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing bytes at {}", p.i));
        }
        Ok(v)
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("bad literal")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 32 {
            return self.err("too deep");
        }
        match self.b.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'n') => self.lit("null", Json::Null),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    self.ws();
                    v.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut kv: Vec<(String, Json)> = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(kv));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return self.err("expected a key");
                    }
                    let k = self.string()?;
                    if kv.iter().any(|(x, _)| *x == k) {
                        return self.err(&format!("duplicate key {k:?}"));
                    }
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return self.err("expected :");
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    kv.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(kv));
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("unexpected byte"),
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let d = |p: &mut Self| {
            let s = p.i;
            while p.i < p.b.len() && p.b[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = d(self);
        if n == 0 || (n > 1 && self.b[int_start] == b'0') {
            return self.err("bad integer part");
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if d(self) == 0 {
                return self.err("bad fraction");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if d(self) == 0 {
                return self.err("bad exponent");
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap();
        Ok(Json::Num(text.parse().unwrap()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.b.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        let s = std::str::from_utf8(h).map_err(|_| "bad \\u escape")?;
        let v = u32::from_str_radix(s, 16).map_err(|_| format!("bad \\u escape {s:?}"))?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if !self.b[self.i..].starts_with(b"\\u") {
                                    return self.err("lone high surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("bad low surrogate");
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            out.push(char::from_u32(cp).ok_or("bad code point")?);
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                0x00..=0x1f => return self.err("raw control byte in string"),
                _ => {
                    // Copy one UTF-8 character (the input is a &str, so it is valid).
                    let start = self.i - 1;
                    let len = match c {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    self.i = start + len;
                    out.push_str(std::str::from_utf8(&self.b[start..self.i]).unwrap());
                }
            }
        }
    }
}

const JSON_KEYS: [&str; 14] = [
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

/// Parses a JSON access-log line and checks its structure: exactly [`JSON_KEYS`], in order,
/// with the right types.
fn parse_json_line(line: &str) -> Result<Json, String> {
    let v = JsonParser::parse_document(line)?;
    let Json::Obj(kv) = &v else {
        return Err("not an object".into());
    };
    let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
    if keys != JSON_KEYS {
        return Err(format!("keys {keys:?}"));
    }
    for (k, val) in kv {
        let ok = match (k.as_str(), val) {
            ("time", Json::Str(t)) => {
                // 2024-01-02T03:04:05.678Z
                let b = t.as_bytes();
                b.len() == 24
                    && b[4] == b'-'
                    && b[7] == b'-'
                    && b[10] == b'T'
                    && b[13] == b':'
                    && b[16] == b':'
                    && b[19] == b'.'
                    && b[23] == b'Z'
                    && b.iter()
                        .enumerate()
                        .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
            }
            ("client", Json::Str(c)) => c.parse::<std::net::IpAddr>().is_ok(),
            ("user" | "referer" | "user_agent", Json::Str(_) | Json::Null) => true,
            ("method" | "target" | "protocol", Json::Str(_)) => true,
            ("status", Json::Num(n)) => n.fract() == 0.0 && (100.0..=599.0).contains(n),
            ("bytes", Json::Num(n)) => n.fract() == 0.0 && *n >= 0.0,
            ("upstream", Json::Str(a)) => a.parse::<SocketAddr>().is_ok(),
            ("upstream", Json::Null) => true,
            ("upstream_time", Json::Null) => true,
            ("upstream_time" | "request_time", Json::Num(n)) => *n >= 0.0,
            ("request_id", Json::Str(id)) => {
                !id.is_empty() && id.bytes().all(|b| (0x21..0x7f).contains(&b))
            }
            _ => false,
        };
        if !ok {
            return Err(format!("bad value for {k:?}: {val:?}"));
        }
    }
    Ok(v)
}

fn parse_all_json(text: &str) -> Vec<Json> {
    lines_of(text)
        .iter()
        .enumerate()
        .map(|(i, l)| parse_json_line(l).unwrap_or_else(|e| panic!("line {}: {e}\n{l:?}", i + 1)))
        .collect()
}

#[test]
fn json_validator_self_check() {
    assert!(JsonParser::parse_document(r#"{"a":[1,-2.5e3,true,null,"x\u00e9\"\\"]}"#).is_ok());
    for bad in [
        r#"{"a":1"#,
        r#"{"a":1,}"#,
        r#"{"a":01}"#,
        "{\"a\":\"\n\"}",
        r#"{"a":"\x"}"#,
        r#"{"a":1}{"#,
        r#"{"a":1,"a":2}"#,
        r#"{a:1}"#,
    ] {
        assert!(JsonParser::parse_document(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn combined_parser_self_check() {
    let l = r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "ua\x22x" upstream=127.0.0.1:9 upstream_time=0.001 request_time=0.002 request_id=abc-1"#;
    let c = parse_combined(l).unwrap();
    assert_eq!(c.time, 971186136);
    assert_eq!((c.status, c.bytes, c.target()), (200, 12, "/a"));
    assert_eq!(c.request_id, "abc-1");
    for bad in [
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a" b" HTTP/1.1" 200 12 "-" "-" upstream=- upstream_time=- request_time=0.002 request_id=x"#,
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0100] "GET / HTTP/1.1" 200 12 "-" "-" upstream=- upstream_time=- request_time=0.002 request_id=x"#,
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "-" upstream=- upstream_time=- request_time=0.2 request_id=x"#,
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 2000 12 "-" "-" upstream=- upstream_time=- request_time=0.002 request_id=x"#,
        r#"127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "-" upstream=- upstream_time=- request_time=0.002"#,
    ] {
        assert!(parse_combined(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1,000 requests, 1,000 lines
// ---------------------------------------------------------------------------------------------

/// Backend: `/missing/...` gets 404, anything else 200 with a body whose length depends on
/// the path (so byte counts differ between lines).
fn sized_backend() -> Backend {
    Backend::http(|req| {
        if req.target.starts_with("/missing/") {
            response(404, "Not Found", &[], b"no such thing")
        } else {
            let n: usize = req
                .target
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            ok_response(&vec![b'x'; n % 97])
        }
    })
}

const CONNS: usize = 4;
const PER_CONN: usize = 250;

/// Sends CONNS x PER_CONN keep-alive requests over CONNS parallel connections; returns
/// `(target, status, body bytes received for the response, user agent)` per request.
fn load(cr: &Corelay) -> Vec<(String, u16, u64, String)> {
    let handles: Vec<_> = (0..CONNS)
        .map(|c| {
            let addr = cr.addr;
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut out = Vec::new();
                for i in 0..PER_CONN {
                    let n = c * PER_CONN + i;
                    let target = if n % 10 == 3 {
                        format!("/missing/{n}")
                    } else {
                        format!("/item/{n}")
                    };
                    let ua = format!("loadgen/{c}");
                    let req = format!(
                        "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {ua}\r\nReferer: http://ref.test/{n}\r\n\r\n"
                    );
                    let r = client.roundtrip(req.as_bytes());
                    out.push((
                        target,
                        r.status,
                        r.body.len() as u64,
                        ua,
                    ));
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

#[test]
fn thousand_requests_give_thousand_combined_lines() {
    thousand_combined(&[]);
}

/// Two shards, each with its own buffer and flusher, one writer: still every line, whole.
#[test]
fn thousand_requests_on_two_shards_give_thousand_combined_lines() {
    thousand_combined(&["--cores", "2"]);
}

fn thousand_combined(extra: &[&str]) {
    let log = TempConfig::new("access.log", "");
    let be = sized_backend();
    let t0 = unix_now();
    let mut flags = vec!["--access-log", log.path_str()];
    flags.extend_from_slice(extra);
    let mut cr = Corelay::start(&[be.addr], &flags);
    let sent = load(&cr);
    assert_eq!(sent.len(), CONNS * PER_CONN);
    // SIGTERM right after the last response: the last lines are only in the shard's buffer
    // (flushed every 100 ms) and must be written at shutdown.
    let text = stop_and_read(&mut cr, &log);
    let t1 = unix_now();
    let lines = parse_all_combined(&text);
    assert_eq!(lines.len(), CONNS * PER_CONN, "lines in the log");

    let mut by_target: BTreeMap<String, Combined> = BTreeMap::new();
    for l in &lines {
        assert_eq!(l.client, "127.0.0.1");
        assert_eq!(l.user, "-");
        assert!(
            l.time + 1 >= t0 && l.time <= t1 + 1,
            "time {} outside [{t0}, {t1}]",
            l.time
        );
        assert_eq!(l.upstream, be.addr.to_string());
        let ut = l.upstream_time.expect("upstream_time");
        assert!(ut <= l.request_time + 0.0005, "{l:?}");
        assert!(l.request_time < 5.0, "{l:?}");
        let prev = by_target.insert(l.target().to_string(), l.clone());
        assert!(prev.is_none(), "two lines for {}", l.target());
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (target, status, bytes, ua) in &sent {
        let l = by_target
            .get(target)
            .unwrap_or_else(|| panic!("no log line for {target}"));
        assert_eq!(l.request, format!("GET {target} HTTP/1.1"));
        assert_eq!(l.status, *status, "{target}");
        assert_eq!(
            l.bytes, *bytes,
            "{target}: body bytes sent to the client (nginx's $body_bytes_sent)"
        );
        assert_eq!(&l.user_agent, ua);
        let n = target.rsplit('/').next().unwrap();
        assert_eq!(l.referer, format!("http://ref.test/{n}"));
        *statuses.entry(*status).or_default() += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 900), (404, 100)]),
        "statuses sent by the backend"
    );
}

#[test]
fn thousand_requests_give_thousand_json_lines() {
    let log = TempConfig::new("access.json", "");
    let be = sized_backend();
    let mut cr = Corelay::start(
        &[be.addr],
        &[
            "--access-log",
            log.path_str(),
            "--access-log-format",
            "json",
        ],
    );
    let sent = load(&cr);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_json(&text);
    assert_eq!(lines.len(), CONNS * PER_CONN, "lines in the log");
    let mut by_target: BTreeMap<String, Json> = BTreeMap::new();
    for v in lines {
        assert_eq!(v.get("client").str(), "127.0.0.1");
        assert_eq!(v.get("user"), &Json::Null);
        assert_eq!(v.get("method").str(), "GET");
        assert_eq!(v.get("protocol").str(), "HTTP/1.1");
        assert_eq!(v.get("upstream").str(), be.addr.to_string());
        let prev = by_target.insert(v.get("target").str().to_string(), v);
        assert!(prev.is_none(), "two lines for a target");
    }
    for (target, status, bytes, ua) in &sent {
        let v = by_target
            .get(target)
            .unwrap_or_else(|| panic!("no log line for {target}"));
        assert_eq!(v.get("status").num() as u16, *status, "{target}");
        assert_eq!(v.get("bytes").num() as u64, *bytes, "{target}");
        assert_eq!(v.get("user_agent").str(), ua);
        assert!(v.get("request_time").num() >= v.get("upstream_time").num());
    }
}

#[test]
fn access_log_to_stderr() {
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &["--access-log", "stderr"]);
    let mut c = Client::connect(cr.addr);
    for i in 0..5 {
        assert_eq!(c.roundtrip(&get(&format!("/stderr/{i}"))).status, 200);
    }
    drop(c);
    cr.signal(SIGTERM);
    let st = cr.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(st.success());
    let err = cr.stderr();
    let lines: Vec<Combined> = err
        .lines()
        .filter(|l| l.starts_with("127.0.0.1 - "))
        .map(|l| parse_combined(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let targets: Vec<&str> = lines.iter().map(|l| l.target()).collect();
    assert_eq!(
        targets,
        [
            "/stderr/0",
            "/stderr/1",
            "/stderr/2",
            "/stderr/3",
            "/stderr/4"
        ],
        "stderr:\n{err}"
    );
}

#[test]
fn access_log_off_writes_nothing() {
    let log = TempConfig::new("unused.log", "");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &["--access-log", "off"]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/quiet")).status, 200);
    drop(c);
    let _ = stop_and_read(&mut cr, &log);
    assert!(!cr.stderr().contains("/quiet"), "{}", cr.stderr());
}

// ---------------------------------------------------------------------------------------------
// secrets
// ---------------------------------------------------------------------------------------------

const TOKEN: &str = "SECRET-TOKEN-123";
const KEY: &str = "SECRET-KEY-456";
/// Wrong credentials are secrets too (often a typo of a real one).
const WRONG_TOKEN: &str = "SECRET-WRONG-TOKEN-789";
const WRONG_KEY: &str = "SECRET-WRONG-KEY-000";

fn auth_config(backend: SocketAddr, extra: &str) -> TempConfig {
    TempConfig::new(
        "corelay.toml",
        &format!(
            r#"{extra}
backends = ["{backend}"]

[[routes]]
path = "/bearer"
group = "default"
auth = {{ type = "bearer", tokens = ["{TOKEN}"] }}

[[routes]]
path = "/key"
group = "default"
auth = {{ type = "api_key", header = "X-Api-Key", keys = ["{KEY}"] }}

[[routes]]
path = "/"
group = "default"
"#
        ),
    )
}

/// Requests with right, wrong and missing credentials; returns the statuses in order.
fn credential_requests(cr: &Corelay) -> Vec<u16> {
    let reqs: Vec<String> = vec![
        format!("GET /bearer/ok HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"),
        format!("GET /bearer/wrong HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {WRONG_TOKEN}\r\n\r\n"),
        format!("GET /bearer/missing HTTP/1.1\r\nHost: {HOST}\r\n\r\n"),
        format!("GET /key/ok HTTP/1.1\r\nHost: {HOST}\r\nX-Api-Key: {KEY}\r\n\r\n"),
        format!("GET /key/wrong HTTP/1.1\r\nHost: {HOST}\r\nX-Api-Key: {WRONG_KEY}\r\n\r\n"),
        // A route without auth: the credentials are passed through to the backend (not
        // corelay's to strip), and still not logged.
        format!("GET /open HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\nX-Api-Key: {KEY}\r\n\r\n"),
    ];
    reqs.iter()
        .map(|r| {
            // A fresh connection each: a 401/403 may close the connection.
            let mut c = Client::connect(cr.addr);
            c.roundtrip(r.as_bytes()).status
        })
        .collect()
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [TOKEN, KEY, WRONG_TOKEN, WRONG_KEY, "SECRET"] {
        assert!(!text.contains(s), "{what} contains {s:?}:\n{text}");
    }
}

#[test]
fn credentials_never_reach_the_log_file_or_stderr() {
    let log = TempConfig::new("access.log", "");
    let be = Backend::ok(b"ok");
    let cfg = auth_config(be.addr, "");
    let mut cr = Corelay::start(
        &[],
        &["--config", cfg.path_str(), "--access-log", log.path_str()],
    );
    let statuses = credential_requests(&cr);
    assert_eq!(statuses, [200, 403, 401, 200, 403, 200]);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_combined(&text);
    let mut got: Vec<(String, u16)> = lines
        .iter()
        .map(|l| (l.target().to_string(), l.status))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/bearer/missing".to_string(), 401),
            ("/bearer/ok".to_string(), 200),
            ("/bearer/wrong".to_string(), 403),
            ("/key/ok".to_string(), 200),
            ("/key/wrong".to_string(), 403),
            ("/open".to_string(), 200),
        ]
    );
    assert_no_secret("the access log", &text);
    assert_no_secret("stderr", &cr.stderr());
}

#[test]
fn credentials_never_reach_a_json_log_on_stderr() {
    let be = Backend::ok(b"ok");
    let cfg = auth_config(
        be.addr,
        "access_log = \"stderr\"\naccess_log_format = \"json\"",
    );
    let mut cr = Corelay::start(&[], &["--config", cfg.path_str()]);
    let statuses = credential_requests(&cr);
    assert_eq!(statuses, [200, 403, 401, 200, 403, 200]);
    cr.signal(SIGTERM);
    let st = cr.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(st.success());
    let err = cr.stderr();
    let lines: Vec<Json> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| parse_json_line(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 6, "stderr:\n{err}");
    assert_no_secret("stderr", &err);
}

// ---------------------------------------------------------------------------------------------
// hostile input
// ---------------------------------------------------------------------------------------------

/// User-Agent with a quote (to close the field early and append fake fields), a tab and a
/// non-ASCII byte; a target with percent-encoded CR LF and a fake line after it (in the
/// query: in the path, an encoded control character is refused with 400, docs/security.md).
const HOSTILE_UA: &[u8] = b"evil\" 200 0 \"-\" \"forged\tua\xff";
const HOSTILE_TARGET: &str =
    "/x?%0D%0A127.0.0.1%20-%20-%20[01/Jan/2000:00:00:00%20+0000]%20%22GET%20/forged";

fn hostile_requests(cr: &Corelay) {
    let mut c = Client::connect(cr.addr);
    let mut req =
        format!("GET {HOSTILE_TARGET} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: ").into_bytes();
    req.extend_from_slice(HOSTILE_UA);
    req.extend_from_slice(b"\r\nReferer: a\"b\\c\r\n\r\n");
    let r = c.roundtrip(&req);
    assert_eq!(r.status, 200, "{}", r.status_line);
    assert_eq!(c.roundtrip(&get("/after")).status, 200);
}

#[test]
fn hostile_fields_cannot_forge_a_combined_line() {
    let log = TempConfig::new("access.log", "");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &["--access-log", log.path_str()]);
    hostile_requests(&cr);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_combined(&text);
    assert_eq!(lines.len(), 2, "{text}");
    let l = &lines[0];
    assert_eq!(l.request, format!("GET {HOSTILE_TARGET} HTTP/1.1"));
    assert_eq!(
        l.user_agent,
        r"evil\x22 200 0 \x22-\x22 \x22forged\x09ua\xFF"
    );
    assert_eq!(l.referer, r"a\x22b\x5Cc");
    assert_eq!(l.status, 200);
    assert_eq!(lines[1].target(), "/after");
}

#[test]
fn hostile_fields_cannot_forge_a_json_line() {
    let log = TempConfig::new("access.json", "");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(
        &[be.addr],
        &[
            "--access-log",
            log.path_str(),
            "--access-log-format",
            "json",
        ],
    );
    hostile_requests(&cr);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_json(&text);
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0].get("target").str(), HOSTILE_TARGET);
    // Lossless: each byte comes back as the code point of the same value.
    assert_eq!(
        lines[0].get("user_agent").str(),
        "evil\" 200 0 \"-\" \"forged\tua\u{ff}"
    );
    assert_eq!(lines[0].get("referer").str(), "a\"b\\c");
    assert!(text.is_ascii(), "non-ASCII byte in the JSON log");
    assert_eq!(lines[1].get("target").str(), "/after");
}

// ---------------------------------------------------------------------------------------------
// requests the backend never answered
// ---------------------------------------------------------------------------------------------

#[test]
fn backend_down_gives_a_502_line() {
    let log = TempConfig::new("access.log", "");
    let dead = dead_addr();
    let mut cr = Corelay::start(&[dead], &["--access-log", log.path_str()]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/down"));
    assert_eq!(r.status, 502, "{}", r.status_line);
    drop(c);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_combined(&text);
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert_eq!((l.target(), l.status), ("/down", 502), "{l:?}");
    assert!(
        l.upstream == "-" || l.upstream == dead.to_string(),
        "upstream {:?}",
        l.upstream
    );
}

#[test]
fn backend_closing_without_an_answer_gives_a_502_line() {
    let log = TempConfig::new("access.log", "");
    // Reads the request, then closes without a byte of response.
    let be = Backend::start(|mut conn| {
        let _ = conn.read_request();
    });
    let mut cr = Corelay::start(&[be.addr], &["--access-log", log.path_str()]);
    let mut c = Client::connect(cr.addr);
    let r = c.roundtrip(&get("/hangup"));
    assert_eq!(r.status, 502, "{}", r.status_line);
    drop(c);
    be.wait_requests(1, WAIT);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_combined(&text);
    assert_eq!(lines.len(), 1, "{text}");
    let l = &lines[0];
    assert_eq!((l.target(), l.status), ("/hangup", 502), "{l:?}");
    assert_eq!(l.upstream, be.addr.to_string(), "{l:?}");
}

#[test]
fn corelay_answers_are_logged_too() {
    // 404 from corelay's own route table, 400 for a bad request line after a good one.
    let log = TempConfig::new("access.log", "");
    let be = Backend::ok(b"ok");
    let cfg = TempConfig::new(
        "corelay.toml",
        &format!(
            "backends = [\"{}\"]\n\n[[routes]]\npath = \"/only\"\ngroup = \"default\"\n",
            be.addr
        ),
    );
    let mut cr = Corelay::start(
        &[],
        &["--config", cfg.path_str(), "--access-log", log.path_str()],
    );
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/only/yes")).status, 200);
    let r = c.roundtrip(&get("/nowhere"));
    assert_eq!(r.status, 404);
    drop(c);
    let text = stop_and_read(&mut cr, &log);
    let mut got: Vec<(String, u16, String)> = parse_all_combined(&text)
        .iter()
        .map(|l| (l.target().to_string(), l.status, l.upstream.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/nowhere".to_string(), 404, "-".to_string()),
            ("/only/yes".to_string(), 200, be.addr.to_string()),
        ]
    );
}

#[test]
fn rejected_request_heads_are_logged() {
    // corelay answers these itself before any route or backend: a malformed request line
    // (400) and a head over --max-header-bytes (16 KiB by default: 431). Each is a request that got an answer,
    // so each gets its line (nginx logs them too), with what was read of its request line.
    let log = TempConfig::new("access.log", "");
    let be = Backend::ok(b"ok");
    let mut cr = Corelay::start(&[be.addr], &["--access-log", log.path_str()]);
    let mut c = Client::connect(cr.addr);
    assert_eq!(c.roundtrip(&get("/fine")).status, 200);
    let r = c.roundtrip(b"GET /bad request line HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.status_line);
    let mut c = Client::connect(cr.addr);
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: {HOST}\r\nX-Fill: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let r = c.roundtrip(big.as_bytes());
    assert_eq!(r.status, 431, "{}", r.status_line);
    drop(c);
    let text = stop_and_read(&mut cr, &log);
    let lines = parse_all_combined(&text);
    let mut statuses: Vec<u16> = lines.iter().map(|l| l.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 400, 431], "log:\n{text}");
    // What was read of a refused request line is logged, not a bare protocol.
    let request_of = |status| &lines.iter().find(|l| l.status == status).unwrap().request;
    assert_eq!(request_of(400), "GET /bad request line HTTP/1.1", "{text}");
    assert_eq!(request_of(431), "GET /big HTTP/1.1", "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.client == "127.0.0.1" && l.upstream == "-" || l.status == 200),
        "{text}"
    );
}
