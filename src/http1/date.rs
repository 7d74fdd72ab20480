//! The Date header field (RFC 9110 §6.6.1) in its only generated format,
//! IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
//!
//! Every forwarded response without a Date and every response the proxy
//! generates gets one, so this runs once per response: the formatted value is
//! cached per thread (shards are threads) and rebuilt only when the second
//! changes. No date crate: the calendar arithmetic is a dozen lines.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: fixed by its grammar.
pub const IMF_FIXDATE_LEN: usize = 29;

/// The last second IMF-fixdate can express (`date3`'s year is 4DIGIT):
/// 9999-12-31T23:59:59Z. A clock beyond it is broken; we print this instead
/// of an ill-formed value.
const MAX_SECS: u64 = 253_402_300_799;

const SECS_PER_DAY: u64 = 86_400;

/// 1970-01-01 was a Thursday; index 0 is Sunday.
const EPOCH_WEEKDAY: u64 = 4;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];

const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// No second is `u64::MAX` after clamping, so the cache starts out stale.
const NEVER: u64 = u64::MAX;

thread_local! {
    /// The second last formatted on this thread and its IMF-fixdate.
    static CACHE: Cell<(u64, [u8; IMF_FIXDATE_LEN])> =
        const { Cell::new((NEVER, [0; IMF_FIXDATE_LEN])) };
}

/// `t` as an IMF-fixdate. Times before 1970 print as the epoch (a clock that
/// far off is not worth a signed calendar), and times after 9999 as its end.
pub fn imf_fixdate(t: SystemTime) -> [u8; IMF_FIXDATE_LEN] {
    format(unix_secs(t))
}

/// The current time as an IMF-fixdate, from this thread's cache.
pub fn http_date_now() -> [u8; IMF_FIXDATE_LEN] {
    cached(unix_secs(SystemTime::now()))
}

/// Appends `Date: <now>\r\n`.
pub(crate) fn write_date_field(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(&http_date_now());
    out.extend_from_slice(b"\r\n");
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(MAX_SECS)
}

/// The IMF-fixdate of `secs`, reformatted only if the second changed since
/// the last call on this thread.
fn cached(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    CACHE.with(|c| {
        let (last, date) = c.get();
        if last == secs {
            return date;
        }
        let date = format(secs);
        c.set((secs, date));
        date
    })
}

/// Formats `secs` (at most `MAX_SECS`) since the Unix epoch.
fn format(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    let days = secs / SECS_PER_DAY;
    let of_day = secs % SECS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let mut d = [0u8; IMF_FIXDATE_LEN];
    d[..3].copy_from_slice(DAY_NAMES[((days + EPOCH_WEEKDAY) % 7) as usize]);
    d[3..5].copy_from_slice(b", ");
    two_digits(&mut d[5..7], day);
    d[7] = b' ';
    d[8..11].copy_from_slice(MONTH_NAMES[(month - 1) as usize]);
    d[11] = b' ';
    two_digits(&mut d[12..14], year / 100);
    two_digits(&mut d[14..16], year % 100);
    d[16] = b' ';
    two_digits(&mut d[17..19], of_day / 3600);
    d[19] = b':';
    two_digits(&mut d[20..22], of_day / 60 % 60);
    d[22] = b':';
    two_digits(&mut d[23..25], of_day % 60);
    d[25..].copy_from_slice(b" GMT");
    d
}

pub(crate) fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1-12, day 1-31) of the proleptic Gregorian calendar for
/// `days` since 1970-01-01: Howard Hinnant's `civil_from_days`, for
/// non-negative days only. It counts in 400-year eras starting on March 1st,
/// so that the leap day is the last day of its (shifted) year.
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    /// Days from 0000-03-01 to 1970-01-01.
    const EPOCH_SHIFT: u64 = 719_468;
    /// Days in a 400-year era.
    const ERA_DAYS: u64 = 146_097;
    let z = days + EPOCH_SHIFT;
    let era = z / ERA_DAYS;
    let doe = z % ERA_DAYS; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

/// Test helper for the encoders: `out` (a message head, possibly followed by
/// a body) with its single Date line checked to be an IMF-fixdate and removed.
#[cfg(test)]
pub(crate) fn without_date(out: &[u8]) -> String {
    let text = String::from_utf8(out.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let dates: Vec<&str> = head
        .split("\r\n")
        .filter_map(|l| l.strip_prefix("Date: "))
        .collect();
    assert_eq!(dates.len(), 1, "{text:?}");
    assert!(
        dates[0].len() == IMF_FIXDATE_LEN && dates[0].ends_with(" GMT"),
        "{text:?}"
    );
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64) -> String {
        String::from_utf8(format(secs).to_vec()).unwrap()
    }

    #[test]
    fn rfc_example() {
        // RFC 9110 §5.6.7's example.
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn known_dates() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (86_399, "Thu, 01 Jan 1970 23:59:59 GMT"),
            (68_083_200, "Mon, 28 Feb 1972 00:00:00 GMT"),
            // 1972 is a leap year.
            (68_169_600, "Tue, 29 Feb 1972 00:00:00 GMT"),
            (68_256_000, "Wed, 01 Mar 1972 00:00:00 GMT"),
            (946_684_799, "Fri, 31 Dec 1999 23:59:59 GMT"),
            (946_684_800, "Sat, 01 Jan 2000 00:00:00 GMT"),
            // 2000 is a leap year (divisible by 400).
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (951_868_800, "Wed, 01 Mar 2000 00:00:00 GMT"),
            (1_078_012_800, "Sun, 29 Feb 2004 00:00:00 GMT"),
            (1_234_567_890, "Fri, 13 Feb 2009 23:31:30 GMT"),
            (2_147_483_647, "Tue, 19 Jan 2038 03:14:07 GMT"),
            (4_107_456_000, "Sun, 28 Feb 2100 00:00:00 GMT"),
            // 2100 is not a leap year (divisible by 100, not by 400).
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (MAX_SECS, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(fmt(secs), want, "{secs}");
        }
    }

    #[test]
    fn every_day_is_consecutive() {
        // Walks day by day over 1970..2500 and checks that the formatter
        // steps through the calendar with no gap or repeat.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..(530 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "{days}");
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn out_of_range_times_are_clamped() {
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(&imf_fixdate(before), b"Thu, 01 Jan 1970 00:00:00 GMT");
        let after = UNIX_EPOCH + Duration::from_secs(MAX_SECS + 1_000_000);
        assert_eq!(&imf_fixdate(after), b"Fri, 31 Dec 9999 23:59:59 GMT");
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_999);
        assert_eq!(&imf_fixdate(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn cache_follows_the_second() {
        assert_eq!(&cached(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(CACHE.with(Cell::get).0, 784_111_777);
        assert_eq!(&cached(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&cached(784_111_778), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(CACHE.with(Cell::get).0, 784_111_778);
        // Going back (a clock step) reformats too.
        assert_eq!(&cached(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn now_is_well_formed() {
        let now = http_date_now();
        assert!(now.ends_with(b" GMT") && now[3] == b',', "{now:?}");
        let mut out = Vec::new();
        write_date_field(&mut out);
        assert_eq!(out.len(), "Date: ".len() + IMF_FIXDATE_LEN + 2);
        assert!(out.starts_with(b"Date: ") && out.ends_with(b" GMT\r\n"));
    }
}
