//! go-units' human-readable durations and sizes (`docker/go-units`), which every Docker table
//! prints: "Up 2 days", "3 weeks ago", `1.05kB`, `23.54GiB`. One implementation each, so that
//! `ps`, `images`, `history`, `stats` and `prune` can never disagree.

/// go-units `HumanDuration`: seconds and minutes count whole units; from an hour on, hours are
/// rounded half up and the larger units (days, weeks, months of 30 days) are whole multiples of
/// those rounded hours; years count whole hours. So 47h45m rounds to 48 hours, which is "2 days".
/// A negative duration (a clock that went back) is "Less than a second", as in Go.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let exact_hours = secs as f64 / 3600.0 + f64::from(d.subsec_nanos()) / 3.6e12;
    let hours = (exact_hours + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", secs / 3600 / 24 / 365)
}

/// `human_duration` of the time since `t` ("Up 3 minutes", "5 hours ago").
pub fn since(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    human_duration(now - t)
}

/// go-units `HumanSizeWithPrecision`: decimal units with `precision` significant digits
/// (`746B`, `1.05kB`, `23.5MB`); `HumanSize` is precision 4, Docker's tables use 3.
pub fn human_size(bytes: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let (v, unit) = scale(bytes, 1000.0, &UNITS);
    format!("{}{unit}", go_g(v, precision))
}

/// go-units `BytesSize`: binary units with four significant digits (`324KiB`, `23.54GiB`).
pub fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (v, unit) = scale(bytes, 1024.0, &UNITS);
    format!("{}{unit}", go_g(v, 4))
}

fn scale(mut v: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    (v, units[i])
}

/// Go's `%.<prec>g`: `prec` significant digits, trailing zeros dropped, the exponent form below
/// 1e-4 and from 10^prec on (`1e+03`).
pub fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = trim_zeros(mant);
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    /// go-units' own table (`duration_test.go`), case for case.
    #[test]
    fn durations_match_go_units() {
        let s = TimeDelta::seconds;
        let m = TimeDelta::minutes;
        let h = TimeDelta::hours;
        let day = TimeDelta::days(1);
        let week = day * 7;
        let month = day * 30;
        let year = day * 365;
        let cases: &[(TimeDelta, &str)] = &[
            (TimeDelta::milliseconds(450), "Less than a second"),
            (s(1), "1 second"),
            (s(45), "45 seconds"),
            (s(46), "46 seconds"),
            (s(47), "47 seconds"),
            (s(59), "59 seconds"),
            (s(60), "About a minute"),
            (m(1), "About a minute"),
            (m(3), "3 minutes"),
            (m(35), "35 minutes"),
            (m(35) + s(40), "35 minutes"),
            (m(45), "45 minutes"),
            (m(45) + s(40), "45 minutes"),
            (m(46), "46 minutes"),
            (m(59), "59 minutes"),
            (h(1), "About an hour"),
            (h(1) + m(29), "About an hour"),
            (h(1) + m(31), "2 hours"),
            (h(1) + m(45), "2 hours"),
            (h(1) + m(59), "2 hours"),
            (h(3), "3 hours"),
            (h(3) + m(29), "3 hours"),
            (h(3) + m(31), "4 hours"),
            (h(3) + m(59), "4 hours"),
            (h(3) + m(60), "4 hours"),
            (h(24), "24 hours"),
            (day + h(12), "36 hours"),
            (day * 2, "2 days"),
            (day * 7, "7 days"),
            (day * 13 + h(5), "13 days"),
            (week * 2, "2 weeks"),
            (week * 2 + day * 4, "2 weeks"),
            (week * 3, "3 weeks"),
            (week * 4, "4 weeks"),
            (week * 4 + day * 3, "4 weeks"),
            (month, "4 weeks"),
            (month + week * 2, "6 weeks"),
            (month * 2, "2 months"),
            (month * 2 + week * 2, "2 months"),
            (month * 3, "3 months"),
            (month * 3 + week, "3 months"),
            (month * 5 + week * 2, "5 months"),
            (month * 13, "13 months"),
            (month * 23, "23 months"),
            (month * 24, "24 months"),
            (month * 24 + week * 2, "2 years"),
            (year * 3 + month * 2, "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn hours_round_before_days_are_counted() {
        // The bug the two old copies disagreed on: 47h45m is 48 rounded hours, so "2 days".
        assert_eq!(human_duration(TimeDelta::hours(47) + TimeDelta::minutes(45)), "2 days");
        assert_eq!(human_duration(TimeDelta::hours(47) + TimeDelta::minutes(29)), "47 hours");
        // 13 days 23h40m rounds to 336 hours: two weeks.
        assert_eq!(human_duration(TimeDelta::days(13) + TimeDelta::hours(23) + TimeDelta::minutes(40)), "2 weeks");
        assert_eq!(human_duration(TimeDelta::seconds(-5)), "Less than a second");
        assert_eq!(human_duration(TimeDelta::seconds(90)), "About a minute");
        assert_eq!(human_duration(TimeDelta::days(15)), "2 weeks");
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        assert_eq!(since(t0, t0 + TimeDelta::seconds(30)), "30 seconds");
    }

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size(746.0, 3), "746B");
        assert_eq!(human_size(999.0, 3), "999B");
        assert_eq!(human_size(1050.0, 3), "1.05kB");
        assert_eq!(human_size(0.0, 3), "0B");
        assert_eq!(human_size(123_456.0, 3), "123kB");
        assert_eq!(human_size(2_100_000.0, 3), "2.1MB");
        assert_eq!(human_size(4_261_000.0, 3), "4.26MB");
        assert_eq!(human_size(12_345_678.0, 3), "12.3MB");
        assert_eq!(human_size(1_000_000.0, 4), "1MB");
        assert_eq!(human_size(2_746_000.0, 4), "2.746MB");
        assert_eq!(bytes_size(324.0 * 1024.0), "324KiB");
        assert_eq!(bytes_size(25_275_664_384.0), "23.54GiB");
        assert_eq!(bytes_size(1_196_032.0), "1.141MiB");
        assert_eq!(go_g(999.96, 4), "1000");
        assert_eq!(go_g(999.6, 3), "1e+03");
        assert_eq!(go_g(0.5, 3), "0.5");
        assert_eq!(go_g(0.00001234, 3), "1.23e-05");
    }
}
