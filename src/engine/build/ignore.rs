//! `.dockerignore` patterns, with Docker's rules: one pattern a line, `#` comments, `!` for an
//! exception, paths cleaned and relative to the context root, `*` `?` `[...]` within a path
//! component, `**` for any number of directories, a pattern that matches a directory excludes
//! everything under it, and the last pattern that matches a path decides.

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    exception: bool,
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, p) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            let parts = clean(p);
            if parts.is_empty() {
                continue;
            }
            patterns.push(Pattern { parts, exception });
        }
        Ignore { patterns }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when there are `!` exceptions (an excluded directory must then still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// True when an exception could bring back something under the excluded directory `dir`, so
    /// that it must still be walked.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            for (i, pc) in p.parts.iter().enumerate() {
                if pc == "**" {
                    return true;
                }
                match comps.get(i) {
                    None => return true,
                    Some(c) if !glob_match(pc, c) => return false,
                    Some(_) => {}
                }
            }
            false
        })
    }

    /// True when `path` (relative to the context root, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        if comps.is_empty() {
            return false;
        }
        let mut excluded = false;
        for p in &self.patterns {
            let pat: Vec<&str> = p.parts.iter().map(String::as_str).collect();
            // The path itself, or any of its parent directories.
            let hit = (1..=comps.len()).any(|n| match_parts(&pat, &comps[..n]));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

/// Cleans a pattern as Go's `filepath.Clean` does, without the leading `/`.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn match_parts(pat: &[&str], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(&"**") => (0..=path.len()).any(|i| match_parts(&pat[1..], &path[i..])),
        Some(p) => !path.is_empty() && glob_match(p, path[0]) && match_parts(&pat[1..], &path[1..]),
    }
}

/// Matches one path component against a pattern as Go's `filepath.Match` does: `*` any run of
/// characters, `?` one character, `[a-z]` / `[^a-z]` classes, and `\` escaping the next character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

/// True when `pattern` has a wildcard.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    // `**` inside a component is `*`.
                    while pi < p.len() && p[pi] == '*' {
                        pi += 1;
                    }
                    star = Some((pi, ni));
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((true, len)) = class(&p[pi..], n[ni]) {
                        pi += len;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Matches `c` against the class at the start of `p` (`[...]`): (matched, pattern length).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
            hi = p[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a.txt.bak"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(glob_match("\\*", "*"));
        assert!(!glob_match("\\*", "a"));
        assert!(glob_match("*", ".hidden"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn docker_rules() {
        let i = Ignore::parse("# comment\n*.log\n/build\n**/tmp\n!keep.log\nsecret/\n  \ndocs/**/*.md\n");
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("keep.log"));
        assert!(!i.excluded("sub/a.log"), "a pattern without ** matches at the root only");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/x/y"));
        assert!(i.excluded("tmp"));
        assert!(i.excluded("a/b/tmp/c"));
        assert!(i.excluded("secret/key"));
        assert!(i.excluded("docs/x.md"));
        assert!(i.excluded("docs/a/b/x.md"));
        assert!(!i.excluded("docs/x.txt"));
        assert!(!i.excluded("src/main.rs"));
        let i = Ignore::parse("*\n!src\n!Dockerfile\n");
        assert!(i.excluded("README"));
        assert!(!i.excluded("src"));
        assert!(!i.excluded("src/lib.rs"));
        assert!(i.has_exceptions());
        let i = Ignore::parse("node_modules\nsecrets\n!secrets/public\n!**/keep.md\n");
        assert!(i.may_reinclude_under("secrets"));
        assert!(i.may_reinclude_under("node_modules"), "**/keep.md may be anywhere");
        let i = Ignore::parse("node_modules\nsecrets\n!secrets/public\n");
        assert!(!i.may_reinclude_under("node_modules"));
        let i = Ignore::parse("src\n!src/keep\n");
        assert!(i.excluded("src/other"));
        assert!(!i.excluded("src/keep"));
        assert!(!i.excluded("src/keep/deep"));
        let i = Ignore::parse("./a/../b\n");
        assert!(i.excluded("b"));
        assert!(!i.excluded("a"));
    }
}
