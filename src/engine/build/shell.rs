//! Variable expansion and quote removal in Dockerfile words, as Docker's builder does it
//! (`$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`,
//! `${VAR?msg}`, single and double quotes, and the escape character).

/// Looks a variable up; `None` when it is unset.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Expands one word: quotes are removed, variables are substituted.
pub fn expand(word: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut words = Lexer { chars: word.chars().collect(), pos: 0, escape, vars, split: false }.run()?;
    Ok(words.pop().unwrap_or_default())
}

/// Expands a line into words split on unquoted whitespace (e.g. the arguments of EXPOSE).
pub fn expand_words(line: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    Lexer { chars: line.chars().collect(), pos: 0, escape, vars, split: true }.run()
}

/// Splits a line into words on unquoted whitespace, keeping quotes and escapes in the words (for
/// `KEY=VALUE` lists, whose values are expanded later).
pub fn split_raw(line: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                cur.push(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
    split: bool,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn run(&mut self) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.next() {
            if self.split && c.is_whitespace() {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            if c == self.escape {
                match self.next() {
                    Some(n) => cur.push(n),
                    None => cur.push(c),
                }
            } else if c == '\'' {
                self.single_quoted(&mut cur)?;
            } else if c == '"' {
                self.double_quoted(&mut cur)?;
            } else if c == '$' {
                self.dollar(&mut cur)?;
            } else {
                cur.push(c);
            }
        }
        if in_word || !self.split {
            words.push(cur);
        }
        Ok(words)
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.next() {
                Some('\'') => return Ok(()),
                Some(c) => out.push(c),
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.next() {
                Some('"') => return Ok(()),
                Some('$') => self.dollar(out)?,
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// The text up to the closing brace, itself expanded (for `${VAR:-word}`).
    fn brace_word(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => self.dollar(&mut out)?,
                Some('\'') => self.single_quoted(&mut out)?,
                Some('"') => self.double_quoted(&mut out)?,
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err("missing '}' in variable substitution".into()),
            }
        }
    }

    fn dollar(&mut self, out: &mut String) -> Result<(), String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err("bad substitution: a ${...} needs a variable name".into());
                }
                let value = self.vars.get(&name);
                match self.next() {
                    Some('}') => out.push_str(&value.unwrap_or_default()),
                    Some(':') => {
                        let op = self.next();
                        let word = self.brace_word()?;
                        let set = value.as_deref().is_some_and(|v| !v.is_empty());
                        match op {
                            Some('-') => out.push_str(&if set { value.unwrap_or_default() } else { word }),
                            Some('+') => out.push_str(if set { &word } else { "" }),
                            Some('?') if set => out.push_str(&value.unwrap_or_default()),
                            Some('?') => {
                                return Err(if word.is_empty() {
                                    format!("{name}: is not allowed to be unset")
                                } else {
                                    format!("{name}: {word}")
                                });
                            }
                            _ => return Err(format!("unsupported modifier in ${{{name}:...}}: use :-, :+ or :?")),
                        }
                    }
                    Some(op @ ('-' | '+' | '?')) => {
                        let word = self.brace_word()?;
                        let set = value.is_some();
                        match op {
                            '-' => out.push_str(&if set { value.unwrap_or_default() } else { word }),
                            '+' => out.push_str(if set { &word } else { "" }),
                            _ if set => out.push_str(&value.unwrap_or_default()),
                            _ => {
                                return Err(if word.is_empty() {
                                    format!("{name}: is not allowed to be unset")
                                } else {
                                    format!("{name}: {word}")
                                });
                            }
                        }
                    }
                    Some(c) => return Err(format!("unsupported modifier {c:?} in ${{{name}...}}: use :-, -, :+, +, :? or ?")),
                    None => return Err("missing '}' in variable substitution".into()),
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                out.push_str(&self.vars.get(&name).unwrap_or_default());
            }
            _ => out.push('$'),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "E" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_docker() {
        let x = |w: &str| expand(w, &env, '\\').unwrap();
        assert_eq!(x("$A"), "apple");
        assert_eq!(x("${A}s"), "apples");
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A pie\""), "apple pie");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("${B:-dflt}"), "dflt");
        assert_eq!(x("${E:-dflt}"), "dflt");
        assert_eq!(x("${E-dflt}"), "");
        assert_eq!(x("${A:+yes}"), "yes");
        assert_eq!(x("${B:+yes}"), "");
        assert_eq!(x("${B:-$A}"), "apple");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$B"), "");
        assert!(expand("${B:?needed}", &env, '\\').unwrap_err().contains("needed"));
        assert!(expand("'open", &env, '\\').is_err());
        assert!(expand("${A", &env, '\\').is_err());
        assert_eq!(expand("`$A", &env, '`').unwrap(), "$A");
    }

    #[test]
    fn splits_words() {
        assert_eq!(expand_words("80/tcp  $A \"x y\"", &env, '\\').unwrap(), vec!["80/tcp", "apple", "x y"]);
        assert_eq!(split_raw("a=1 b=\"x y\" c='$d'", '\\'), vec!["a=1", "b=\"x y\"", "c='$d'"]);
        assert_eq!(split_raw("a=x\\ y", '\\'), vec!["a=x\\ y"]);
    }
}
