//! Go templates, the part `--format` strings use: text with `{{...}}` actions holding fields
//! (`.Name`, `.Config.Cmd`, `.`), the `.Label "key"` method, string and number literals,
//! pipelines (`{{.Names | lower}}`), `{{- ` and ` -}}` trim markers, comments, and the functions
//! the Docker CLI gives every template (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`,
//! `truncate`) plus Go's `print` and `println`. Control actions (`if`, `range`...) and variables
//! are refused with an error that says what berth supports.
//!
//! Values are JSON values, printed as Go prints them (`[a b]`, `map[k:v]`, `<no value>` for a
//! missing key). A template parses once and runs per row, and runs on the header map for the
//! header line of a `table` listing, where (as in Docker) the string functions leave the column
//! name as it is.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: {0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, TemplateError>;

/// What berth's templates support, for error messages.
const SUPPORTED: &str = "berth's templates support fields ({{.Name}}, {{.Config.Cmd}}, {{.Label \"key\"}}), pipes, and the \
                         functions json, split, join, title, lower, upper, pad, truncate, print and println";

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    /// A pipeline: each command's result is the last argument of the next.
    Action(Vec<Command>),
}

#[derive(Debug, Clone, PartialEq)]
struct Command {
    head: Operand,
    args: Vec<Operand>,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// `.A.B` (empty: `.` itself).
    Field(Vec<String>),
    Func(Func),
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Json,
    Split,
    Join,
    Title,
    Lower,
    Upper,
    Pad,
    Truncate,
    Print,
    Println,
}

impl Func {
    fn named(name: &str) -> Option<Func> {
        Some(match name {
            "json" => Func::Json,
            "split" => Func::Split,
            "join" => Func::Join,
            "title" => Func::Title,
            "lower" => Func::Lower,
            "upper" => Func::Upper,
            "pad" => Func::Pad,
            "truncate" => Func::Truncate,
            "print" => Func::Print,
            "println" => Func::Println,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Func::Json => "json",
            Func::Split => "split",
            Func::Join => "join",
            Func::Title => "title",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Pad => "pad",
            Func::Truncate => "truncate",
            Func::Print => "print",
            Func::Println => "println",
        }
    }

    /// The number of arguments, `None` for any.
    fn arity(self) -> Option<usize> {
        match self {
            Func::Json | Func::Title | Func::Lower | Func::Upper => Some(1),
            Func::Split | Func::Join | Func::Truncate => Some(2),
            Func::Pad => Some(3),
            Func::Print | Func::Println => None,
        }
    }
}

/// The object a template runs on: its fields as JSON, and the labels the `.Label "key"` method
/// reads (Docker's formatters offer it on containers, images, networks and volumes).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub fields: &'a Value,
    pub labels: Option<&'a std::collections::BTreeMap<String, String>>,
}

impl<'a> Row<'a> {
    pub fn new(fields: &'a Value) -> Row<'a> {
        Row { fields, labels: None }
    }

    pub fn with_labels(mut self, labels: &'a std::collections::BTreeMap<String, String>) -> Row<'a> {
        self.labels = Some(labels);
        self
    }
}

/// What an action runs on: a row, or the header map of a table (field name to column name).
#[derive(Clone, Copy)]
enum Dot<'a> {
    Row(&'a Row<'a>),
    Header(&'a [(&'a str, &'a str)]),
}

impl Template {
    /// Parses `text` as it is (no `\t` escapes: see `format::Format::parse` for listings).
    pub fn parse(text: &str) -> Result<Template> {
        let mut nodes = Vec::new();
        let mut rest = text;
        let mut trim_next = false;
        while let Some(start) = rest.find("{{") {
            let mut before = &rest[..start];
            if trim_next {
                before = before.trim_start();
            }
            let inner_start = start + 2;
            let len = action_len(&rest[inner_start..]).ok_or_else(|| TemplateError::Parse(format!("unclosed action in {text:?}")))?;
            let mut inner = &rest[inner_start..inner_start + len];
            if let Some(i) = inner.strip_prefix('-').filter(|i| i.starts_with(is_space)) {
                before = before.trim_end();
                inner = i;
            }
            trim_next = false;
            if let Some(i) = inner.strip_suffix('-').filter(|i| i.ends_with(is_space)) {
                trim_next = true;
                inner = i;
            }
            if !before.is_empty() {
                nodes.push(Node::Text(before.to_string()));
            }
            let inner = inner.trim();
            if !(inner.starts_with("/*") && inner.ends_with("*/") && inner.len() >= 4) {
                nodes.push(Node::Action(parse_pipeline(inner)?));
            }
            rest = &rest[inner_start + len + 2..];
        }
        let rest = if trim_next { rest.trim_start() } else { rest };
        if !rest.is_empty() {
            nodes.push(Node::Text(rest.to_string()));
        }
        Ok(Template { nodes })
    }

    /// Runs the template on `row`.
    pub fn execute(&self, row: &Row) -> Result<String> {
        self.run(Dot::Row(row))
    }

    /// Runs the template on a table's header map, as Docker prints a table's first line: each
    /// field gives its column name (a field without one gives `<no value>`).
    pub fn execute_header(&self, headers: &[(&str, &str)]) -> Result<String> {
        self.run(Dot::Header(headers))
    }

    fn run(&self, dot: Dot) -> Result<String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => out.push_str(&go_value(&eval_pipeline(p, dot)?, true)),
            }
        }
        Ok(out)
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The length of an action's text up to its `}}`, skipping quoted strings.
fn action_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, PartialEq)]
enum Token {
    Pipe,
    Operand(Operand),
}

fn tokenize(action: &str) -> Result<Vec<Token>> {
    let unsupported = |what: &str| TemplateError::Parse(format!("{{{{{action}}}}}: {what} is not supported: {SUPPORTED}"));
    let mut out = Vec::new();
    let mut chars = action.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if is_space(c) => {
                chars.next();
            }
            '|' => {
                chars.next();
                out.push(Token::Pipe);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next().map(|(_, c)| c) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some(c @ ('"' | '\\')) => s.push(c),
                            Some(c) => return Err(TemplateError::Parse(format!("unknown escape \\{c} in {{{{{action}}}}}"))),
                            None => return Err(TemplateError::Parse(format!("unterminated quoted string in {{{{{action}}}}}"))),
                        },
                        Some((_, c)) => s.push(c),
                        None => return Err(TemplateError::Parse(format!("unterminated quoted string in {{{{{action}}}}}"))),
                    }
                }
                out.push(Token::Operand(Operand::Str(s)));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                        None => return Err(TemplateError::Parse(format!("unterminated raw string in {{{{{action}}}}}"))),
                    }
                }
                out.push(Token::Operand(Operand::Str(s)));
            }
            '(' | ')' => return Err(unsupported("a parenthesized pipeline")),
            '$' => return Err(unsupported("a variable")),
            _ => {
                let mut end = action.len();
                while let Some(&(j, c)) = chars.peek() {
                    if is_space(c) || matches!(c, '|' | '"' | '`' | '(' | ')') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                let word = &action[i..end];
                out.push(Token::Operand(word_operand(word, action)?));
            }
        }
    }
    Ok(out)
}

fn word_operand(word: &str, action: &str) -> Result<Operand> {
    if word == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_alphanumeric() || c == '_')) {
            return Err(TemplateError::Parse(format!("bad field {word:?} in {{{{{action}}}}}")));
        }
        return Ok(Operand::Field(parts));
    }
    if word.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return word.parse().map(Operand::Int).map_err(|_| TemplateError::Parse(format!("bad number {word:?} in {{{{{action}}}}}")));
    }
    match word {
        "true" => return Ok(Operand::Bool(true)),
        "false" => return Ok(Operand::Bool(false)),
        "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
            return Err(TemplateError::Parse(format!("{{{{{action}}}}}: the {word:?} action is not supported: {SUPPORTED}")));
        }
        _ => {}
    }
    Func::named(word)
        .map(Operand::Func)
        .ok_or_else(|| TemplateError::Parse(format!("function {word:?} not defined in {{{{{action}}}}}: {SUPPORTED}")))
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>> {
    let tokens = tokenize(action)?;
    if tokens.is_empty() {
        return Err(TemplateError::Parse(format!("missing value for command in {{{{{action}}}}}")));
    }
    let mut cmds = Vec::new();
    for part in tokens.split(|t| *t == Token::Pipe) {
        let mut ops = part.iter().filter_map(|t| match t {
            Token::Operand(o) => Some(o.clone()),
            Token::Pipe => None,
        });
        let head = ops.next().ok_or_else(|| TemplateError::Parse(format!("missing command in {{{{{action}}}}}")))?;
        let args: Vec<Operand> = ops.collect();
        match &head {
            Operand::Func(_) => {}
            Operand::Field(path) if !args.is_empty() && path.last().map(String::as_str) != Some("Label") => {
                return Err(TemplateError::Parse(format!(
                    "{{{{{action}}}}}: .{} is a field and takes no arguments; only .Label \"key\" does",
                    path.join(".")
                )));
            }
            Operand::Field(_) => {}
            _ if !args.is_empty() => return Err(TemplateError::Parse(format!("{{{{{action}}}}}: a constant takes no arguments"))),
            _ => {}
        }
        if !cmds.is_empty() && !matches!(head, Operand::Func(_)) {
            return Err(TemplateError::Parse(format!("{{{{{action}}}}}: only a function can follow a pipe")));
        }
        cmds.push(Command { head, args });
    }
    Ok(cmds)
}

fn eval_pipeline(cmds: &[Command], dot: Dot) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for c in cmds {
        piped = Some(eval_command(c, dot, piped.take())?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn eval_command(c: &Command, dot: Dot, piped: Option<Value>) -> Result<Value> {
    match &c.head {
        Operand::Func(f) => {
            let mut args = c.args.iter().map(|a| eval_operand(a, dot)).collect::<Result<Vec<_>>>()?;
            args.extend(piped);
            call(*f, &args, dot)
        }
        Operand::Field(path) if !c.args.is_empty() => {
            // `.Label "key"` (checked at parse time).
            let [key] = c.args.as_slice() else {
                return Err(TemplateError::Exec(format!("wrong number of args for Label: want 1 got {}", c.args.len())));
            };
            let key = text(&eval_operand(key, dot)?);
            Ok(match dot {
                Dot::Row(r) if path.len() == 1 => Value::String(r.labels.and_then(|l| l.get(&key)).cloned().unwrap_or_default()),
                _ => Value::Null,
            })
        }
        head => eval_operand(head, dot),
    }
}

fn eval_operand(o: &Operand, dot: Dot) -> Result<Value> {
    Ok(match o {
        Operand::Field(path) => match dot {
            Dot::Row(r) => {
                let mut cur = r.fields;
                for k in path {
                    cur = cur.get(k).unwrap_or(&Value::Null);
                }
                cur.clone()
            }
            Dot::Header(h) => match path.as_slice() {
                [name] => h.iter().find(|(k, _)| k == name).map(|(_, v)| Value::String(v.to_string())).unwrap_or(Value::Null),
                _ => Value::Null,
            },
        },
        Operand::Func(f) => call(*f, &[], dot)?,
        Operand::Str(s) => Value::String(s.clone()),
        Operand::Int(i) => Value::from(*i),
        Operand::Bool(b) => Value::Bool(*b),
    })
}

fn call(f: Func, args: &[Value], dot: Dot) -> Result<Value> {
    if let Some(n) = f.arity() {
        if args.len() != n {
            return Err(TemplateError::Exec(format!("wrong number of args for {}: want {n} got {}", f.name(), args.len())));
        }
    }
    // Docker's header functions: the column name stays as it is, except for `pad`.
    if matches!(dot, Dot::Header(_)) && !matches!(f, Func::Pad | Func::Print | Func::Println) {
        return Ok(args[0].clone());
    }
    let int =
        |v: &Value| v.as_i64().ok_or_else(|| TemplateError::Exec(format!("{}: expected an integer, got {}", f.name(), go_value(v, true))));
    Ok(match f {
        Func::Json => Value::String(serde_json::to_string(&args[0]).map_err(|e| TemplateError::Exec(e.to_string()))?),
        Func::Split => {
            let (s, sep) = (text(&args[0]), text(&args[1]));
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(|p| Value::String(p.to_string())).collect()
            };
            Value::Array(parts)
        }
        Func::Join => match &args[0] {
            Value::Array(a) => Value::String(a.iter().map(|v| go_value(v, false)).collect::<Vec<_>>().join(&text(&args[1]))),
            other => return Err(TemplateError::Exec(format!("join: expected a list, got {}", go_value(other, true)))),
        },
        Func::Title => Value::String(title(&text(&args[0]))),
        Func::Lower => Value::String(text(&args[0]).to_lowercase()),
        Func::Upper => Value::String(text(&args[0]).to_uppercase()),
        Func::Pad => {
            let s = text(&args[0]);
            let (pre, post) = (int(&args[1])?.max(0) as usize, int(&args[2])?.max(0) as usize);
            Value::String(if s.is_empty() { s } else { format!("{}{s}{}", " ".repeat(pre), " ".repeat(post)) })
        }
        Func::Truncate => {
            let s = text(&args[0]);
            let n = int(&args[1])?.max(0) as usize;
            Value::String(s.chars().take(n).collect())
        }
        Func::Print => {
            // Go's Sprint: a space between two operands when neither is a string.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !args[i - 1].is_string() && !a.is_string() {
                    out.push(' ');
                }
                out.push_str(&go_value(a, true));
            }
            Value::String(out)
        }
        Func::Println => {
            let mut out = args.iter().map(|a| go_value(a, true)).collect::<Vec<_>>().join(" ");
            out.push('\n');
            Value::String(out)
        }
    })
}

/// A value as a string argument.
fn text(v: &Value) -> String {
    go_value(v, true)
}

/// Go's `strings.Title`: the first letter of each word upper-cased. Words are separated by ASCII
/// characters other than letters, digits and `_`, and by other spaces.
fn title(s: &str) -> String {
    let separates = |c: char| {
        if c.is_ascii() { !(c.is_ascii_alphanumeric() || c == '_') } else { !c.is_alphanumeric() && c.is_whitespace() }
    };
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = separates(c);
    }
    out
}

/// A value as Go's `fmt` prints it: strings raw, lists `[a b]`, maps `map[k:v]` (keys sorted).
/// A missing value is `<no value>` at the top of an action and `<nil>` inside a list or map.
pub fn go_value(v: &Value, top: bool) -> String {
    match v {
        Value::Null if top => "<no value>".into(),
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(|v| go_value(v, false)).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!("map[{}]", m.iter().map(|(k, v)| format!("{k}:{}", go_value(v, false))).collect::<Vec<_>>().join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().execute(&Row::new(v)).unwrap()
    }

    #[test]
    fn fields_paths_and_json() {
        let v = json!({"Id": "sha256:ab", "Name": "n", "Config": {"Cmd": ["sh", "-c"]}, "IPAM": {"Driver": "default"},
                       "Labels": {"a": "b"}, "ExitCode": 0, "Internal": true, "Nothing": null});
        assert_eq!(run("{{.Id}}", &v), "sha256:ab");
        assert_eq!(run("cmd={{.Config.Cmd}}", &v), "cmd=[sh -c]");
        assert_eq!(run("{{json .Config.Cmd}}", &v), r#"["sh","-c"]"#);
        assert_eq!(run("{{.Name}}\t{{.IPAM.Driver}}", &v), "n\tdefault");
        assert_eq!(run("{{json .Labels}}", &v), "{\"a\":\"b\"}");
        assert_eq!(run("{{.Labels}}", &v), "map[a:b]");
        assert_eq!(run("{{ .ExitCode }} {{.Internal}}", &v), "0 true");
        assert_eq!(run("{{.Missing}}|{{.Nothing}}|{{.Config.Missing.Deeper}}", &v), "<no value>|<no value>|<no value>");
        assert_eq!(run("{{json .Missing}}", &v), "null");
        assert_eq!(run("{{json .}}", &json!({"a": 1})), "{\"a\":1}");
        assert_eq!(run("{{.}}", &json!(["x", null])), "[x <nil>]");
    }

    #[test]
    fn lists_split_and_join() {
        let v = json!({"Name": "web-1", "Names": ["a", "b"], "Csv": "x,y", "Empty": ""});
        assert_eq!(run("{{join .Names \",\"}}", &v), "a,b");
        assert_eq!(run("{{split .Csv \",\"}}", &v), "[x y]");
        assert_eq!(run("{{split .Name \"\"}}", &v), "[w e b - 1]");
    }

    #[test]
    fn docker_string_functions_and_pipes() {
        let v = json!({"Name": "web-1", "Names": ["a", "b"], "Csv": "x,y", "Empty": ""});
        assert_eq!(
            run("{{upper .Name}} {{.Name | upper}} {{lower \"ABC\"}} {{title \"hello big-world\"}}", &v),
            "WEB-1 WEB-1 abc Hello Big-World"
        );
        assert_eq!(run("{{title \"élan·x under_score\"}}", &v), "Élan·x Under_score");
        assert_eq!(run("{{truncate .Name 3}}|{{truncate .Name 30}}", &v), "web|web-1");
        assert_eq!(run("[{{pad .Name 1 2}}][{{pad .Empty 1 2}}]", &v), "[ web-1  ][]");
        assert_eq!(run("{{println .Name}}", &v), "web-1\n");
        assert_eq!(run("{{print 1 2 \"a\" 3}}", &v), "1 2a3");
        assert_eq!(run("{{split .Csv \",\" | json}}", &v), "[\"x\",\"y\"]");
        // As in Go, the piped value is the last argument.
        assert_eq!(run("{{\",\" | split .Csv | json}}", &v), "[\"x\",\"y\"]");
        assert_eq!(run("{{json .Name | upper}}", &v), "\"WEB-1\"");
    }

    #[test]
    fn trim_markers_comments_and_literals() {
        let v = json!({"A": "a", "B": "b"});
        assert_eq!(run("x  {{- .A -}}  y", &v), "xay");
        assert_eq!(run("{{.A}} {{/* a comment */}}{{.B}}", &v), "a b");
        assert_eq!(run("{{- /* only */ -}} {{.A}}", &v), "a");
        assert_eq!(run("{{\"}}\"}}{{`raw\\t`}}", &v), "}}raw\\t");
    }

    #[test]
    fn labels_and_headers() {
        let labels = std::collections::BTreeMap::from([("tier".to_string(), "web".to_string())]);
        let v = json!({"Name": "n"});
        let t = Template::parse("{{.Name}}\t{{.Label \"tier\"}}\t{{.Label \"none\"}}|{{json .Name}}").unwrap();
        assert_eq!(t.execute(&Row::new(&v).with_labels(&labels)).unwrap(), "n\tweb\t|\"n\"");
        // The header line: each field's column name; string functions keep it, pad applies.
        let h = [("Name", "NAME"), ("State", "STATE")];
        assert_eq!(t.execute_header(&h).unwrap(), "NAME\t<no value>\t<no value>|NAME");
        let t = Template::parse("{{upper .Name}} {{pad .State 1 0}} {{.Other}}").unwrap();
        assert_eq!(t.execute_header(&h).unwrap(), "NAME  STATE <no value>");
    }

    #[test]
    fn errors_say_what_is_supported() {
        for bad in ["{{.Name", "{{range .X}}{{end}}", "{{$x := 1}}", "{{nope .X}}", "{{(.A)}}", "{{}}", "{{.A | .B}}", "{{.Name \"x\"}}"] {
            let e = Template::parse(bad).unwrap_err();
            assert!(matches!(e, TemplateError::Parse(_)), "{bad}: {e}");
        }
        let e = Template::parse("{{range .X}}").unwrap_err().to_string();
        assert!(e.contains("berth's templates support fields"), "{e}");
        let v = json!({"S": "x"});
        let t = Template::parse("{{join .S \",\"}}").unwrap();
        assert!(t.execute(&Row::new(&v)).unwrap_err().to_string().contains("join: expected a list"));
        let t = Template::parse("{{upper}}").unwrap();
        assert_eq!(t.execute(&Row::new(&v)).unwrap_err(), TemplateError::Exec("wrong number of args for upper: want 1 got 0".into()));
    }
}
