//! Durations, byte sizes and command lines, parsed and printed as Docker Compose does.

/// Parses a Go duration (`1h2m3.5s`, `300ms`, `10us`, `0`) into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid duration {s:?}: expected a number with a unit such as 10s, 1m30s, 500ms or 2h");
    let t = s.trim();
    let (neg, mut rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        total += n * mult;
    }
    let v = total.round() as i64;
    Ok(if neg { -v } else { v })
}

/// Prints nanoseconds as Go's `time.Duration.String()` (`1m30s`, `1.5s`, `500ms`, `1h2m0s`).
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // sub-second: ns, µs or ms with a fraction
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let rem = u % 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&frac(rem, 1_000_000_000));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses a byte size as Docker does (`RAMInBytes`): `512`, `64m`, `1.5GB`, `2g`, `10KiB`;
/// units are powers of 1024.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size {s:?}: expected a number of bytes, optionally with a unit b, k, m, g, t or p (such as 512m or 1g)");
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    if num_end == 0 {
        if let Some(r) = t.strip_prefix('-') {
            return parse_bytes(r).map(|v| -v);
        }
        return Err(bad());
    }
    let n: f64 = t[..num_end].parse().map_err(|_| bad())?;
    let unit = t[num_end..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// Splits a command line as a POSIX shell would, without expansion (`a "b c" 'd'` gives three
/// words).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match it.next() {
                    Some('\n') => {}
                    Some(ch) => cur.push(ch),
                    None => {}
                }
            }
            ch => {
                in_word = true;
                cur.push(ch);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_as_go_prints_them() {
        for (i, o) in [
            ("90s", "1m30s"),
            ("1.5s", "1.5s"),
            ("1h2m", "1h2m0s"),
            ("10ms", "10ms"),
            ("1m", "1m0s"),
            ("0", "0s"),
            ("2us", "2µs"),
            ("1h", "1h0m0s"),
        ] {
            assert_eq!(format_duration(parse_duration(i).unwrap()), o, "{i}");
        }
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("50M").unwrap(), 52428800);
        assert_eq!(parse_bytes("1g").unwrap(), 1073741824);
        assert_eq!(parse_bytes("1.5GB").unwrap(), 1610612736);
        assert_eq!(parse_bytes("10KiB").unwrap(), 10240);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1x").is_err());
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_split(r#"/bin/sh -c 'echo "$HOME"'"#).unwrap(), vec!["/bin/sh", "-c", "echo \"$HOME\""]);
        assert_eq!(shell_split(r#"a "b c" d\ e"#).unwrap(), vec!["a", "b c", "d e"]);
        assert_eq!(shell_split("sleep infinity").unwrap(), vec!["sleep", "infinity"]);
        assert!(shell_split("'open").is_err());
    }
}
