//! Registry credentials in Docker's client config (`$DOCKER_CONFIG/config.json`, by default
//! `~/.docker/config.json`): the `auths` map that `docker login` and `berth login` write.

use std::path::PathBuf;

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
}

impl Credentials {
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

/// The credentials stored for registry `domain`, if any.
pub fn lookup(domain: &str) -> Result<Option<Credentials>> {
    let cfg = read_config()?;
    let want = normalize_key(domain);
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    for (k, v) in auths {
        if normalize_key(k) != want {
            continue;
        }
        if let Some(auth) = v.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
            }
            return Err(ImageError::Other(format!(
                "{}: the credentials for {k} are not valid base64 user:password; run `berth login {domain}` again",
                config_path().display()
            )));
        }
        if let (Some(u), Some(p)) = (v.get("username").and_then(|u| u.as_str()), v.get("password").and_then(|p| p.as_str())) {
            return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
        }
    }
    Ok(None)
}

/// Stores credentials for `domain`, keeping everything else in the file. Returns the path.
pub fn store(domain: &str, creds: &Credentials) -> Result<PathBuf> {
    let mut cfg = read_config()?;
    if !cfg.is_object() {
        cfg = json!({});
    }
    let key = auth_key(domain);
    let raw = format!("{}:{}", creds.username, creds.password);
    let entry = json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)});
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
    write(&cfg)
}

/// Removes the credentials for `domain`; false when there were none.
pub fn remove(domain: &str) -> Result<bool> {
    let mut cfg = read_config()?;
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
