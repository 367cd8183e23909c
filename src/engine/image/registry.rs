//! A client for the OCI distribution API (and Docker's v2 registry API): manifests, blobs,
//! uploads, the Bearer token challenge, basic auth, redirects and retries.
//!
//! - HTTPS always, except for `localhost`, 127.0.0.0/8, `::1` and the `--insecure-registry` list,
//!   which are reached over plain HTTP.
//! - Redirects are followed by hand: the Authorization header goes only to the registry's own
//!   host, never to a blob store on another host (CVE-2020-15157).
//! - A token realm must be HTTPS unless it is itself a host allowed plain HTTP.
//! - Connection failures, 5xx and 429 answers are retried with exponential backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::auth::{self, Credentials};
use super::digest::Digest;
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::store::{MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};

/// The largest manifest or index accepted (Docker's limit).
pub const MAX_MANIFEST: usize = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG: usize = 16 << 20;
const ATTEMPTS: u32 = 4;
const MAX_REDIRECTS: usize = 5;

/// Options shared by every request.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials to use instead of the Docker config (login checks them this way).
    pub credentials: Option<Credentials>,
}

#[derive(Clone, Debug)]
enum Authz {
    Basic(String),
    Bearer(String),
}

impl Authz {
    fn header(&self) -> String {
        match self {
            Authz::Basic(h) => h.clone(),
            Authz::Bearer(t) => format!("Bearer {t}"),
        }
    }
}

/// A registry client; cheap to share across tasks.
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    /// Authorization per (host, repository, actions).
    authz: Mutex<HashMap<String, Authz>>,
    creds: Mutex<HashMap<String, Option<Credentials>>>,
}

/// True for hosts that may be reached over plain HTTP.
pub fn allows_http(host: &str, insecure: &[String]) -> bool {
    let bare = host_only(host);
    if bare == "localhost" || bare == "::1" || bare == "[::1]" {
        return true;
    }
    if let Ok(ip) = bare.parse::<std::net::Ipv4Addr>() {
        if ip.octets()[0] == 127 {
            return true;
        }
    }
    insecure.iter().any(|i| {
        let i = i.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
        i == host || i == bare
    })
}

fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map(|h| &host[..h.len() + 1]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// A request to send, rebuilt for every attempt.
pub struct Req<'a> {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(reqwest::header::HeaderName, String)>,
    pub body: Option<&'a (dyn Fn() -> reqwest::Body + Send + Sync)>,
    /// `pull` or `pull,push`.
    pub actions: &'static str,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ImageError::Connect { registry: "(client setup)".into(), source: e })?;
        Ok(Client { http, opts, authz: Mutex::new(HashMap::new()), creds: Mutex::new(HashMap::new()) })
    }

    /// `https://host/v2/` or `http://host/v2/`.
    pub fn base(&self, r: &Reference) -> String {
        let host = r.api_host();
        let scheme = if allows_http(host, &self.opts.insecure_registries) { "http" } else { "https" };
        format!("{scheme}://{host}/v2/")
    }

    fn credentials(&self, domain: &str) -> Result<Option<Credentials>> {
        if let Some(c) = &self.opts.credentials {
            return Ok(Some(c.clone()));
        }
        let mut cache = self.creds.lock().expect("credential cache");
        if let Some(c) = cache.get(domain) {
            return Ok(c.clone());
        }
        let c = auth::lookup(domain)?;
        cache.insert(domain.to_string(), c.clone());
        Ok(c)
    }

    fn login_hint(r: &Reference) -> String {
        if r.domain() == super::reference::DOCKER_HUB { String::new() } else { r.domain().to_string() }
    }

    /// Sends `req` for repository `r`: authenticates on a 401 challenge, follows redirects
    /// (dropping credentials across hosts), and retries transient failures. Any status is
    /// returned; the caller decides what is an error.
    pub async fn send(&self, r: &Reference, req: &Req<'_>) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(r, req).await {
                Ok(resp) if (resp.status().is_server_error() || resp.status() == StatusCode::TOO_MANY_REQUESTS) && attempt < ATTEMPTS => {}
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
    }

    async fn send_once(&self, r: &Reference, req: &Req<'_>) -> Result<reqwest::Response> {
        let key = format!("{}|{}|{}", r.api_host(), r.path(), req.actions);
        let mut authenticated = false;
        loop {
            let authz = self.authz.lock().expect("authz cache").get(&key).cloned();
            let resp = self.follow(r, req, authz.as_ref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED || authenticated {
                return Ok(resp);
            }
            // A 401: answer the challenge once.
            let challenge = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let creds = self.credentials(r.domain())?;
            let new = if let Some(params) = challenge.strip_prefix("Bearer ").or_else(|| challenge.strip_prefix("bearer ")) {
                let params = parse_challenge(params);
                Authz::Bearer(self.token(r, &params, req.actions, creds.as_ref()).await?)
            } else if challenge.to_ascii_lowercase().starts_with("basic") {
                match &creds {
                    Some(c) if c.identity_token.is_none() => Authz::Basic(c.basic_header()),
                    _ => return Ok(resp),
                }
            } else {
                return Ok(resp);
            };
            self.authz.lock().expect("authz cache").insert(key.clone(), new);
            authenticated = true;
        }
    }

    /// One request, following redirects by hand.
    async fn follow(&self, r: &Reference, req: &Req<'_>, authz: Option<&Authz>) -> Result<reqwest::Response> {
        let registry = r.api_host().to_string();
        let origin = Url::parse(&self.base(r)).map_err(|e| ImageError::Protocol { registry: registry.clone(), reason: e.to_string() })?;
        let mut url = Url::parse(&req.url).map_err(|e| ImageError::Protocol { registry: registry.clone(), reason: e.to_string() })?;
        for _ in 0..=MAX_REDIRECTS {
            if url.scheme() == "http" && !allows_http(&host_port(&url), &self.opts.insecure_registries) {
                return Err(ImageError::InsecureNotAllowed { registry: host_port(&url) });
            }
            let mut b = self.http.request(req.method.clone(), url.clone());
            for (k, v) in &req.headers {
                b = b.header(k, v);
            }
            if let Some(a) = authz {
                if same_origin(&url, &origin) {
                    b = b.header(AUTHORIZATION, a.header());
                }
            }
            if let Some(body) = req.body {
                b = b.body(body());
            }
            let resp = b.send().await.map_err(|e| ImageError::Connect { registry: registry.clone(), source: e })?;
            if resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
                    url = url
                        .join(loc)
                        .map_err(|e| ImageError::Protocol { registry: registry.clone(), reason: format!("bad redirect {loc:?}: {e}") })?;
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(ImageError::Protocol { registry, reason: format!("more than {MAX_REDIRECTS} redirects for {}", req.url) })
    }

    /// Fetches a Bearer token for `r` from the challenge's realm.
    async fn token(&self, r: &Reference, params: &HashMap<String, String>, actions: &str, creds: Option<&Credentials>) -> Result<String> {
        let registry = r.api_host().to_string();
        let realm = params
            .get("realm")
            .ok_or_else(|| ImageError::Protocol { registry: registry.clone(), reason: "the Bearer challenge has no realm".into() })?;
        let mut url = Url::parse(realm)
            .map_err(|e| ImageError::Protocol { registry: registry.clone(), reason: format!("bad token realm {realm:?}: {e}") })?;
        if url.scheme() != "https" && !(url.scheme() == "http" && allows_http(&host_port(&url), &self.opts.insecure_registries)) {
            return Err(ImageError::Protocol {
                registry,
                reason: format!("refusing to send credentials to the token realm {realm}: it is not HTTPS"),
            });
        }
        let scope = format!("repository:{}:{actions}", r.path());
        let identity = creds.and_then(|c| c.identity_token.as_deref());
        if identity.is_none() {
            let mut q = url.query_pairs_mut();
            if let Some(s) = params.get("service") {
                q.append_pair("service", s);
            }
            q.append_pair("scope", &scope);
        }
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let b = match (identity, creds) {
                // An identity token is an OAuth2 refresh token: POSTed as a form, as Docker does.
                (Some(token), _) => {
                    // Url's query serializer is the form encoder (application/x-www-form-urlencoded).
                    let mut form = Url::parse("http://form.invalid/").expect("a constant URL");
                    {
                        let mut q = form.query_pairs_mut();
                        q.append_pair("grant_type", "refresh_token").append_pair("refresh_token", token);
                        q.append_pair("client_id", "berth").append_pair("scope", &scope);
                        if let Some(s) = params.get("service") {
                            q.append_pair("service", s);
                        }
                    }
                    self.http
                        .post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.query().unwrap_or("").to_string())
                }
                (None, Some(c)) => self.http.get(url.clone()).header(AUTHORIZATION, c.basic_header()),
                (None, None) => self.http.get(url.clone()),
            };
            match b.send().await {
                Ok(resp) if resp.status().is_server_error() && attempt < ATTEMPTS => {}
                Ok(resp) => break resp,
                Err(_) if attempt < ATTEMPTS => {}
                Err(e) => return Err(ImageError::Connect { registry: realm.clone(), source: e }),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        };
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| ImageError::Connect { registry: realm.clone(), source: e })?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(if creds.is_some() {
                ImageError::Denied { registry, reference: r.familiar(), login: Self::login_hint(r) }
            } else {
                ImageError::Unauthorized { registry, reference: r.familiar(), login: Self::login_hint(r) }
            });
        }
        if !status.is_success() {
            return Err(ImageError::TokenServer { registry, realm: realm.clone(), status: status.as_u16(), detail: snippet(&body) });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ImageError::BadManifest { what: format!("the token from {realm}"), source: e })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| ImageError::Protocol { registry, reason: format!("the token server {realm} returned no token") })
    }

    /// Turns an unexpected answer into the error a user can act on.
    pub async fn error_for(&self, r: &Reference, method: &'static str, resp: reqwest::Response) -> ImageError {
        let status = resp.status();
        let url = resp.url().to_string();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = registry_errors(&body).unwrap_or_else(|| snippet(&body));
        let registry = r.api_host().to_string();
        let login = Self::login_hint(r);
        match status {
            StatusCode::UNAUTHORIZED => match self.credentials(r.domain()) {
                Ok(Some(_)) => ImageError::Denied { registry, reference: r.familiar(), login },
                _ => ImageError::Unauthorized { registry, reference: r.familiar(), login },
            },
            StatusCode::FORBIDDEN => ImageError::Denied { registry, reference: r.familiar(), login },
            StatusCode::NOT_FOUND => ImageError::RegistryNotFound { registry, reference: r.familiar(), detail },
            s => ImageError::Registry { registry, method, url, status: s.as_u16(), detail },
        }
    }

    /// Checks that the registry answers and that the credentials are accepted (for login).
    pub async fn ping(&self, r: &Reference) -> Result<()> {
        let req = Req { method: Method::GET, url: self.base(r), headers: vec![], body: None, actions: "pull" };
        let resp = self.send(r, &req).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(ImageError::Other(format!("{}: unauthorized: incorrect username or password", r.api_host())));
        }
        Err(self.error_for(r, "GET", resp).await)
    }

    /// Fetches a manifest or index by tag or digest: (body, media type, digest of the body).
    pub async fn get_manifest(&self, r: &Reference, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let url = format!("{}{}/manifests/{}", self.base(r), r.path(), reference);
        let accept = [MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST].join(", ");
        let req = Req { method: Method::GET, url, headers: vec![(ACCEPT, accept)], body: None, actions: "pull" };
        let resp = self.send(r, &req).await?;
        if !resp.status().is_success() {
            return Err(self.error_for(r, "GET", resp).await);
        }
        let ctype =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
        if resp.content_length().is_some_and(|n| n > MAX_MANIFEST as u64) {
            return Err(ImageError::Protocol {
                registry: r.api_host().into(),
                reason: format!("the manifest of {} is larger than 4 MiB", r.familiar()),
            });
        }
        let body = read_limited(resp, MAX_MANIFEST, r).await?;
        let digest = Digest::of(&body);
        Ok((body, ctype, digest))
    }

    /// Starts downloading a blob; the caller streams and verifies the body.
    pub async fn get_blob(&self, r: &Reference, d: &Digest) -> Result<reqwest::Response> {
        let url = format!("{}{}/blobs/{}", self.base(r), r.path(), d);
        let req = Req { method: Method::GET, url, headers: vec![], body: None, actions: "pull" };
        let resp = self.send(r, &req).await?;
        if !resp.status().is_success() {
            return Err(self.error_for(r, "GET", resp).await);
        }
        Ok(resp)
    }

    /// Downloads a small blob whole (a config), verifying its digest.
    pub async fn get_small_blob(&self, r: &Reference, d: &Digest, max: usize) -> Result<Vec<u8>> {
        let resp = self.get_blob(r, d).await?;
        let body = read_limited(resp, max, r).await?;
        let got = Digest::of(&body);
        if got != *d {
            return Err(ImageError::DigestMismatch { what: format!("blob {d}"), expected: d.to_string(), actual: got.to_string() });
        }
        Ok(body)
    }

    /// True when the registry has blob `d` in repository `r` (push skips those).
    pub async fn has_blob(&self, r: &Reference, d: &Digest) -> Result<bool> {
        let url = format!("{}{}/blobs/{}", self.base(r), r.path(), d);
        let req = Req { method: Method::HEAD, url, headers: vec![], body: None, actions: "pull,push" };
        let resp = self.send(r, &req).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.error_for(r, "HEAD", resp).await),
        }
    }

    /// Asks the registry to mount blob `d` into `r` from repository `from` of the same registry
    /// (cross-repository blob mount): true when it did, false when it would rather have the
    /// upload (the session it opened instead is cancelled).
    pub async fn mount_blob(&self, r: &Reference, d: &Digest, from: &str) -> Result<bool> {
        let mut url = Url::parse(&format!("{}{}/blobs/uploads/", self.base(r), r.path()))
            .map_err(|e| ImageError::Protocol { registry: r.api_host().into(), reason: e.to_string() })?;
        url.query_pairs_mut().append_pair("mount", &d.to_string()).append_pair("from", from);
        let req = Req {
            method: Method::POST,
            url: url.to_string(),
            headers: vec![(reqwest::header::CONTENT_LENGTH, "0".into())],
            body: None,
            actions: "pull,push",
        };
        let resp = self.send(r, &req).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                let loc = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()).and_then(|l| url.join(l).ok());
                if let Some(loc) = loc {
                    let req = Req { method: Method::DELETE, url: loc.to_string(), headers: vec![], body: None, actions: "pull,push" };
                    let _ = self.send(r, &req).await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Uploads a blob in one request (POST for a session, then PUT with the digest).
    pub async fn upload_blob(&self, r: &Reference, d: &Digest, size: u64, body: &(dyn Fn() -> reqwest::Body + Send + Sync)) -> Result<()> {
        let url = format!("{}{}/blobs/uploads/", self.base(r), r.path());
        let req = Req {
            method: Method::POST,
            url: url.clone(),
            headers: vec![(reqwest::header::CONTENT_LENGTH, "0".into())],
            body: None,
            actions: "pull,push",
        };
        let resp = self.send(r, &req).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error_for(r, "POST", resp).await);
        }
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| ImageError::Protocol { registry: r.api_host().into(), reason: "the upload session has no Location".into() })?;
        let mut put = Url::parse(&url)
            .and_then(|u| u.join(loc))
            .map_err(|e| ImageError::Protocol { registry: r.api_host().into(), reason: e.to_string() })?;
        put.query_pairs_mut().append_pair("digest", &d.to_string());
        let req = Req {
            method: Method::PUT,
            url: put.to_string(),
            headers: vec![(CONTENT_TYPE, "application/octet-stream".into()), (reqwest::header::CONTENT_LENGTH, size.to_string())],
            body: Some(body),
            actions: "pull,push",
        };
        let resp = self.send(r, &req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error_for(r, "PUT", resp).await);
        }
        Ok(())
    }

    /// Uploads a manifest under `reference` (a tag or digest).
    pub async fn put_manifest(&self, r: &Reference, reference: &str, media_type: &str, body: Vec<u8>) -> Result<()> {
        let url = format!("{}{}/manifests/{}", self.base(r), r.path(), reference);
        let make = move || reqwest::Body::from(body.clone());
        let req = Req {
            method: Method::PUT,
            url,
            headers: vec![(CONTENT_TYPE, media_type.to_string())],
            body: Some(&make),
            actions: "pull,push",
        };
        let resp = self.send(r, &req).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error_for(r, "PUT", resp).await);
        }
        Ok(())
    }
}

fn host_port(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

async fn read_limited(mut resp: reqwest::Response, max: usize, r: &Reference) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ImageError::Connect { registry: r.api_host().into(), source: e })? {
        if body.len() + chunk.len() > max {
            return Err(ImageError::Protocol {
                registry: r.api_host().into(),
                reason: format!("a document of {} is larger than {max} bytes", r.familiar()),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `realm="https://auth",service="registry",scope="repository:x:pull"` as a map.
pub fn parse_challenge(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = &r[end.min(r.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        out.insert(key, value);
    }
    out
}

/// The messages of an OCI error envelope (`{"errors":[{"code":..,"message":..}]}`).
fn registry_errors(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let errs = v.get("errors")?.as_array()?;
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            format!("{}: {msg}", code.to_ascii_lowercase()).trim_end_matches(": ").to_string()
        })
        .collect();
    if msgs.is_empty() { None } else { Some(msgs.join("; ")) }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    if s.is_empty() { "(no details)".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p =
            parse_challenge(r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#);
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let p = parse_challenge(r#"realm=http://127.0.0.1:5001/token, service=test"#);
        assert_eq!(p["realm"], "http://127.0.0.1:5001/token");
        assert_eq!(p["service"], "test");
    }

    #[test]
    fn plain_http_only_for_loopback_and_listed_hosts() {
        assert!(allows_http("localhost:5000", &[]));
        assert!(allows_http("127.0.0.2:5000", &[]));
        assert!(allows_http("127.0.0.1", &[]));
        assert!(!allows_http("128.0.0.1:5000", &[]));
        assert!(!allows_http("registry.example.com", &[]));
        assert!(allows_http("registry.example.com:5000", &["registry.example.com:5000".into()]));
        assert!(allows_http("10.0.0.5:5000", &["10.0.0.5".into()]));
        let a = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert!(same_origin(&a, &Url::parse("http://127.0.0.1:5000/x").unwrap()));
        assert!(!same_origin(&a, &Url::parse("http://127.0.0.2:5000/x").unwrap()));
        assert!(!same_origin(&a, &Url::parse("http://127.0.0.1:5001/x").unwrap()));
    }
}
