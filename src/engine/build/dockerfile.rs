//! The Dockerfile parser: parser directives (`escape`, `syntax`, `check`), comments, line
//! continuations, heredocs, JSON and shell forms, flags, and the split into stages. Variables are
//! not expanded here: that needs the build's arguments and each stage's environment, so it happens
//! as the build runs ([`super::shell`]).

use std::collections::BTreeMap;

/// A parse error: the file, the line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

/// The arguments of a command instruction (RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// JSON (exec) form: run as given.
    Exec(Vec<String>),
    /// Shell form: run with the stage's SHELL.
    Shell(String),
}

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body, each line with its newline (leading tabs removed for `<<-`).
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`): no variable expansion in the body.
    pub expand: bool,
}

/// One flag (`--from=builder`); `value` is `None` for a bare `--link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// HEALTHCHECK's options, as written (durations are parsed when the config is written).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthOpts {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySpec {
    /// Sources as written (unexpanded), or heredoc names for `<<EOF` sources.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub checksum: Option<String>,
    pub exclude: Vec<String>,
    pub heredocs: Vec<Heredoc>,
    /// The JSON form was used (no word splitting of the sources).
    pub json: bool,
}

/// One instruction, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `ARG a=1 b`: names with their default (unexpanded).
    Arg(Vec<(String, Option<String>)>),
    /// ENV and LABEL pairs; values unexpanded (quotes kept).
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Run {
        cmd: Command,
        mounts: Vec<String>,
        network: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Copy(CopySpec),
    Add(CopySpec),
    Cmd(Command),
    Entrypoint(Command),
    /// Unexpanded text (split into words after expansion).
    Expose(String),
    Volume(VolumeArgs),
    Workdir(String),
    User(String),
    Healthcheck {
        cmd: Option<Command>,
        opts: HealthOpts,
    },
    Stopsignal(String),
    Shell(Vec<String>),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeArgs {
    Json(Vec<String>),
    Text(String),
}

/// An instruction and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The line it starts on (1-based).
    pub line: usize,
    /// `KEYWORD rest`, continuations joined, as shown in progress and history.
    pub text: String,
    pub kind: Kind,
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lowercased.
    pub name: Option<String>,
    pub from: Instruction,
    pub steps: Vec<Instruction>,
}

impl Stage {
    /// The name shown in progress: the `AS` name, else `stage-N`.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The name errors show (the path as the user gave it).
    pub file: String,
    pub escape: char,
    /// The ARGs before the first FROM.
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The index of the stage called `name` (or given by number).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < self.stages.len()))
    }
}

/// A line of the file after directives: its number and text.
struct RawLine<'a> {
    no: usize,
    text: &'a str,
}

/// Parses `src`, naming `file` in errors.
pub fn parse(file: &str, src: &str) -> Result<Dockerfile, ParseError> {
    let err = |line: usize, msg: String| ParseError { file: file.to_string(), line, msg };
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<RawLine> =
        src.split('\n').enumerate().map(|(i, t)| RawLine { no: i + 1, text: t.strip_suffix('\r').unwrap_or(t) }).collect();

    // Parser directives: only at the very top, before any comment, blank line or instruction.
    let mut escape = '\\';
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i].text) else { break };
        if let Some(first) = seen.get(&key) {
            return Err(err(lines[i].no, format!("only one {key} parser directive can be used (the first is on line {first})")));
        }
        seen.insert(key.clone(), lines[i].no);
        if key == "escape" {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => return Err(err(lines[i].no, format!("invalid escape token {value:?}: it must be ` or \\"))),
            };
        }
        i += 1;
    }

    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    while i < lines.len() {
        let start = lines[i].no;
        let trimmed = lines[i].text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        // Join continuation lines; comment and blank lines inside are dropped.
        let mut joined = String::new();
        let mut cur = trimmed.to_string();
        loop {
            match strip_continuation(&cur, escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    let mut next = None;
                    while i < lines.len() {
                        let t = lines[i].text.trim_start();
                        if t.starts_with('#') || t.is_empty() {
                            i += 1;
                            continue;
                        }
                        next = Some(lines[i].text.to_string());
                        break;
                    }
                    match next {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
                None => {
                    joined.push_str(&cur);
                    i += 1;
                    break;
                }
            }
        }
        let joined = joined.trim().to_string();
        let (word, rest) = match joined.find(|c: char| c.is_whitespace()) {
            Some(p) => (&joined[..p], joined[p..].trim_start()),
            None => (joined.as_str(), ""),
        };
        let keyword = word.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(err(start, format!("unknown instruction: {word}")));
        }
        // Heredocs: the lines after the instruction, up to each terminator.
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            for (name, strip_tabs, expand) in heredoc_markers(rest, escape) {
                let mut content = String::new();
                loop {
                    if i >= lines.len() {
                        return Err(err(start, format!("unterminated heredoc: no line {name:?} ends the heredoc started here")));
                    }
                    let mut l = lines[i].text;
                    i += 1;
                    if strip_tabs {
                        l = l.trim_start_matches('\t');
                    }
                    if l == name {
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                heredocs.push(Heredoc { name, content, expand });
            }
        }
        let text = format!("{keyword}{}{}", if rest.is_empty() { "" } else { " " }, rest);
        let kind = instruction(&keyword, rest, heredocs, escape).map_err(|m| err(start, m))?;
        let ins = Instruction { line: start, text, kind };
        match &ins.kind {
            Kind::From { name, .. } => {
                let name = name.clone();
                if let Some(n) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(err(start, format!("duplicate stage name {n:?}")));
                    }
                }
                stages.push(Stage { index: stages.len(), name, from: ins, steps: Vec::new() });
            }
            Kind::Arg(_) if stages.is_empty() => meta_args.push(ins),
            _ => match stages.last_mut() {
                Some(s) => s.steps.push(ins),
                None => {
                    return Err(err(
                        start,
                        format!("{keyword} before FROM: a Dockerfile must begin with FROM (only ARG may come before it)"),
                    ));
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(err(lines.len().max(1), "the Dockerfile has no FROM instruction".into()));
    }
    Ok(Dockerfile { file: file.to_string(), escape, meta_args, stages })
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "LABEL",
    "RUN",
    "COPY",
    "ADD",
    "CMD",
    "ENTRYPOINT",
    "EXPOSE",
    "VOLUME",
    "WORKDIR",
    "USER",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "SHELL",
    "MAINTAINER",
    "ONBUILD",
];

/// `# key=value` at the top of the file, for the known directive keys.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (k, v) = rest.split_once('=')?;
    let key = k.trim().to_ascii_lowercase();
    if !matches!(key.as_str(), "escape" | "syntax" | "check") || k.trim().contains(char::is_whitespace) {
        return None;
    }
    Some((key, v.trim().to_string()))
}

/// The line without its trailing escape character, if it ends with one.
fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    let t = line.trim_end_matches([' ', '\t']);
    t.strip_suffix(escape)
}

/// The heredoc markers in an instruction's arguments: (name, strip tabs, expand).
fn heredoc_markers(rest: &str, escape: char) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '<' && chars.get(i + 1) == Some(&'<') && chars.get(i + 2) != Some(&'<') => {
                let mut j = i + 2;
                let strip = chars.get(j) == Some(&'-');
                if strip {
                    j += 1;
                }
                let q = chars.get(j).copied().filter(|c| *c == '"' || *c == '\'');
                if q.is_some() {
                    j += 1;
                }
                let start = j;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '-' || chars[j] == '.') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                let closed = match q {
                    Some(q) if chars.get(j) == Some(&q) => {
                        j += 1;
                        true
                    }
                    Some(_) => false,
                    None => true,
                };
                if !name.is_empty() && closed {
                    out.push((name, strip, q.is_none()));
                    i = j;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

/// Splits leading `--flag[=value]` words off `rest`.
fn take_flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(after) = r.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        if word.is_empty() {
            r = after[end..].trim_start();
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_ascii_lowercase(), Some(unquote(v))),
            None => (word.to_ascii_lowercase(), None),
        };
        flags.push(Flag { name, value });
        r = after[end..].trim_start();
    }
    (flags, r)
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// The JSON array of strings in `rest`, if it is one.
fn json_list(rest: &str) -> Option<Vec<String>> {
    let t = rest.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(rest: &str) -> Command {
    match json_list(rest) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(rest.to_string()),
    }
}

fn check_flags(keyword: &str, flags: &[Flag], allowed: &[&str]) -> Result<(), String> {
    for f in flags {
        if !allowed.contains(&f.name.as_str()) {
            let known = if allowed.is_empty() { "it takes no flags".to_string() } else { format!("it takes --{}", allowed.join(", --")) };
            return Err(format!("unknown flag for {keyword}: --{} ({known})", f.name));
        }
    }
    Ok(())
}

fn flag_value(flags: &[Flag], name: &str, keyword: &str) -> Result<Option<String>, String> {
    let mut out = None;
    for f in flags.iter().filter(|f| f.name == name) {
        match &f.value {
            Some(v) => out = Some(v.clone()),
            None => return Err(format!("{keyword} --{name} needs a value (--{name}=...)")),
        }
    }
    Ok(out)
}

/// `KEY=VALUE ...` (or the legacy `KEY VALUE`), for ENV and LABEL.
fn name_values(keyword: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = super::shell::split_raw(rest, escape);
    if words.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    if !words[0].contains('=') {
        // The legacy form: the first word is the name, the rest of the line the value.
        let name = words[0].clone();
        let value = rest.trim_start()[name.len()..].trim().to_string();
        if value.is_empty() {
            return Err(format!("{keyword} {name} needs a value: write {keyword} {name}=VALUE"));
        }
        return Ok(vec![(name, value)]);
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => return Err(format!("{keyword}: {w:?} is not of the form NAME=VALUE")),
        }
    }
    Ok(out)
}

fn instruction(keyword: &str, rest: &str, heredocs: Vec<Heredoc>, escape: char) -> Result<Kind, String> {
    let (flags, rest) = take_flags(rest);
    let need_args =
        |what: &str| -> Result<(), String> { if rest.trim().is_empty() { Err(format!("{keyword} requires {what}")) } else { Ok(()) } };
    Ok(match keyword {
        "FROM" => {
            check_flags(keyword, &flags, &["platform"])?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let (image, name) = match words.as_slice() {
                [image] => (image.to_string(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let n = name.to_ascii_lowercase();
                    if !n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
                    {
                        return Err(format!(
                            "invalid stage name {name:?}: it must start with a letter and hold only letters, digits, '_', '-' and '.'"
                        ));
                    }
                    (image.to_string(), Some(n))
                }
                _ => return Err("FROM takes an image and an optional `AS name`: FROM [--platform=P] IMAGE [AS NAME]".into()),
            };
            Kind::From { image, name, platform: flag_value(&flags, "platform", keyword)? }
        }
        "ARG" => {
            check_flags(keyword, &flags, &[])?;
            need_args("a name")?;
            let mut out = Vec::new();
            for w in super::shell::split_raw(rest, escape) {
                let (k, v) = match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (w.clone(), None),
                };
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                    return Err(format!("invalid ARG name {k:?}"));
                }
                out.push((k, v));
            }
            Kind::Arg(out)
        }
        "ENV" => {
            check_flags(keyword, &flags, &[])?;
            Kind::Env(name_values(keyword, rest, escape)?)
        }
        "LABEL" => {
            check_flags(keyword, &flags, &[])?;
            Kind::Label(name_values(keyword, rest, escape)?)
        }
        "MAINTAINER" => {
            check_flags(keyword, &flags, &[])?;
            need_args("a name")?;
            Kind::Maintainer(rest.trim().to_string())
        }
        "RUN" => {
            check_flags(keyword, &flags, &["mount", "network", "security"])?;
            need_args("a command")?;
            let mut mounts = Vec::new();
            for f in flags.iter().filter(|f| f.name == "mount") {
                mounts.push(f.value.clone().ok_or("RUN --mount needs a value (--mount=type=cache,target=/path)")?);
            }
            if let Some(sec) = flag_value(&flags, "security", keyword)? {
                if sec != "sandbox" {
                    return Err(format!("RUN --security={sec} is not supported by berth: build steps always run sandboxed"));
                }
            }
            let network = flag_value(&flags, "network", keyword)?;
            if let Some(n) = &network {
                if !matches!(n.as_str(), "default" | "none" | "host") {
                    return Err(format!("RUN --network={n}: use default, none or host"));
                }
            }
            Kind::Run { cmd: command(rest), mounts, network, heredocs }
        }
        "COPY" | "ADD" => {
            let allowed: &[&str] = if keyword == "COPY" {
                &["from", "chown", "chmod", "link", "exclude", "parents"]
            } else {
                &["chown", "chmod", "link", "exclude", "checksum", "keep-git-dir"]
            };
            check_flags(keyword, &flags, allowed)?;
            if flags.iter().any(|f| f.name == "parents") {
                return Err(format!("{keyword} --parents is not supported by berth yet: copy each directory with its own {keyword}"));
            }
            if flags.iter().any(|f| f.name == "keep-git-dir") {
                return Err("ADD --keep-git-dir is not supported: berth does not add git repositories; clone in a RUN step".into());
            }
            let (mut words, json) = match json_list(rest) {
                Some(v) => (v, true),
                None => (super::shell::split_raw(rest, escape), false),
            };
            if words.len() < 2 {
                return Err(format!("{keyword} requires at least two arguments, but got {}: {keyword} SOURCE... DEST", words.len()));
            }
            let dest = words.pop().unwrap_or_default();
            let spec = CopySpec {
                sources: words,
                dest,
                from: flag_value(&flags, "from", keyword)?,
                chown: flag_value(&flags, "chown", keyword)?,
                chmod: flag_value(&flags, "chmod", keyword)?,
                checksum: flag_value(&flags, "checksum", keyword)?,
                exclude: flags.iter().filter(|f| f.name == "exclude").filter_map(|f| f.value.clone()).collect(),
                heredocs,
                json,
            };
            if keyword == "COPY" { Kind::Copy(spec) } else { Kind::Add(spec) }
        }
        "CMD" => {
            check_flags(keyword, &flags, &[])?;
            Kind::Cmd(command(rest))
        }
        "ENTRYPOINT" => {
            check_flags(keyword, &flags, &[])?;
            Kind::Entrypoint(command(rest))
        }
        "EXPOSE" => {
            check_flags(keyword, &flags, &[])?;
            need_args("at least one port")?;
            Kind::Expose(rest.to_string())
        }
        "VOLUME" => {
            check_flags(keyword, &flags, &[])?;
            need_args("at least one path")?;
            Kind::Volume(match json_list(rest) {
                Some(v) => VolumeArgs::Json(v),
                None => VolumeArgs::Text(rest.to_string()),
            })
        }
        "WORKDIR" => {
            check_flags(keyword, &flags, &[])?;
            need_args("a path")?;
            Kind::Workdir(rest.trim().to_string())
        }
        "USER" => {
            check_flags(keyword, &flags, &[])?;
            need_args("a user")?;
            Kind::User(rest.trim().to_string())
        }
        "STOPSIGNAL" => {
            check_flags(keyword, &flags, &[])?;
            need_args("a signal")?;
            Kind::Stopsignal(rest.trim().to_string())
        }
        "SHELL" => {
            check_flags(keyword, &flags, &[])?;
            match json_list(rest) {
                Some(v) if !v.is_empty() => Kind::Shell(v),
                _ => return Err("SHELL requires the JSON form: SHELL [\"executable\", \"parameters\"]".into()),
            }
        }
        "HEALTHCHECK" => {
            check_flags(keyword, &flags, &["interval", "timeout", "start-period", "start-interval", "retries"])?;
            let opts = HealthOpts {
                interval: flag_value(&flags, "interval", keyword)?,
                timeout: flag_value(&flags, "timeout", keyword)?,
                start_period: flag_value(&flags, "start-period", keyword)?,
                start_interval: flag_value(&flags, "start-interval", keyword)?,
                retries: flag_value(&flags, "retries", keyword)?,
            };
            let t = rest.trim();
            let (word, after) = match t.find(char::is_whitespace) {
                Some(p) => (&t[..p], t[p..].trim_start()),
                None => (t, ""),
            };
            if word.eq_ignore_ascii_case("NONE") {
                if !after.is_empty() || !flags.is_empty() {
                    return Err("HEALTHCHECK NONE takes no arguments or flags".into());
                }
                Kind::Healthcheck { cmd: None, opts }
            } else if word.eq_ignore_ascii_case("CMD") {
                if after.is_empty() {
                    return Err("HEALTHCHECK CMD requires a command".into());
                }
                Kind::Healthcheck { cmd: Some(command(after)), opts }
            } else {
                return Err("HEALTHCHECK takes NONE or CMD followed by a command".into());
            }
        }
        "ONBUILD" => {
            return Err("ONBUILD is not supported by berth: it runs triggers of the base image in this build; \
                 write those instructions in this Dockerfile instead"
                .into());
        }
        other => return Err(format!("unknown instruction: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Dockerfile {
        parse("Dockerfile", src).unwrap()
    }
    fn perr(src: &str) -> ParseError {
        parse("Dockerfile", src).unwrap_err()
    }

    #[test]
    fn continuations_comments_and_stages() {
        let d = p(
            "# syntax=docker/dockerfile:1\nARG V=1\nFROM busybox:$V AS Base\n# a comment\nRUN echo a \\\n  # inside\n\n  && echo b\nFROM base\nCOPY --from=base /a /b\n",
        );
        assert_eq!(d.meta_args.len(), 1);
        assert_eq!(d.stages.len(), 2);
        assert_eq!(d.stages[0].name.as_deref(), Some("base"));
        assert_eq!(d.stages[0].steps[0].line, 5);
        assert_eq!(
            d.stages[0].steps[0].kind,
            Kind::Run { cmd: Command::Shell("echo a   && echo b".into()), mounts: vec![], network: None, heredocs: vec![] }
        );
        match &d.stages[1].steps[0].kind {
            Kind::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("base"));
                assert_eq!(c.sources, vec!["/a"]);
                assert_eq!(c.dest, "/b");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(d.stage_index("BASE"), Some(0));
        assert_eq!(d.stage_index("1"), Some(1));
    }

    #[test]
    fn escape_directive() {
        let d = p("# escape=`\nFROM scratch\nENV A=1 `\n B=2\nCOPY a\\b c\\\n");
        assert_eq!(d.escape, '`');
        assert_eq!(d.stages[0].steps[0].kind, Kind::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())]));
        // After the first instruction a directive is a comment.
        let d = p("FROM scratch\n# escape=`\nRUN a \\\n b\n");
        assert_eq!(d.escape, '\\');
        assert_eq!(perr("# escape=x\nFROM scratch\n").line, 1);
    }

    #[test]
    fn json_and_shell_forms() {
        let d = p("FROM scratch\nCMD [\"a\", \"b c\"]\nENTRYPOINT echo hi\nSHELL [\"/bin/bash\", \"-c\"]\nCMD [not json\n");
        assert_eq!(d.stages[0].steps[0].kind, Kind::Cmd(Command::Exec(vec!["a".into(), "b c".into()])));
        assert_eq!(d.stages[0].steps[1].kind, Kind::Entrypoint(Command::Shell("echo hi".into())));
        assert_eq!(d.stages[0].steps[2].kind, Kind::Shell(vec!["/bin/bash".into(), "-c".into()]));
        assert_eq!(d.stages[0].steps[3].kind, Kind::Cmd(Command::Shell("[not json".into())));
        assert!(perr("FROM scratch\nSHELL /bin/sh -c\n").msg.contains("JSON"));
    }

    #[test]
    fn heredocs() {
        let d = p("FROM scratch\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-\"A\" <<B /dst/\n\tx $y\n\tA\nb\nB\nENV Z=1\n");
        match &d.stages[0].steps[0].kind {
            Kind::Run { heredocs, cmd, .. } => {
                assert_eq!(cmd, &Command::Shell("<<EOF".into()));
                assert_eq!(heredocs, &vec![Heredoc { name: "EOF".into(), content: "echo $HOME\n".into(), expand: true }]);
            }
            k => panic!("{k:?}"),
        }
        match &d.stages[0].steps[1].kind {
            Kind::Copy(c) => {
                assert_eq!(c.heredocs.len(), 2);
                assert_eq!(c.heredocs[0], Heredoc { name: "A".into(), content: "x $y\n".into(), expand: false });
                assert_eq!(c.heredocs[1].content, "b\n");
                assert_eq!(c.dest, "/dst/");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(d.stages[0].steps[2].line, 10);
        assert!(perr("FROM scratch\nRUN <<EOF\nnever ends\n").msg.contains("unterminated"));
    }

    #[test]
    fn env_forms() {
        let d = p("FROM scratch\nENV A \"x y\" z\nLABEL a=\"1 2\" b=3\n");
        assert_eq!(d.stages[0].steps[0].kind, Kind::Env(vec![("A".into(), "\"x y\" z".into())]));
        assert_eq!(d.stages[0].steps[1].kind, Kind::Label(vec![("a".into(), "\"1 2\"".into()), ("b".into(), "3".into())]));
        assert!(perr("FROM scratch\nENV A\n").msg.contains("needs a value"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = perr("FROM scratch\n\nFOO bar\n");
        assert_eq!((e.line, e.msg.as_str()), (3, "unknown instruction: FOO"));
        assert_eq!(e.to_string(), "Dockerfile:3: unknown instruction: FOO");
        assert!(perr("FROM scratch\nONBUILD RUN x\n").msg.starts_with("ONBUILD is not supported"));
        assert!(perr("RUN x\nFROM scratch\n").msg.contains("must begin with FROM"));
        assert!(perr("# nothing\n").msg.contains("no FROM"));
        assert!(perr("FROM scratch\nCOPY --nope=1 a b\n").msg.contains("unknown flag"));
        assert!(perr("FROM scratch\nCOPY a\n").msg.contains("at least two"));
        assert!(perr("FROM a AS x\nFROM b AS X\n").msg.contains("duplicate"));
    }
}
