//! The PROXY protocol (HAProxy, versions 1 and 2): the header an L4 load
//! balancer (HAProxy `send-proxy`/`send-proxy-v2`, AWS NLB, ...) puts in front
//! of a TCP connection to say who the real client is.
//!
//! This module only decodes a header at the start of a byte slice; it does no
//! I/O and keeps no state, so the caller re-parses its buffer from the start
//! after each read until it gets [`Parsed::Complete`] (headers are small, see
//! [`MAX_HEADER_LEN`]). Parsing is strict: the header decides which address
//! the proxy trusts as the client, so anything the spec does not allow is
//! refused and the caller closes the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest header accepted, v2 TLVs included.
///
/// A v1 line is at most 107 bytes by spec, but a v2 header is 16 bytes plus a
/// 16-bit length, so up to 64 KiB. Real senders add a few TLVs (AWS NLB's
/// VPC endpoint id and CRC are under 100 bytes; HAProxy's TLS details a few
/// hundred), so 4 KiB leaves ample room while bounding what a client can make
/// us buffer before a single byte of HTTP.
pub const MAX_HEADER_LEN: usize = 4096;

/// What the bytes at the start of a connection turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection: the real client (source) and the address it
    /// connected to (destination).
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v1 `UNKNOWN`, the v2 LOCAL command (the balancer's own health checks),
    /// or a v2 address family we don't decode (AF_UNSPEC, AF_UNIX, UDP):
    /// keep the socket's own peer address.
    Local,
}

/// Result of [`parse`] on the bytes read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header; the connection's own data starts at `consumed`.
    Complete { header: Header, consumed: usize },
    /// The bytes so far are a valid start of a header: read more and parse
    /// the whole buffer again.
    Incomplete,
}

/// Why a connection's first bytes are not an acceptable PROXY header; each
/// means the connection must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocolError {
    /// The first bytes match neither signature.
    NotProxyProtocol,
    /// A signature matched but the rest breaks the spec; says what.
    Malformed(&'static str),
    /// A v1 line without CRLF in its 107 bytes, or a v2 length beyond
    /// [`MAX_HEADER_LEN`].
    TooLong,
}

impl std::fmt::Display for ProxyProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyProtocolError::NotProxyProtocol => f.write_str("not a PROXY protocol header"),
            ProxyProtocolError::Malformed(why) => {
                write!(f, "malformed PROXY protocol header: {why}")
            }
            ProxyProtocolError::TooLong => f.write_str("PROXY protocol header too long"),
        }
    }
}

impl std::error::Error for ProxyProtocolError {}

use ProxyProtocolError::{Malformed, NotProxyProtocol, TooLong};

/// Starts every v1 header: the word and exactly one space.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Longest v1 line, CRLF included: the spec's worst case is
/// `PROXY UNKNOWN` followed by two full-length IPv6 addresses and ports, and
/// it tells receivers to give up if no CRLF shows up within this many bytes.
const V1_MAX_LEN: usize = 107;

/// Longest dotted quad, `255.255.255.255`. Lets a partial address be refused
/// before the line is complete.
const V1_IPV4_MAX_TEXT: usize = 15;

/// Longest IPv6 text std accepts (INET6_ADDRSTRLEN - 1), reached with an
/// embedded IPv4 tail: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
const V1_IPV6_MAX_TEXT: usize = 45;

/// Longest port, `65535`; the spec forbids leading zeros, so no padding.
const V1_PORT_MAX_DIGITS: usize = 5;

/// Starts every v2 header. Chosen by the spec to contain a NUL and `\r\n\r\n`
/// so that it can never begin a valid v1 line or a text protocol request.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Signature, version/command byte, family byte and the 2-byte length.
const V2_FIXED_LEN: usize = 16;

/// The high nibble of byte 13; the spec has receivers drop any other value.
const V2_VERSION: u8 = 0x2;

/// Low nibble of byte 13: a connection the balancer made itself (health
/// checks); the spec says to use the real endpoints and ignore the rest.
const V2_CMD_LOCAL: u8 = 0x0;

/// Low nibble of byte 13: a relayed connection, addresses follow.
const V2_CMD_PROXY: u8 = 0x1;

/// Byte 14 values (address family << 4 | transport) the spec defines; every
/// other value must be rejected.
const V2_UNSPEC: u8 = 0x00;
const V2_TCP4: u8 = 0x11;
const V2_UDP4: u8 = 0x12;
const V2_TCP6: u8 = 0x21;
const V2_UDP6: u8 = 0x22;
const V2_UNIX_STREAM: u8 = 0x31;
const V2_UNIX_DGRAM: u8 = 0x32;

/// Address block sizes: two addresses then two 16-bit ports for IP, two
/// 108-byte `sun_path`s for UNIX. The length field must cover them; what
/// follows is TLVs.
const V2_INET_ADDRS_LEN: usize = 12;
const V2_INET6_ADDRS_LEN: usize = 36;
const V2_UNIX_ADDRS_LEN: usize = 216;

/// A TLV's type byte and 16-bit big-endian value length.
const V2_TLV_HEADER_LEN: usize = 3;

/// Parses a PROXY header at the start of `buf`.
///
/// Returns `Incomplete` while the bytes so far are a valid prefix of a header
/// (a prefix of either signature included), and `NotProxyProtocol` as soon as
/// the first bytes can't start either signature. An error found in a prefix
/// is the same error for every longer buffer, so the caller may stop at the
/// first one.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    // The two signatures differ in their first byte.
    match buf.first() {
        None => Ok(Parsed::Incomplete),
        Some(&b) if b == V1_PREFIX[0] => parse_v1(buf),
        Some(&b) if b == V2_SIGNATURE[0] => parse_v2(buf),
        Some(_) => Err(NotProxyProtocol),
    }
}

/// Whether `buf` holds all of `signature`; an error if it diverges from it.
fn signature_complete(buf: &[u8], signature: &[u8]) -> Result<bool, ProxyProtocolError> {
    let n = buf.len().min(signature.len());
    if buf[..n] != signature[..n] {
        return Err(NotProxyProtocol);
    }
    Ok(n == signature.len())
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if !signature_complete(buf, V1_PREFIX)? {
        return Ok(Parsed::Incomplete);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let rest = &window[V1_PREFIX.len()..];
    let stop = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let fields = &rest[..stop.unwrap_or(rest.len())];
    // The fields are checked as a partial line first even when the line end
    // is in view, so a header fails the same way whether it arrived whole or
    // byte by byte.
    v1_fields(fields, false)?;
    let need_more = if buf.len() >= V1_MAX_LEN {
        Err(TooLong)
    } else {
        Ok(Parsed::Incomplete)
    };
    let Some(stop) = stop else {
        return need_more;
    };
    match &rest[stop..] {
        [b'\r', b'\n', ..] => {
            // A complete line always yields a header or an error.
            let header = v1_fields(fields, true)?.ok_or(Malformed("missing v1 fields"))?;
            Ok(Parsed::Complete {
                header,
                consumed: V1_PREFIX.len() + stop + 2,
            })
        }
        // The LF may still come, unless the window is full.
        [b'\r'] => need_more,
        [b'\n', ..] => Err(Malformed("bare LF in v1 line")),
        _ => Err(Malformed("bare CR in v1 line")),
    }
}

/// Checks the v1 fields after `PROXY ` up to the line end (exclusive). With
/// `complete == false` the last field may still grow, so it only has to be a
/// plausible start, and `Ok(None)` means "so far so good". Each field has one
/// error message whether it is partial or complete, since the partial check
/// is a looser form of the full one.
fn v1_fields(fields: &[u8], complete: bool) -> Result<Option<Header>, ProxyProtocolError> {
    let mut tokens = fields.split(|&b| b == b' ').peekable();
    // `split` yields at least one (possibly empty) token.
    let protocol = tokens.next().unwrap_or_default();
    if !complete && tokens.peek().is_none() {
        let plausible = [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
            .iter()
            .any(|p| p.starts_with(protocol));
        return if plausible {
            Ok(None)
        } else {
            Err(Malformed("unknown v1 protocol"))
        };
    }
    let v6 = match protocol {
        b"TCP4" => false,
        b"TCP6" => true,
        // The spec has receivers ignore whatever follows UNKNOWN.
        b"UNKNOWN" => return Ok(complete.then_some(Header::Local)),
        _ => return Err(Malformed("unknown v1 protocol")),
    };
    let mut addrs = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); 2];
    let mut ports = [0u16; 2];
    for field in 0..4 {
        let Some(token) = tokens.next() else {
            return if complete {
                Err(Malformed("missing v1 fields"))
            } else {
                Ok(None)
            };
        };
        let partial = !complete && tokens.peek().is_none();
        match field {
            0 | 1 => {
                let bad = if field == 0 {
                    Malformed("bad v1 source address")
                } else {
                    Malformed("bad v1 destination address")
                };
                if partial {
                    if !plausible_addr(token, v6) {
                        return Err(bad);
                    }
                } else {
                    addrs[field] = parse_addr(token, v6).ok_or(bad)?;
                }
            }
            _ => {
                let bad = if field == 2 {
                    Malformed("bad v1 source port")
                } else {
                    Malformed("bad v1 destination port")
                };
                // Every prefix of a valid port is a valid port (no leading
                // zeros), so the partial check is the full one, empty allowed.
                if partial && token.is_empty() {
                    continue;
                }
                ports[field - 2] = parse_port(token).ok_or(bad)?;
            }
        }
    }
    if tokens.next().is_some() {
        return Err(Malformed("extra v1 fields"));
    }
    if !complete {
        return Ok(None);
    }
    Ok(Some(Header::Proxied {
        source: SocketAddr::new(addrs[0], ports[0]),
        destination: SocketAddr::new(addrs[1], ports[1]),
    }))
}

/// Parses an address of the family the protocol named; std's parsers match
/// the spec (dotted quad without leading zeros; IPv6 without zone).
fn parse_addr(token: &[u8], v6: bool) -> Option<IpAddr> {
    let text = std::str::from_utf8(token).ok()?;
    if v6 {
        text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    }
}

/// Whether `token` could still grow into an address of the family: only its
/// characters and length are checked, which never refuses a valid start.
fn plausible_addr(token: &[u8], v6: bool) -> bool {
    if v6 {
        token.len() <= V1_IPV6_MAX_TEXT
            && token
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        token.len() <= V1_IPV4_MAX_TEXT && token.iter().all(|&b| b.is_ascii_digit() || b == b'.')
    }
}

/// A decimal port, 0-65535, without sign or leading zeros (spec: they could
/// be read as octal).
fn parse_port(token: &[u8]) -> Option<u16> {
    if token.is_empty()
        || token.len() > V1_PORT_MAX_DIGITS
        || (token.len() > 1 && token[0] == b'0')
        || !token.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let value = token
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    u16::try_from(value).ok()
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyProtocolError> {
    if !signature_complete(buf, &V2_SIGNATURE)? {
        return Ok(Parsed::Incomplete);
    }
    // Each fixed byte is judged as soon as it arrives.
    let Some(&version_command) = buf.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    if version_command >> 4 != V2_VERSION {
        return Err(Malformed("unsupported v2 version"));
    }
    let local = match version_command & 0x0f {
        V2_CMD_LOCAL => true,
        V2_CMD_PROXY => false,
        _ => return Err(Malformed("unknown v2 command")),
    };
    let Some(&family) = buf.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    // LOCAL discards the whole block, family included (spec), so there is
    // nothing to check or measure.
    let addrs_len = if local {
        0
    } else {
        match family {
            V2_UNSPEC => 0,
            V2_TCP4 | V2_UDP4 => V2_INET_ADDRS_LEN,
            V2_TCP6 | V2_UDP6 => V2_INET6_ADDRS_LEN,
            V2_UNIX_STREAM | V2_UNIX_DGRAM => V2_UNIX_ADDRS_LEN,
            _ => return Err(Malformed("unknown v2 address family")),
        }
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_HEADER_LEN - V2_FIXED_LEN {
        return Err(TooLong);
    }
    if len < addrs_len {
        return Err(Malformed("v2 length shorter than its addresses"));
    }
    let consumed = V2_FIXED_LEN + len;
    let Some(block) = buf.get(V2_FIXED_LEN..consumed) else {
        return Ok(Parsed::Incomplete);
    };
    let (addrs, tlvs) = block.split_at(addrs_len);
    // TLVs are skipped, but only after checking they tile the rest of the
    // block: a length that lands mid-TLV means the sender and we disagree on
    // where the header ends. UNSPEC defines no layout, so nothing to check.
    if !local && family != V2_UNSPEC {
        check_tlvs(tlvs)?;
    }
    let header = match (local, family) {
        (false, V2_TCP4) => Header::Proxied {
            source: SocketAddr::new(ipv4_at(addrs, 0), be16_at(addrs, 8)),
            destination: SocketAddr::new(ipv4_at(addrs, 4), be16_at(addrs, 10)),
        },
        (false, V2_TCP6) => Header::Proxied {
            source: SocketAddr::new(ipv6_at(addrs, 0), be16_at(addrs, 32)),
            destination: SocketAddr::new(ipv6_at(addrs, 16), be16_at(addrs, 34)),
        },
        _ => Header::Local,
    };
    Ok(Parsed::Complete { header, consumed })
}

fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyProtocolError> {
    while !tlvs.is_empty() {
        let [_, hi, lo, rest @ ..] = tlvs else {
            return Err(Malformed("truncated v2 TLV"));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if rest.len() < len {
            return Err(Malformed("truncated v2 TLV"));
        }
        debug_assert_eq!(tlvs.len() - rest.len(), V2_TLV_HEADER_LEN);
        tlvs = &rest[len..];
    }
    Ok(())
}

fn be16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn ipv4_at(bytes: &[u8], at: usize) -> IpAddr {
    let mut octets = [0; 4];
    octets.copy_from_slice(&bytes[at..at + 4]);
    IpAddr::V4(Ipv4Addr::from(octets))
}

fn ipv6_at(bytes: &[u8], at: usize) -> IpAddr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[at..at + 16]);
    IpAddr::V6(Ipv6Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Res = Result<Parsed, ProxyProtocolError>;

    /// The whole-input result, after checking that parsing every prefix
    /// agrees with it: `Incomplete` until the first decisive prefix, then the
    /// same answer for every longer one (what a caller reading in arbitrary
    /// pieces would see).
    fn parse_all_ways(input: &[u8]) -> Res {
        let whole = parse(input);
        let mut decided: Option<(usize, Res)> = None;
        for k in 0..=input.len() {
            let got = parse(&input[..k]);
            match &decided {
                None if got != Ok(Parsed::Incomplete) => decided = Some((k, got)),
                None => {}
                Some((at, first)) => assert_eq!(
                    &got,
                    first,
                    "prefix of {k} bytes disagrees with prefix of {at}: {:?}",
                    String::from_utf8_lossy(input)
                ),
            }
        }
        whole
    }

    /// `input` is one whole header: every strict prefix is `Incomplete`, the
    /// whole is `header`, and following bytes are left alone.
    fn assert_header(input: &[u8], header: Header) {
        let complete = Ok(Parsed::Complete {
            header,
            consumed: input.len(),
        });
        for k in 0..input.len() {
            assert_eq!(
                parse(&input[..k]),
                Ok(Parsed::Incomplete),
                "prefix of {k} bytes of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(parse_all_ways(input), complete);
        let mut followed = input.to_vec();
        followed.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(parse(&followed), complete);
    }

    fn assert_error(input: &[u8], error: ProxyProtocolError) {
        assert_eq!(
            parse_all_ways(input),
            Err(error),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn proxied(source: &str, destination: &str) -> Header {
        Header::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// A v2 header: signature, the two fixed bytes, length, then `block`.
    fn v2(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(version_command);
        out.push(family);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// The IPv4 address block for 10.0.0.1:49152 -> 10.0.0.2:443.
    const TCP4_ADDRS: [u8; 12] = [10, 0, 0, 1, 10, 0, 0, 2, 0xc0, 0x00, 0x01, 0xbb];

    // v1

    #[test]
    fn v1_tcp4() {
        // The spec's example.
        assert_header(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            proxied("192.168.0.1:56324", "192.168.0.11:443"),
        );
        assert_header(
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
            proxied("0.0.0.0:0", "255.255.255.255:65535"),
        );
    }

    #[test]
    fn v1_tcp6() {
        assert_header(
            b"PROXY TCP6 2001:db8::1 2001:DB8::2 1 8080\r\n",
            proxied("[2001:db8::1]:1", "[2001:db8::2]:8080"),
        );
        // IPv4-mapped addresses are IPv6 text, so they belong under TCP6.
        assert_header(
            b"PROXY TCP6 ::ffff:192.0.2.7 :: 4000 80\r\n",
            proxied("[::ffff:192.0.2.7]:4000", "[::]:80"),
        );
        // The longest TCP6 line.
        let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                     ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(line.len(), 104);
        let max = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
        assert_header(line, proxied(max, max));
    }

    #[test]
    fn v1_unknown() {
        assert_header(b"PROXY UNKNOWN\r\n", Header::Local);
        assert_header(b"PROXY UNKNOWN 1.2.3.4 x y z\r\n", Header::Local);
        // The spec's worst case fills the 107 bytes exactly.
        let line = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                     ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(line.len(), V1_MAX_LEN);
        assert_header(line, Header::Local);
        // Whatever follows UNKNOWN is ignored, but still needs its CRLF in time.
        let mut long = line.to_vec();
        long.insert(20, b'f');
        assert_error(&long, TooLong);
    }

    #[test]
    fn v1_too_long() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'x');
        assert_error(&long, TooLong);
        // CR as the 107th byte: its LF would be the 108th.
        long[V1_MAX_LEN - 1] = b'\r';
        assert_error(&long, TooLong);
        long.push(b'\n');
        assert_error(&long, TooLong);
        assert_eq!(parse(&long[..V1_MAX_LEN - 1]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_line_endings() {
        assert_error(
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            Malformed("bare LF in v1 line"),
        );
        assert_error(
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            Malformed("bare CR in v1 line"),
        );
        assert_error(b"PROXY UNKNOWN\n", Malformed("bare LF in v1 line"));
        assert_error(b"PROXY UNKNOWN\rX\r\n", Malformed("bare CR in v1 line"));
        assert_error(b"PROXY UNKNOWN x\ny\r\n", Malformed("bare LF in v1 line"));
        // A field error before the line end wins, as it did byte by byte.
        assert_error(b"PROXY TCP4 x\n", Malformed("bad v1 source address"));
    }

    #[test]
    fn v1_bad_protocol() {
        for bad in [
            &b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"[..],
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY UNKNOWN_\r\n",
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \r\n",
            b"PROXY TCP\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert_error(bad, Malformed("unknown v1 protocol"));
        }
        // A partial protocol is refused before the line ends.
        assert_eq!(parse(b"PROXY TCPX"), Err(Malformed("unknown v1 protocol")));
        assert_eq!(parse(b"PROXY UNK"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_family_mismatch() {
        assert_error(
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            Malformed("bad v1 source address"),
        );
        assert_error(
            b"PROXY TCP4 1.2.3.4 ::ffff:1.2.3.4 1 2\r\n",
            Malformed("bad v1 destination address"),
        );
        assert_error(
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            Malformed("bad v1 source address"),
        );
        assert_error(
            b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
            Malformed("bad v1 destination address"),
        );
        // The ':' gives TCP4 away at once.
        assert_eq!(
            parse(b"PROXY TCP4 ::"),
            Err(Malformed("bad v1 source address"))
        );
    }

    #[test]
    fn v1_bad_addresses() {
        for bad in [
            &b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4444 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 a.b.c.d 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY TCP4 \xff 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            b"PROXY TCP6 [::1] ::1 1 2\r\n",
            b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
            b"PROXY TCP6 00001:: ::1 1 2\r\n",
        ] {
            assert_error(bad, Malformed("bad v1 source address"));
        }
        for bad in [
            &b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n",
            b"PROXY TCP6 ::1 ::g 1 2\r\n",
        ] {
            assert_error(bad, Malformed("bad v1 destination address"));
        }
    }

    #[test]
    fn v1_bad_ports() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",
        ] {
            assert_error(bad, Malformed("bad v1 source port"));
        }
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n",
        ] {
            assert_error(bad, Malformed("bad v1 destination port"));
        }
        // Refused as soon as the port can't be valid any more.
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 65536"),
            Err(Malformed("bad v1 source port"))
        );
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 6553"),
            Ok(Parsed::Incomplete)
        );
    }

    #[test]
    fn v1_field_count() {
        for bad in [
            &b"PROXY TCP4\r\n"[..],
            b"PROXY TCP4 1.2.3.4\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        ] {
            assert_error(bad, Malformed("missing v1 fields"));
        }
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        ] {
            assert_error(bad, Malformed("extra v1 fields"));
        }
    }

    #[test]
    fn not_proxy_protocol() {
        for other in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"PUT / HTTP/1.1\r\n",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY\r\n",
            b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c",
            b"\r\n\r\nGET / HTTP/1.1\r\n",
            b"\0",
        ] {
            assert_error(other, NotProxyProtocol);
        }
        // Decided on the first byte that can't be either signature.
        assert_eq!(parse(b"G"), Err(NotProxyProtocol));
        assert_eq!(parse(b"PO"), Err(NotProxyProtocol));
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROX"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n\0\r\nQU"), Ok(Parsed::Incomplete));
    }

    // v2

    #[test]
    fn v2_tcp4() {
        assert_header(
            &v2(0x21, V2_TCP4, &TCP4_ADDRS),
            proxied("10.0.0.1:49152", "10.0.0.2:443"),
        );
    }

    #[test]
    fn v2_tcp6_with_tlv() {
        let mut block = Vec::new();
        block.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        block.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        block.extend_from_slice(&[0xd4, 0x31, 0x00, 0x50]);
        // PP2_TYPE_ALPN "h2", then an empty PP2_TYPE_NOOP.
        block.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x00]);
        assert_header(
            &v2(0x21, V2_TCP6, &block),
            proxied("[2001:db8::1]:54321", "[2001:db8::2]:80"),
        );
    }

    #[test]
    fn v2_aws_nlb() {
        // What an AWS Network Load Balancer sends through a VPC endpoint:
        // CRC32C, the endpoint id (type 0xEA, subtype 0x01) and NOOP padding.
        let mut header = vec![
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x54, // PROXY, TCP over IPv4, 84 bytes
            0xac, 0x1f, 0x07, 0x71, // 172.31.7.113
            0xac, 0x1f, 0x0a, 0x1f, // 172.31.10.31
            0xc8, 0xf2, 0x00, 0x50, // 51442, 80
            0x03, 0x00, 0x04, 0xe8, 0xd6, 0x89, 0x2d, // CRC32C
            0xea, 0x00, 0x17, 0x01, // AWS VPC endpoint id:
        ];
        header.extend_from_slice(b"vpce-08d2bf15fac5001c9");
        header.extend_from_slice(&[0x04, 0x00, 0x24]); // NOOP, 36 bytes
        header.extend_from_slice(&[0; 36]);
        assert_eq!(header.len(), 16 + 0x54);
        assert_header(&header, proxied("172.31.7.113:51442", "172.31.10.31:80"));
    }

    #[test]
    fn v2_haproxy_ssl_tlv() {
        // HAProxy `send-proxy-v2-ssl-cn`: a PP2_TYPE_SSL TLV nesting the TLS
        // version and the client certificate's CN.
        let mut header = vec![
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x40, // PROXY, TCP over IPv4, 64 bytes
            0x7f, 0x00, 0x00, 0x01, // 127.0.0.1
            0x7f, 0x00, 0x00, 0x01, // 127.0.0.1
            0xcc, 0x8a, 0x23, 0x2e, // 52362, 9006
            0x20, 0x00, 0x31, // PP2_TYPE_SSL, 49 bytes
            0x07, 0x00, 0x00, 0x00, 0x00, // client flags, verify result
            0x21, 0x00, 0x07, // PP2_SUBTYPE_SSL_VERSION
        ];
        header.extend_from_slice(b"TLSv1.3");
        header.extend_from_slice(&[0x22, 0x00, 0x1f]); // PP2_SUBTYPE_SSL_CN
        header.extend_from_slice(b"Example Common Name Client Cert");
        assert_eq!(header.len(), 16 + 0x40);
        assert_header(&header, proxied("127.0.0.1:52362", "127.0.0.1:9006"));
    }

    #[test]
    fn v2_local() {
        // HAProxy's health checks with `check-send-proxy`.
        assert_header(&v2(0x20, V2_UNSPEC, &[]), Header::Local);
        // LOCAL ignores the family and the block, whatever they hold.
        assert_header(&v2(0x20, V2_TCP4, &TCP4_ADDRS), Header::Local);
        assert_header(&v2(0x20, 0xff, &[1, 2]), Header::Local);
        assert_header(&v2(0x20, V2_TCP6, &[]), Header::Local);
    }

    #[test]
    fn v2_families_kept_local() {
        assert_header(&v2(0x21, V2_UNSPEC, &[]), Header::Local);
        assert_header(&v2(0x21, V2_UNSPEC, &[9, 9, 9]), Header::Local);
        assert_header(&v2(0x21, V2_UDP4, &TCP4_ADDRS), Header::Local);
        assert_header(&v2(0x21, V2_UDP6, &[0; 36]), Header::Local);
        assert_header(&v2(0x21, V2_UNIX_STREAM, &[0; 216]), Header::Local);
        assert_header(&v2(0x21, V2_UNIX_DGRAM, &[0; 219]), Header::Local);
    }

    #[test]
    fn v2_bad_version_command_family() {
        for version_command in [0x01, 0x11, 0x31, 0xf1, 0x00] {
            assert_error(
                &v2(version_command, V2_TCP4, &TCP4_ADDRS),
                Malformed("unsupported v2 version"),
            );
        }
        for version_command in [0x22, 0x2f] {
            assert_error(
                &v2(version_command, V2_TCP4, &TCP4_ADDRS),
                Malformed("unknown v2 command"),
            );
        }
        for family in [0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x41, 0xff] {
            assert_error(
                &v2(0x21, family, &TCP4_ADDRS),
                Malformed("unknown v2 address family"),
            );
        }
        // Refused as soon as the byte arrives.
        let mut sig = V2_SIGNATURE.to_vec();
        sig.push(0x11);
        assert_eq!(parse(&sig), Err(Malformed("unsupported v2 version")));
    }

    #[test]
    fn v2_length() {
        assert_error(
            &v2(0x21, V2_TCP4, &TCP4_ADDRS[..11]),
            Malformed("v2 length shorter than its addresses"),
        );
        assert_error(
            &v2(0x21, V2_TCP6, &TCP4_ADDRS),
            Malformed("v2 length shorter than its addresses"),
        );
        assert_error(
            &v2(0x21, V2_UNIX_STREAM, &[0; 108]),
            Malformed("v2 length shorter than its addresses"),
        );
        // Decided from the length field alone, before the block arrives.
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x21, V2_TCP4, 0x00, 0x0b]);
        assert_eq!(
            parse(&fixed),
            Err(Malformed("v2 length shorter than its addresses"))
        );
        // The longest header accepted: addresses plus NOOP padding.
        let mut block = TCP4_ADDRS.to_vec();
        let pad = MAX_HEADER_LEN - V2_FIXED_LEN - block.len() - V2_TLV_HEADER_LEN;
        block.extend_from_slice(&[0x04]);
        block.extend_from_slice(&u16::try_from(pad).unwrap().to_be_bytes());
        block.resize(MAX_HEADER_LEN - V2_FIXED_LEN, 0);
        let longest = v2(0x21, V2_TCP4, &block);
        assert_eq!(longest.len(), MAX_HEADER_LEN);
        assert_header(&longest, proxied("10.0.0.1:49152", "10.0.0.2:443"));
        // One more byte is refused before any of the block is buffered.
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x21, V2_TCP4]);
        fixed.extend_from_slice(&u16::try_from(MAX_HEADER_LEN - 15).unwrap().to_be_bytes());
        assert_error(&fixed, TooLong);
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x20, V2_UNSPEC, 0xff, 0xff]);
        assert_error(&fixed, TooLong);
    }

    #[test]
    fn v2_bad_tlvs() {
        for tlvs in [
            &[0xe1][..],
            &[0xe2, 0x00],
            &[0xe3, 0x00, 0x01],
            &[0xe3, 0x00, 0x02, 0x00],
            &[0x04, 0x00, 0x00, 0x01],
            &[0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00],
        ] {
            let mut block = TCP4_ADDRS.to_vec();
            block.extend_from_slice(tlvs);
            assert_error(&v2(0x21, V2_TCP4, &block), Malformed("truncated v2 TLV"));
        }
        // Same for families whose addresses we don't decode.
        let mut block = vec![0; 36];
        block.push(0x04);
        assert_error(&v2(0x21, V2_UDP6, &block), Malformed("truncated v2 TLV"));
    }

    #[test]
    fn v2_truncated_is_incomplete() {
        let header = v2(0x21, V2_TCP4, &TCP4_ADDRS);
        for k in 0..header.len() {
            assert_eq!(parse(&header[..k]), Ok(Parsed::Incomplete), "{k} bytes");
        }
    }

    #[test]
    fn consumed_leaves_the_rest() {
        let mut input =
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nPROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n".to_vec();
        assert_eq!(
            parse(&input),
            Ok(Parsed::Complete {
                header: proxied("1.2.3.4:1", "5.6.7.8:2"),
                consumed: 32,
            })
        );
        input = v2(0x21, V2_TCP4, &TCP4_ADDRS);
        input.extend_from_slice(&V2_SIGNATURE);
        assert_eq!(
            parse(&input),
            Ok(Parsed::Complete {
                header: proxied("10.0.0.1:49152", "10.0.0.2:443"),
                consumed: 28,
            })
        );
    }

    #[test]
    fn single_byte_changes_never_confuse_the_parser() {
        // Every one-byte change to valid headers must still give one answer
        // for every way of splitting the input (checked by parse_all_ways),
        // and never panic.
        let mut ipv6 = v2(0x21, V2_TCP6, &[0x20; 36]);
        ipv6.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        let seeds = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 1 65535\r\n".to_vec(),
            b"PROXY UNKNOWN 1 2\r\n".to_vec(),
            v2(0x21, V2_TCP4, &TCP4_ADDRS),
            v2(0x20, V2_UNSPEC, &[]),
            ipv6,
        ];
        for seed in &seeds {
            for at in 0..seed.len() {
                for value in [
                    0,
                    b' ',
                    b'\r',
                    b'\n',
                    b'0',
                    b'9',
                    b':',
                    b'.',
                    0xff,
                    seed[at] ^ 1,
                ] {
                    let mut input = seed.clone();
                    input[at] = value;
                    let _ = parse_all_ways(&input);
                    input.truncate(at + 1);
                    let _ = parse_all_ways(&input);
                }
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(NotProxyProtocol.to_string(), "not a PROXY protocol header");
        assert_eq!(
            Malformed("bad v1 source port").to_string(),
            "malformed PROXY protocol header: bad v1 source port"
        );
        assert_eq!(TooLong.to_string(), "PROXY protocol header too long");
    }
}
