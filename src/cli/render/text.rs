//! Text as the Docker CLI and Docker Compose print it: Go's quoting, Docker's ellipsis, the
//! daemon's command line, and Go's time layouts.

/// Go's `strconv.Quote` (`%q`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A list of strings as Go's `%q` prints a `[]string`: `["a" "b"]`.
pub fn go_quote_list(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// The Docker CLI's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A container's command as the Docker daemon lists it: the arguments that hold a space quoted.
pub fn docker_command(argv: &[String]) -> String {
    let Some((path, args)) = argv.split_first() else { return String::new() };
    if args.is_empty() {
        return path.clone();
    }
    let args: Vec<String> = args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() }).collect();
    format!("{path} {}", args.join(" "))
}

/// Go's `time.Time.String()`, in the zone `t` carries: `2006-01-02 15:04:05.5 +0000 UTC`. The
/// fraction of a second has no trailing zeros (none when whole); the zone's name is `UTC` at
/// offset zero and the offset again elsewhere (Go prints an abbreviation it knows, such as `CET`,
/// which chrono does not). Docker lists containers and images with whole seconds: truncate first.
pub fn go_time_string(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    let zone = if t.offset().local_minus_utc() == 0 { "UTC".to_string() } else { t.format("%z").to_string() };
    format!("{}{dot}{frac} {} {zone}", t.format("%Y-%m-%d %H:%M:%S"), t.format("%z"))
}

/// `t` in the local zone, as Docker's CLI prints times.
pub fn local(t: &chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::FixedOffset> {
    t.with_timezone(&chrono::Local).fixed_offset()
}

/// Go's `time.RFC3339Nano` in the local zone (trailing zeros of the fraction dropped, `Z` for UTC).
pub fn rfc3339_nano_local(t: &chrono::DateTime<chrono::Utc>) -> String {
    let l = t.with_timezone(&chrono::Local);
    let frac = format!("{:09}", l.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    let off = l.offset().local_minus_utc();
    let zone = if off == 0 { "Z".to_string() } else { l.format("%:z").to_string() };
    let dot = if frac.is_empty() { "" } else { "." };
    format!("{}{dot}{frac}{zone}", l.format("%Y-%m-%dT%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_and_ellipsis_match_docker_ps() {
        let cmd = "sh -c 'i=0; while true; do echo web line $i; done'";
        assert_eq!(go_quote(&ellipsis(cmd, 20)), "\"sh -c 'i=0; while t…\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}\u{7f}\u{85}"), "\"\\x01\\x7f\\u0085\"");
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(ellipsis("abc", 0), "");
        assert_eq!(go_quote_list(&["web".into()]), "[\"web\"]");
        assert_eq!(go_quote_list(&["a".into(), "b".into()]), "[\"a\" \"b\"]");
    }

    #[test]
    fn times_print_as_go_prints_them() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        assert_eq!(go_time_string(&t("2026-01-02T03:04:05Z")), "2026-01-02 03:04:05 +0000 UTC");
        assert_eq!(go_time_string(&t("2026-01-02T03:04:05.120Z")), "2026-01-02 03:04:05.12 +0000 UTC");
        assert_eq!(go_time_string(&t("2026-01-02T03:04:05+01:00")), "2026-01-02 03:04:05 +0100 +0100");
    }

    #[test]
    fn commands_are_listed_as_the_daemon_lists_them() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(docker_command(&v(&["sh", "-c", "echo hi; sleep 1"])), "sh -c 'echo hi; sleep 1'");
        assert_eq!(docker_command(&v(&["sleep", "1000"])), "sleep 1000");
        assert_eq!(docker_command(&v(&["true"])), "true");
        assert_eq!(docker_command(&[]), "");
    }
}
