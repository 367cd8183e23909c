//! `--change` instructions for `image import` (as `docker import -c`): a subset of Dockerfile
//! instructions applied to the image's container config (Docker's capitalized keys).

use serde_json::{Map, Value, json};

use super::error::{ImageError, Result};

/// Applies each instruction of `changes` to `config` (the `config` object of an image config).
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for c in changes {
        apply_one(config, c.trim())?;
    }
    Ok(())
}

fn bad(change: &str, why: &str) -> ImageError {
    ImageError::Other(format!("invalid --change {change:?}: {why}"))
}

/// JSON array form, or the shell form wrapped in `/bin/sh -c`.
fn exec_form(change: &str, rest: &str) -> Result<Vec<String>> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(rest).map_err(|_| bad(change, "expected a JSON array of strings"))
    } else if rest.is_empty() {
        Err(bad(change, "missing the command"))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), rest.into()])
    }
}

fn words(rest: &str) -> Vec<String> {
    let rest = rest.trim();
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return v;
        }
    }
    rest.split_whitespace().map(str::to_string).collect()
}

/// `k=v k2="v 2"` or the old `k v` form.
fn pairs(change: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let rest = rest.trim();
    if !rest.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).ok_or_else(|| bad(change, "expected KEY=VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c.is_whitespace() {
                return Err(bad(change, "expected KEY=VALUE"));
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return Err(bad(change, "expected KEY=VALUE"));
        }
        let mut val = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => val.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => break,
                None if c == '\\' => {
                    chars.next();
                    if let Some(n) = chars.peek() {
                        val.push(*n);
                    }
                }
                None => val.push(c),
            }
            chars.next();
        }
        out.push((key, val));
    }
    Ok(out)
}

fn apply_one(cfg: &mut Map<String, Value>, change: &str) -> Result<()> {
    let (instr, rest) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.insert("Cmd".into(), json!(exec_form(change, rest)?));
        }
        "ENTRYPOINT" => {
            cfg.insert("Entrypoint".into(), json!(exec_form(change, rest)?));
        }
        "ENV" => {
            let env = cfg.entry("Env").or_insert_with(|| json!([]));
            let list = env.as_array_mut().ok_or_else(|| bad(change, "Env is not a list"))?;
            for (k, v) in pairs(change, rest)? {
                list.retain(|e| e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek != k).unwrap_or(true));
                list.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
            let map = labels.as_object_mut().ok_or_else(|| bad(change, "Labels is not a map"))?;
            for (k, v) in pairs(change, rest)? {
                map.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
            let map = ports.as_object_mut().ok_or_else(|| bad(change, "ExposedPorts is not a map"))?;
            for p in words(rest) {
                let p = if p.contains('/') { p } else { format!("{p}/tcp") };
                map.insert(p, json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
            let map = vols.as_object_mut().ok_or_else(|| bad(change, "Volumes is not a map"))?;
            for v in words(rest) {
                map.insert(v, json!({}));
            }
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(rest.trim()));
        }
        "USER" => {
            cfg.insert("User".into(), json!(rest.trim()));
        }
        "STOPSIGNAL" => {
            cfg.insert("StopSignal".into(), json!(rest.trim()));
        }
        "ONBUILD" => {
            let ob = cfg.entry("OnBuild").or_insert_with(|| json!([]));
            if let Some(list) = ob.as_array_mut() {
                list.push(json!(rest.trim()));
            }
        }
        other => {
            return Err(bad(
                change,
                &format!("{other} is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_docker_import_changes() {
        let mut c = Map::new();
        let changes: Vec<String> = [
            r#"CMD ["sh"]"#,
            "ENTRYPOINT echo hi",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "EXPOSE 80 53/udp",
            "LABEL a=b",
            "WORKDIR /srv",
            "USER nobody",
            "VOLUME /data",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply(&mut c, &changes).unwrap();
        let v = Value::Object(c);
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(v["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["WorkingDir"], "/srv");
        assert_eq!(v["Volumes"], json!({"/data": {}}));
        let mut c = Map::new();
        assert!(apply(&mut c, &["RUN rm -rf /".to_string()]).is_err());
        assert!(apply(&mut c, &["CMD [\"unterminated".to_string()]).is_err());
    }
}
