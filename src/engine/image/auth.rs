//! Registry credentials in Docker's client config (`$DOCKER_CONFIG/config.json`, by default
//! `~/.docker/config.json`): the `auths` map that `docker login` and `berth login` write, and
//! the credential helpers it names (`credHelpers` per registry, else `credsStore` for all), which
//! are separate programs `docker-credential-<name>` on `PATH` speaking Docker's protocol: the
//! action (`get`, `store`, `erase`) as the argument, the server URL (or for `store` a JSON
//! `{ServerURL, Username, Secret}`) on stdin, JSON `{Username, Secret}` out for `get`. A helper is
//! authoritative for its registries: the `auths` map is then not read for them, as in Docker.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Value, json};

use super::error::{ImageError, Result};
use crate::util::fs::{FsError, create_dir_all_mode, write_atomic_mode};

/// Docker Hub's key in `auths`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An identity (OAuth2 refresh) token, which a helper returns with the username `<token>`:
    /// it is exchanged at the Bearer realm for an access token instead of basic credentials.
    pub identity_token: Option<String>,
}

impl Credentials {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { username: username.into(), password: password.into(), identity_token: None }
    }

    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// The path of Docker's client config.
pub fn config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

fn read_config() -> Result<Value> {
    let path = config_path();
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| ImageError::DockerConfig { path, source: e }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        // An unreadable HOME (HOME=/nonexistent) means no credentials.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(json!({})),
        Err(e) => Err(FsError::io("read", &path, e).into()),
    }
}

/// The `auths` key for a registry domain (`docker.io` is Docker Hub's v1 URL, as Docker writes it).
pub fn auth_key(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_AUTH_KEY.to_string(),
        other => other.to_string(),
    }
}

/// `https://host:5000/v2/` → `host:5000`.
fn normalize_key(k: &str) -> String {
    let k = k.strip_prefix("https://").or_else(|| k.strip_prefix("http://")).unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// The credential helper configured for registry `domain`: its `credHelpers` entry, else
/// `credsStore`.
fn helper_for(cfg: &Value, domain: &str) -> Option<String> {
    let want = normalize_key(domain);
    let per_registry = cfg
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| normalize_key(k) == want).and_then(|(_, v)| v.as_str()).map(str::to_string));
    per_registry.or_else(|| cfg.get("credsStore").and_then(|s| s.as_str()).map(str::to_string)).filter(|h| !h.is_empty())
}

/// Where `store` put the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// In plain text in this config file.
    File(PathBuf),
    /// Through this credential helper (`docker-credential-<name>`).
    Helper(String),
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; its stdout, or `None`
/// when the helper says it has no credentials for `server`.
fn run_helper(helper: &str, action: &'static str, server: &str, input: &[u8]) -> Result<Option<Vec<u8>>> {
    let program = format!("docker-credential-{helper}");
    let err = |reason: String| ImageError::CredentialHelper { helper: helper.to_string(), action, server: server.to_string(), reason };
    let mut child =
        Command::new(&program).arg(action).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                err(format!("{program} is not on PATH; install it, or remove the helper from {}", config_path().display()))
            } else {
                err(format!("cannot run {program}: {e}"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| err(format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        return Ok(Some(out.stdout));
    }
    let msg = String::from_utf8_lossy(if out.stdout.trim_ascii().is_empty() { &out.stderr } else { &out.stdout }).trim().to_string();
    // Docker's helpers all say this (credentials.ErrCredentialsNotFound).
    if msg.contains("credentials not found") {
        return Ok(None);
    }
    Err(err(if msg.is_empty() { format!("{program} failed ({})", out.status) } else { msg }))
}

/// Asks `helper` for the credentials of `server` (`get`).
fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let Some(out) = run_helper(helper, "get", server, server.as_bytes())? else { return Ok(None) };
    let v: Value = serde_json::from_slice(&out).map_err(|e| ImageError::CredentialHelper {
        helper: helper.to_string(),
        action: "get",
        server: server.to_string(),
        reason: format!("its answer is not the JSON {{\"Username\", \"Secret\"}} expected: {e}"),
    })?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let (username, secret) = (field("Username"), field("Secret"));
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if username == "<token>" {
        Credentials { username: String::new(), password: String::new(), identity_token: Some(secret) }
    } else {
        Credentials::basic(username, secret)
    }))
}

/// The credentials stored for registry `domain`, if any.
pub fn lookup(domain: &str) -> Result<Option<Credentials>> {
    let cfg = read_config()?;
    if let Some(helper) = helper_for(&cfg, domain) {
        return helper_get(&helper, &auth_key(domain));
    }
    let want = normalize_key(domain);
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    for (k, v) in auths {
        if normalize_key(k) != want {
            continue;
        }
        if let Some(auth) = v.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok().and_then(|d| String::from_utf8(d).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Ok(Some(Credentials::basic(u, p)));
            }
            return Err(ImageError::Other(format!(
                "{}: the credentials for {k} are not valid base64 user:password; run `berth login {domain}` again",
                config_path().display()
            )));
        }
        if let (Some(u), Some(p)) = (v.get("username").and_then(|u| u.as_str()), v.get("password").and_then(|p| p.as_str())) {
            return Ok(Some(Credentials::basic(u, p)));
        }
        if let Some(t) = v.get("identitytoken").and_then(|t| t.as_str()).filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials { username: String::new(), password: String::new(), identity_token: Some(t.to_string()) }));
        }
    }
    Ok(None)
}

/// Stores credentials for `domain`: through its credential helper when one is configured (the
/// config then keeps an empty `auths` entry, as Docker writes), else in plain text in the
/// config's `auths`, keeping everything else in the file.
pub fn store(domain: &str, creds: &Credentials) -> Result<Stored> {
    let mut cfg = read_config()?;
    if !cfg.is_object() {
        cfg = json!({});
    }
    let key = auth_key(domain);
    let helper = helper_for(&cfg, domain);
    let entry = if let Some(helper) = &helper {
        let (username, secret) = match &creds.identity_token {
            Some(t) => ("<token>", t.as_str()),
            None => (creds.username.as_str(), creds.password.as_str()),
        };
        let input = json!({"ServerURL": key, "Username": username, "Secret": secret}).to_string();
        if run_helper(helper, "store", &key, input.as_bytes())?.is_none() {
            return Err(ImageError::CredentialHelper {
                helper: helper.clone(),
                action: "store",
                server: key,
                reason: "the helper did not store the credentials".into(),
            });
        }
        json!({})
    } else {
        let raw = format!("{}:{}", creds.username, creds.password);
        json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)})
    };
    let obj = cfg.as_object_mut().expect("made an object above");
    let auths = obj.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    let auths = auths.as_object_mut().expect("made an object above");
    // Drop other spellings of the same registry, so that lookup finds this one.
    let want = normalize_key(domain);
    auths.retain(|k, _| normalize_key(k) != want);
    auths.insert(key, entry);
    let path = write(&cfg)?;
    Ok(match helper {
        Some(h) => Stored::Helper(h),
        None => Stored::File(path),
    })
}

/// Removes the credentials for `domain` (from its credential helper too, if one is configured);
/// false when the config had none.
pub fn remove(domain: &str) -> Result<bool> {
    let mut cfg = read_config()?;
    if let Some(helper) = helper_for(&cfg, domain) {
        let key = auth_key(domain);
        // "credentials not found" is not an error: there is nothing to erase.
        run_helper(&helper, "erase", &key, key.as_bytes())?;
    }
    let want = normalize_key(domain);
    let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut()) else { return Ok(false) };
    let before = auths.len();
    auths.retain(|k, _| normalize_key(k) != want);
    if auths.len() == before {
        return Ok(false);
    }
    write(&cfg)?;
    Ok(true)
}

fn write(cfg: &Value) -> Result<PathBuf> {
    let path = config_path();
    if let Some(dir) = path.parent() {
        create_dir_all_mode(dir, 0o700)?;
    }
    let mut data = serde_json::to_vec_pretty(cfg).map_err(|e| ImageError::Other(e.to_string()))?;
    data.push(b'\n');
    write_atomic_mode(&path, &data, 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalized() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalize_key("registry.example.com/v2/"), "registry.example.com");
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
    }
}
