//! The PROXY protocol v1/v2 decoder.
//!
//! Input: the first bytes of a connection. Checks, beyond "no panic": every prefix is
//! `Incomplete` until the first decisive one, and every longer prefix then gives that same
//! answer (a reader in any split sees one result); a complete header is at most
//! `MAX_HEADER_LEN` bytes and leaves the bytes after it alone; a v1 header written out again
//! parses to the same addresses.
#![no_main]

use corelay::proxy_protocol::{parse, Header, Parsed, MAX_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    let mut decided = None;
    for k in 0..=data.len() {
        let got = parse(&data[..k]);
        match decided {
            None if got != Ok(Parsed::Incomplete) => decided = Some(got),
            None => {}
            Some(first) => assert_eq!(got, first, "prefix of {k} bytes"),
        }
    }
    assert_eq!(decided.unwrap_or(Ok(Parsed::Incomplete)), whole);
    let Ok(Parsed::Complete { header, consumed }) = whole else {
        return;
    };
    assert!(consumed <= data.len() && consumed <= MAX_HEADER_LEN);
    assert_eq!(
        parse(&data[..consumed]),
        whole,
        "depends on bytes after the header"
    );
    if let (
        Header::Proxied {
            source,
            destination,
        },
        b'P',
    ) = (header, data[0])
    {
        let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
        let line = format!(
            "PROXY {family} {} {} {} {}\r\n",
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        );
        assert_eq!(
            parse(line.as_bytes()),
            Ok(Parsed::Complete {
                header,
                consumed: line.len()
            }),
            "{line:?}"
        );
    }
});
