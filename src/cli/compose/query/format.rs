//! Output helpers shared by the query commands, each reproducing what the Docker CLI prints: Go's
//! tabwriter columns, `strconv.Quote`, go-units sizes, `docker ps` port lists, and the small part of
//! Go templates that `--format` strings use.

use std::collections::BTreeMap;

use crate::net::PublishedPort;

/// Go's `text/tabwriter` with `flags == 0`: every cell followed by a tab is padded to its
/// column's width (the widest cell plus `padding`, at least `minwidth`); the last cell of a row
/// is printed as is. Widths count characters.
pub fn tabwrite(rows: &[Vec<String>], minwidth: usize, padding: usize) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count() + padding).max(minwidth);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', widths[i].saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// Go's `strconv.Quote`.
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

/// Go's `%.<prec>g`.
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

/// go-units `HumanSizeWithPrecision`: decimal units (`746B`, `1.05kB`, `23.5MB`).
pub fn human_size(bytes: f64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let (v, u) = scale(bytes, 1000.0, &UNITS);
    format!("{}{}", go_g(v, prec), u)
}

/// go-units `BytesSize`: binary units with four significant digits (`324KiB`, `23.54GiB`).
pub fn bytes_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let (v, u) = scale(bytes, 1024.0, &UNITS);
    format!("{}{}", go_g(v, 4), u)
}

fn scale(mut v: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    (v, units[i])
}

/// A published port as `docker ps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// Empty when the port is exposed but not published.
    pub ip: String,
    pub private: u16,
    pub public: u16,
    pub proto: String,
}

impl PortEntry {
    pub fn from_published(p: &PublishedPort) -> PortEntry {
        PortEntry { ip: p.host_ip.to_string(), private: p.container_port, public: p.host_port, proto: p.protocol.to_string() }
    }
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// The order Docker lists a container's ports in (and compose its `Publishers`): by container
/// port, then host address (`0.0.0.0` before `::`), host port and protocol. One entry per
/// binding the container's state records: a port published on both families shows twice.
pub fn sort_ports(ports: &mut [PortEntry]) {
    ports.sort_by(|a, b| (a.private, &a.ip, a.public, &a.proto).cmp(&(b.private, &b.ip, b.public, &b.proto)));
}

/// The Docker CLI's `DisplayablePorts`: sorted, ranges of same-number mappings grouped, the
/// others as `ip:public->private/proto`.
pub fn displayable_ports(ports: &[PortEntry]) -> String {
    let mut ports = ports.to_vec();
    sort_ports(&mut ports);
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &ports {
        let mut key = p.proto.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                mappings.push(format!("{}->{}/{}", join_host_port(&p.ip, &p.public.to_string()), p.private, p.proto));
                continue;
            }
            key = format!("{}/{}", p.ip, p.proto);
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2.wrapping_add(1) => g.2 = p.private,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    for g in &groups {
        result.push(form_group(&g.0, g.1, g.2));
    }
    result.extend(mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, proto) = match key.rsplit_once('/') {
        Some((ip, proto)) => (ip, proto),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{proto}")
}

/// Go's `time.Time.String()` in the local zone: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(t: &chrono::DateTime<chrono::Utc>) -> String {
    let l = t.with_timezone(&chrono::Local);
    let off = l.offset().local_minus_utc();
    let zone = if off == 0 { "UTC".to_string() } else { l.format("%z").to_string() };
    format!("{} {}", l.format("%Y-%m-%d %H:%M:%S %z"), zone)
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

/// How a listing is printed: a table, JSON, or a Go template (possibly as a table).
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Table,
    Json,
    Template { table: bool, parts: Vec<Part> },
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// `{{.Field}}`, `{{json .Field}}`, `{{.Label "key"}}`.
    Field {
        name: String,
        json: bool,
        arg: Option<String>,
    },
}

impl Format {
    /// Parses `--format`: `table`, `json`, `table TEMPLATE` or `TEMPLATE`.
    pub fn parse(s: &str) -> anyhow::Result<Format> {
        let t = s.trim();
        if t.is_empty() || t == "table" {
            return Ok(Format::Table);
        }
        if t == "json" {
            return Ok(Format::Json);
        }
        let (table, body) = match s.strip_prefix("table ") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        // The Docker CLI turns the two characters `\t` into a tab (and `\n` into a newline).
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format::Template { table, parts: parse_template(&body)? })
    }
}

fn parse_template(s: &str) -> anyhow::Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| anyhow::anyhow!("template parsing error: unclosed action in {s:?}"))?;
        let action = after[..end].trim().trim_start_matches('-').trim_end_matches('-').trim();
        let words = split_words(action);
        let (json, words) = match words.first().map(|w| w.as_str()) {
            Some("json") => (true, &words[1..]),
            _ => (false, &words[..]),
        };
        let field = words.first().ok_or_else(|| anyhow::anyhow!("template parsing error: missing value in {{{{{action}}}}}"))?;
        let name = field.strip_prefix('.').ok_or_else(|| {
            anyhow::anyhow!(
                "template: {action:?}: berth's --format supports only {{{{.Field}}}}, {{{{json .Field}}}} and {{{{.Label \"key\"}}}}"
            )
        })?;
        let arg = words.get(1).map(|a| a.trim_matches('"').to_string());
        parts.push(Part::Field { name: name.to_string(), json, arg });
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Renders the template for one object whose fields are `fields` (JSON values as the
/// formatter sees them). A missing field prints Go's `<no value>`.
pub fn render(parts: &[Part], fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Field { name, json, arg } => {
                let v = match (name.as_str(), arg) {
                    ("Label", Some(k)) => {
                        fields.get("LabelMap").and_then(|m| m.get(k)).cloned().unwrap_or(serde_json::Value::String(String::new()))
                    }
                    _ => fields.get(name).cloned().unwrap_or(serde_json::Value::Null),
                };
                if *json {
                    out.push_str(&v.to_string());
                } else {
                    match v {
                        serde_json::Value::Null => out.push_str("<no value>"),
                        serde_json::Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    }
                }
            }
        }
    }
    out
}

/// The header row of a `table TEMPLATE`: each field's header, the text between kept.
pub fn render_header(parts: &[Part], headers: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Field { name, .. } => match headers.get(name.as_str()) {
                Some(h) => out.push_str(h),
                // Go executes the template on the header map: a field without a header is missing.
                None => out.push_str("<no value>"),
            },
        }
    }
    out
}

/// Splits rendered template lines into tab-separated cells for [`tabwrite`].
pub fn cells(lines: &[String]) -> Vec<Vec<String>> {
    lines.iter().flat_map(|l| l.split('\n').map(|x| x.split('\t').map(String::from).collect::<Vec<_>>()).collect::<Vec<_>>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_pads_like_go() {
        let rows = vec![
            vec!["NAME".to_string(), "IMAGE".into(), "PORTS".into()],
            vec!["qprobe-worker-1".to_string(), "busybox".into(), "".into()],
        ];
        assert_eq!(tabwrite(&rows, 10, 3), "NAME              IMAGE     PORTS\nqprobe-worker-1   busybox   \n");
        let empty = vec![vec!["NAME".to_string(), "IMAGE".into(), "COMMAND".into()]];
        assert_eq!(tabwrite(&empty, 10, 3), "NAME      IMAGE     COMMAND\n");
    }

    #[test]
    fn quote_and_ellipsis_match_docker_ps() {
        let cmd = "sh -c 'i=0; while true; do echo web line $i; done'";
        assert_eq!(go_quote(&ellipsis(cmd, 20)), "\"sh -c 'i=0; while t…\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(ellipsis("short", 20), "short");
    }

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size(746.0, 3), "746B");
        assert_eq!(human_size(1050.0, 3), "1.05kB");
        assert_eq!(human_size(0.0, 3), "0B");
        assert_eq!(human_size(12_345_678.0, 3), "12.3MB");
        assert_eq!(bytes_size(324.0 * 1024.0), "324KiB");
        assert_eq!(bytes_size(25_275_664_384.0), "23.54GiB");
        assert_eq!(bytes_size(1_196_032.0), "1.141MiB");
        assert_eq!(go_g(999.96, 4), "1000");
        assert_eq!(go_g(0.5, 3), "0.5");
    }

    #[test]
    fn ports_as_docker_ps_lists_them() {
        let e = |ip: &str, private, public| PortEntry { ip: ip.into(), private, public, proto: "tcp".into() };
        let ports = vec![e("::", 8080, 32768), e("0.0.0.0", 80, 43500), e("::", 80, 43500), e("0.0.0.0", 8080, 32768)];
        assert_eq!(displayable_ports(&ports), "0.0.0.0:43500->80/tcp, [::]:43500->80/tcp, 0.0.0.0:32768->8080/tcp, [::]:32768->8080/tcp");
        // What `docker compose ps` printed for ["43980:80", "8080", "43981-43982:90-91",
        // "127.0.0.1:43983:53/udp"] with Docker publishing on both families.
        let mut udp = e("127.0.0.1", 53, 43983);
        udp.proto = "udp".into();
        let both = vec![
            e("0.0.0.0", 8080, 32768),
            e("::", 8080, 32768),
            e("0.0.0.0", 91, 43982),
            e("::", 91, 43982),
            e("0.0.0.0", 90, 43981),
            e("::", 90, 43981),
            e("::", 80, 43980),
            e("0.0.0.0", 80, 43980),
            udp,
        ];
        assert_eq!(
            displayable_ports(&both),
            "127.0.0.1:43983->53/udp, 0.0.0.0:43980->80/tcp, [::]:43980->80/tcp, 0.0.0.0:43981->90/tcp, [::]:43981->90/tcp, \
             0.0.0.0:43982->91/tcp, [::]:43982->91/tcp, 0.0.0.0:32768->8080/tcp, [::]:32768->8080/tcp"
        );
        // Only what is recorded: an IPv4-only binding shows once.
        assert_eq!(displayable_ports(&[e("0.0.0.0", 80, 43980)]), "0.0.0.0:43980->80/tcp");
        let same = vec![e("0.0.0.0", 80, 80), e("0.0.0.0", 81, 81), e("", 9000, 0)];
        assert_eq!(displayable_ports(&same), "0.0.0.0:80-81->80-81/tcp, 9000/tcp");
    }

    #[test]
    fn templates_render_fields() {
        let Format::Template { table, parts } = Format::parse("table {{.Name}}\\t{{ .State }} {{json .ExitCode}}").unwrap() else {
            panic!()
        };
        assert!(table);
        let mut m = serde_json::Map::new();
        m.insert("Name".into(), "a".into());
        m.insert("State".into(), "running".into());
        m.insert("ExitCode".into(), 0.into());
        assert_eq!(render(&parts, &m), "a\trunning 0");
        let h = BTreeMap::from([("Name", "NAME"), ("State", "STATE")]);
        assert_eq!(render_header(&parts, &h), "NAME\tSTATE <no value>");
        assert_eq!(Format::parse("json").unwrap(), Format::Json);
        assert!(Format::parse("{{.Name").is_err());
    }
}
