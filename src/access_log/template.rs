//! nginx-style access-log templates: `access_log_format = '$remote_addr "$request" $status'`.
//!
//! The template is parsed once, at config time, into a list of [`Piece`]s, so a line costs a
//! walk over that list and no lookup. An unknown variable is a config error that names it
//! (with the nearest known name). Only variables corelay can fill truthfully exist: each maps
//! to a field of the [`Entry`]; nginx variables it has no value for (`$upstream_status` apart
//! from the final status, `$host` rewritten or not, ...) are refused rather than printed as a
//! value that would mislead.
//!
//! Values follow nginx's rules: client-supplied bytes are escaped as in the combined format
//! (`\xHH` for `"`, `\`, control and non-ASCII bytes), a missing value prints as `-`, and
//! every client-supplied field is cut at the same limits as in the fixed formats. Because a
//! template can repeat a field, its worst-case line is computed at parse time and refused if
//! it would not fit one shard buffer.

use super::format::{self, Clock};
use super::Entry;

/// Longest template accepted: far more than any useful log line's literal text, and with it
/// the fixed part of a line stays a small share of a shard buffer.
pub const MAX_TEMPLATE_LEN: usize = 4096;

/// Upper bound of any one non-client value as text: an IPv6 socket address with a scope
/// (65 bytes), a date, a 20-digit number with millis.
const MAX_FIXED_VALUE: usize = 72;

/// A parsed template.
#[derive(Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Literal bytes plus [`MAX_FIXED_VALUE`] per non-client variable.
    fixed_max: usize,
    /// How often each client-supplied field appears (method, target, referer, user agent,
    /// user; `$request` counts as method and target), for the per-line bound.
    uses: [usize; 5],
}

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<[u8]>),
    Var(Var),
}

/// The variables, by their nginx names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    RemoteAddr,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    ServerProtocol,
    Status,
    BodyBytesSent,
    BytesSent,
    RequestTime,
    UpstreamAddr,
    UpstreamResponseTime,
    HttpReferer,
    HttpUserAgent,
    RequestId,
}

/// Every variable, with the name written after `$`.
const VARS: [(&str, Var); 18] = [
    ("remote_addr", Var::RemoteAddr),
    ("remote_user", Var::RemoteUser),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("server_protocol", Var::ServerProtocol),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("bytes_sent", Var::BytesSent),
    ("request_time", Var::RequestTime),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("http_referer", Var::HttpReferer),
    ("http_user_agent", Var::HttpUserAgent),
    ("request_id", Var::RequestId),
];

/// The variable names a template may use, for docs and messages.
pub fn variable_names() -> impl Iterator<Item = &'static str> {
    VARS.iter().map(|(n, _)| *n)
}

const METHOD: usize = 0;
const TARGET: usize = 1;
const REFERER: usize = 2;
const USER_AGENT: usize = 3;
const USER: usize = 4;

/// Limits of the client-supplied fields, in the order of [`Template::uses`].
const LIMITS: [usize; 5] = [
    format::MAX_METHOD_BYTES,
    format::MAX_TARGET_BYTES,
    format::MAX_REFERER_BYTES,
    format::MAX_USER_AGENT_BYTES,
    format::MAX_USER_BYTES,
];

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

impl Template {
    /// Parses `text`: literal text with `$name` or `${name}` variables. A line break in the
    /// template is refused: a line is one line.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(format!(
                "template is {} bytes, more than the {MAX_TEMPLATE_LEN} allowed",
                text.len()
            ));
        }
        if text.contains(['\n', '\r']) {
            return Err("a template must not contain a line break".into());
        }
        let b = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                literal.push(b[i]);
                i += 1;
                continue;
            }
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                let Some(close) = text[i + 2..].find('}') else {
                    return Err(format!("'${{' without a closing '}}' at byte {i}"));
                };
                (&text[i + 2..i + 2 + close], i + 3 + close)
            } else {
                let len = b[i + 1..].iter().take_while(|&&c| is_name_byte(c)).count();
                (&text[i + 1..i + 1 + len], i + 1 + len)
            };
            if name.is_empty() {
                return Err(format!(
                    "'$' at byte {i} is not followed by a variable name (known: {})",
                    variable_names().collect::<Vec<_>>().join(", ")
                ));
            }
            let Some(&(_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
                let hint = match crate::suggest::nearest(name, variable_names()) {
                    Some(n) => format!(" (did you mean `${n}`?)"),
                    None => String::new(),
                };
                return Err(format!("unknown variable '${name}'{hint}"));
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
            }
            pieces.push(Piece::Var(var));
            i = next;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        let mut t = Template {
            pieces,
            fixed_max: 0,
            uses: [0; 5],
        };
        for p in &t.pieces {
            match p {
                Piece::Literal(l) => t.fixed_max += l.len(),
                // A request ID is visible ASCII of a bounded length (kept only when valid), but
                // longer than the other fixed values; escaping is counted for it all the same.
                Piece::Var(Var::RequestId) => {
                    t.fixed_max += format::COMBINED_EXPANSION * format::MAX_REQUEST_ID_BYTES
                }
                Piece::Var(v) => match client_fields(*v) {
                    [] => t.fixed_max += MAX_FIXED_VALUE,
                    fields => {
                        for &f in fields {
                            t.uses[f] += 1;
                        }
                        // `$request`'s protocol, separators and `...` markers.
                        t.fixed_max += format::MAX_PROTOCOL_BYTES + 2 + 3 * fields.len();
                    }
                },
            }
        }
        let worst = t.max_line_len_for([usize::MAX; 5]);
        if worst > super::BUFFER_CAPACITY {
            return Err(format!(
                "template repeats client-supplied fields so often that a line could reach \
                 {worst} bytes, more than a log buffer ({} bytes)",
                super::BUFFER_CAPACITY
            ));
        }
        Ok(t)
    }

    /// Upper bound of a line for `e` (see `format::max_line_len`).
    pub(super) fn max_line_len(&self, e: &Entry) -> usize {
        self.max_line_len_for([
            e.method.len(),
            e.target.len(),
            e.referer.map_or(0, <[u8]>::len),
            e.user_agent.map_or(0, <[u8]>::len),
            e.user.map_or(0, str::len),
        ])
    }

    fn max_line_len_for(&self, lens: [usize; 5]) -> usize {
        let client: usize = (0..5).map(|f| self.uses[f] * lens[f].min(LIMITS[f])).sum();
        // `\n`, and every client byte possibly escaped as `\xHH`.
        self.fixed_max + 1 + format::COMBINED_EXPANSION * client
    }

    /// Appends the line for `e`, ending in `\n`.
    pub(super) fn write(&self, out: &mut Vec<u8>, e: &Entry, clock: &Clock, millis: u32) {
        for p in &self.pieces {
            match p {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Var(v) => write_var(out, *v, e, clock, millis),
            }
        }
        out.push(b'\n');
    }
}

/// The client-supplied fields a variable prints.
fn client_fields(v: Var) -> &'static [usize] {
    match v {
        Var::Request => &[METHOD, TARGET],
        Var::RequestMethod => &[METHOD],
        Var::RequestUri => &[TARGET],
        Var::HttpReferer => &[REFERER],
        Var::HttpUserAgent => &[USER_AGENT],
        Var::RemoteUser => &[USER],
        _ => &[],
    }
}

fn write_var(out: &mut Vec<u8>, v: Var, e: &Entry, clock: &Clock, millis: u32) {
    let dash = |out: &mut Vec<u8>| out.push(b'-');
    let field = |out: &mut Vec<u8>, value: Option<&[u8]>, max: usize| match value {
        Some(v) if !v.is_empty() => format::combined_field(out, v, max, false),
        _ => out.push(b'-'),
    };
    match v {
        Var::RemoteAddr => format::push_ip(out, e.client),
        Var::RemoteUser => field(out, e.user.map(str::as_bytes), format::MAX_USER_BYTES),
        Var::TimeLocal => out.extend_from_slice(clock.time_local()),
        Var::TimeIso8601 => {
            // nginx's `$time_iso8601`: `2000-10-10T13:55:36+00:00`.
            out.extend_from_slice(clock.rfc3339_secs());
            out.extend_from_slice(b"+00:00");
        }
        Var::Msec => {
            format::push_u64(out, clock.secs());
            out.push(b'.');
            format::push_padded(out, u64::from(millis), 3);
        }
        Var::Request => format::request_line(out, e),
        Var::RequestMethod => field(out, Some(e.method), format::MAX_METHOD_BYTES),
        Var::RequestUri => field(out, Some(e.target), format::MAX_TARGET_BYTES),
        Var::ServerProtocol => field(out, Some(e.protocol.as_bytes()), format::MAX_PROTOCOL_BYTES),
        Var::Status => format::push_u64(out, u64::from(e.status)),
        Var::BodyBytesSent => format::push_u64(out, e.body_bytes_sent),
        Var::BytesSent => format::push_u64(out, e.bytes_sent),
        Var::RequestTime => format::push_secs(out, e.request_time),
        Var::UpstreamAddr => match e.upstream {
            Some(a) => format::push_socket_addr(out, a),
            None => dash(out),
        },
        Var::UpstreamResponseTime => match e.upstream_time {
            Some(d) => format::push_secs(out, d),
            None => dash(out),
        },
        Var::HttpReferer => field(out, e.referer, format::MAX_REFERER_BYTES),
        Var::HttpUserAgent => field(out, e.user_agent, format::MAX_USER_AGENT_BYTES),
        Var::RequestId => field(out, Some(e.request_id), format::MAX_REQUEST_ID_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::tests::{bare_entry, example_entry, line};
    use super::super::Format;
    use super::*;
    use std::sync::Arc;

    fn with(text: &str, e: &Entry) -> String {
        line(
            Format::Template(Arc::new(Template::parse(text).unwrap())),
            e,
        )
    }

    #[test]
    fn the_issues_template() {
        let t = "$remote_addr \"$request\" $status $body_bytes_sent $request_time $upstream_addr $request_id";
        assert_eq!(
            with(t, &example_entry()),
            "127.0.0.1 \"GET /apache_pb.gif?a=1&b=2 HTTP/1.1\" 200 2326 0.004 10.0.0.5:9000 \
             3f2a-0001-00000000002a\n"
        );
        assert_eq!(
            with(t, &bare_entry()),
            "::1 \"POST / HTTP/1.0\" 502 0 0.000 - -\n"
        );
    }

    #[test]
    fn every_variable() {
        let all: Vec<String> = variable_names().map(|n| format!("{n}=${{{n}}}")).collect();
        assert_eq!(
            with(&all.join("|"), &example_entry()),
            "remote_addr=127.0.0.1|remote_user=frank|time_local=10/Oct/2000:13:55:36 +0000|\
             time_iso8601=2000-10-10T13:55:36+00:00|msec=971186136.042|\
             request=GET /apache_pb.gif?a=1&b=2 HTTP/1.1|request_method=GET|\
             request_uri=/apache_pb.gif?a=1&b=2|server_protocol=HTTP/1.1|status=200|\
             body_bytes_sent=2326|bytes_sent=2476|request_time=0.004|\
             upstream_addr=10.0.0.5:9000|upstream_response_time=0.003|\
             http_referer=http://www.example.com/start.html|\
             http_user_agent=Mozilla/4.08 [en] (Win98; I ;Nav)|request_id=3f2a-0001-00000000002a\n"
        );
    }

    #[test]
    fn client_bytes_are_escaped_and_cut() {
        let target = [b"/a\"b\n".as_slice(), &[b'x'; 5000]].concat();
        let e = Entry {
            target: &target,
            user_agent: Some(b"\xff\\"),
            ..example_entry()
        };
        let text = with("$request_uri $request_uri|$http_user_agent", &e);
        let one = format!(
            "/a\\x22b\\x0A{}...",
            "x".repeat(format::MAX_TARGET_BYTES - 5)
        );
        assert_eq!(text, format!("{one} {one}|\\xFF\\x5C\n"));
        let t = Template::parse("$request_uri $request_uri|$http_user_agent").unwrap();
        assert!(text.len() <= t.max_line_len(&e));
    }

    #[test]
    fn parse_errors_name_the_variable() {
        let err = |t: &str| Template::parse(t).unwrap_err();
        assert_eq!(
            err("$remote_adr $status"),
            "unknown variable '$remote_adr' (did you mean `$remote_addr`?)"
        );
        assert_eq!(err("$host"), "unknown variable '$host'");
        assert!(
            err("cost: $ 5").contains("'$' at byte 6"),
            "{}",
            err("cost: $ 5")
        );
        assert!(err("${status").contains("closing"));
        assert!(err("a\nb").contains("line break"));
        assert!(err(&"x".repeat(MAX_TEMPLATE_LEN + 1)).contains("4096"));
        // A template that could overflow a buffer is refused, one that cannot is not.
        assert!(err(&"$request_uri".repeat(4)).contains("could reach"));
        Template::parse(&"$request_uri".repeat(3)).unwrap();
        // Braces end a name where a letter would not.
        assert_eq!(with("${status}ok $status.", &bare_entry()), "502ok 502.\n");
    }
}
