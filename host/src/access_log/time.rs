//! RFC 3339 timestamps (UTC, milliseconds) for log lines, without a date library.

use std::time::{Duration, Instant, SystemTime};

/// A timestamp as text, without an allocation.
pub struct Stamp {
    text: [u8; 24],
}

impl Stamp {
    /// `2026-12-06T22:35:01.123Z`
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

thread_local! {
    /// The last second formatted on this thread, and its text up to the seconds.
    static LAST: std::cell::Cell<(u64, [u8; 19])> = const { std::cell::Cell::new((u64::MAX, [0; 19])) };
}

thread_local! {
    /// A wall-clock reading and the monotonic instant it was taken at, on this thread.
    static ANCHOR: std::cell::Cell<Option<(Instant, SystemTime)>> = const { std::cell::Cell::new(None) };
}

/// How long wall-clock times are derived from one reading before the clock is read again: a
/// wall clock stepped (or slewed) meanwhile shows within this long.
const REANCHOR: Duration = Duration::from_secs(1);

/// The wall-clock time at monotonic instant `now`, without reading the wall clock more than
/// once a second per thread (`now` is usually read for the request's duration anyway).
pub fn wall(now: Instant) -> SystemTime {
    let anchored = ANCHOR.with(std::cell::Cell::get).and_then(|(at, wall)| {
        let since = now.checked_duration_since(at)?;
        (since < REANCHOR).then(|| wall + since)
    });
    anchored.unwrap_or_else(|| {
        let wall = SystemTime::now();
        ANCHOR.with(|a| a.set(Some((now, wall))));
        wall
    })
}

/// `t` as `2026-12-06T22:35:01.123Z`; the date and time of day are formatted once per
/// second per thread.
pub fn rfc3339_millis(t: SystemTime) -> Stamp {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (last, mut prefix) = LAST.with(std::cell::Cell::get);
    if last != secs {
        let (days, rest) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        );
        if let Some(bytes) = text.as_bytes().get(..19) {
            prefix.copy_from_slice(bytes);
        }
        LAST.with(|l| l.set((secs, prefix)));
    }
    let ms = since.subsec_millis();
    let mut text = [0u8; 24];
    text[..19].copy_from_slice(&prefix);
    text[19] = b'.';
    text[20] = b'0' + (ms / 100) as u8;
    text[21] = b'0' + (ms / 10 % 10) as u8;
    text[22] = b'0' + (ms % 10) as u8;
    text[23] = b'Z';
    Stamp { text }
}

/// Year, month and day of the `days`th day after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wall_times_follow_the_monotonic_clock_and_the_wall_clock() {
        let now = Instant::now();
        let first = wall(now);
        let later = wall(now + Duration::from_millis(250));
        assert_eq!(
            later.duration_since(first).unwrap(),
            Duration::from_millis(250)
        );
        // An instant before the anchor, or a second past it, reads the wall clock afresh.
        let before = SystemTime::now();
        let fresh = wall(now + Duration::from_secs(2));
        assert!(fresh >= before && fresh <= SystemTime::now());
        assert!(wall(now) >= before);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| {
            rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms))
                .as_str()
                .to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_596_501, 123), "2026-12-06T22:35:01.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
        assert_eq!(
            at(4_107_542_399, 7),
            "2100-02-28T23:59:59.007Z",
            "the same second again"
        );
    }
}
