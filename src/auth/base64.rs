//! Strict base64 decoding (RFC 4648 §4: standard alphabet, padded), for the
//! `Basic` credentials of RFC 7617 §2.
//!
//! Strict means one spelling per byte string: the length is a multiple of 4,
//! padding is present and only at the end, and the unused low bits of the
//! last symbol are zero. Lenient decoders accept several encodings of one
//! credential, which would let one password occupy several cache slots and
//! make what we check differ from what a backend that decodes on its own
//! (`keep_credentials`) might read.
//!
//! The symbol mapping is arithmetic rather than a table lookup or a `match`,
//! as in RustCrypto's `base64ct`: the input is a password, so the decoder's
//! timing and memory accesses should not depend on its characters.

/// Decodes `input` into `out` (cleared first). `Err(())` for anything that is
/// not canonical, padded, standard-alphabet base64; `out` is then empty.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    if input.len() % 4 != 0 {
        return Err(());
    }
    out.reserve(input.len() / 4 * 3);
    // Accumulate "some symbol was invalid" instead of returning at the first
    // one, so the work does not depend on where a bad symbol is.
    let mut bad: i16 = 0;
    let quads = input.len() / 4;
    for (i, q) in input.chunks_exact(4).enumerate() {
        let last = i + 1 == quads;
        // Padding: only in the last quantum, "xx==" or "xxx=" (the first two
        // symbols are never padding, and "x=x=" is not valid).
        let pad = if last {
            match (q[2], q[3]) {
                (b'=', b'=') => 2,
                (_, b'=') => 1,
                _ => 0,
            }
        } else {
            0
        };
        let a = sextet(q[0]);
        let b = sextet(q[1]);
        let c = if pad == 2 { 0 } else { sextet(q[2]) };
        let d = if pad >= 1 { 0 } else { sextet(q[3]) };
        bad |= a | b | c | d;
        let n = ((a as u32 & 0x3f) << 18)
            | ((b as u32 & 0x3f) << 12)
            | ((c as u32 & 0x3f) << 6)
            | (d as u32 & 0x3f);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Canonical form: the bits a padded quantum does not use must be 0.
        let unused = match pad {
            2 => n & 0xffff,
            1 => n & 0xff,
            _ => 0,
        };
        if unused != 0 {
            bad |= -1;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    if bad < 0 {
        // Zeroed first: this may be part of a password.
        out.fill(0);
        out.clear();
        return Err(());
    }
    Ok(())
}

/// The 6-bit value of base64 symbol `c`, or a negative number if `c` is not
/// in the standard alphabet (`=` included). Each line adds `value + 1` when
/// `c` is in its range: `((lo - 1 - c) & (c - (hi + 1))) >> 8` is all ones
/// exactly when `lo <= c <= hi` (both operands negative), else zero.
fn sextet(c: u8) -> i16 {
    let c = c as i16;
    let mut r: i16 = -1;
    r += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64); // 'A'..='Z' → 0..=25
    r += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70); // 'a'..='z' → 26..=51
    r += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5); // '0'..='9' → 52..=61
    r += (((0x2a - c) & (c - 0x2c)) >> 8) & 63; // '+' → 62
    r += (((0x2e - c) & (c - 0x30)) >> 8) & 64; // '/' → 63
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Vec<u8>, ()> {
        let mut out = vec![0xaa; 3];
        let r = decode(s.as_bytes(), &mut out);
        if r.is_err() {
            assert!(out.is_empty());
        }
        r.map(|()| out)
    }

    #[test]
    fn alphabet_maps_every_byte() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for c in 0..=255u8 {
            let want = alphabet.iter().position(|&a| a == c).map(|p| p as i16);
            let got = sextet(c);
            match want {
                Some(v) => assert_eq!(got, v, "{c:#x}"),
                None => assert!(got < 0, "{c:#x} gave {got}"),
            }
        }
    }

    #[test]
    fn rfc_4648_vectors() {
        for (enc, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            // RFC 7617 §2's example.
            ("QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin:open sesame"),
        ] {
            assert_eq!(dec(enc), Ok(plain.as_bytes().to_vec()), "{enc}");
        }
        assert_eq!(dec("+/+/"), Ok(vec![0xfb, 0xff, 0xbf]));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "Zg",       // unpadded
            "Zg=",      // short padding
            "Zg===",    // too much
            "Z===",     // padding in position 2
            "====",     // all padding
            "Zg=a",     // symbol after padding
            "Zg==Zg==", // padding before the end
            "Zh==",     // non-zero unused bits (non-canonical "f")
            "Zm9=",     // non-canonical "fo"
            "Zm9v Yg==",
            "Zm9v\tYg=",
            "Zm9-", // URL-safe alphabet
            "Zm9_",
            "Zm9\u{e9}",
            "Zm9v\0\0\0\0",
        ] {
            assert_eq!(dec(bad), Err(()), "{bad:?}");
        }
    }

    #[test]
    fn round_trip_all_lengths() {
        // A tiny encoder, only to check the decoder against.
        fn enc(data: &[u8]) -> String {
            let a = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in data.chunks(3) {
                let n = (c[0] as u32) << 16
                    | (*c.get(1).unwrap_or(&0) as u32) << 8
                    | *c.get(2).unwrap_or(&0) as u32;
                for i in 0..4 {
                    if i <= c.len() {
                        s.push(a[(n >> (18 - 6 * i) & 63) as usize] as char);
                    } else {
                        s.push('=');
                    }
                }
            }
            s
        }
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..data.len() {
            assert_eq!(dec(&enc(&data[..n])), Ok(data[..n].to_vec()), "length {n}");
        }
    }
}
