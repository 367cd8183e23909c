//! Image test helpers: the busybox image every test uses, and real registries on loopback
//! (Debian's `docker-registry`), open, behind htpasswd basic auth, or behind a token server this
//! harness implements (the real Bearer protocol, RS256 tokens with an x5c chain). Every process
//! and thread started here is stopped on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::TestRoot;

/// Imports the busybox image (`busybox:latest`, `CMD ["sh"]`) into `root`, and returns its id.
pub fn busybox_image(root: &TestRoot) -> String {
    let tar = root.scratch().join("busybox-rootfs.tar");
    if !tar.exists() {
        super::make_busybox_tar(&tar);
    }
    let out = root.ok(["image", "import", tar.to_str().unwrap(), "busybox:latest", "--change", r#"CMD ["sh"]"#]);
    out.trim().to_string()
}

/// A free TCP port on `ip`.
pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().unwrap().port()
}

/// Whether an HTTP server answers `GET /v2/` on 127.0.0.1:`port` (any status).
fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut first = String::new();
    BufReader::new(s).read_line(&mut first).is_ok() && first.starts_with("HTTP/")
}

pub enum Auth {
    None,
    Htpasswd { user: String, password: String },
    Token { user: String, password: String },
}

/// A running `docker-registry` on 127.0.0.1, stopped on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    token: Option<TokenServer>,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir().unwrap();
        let port = free_port("127.0.0.1");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let mut token = None;
        match &auth {
            Auth::None => {}
            Auth::Htpasswd { user, password } => {
                let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd (apache2-utils)");
                assert!(out.status.success());
                std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
                cfg.push_str(&format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", dir.path().join("htpasswd").display()));
            }
            Auth::Token { user, password } => {
                let ts = TokenServer::start(dir.path(), user, password);
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                    ts.port,
                    dir.path().join("cert.pem").display()
                ));
                token = Some(ts);
            }
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let mut reg = Registry { port, child, dir, token };
        // Ready when it answers HTTP: a bare connect can succeed before it listens (a TCP
        // self-connect when the probe's ephemeral port is this one) or reach another listener.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_http(port) {
            if let Ok(Some(st)) = reg.child.try_wait() {
                panic!("docker-registry exited ({st}): {}", reg.log());
            }
            assert!(Instant::now() < deadline, "docker-registry did not start: {}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// How many blob downloads the registry has served so far.
    pub fn blob_gets(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("response completed") && l.contains("http.request.method=GET") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// The file the registry serves blob `digest` from (to corrupt it).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 request as read by the harness's servers.
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub head: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads a request head (the body, if any, stays in the reader).
pub fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut head = Vec::new();
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    head.extend_from_slice(first.as_bytes());
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(line.as_bytes());
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(Request { method, target, headers, head })
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = s.write_all(out.as_bytes());
    let _ = s.write_all(body);
    let _ = s.flush();
}

/// Runs `handle` for every connection on `listener` in its own thread, until `stop`.
fn serve(listener: TcpListener, stop: Arc<AtomicBool>, handle: Arc<dyn Fn(TcpStream) + Send + Sync>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(c) = conn {
                let h = handle.clone();
                std::thread::spawn(move || h(c));
            }
        }
    })
}

fn wake(ip: &str, port: u16) {
    let _ = TcpStream::connect_timeout(&format!("{ip}:{port}").parse().unwrap(), Duration::from_millis(200));
}

/// The token server: `GET /token?service=..&scope=repository:NAME:ACTIONS` with optional basic
/// credentials; anonymous or wrong credentials get a token granting nothing.
pub struct TokenServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=berth-test-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl req failed");
        let der = Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).output().unwrap().stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let (user, reqs, identity) = (user.to_string(), requests.clone(), identity_token(password));
        let handle: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |s: TcpStream| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some(req) = read_request(&mut r) else { return };
            reqs.lock().unwrap().push(format!("{} {}", req.method, req.target));
            let mut s = s;
            // A POST is the OAuth2 form (grant_type=refresh_token): the identity token that
            // `identity_token(password)` gives is accepted for `user`.
            let (authed, presented, query) = if req.method == "POST" {
                let len = req.header("Content-Length").and_then(|l| l.parse().ok()).unwrap_or(0usize);
                let mut body = vec![0; len];
                let _ = std::io::Read::read_exact(&mut r, &mut body);
                let form = String::from_utf8_lossy(&body).into_owned();
                let field = |k: &str| form.split('&').find_map(|p| p.strip_prefix(&format!("{k}="))).map(percent_decode);
                let ok = field("grant_type").as_deref() == Some("refresh_token") && field("refresh_token") == Some(identity.clone());
                (ok, field("refresh_token").is_some(), format!("&{form}"))
            } else {
                let authed = req.header("Authorization") == Some(expected.as_str());
                (authed, req.header("Authorization").is_some(), req.target.clone())
            };
            if presented && !authed {
                respond(&mut s, "401 Unauthorized", &[], br#"{"details":"incorrect username or password"}"#);
                return;
            }
            let scope = query.split(['?', '&']).find_map(|p| p.strip_prefix("scope=")).map(percent_decode).unwrap_or_default();
            let mut access = Vec::new();
            if authed {
                if let Some(rest) = scope.strip_prefix("repository:") {
                    if let Some((name, actions)) = rest.rsplit_once(':') {
                        access.push(
                            serde_json::json!({"type": "repository", "name": name, "actions": actions.split(',').collect::<Vec<_>>()}),
                        );
                    }
                }
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": "berth-test-issuer", "sub": if authed { user.as_str() } else { "" }, "aud": "berth-test-registry",
                "exp": now + 600, "nbf": now - 10, "iat": now - 10, "jti": format!("{now}-{}", rand_u64()), "access": access,
            });
            let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let signing_input = format!("{}.{}", b64(&header), b64(&claims));
            let mut child = Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
            let sig = child.wait_with_output().unwrap().stdout;
            let token = format!("{signing_input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig));
            let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600}).to_string();
            respond(&mut s, "200 OK", &[("Content-Type", "application/json".into())], body.as_bytes());
        });
        let thread = serve(listener, stop.clone(), handle);
        TokenServer { port, stop, thread: Some(thread), requests }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake("127.0.0.1", self.port);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The identity (refresh) token the harness's token server accepts for the user with `password`.
pub fn identity_token(password: &str) -> String {
    format!("idtoken-{password}")
}

fn rand_u64() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst) ^ std::process::id() as u64
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain HTTP/1.1 request (Connection: close); returns status, headers and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(hostport).expect("connect");
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        if path.is_empty() { "/" } else { path },
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut hs = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            hs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    let _ = r.read_to_end(&mut body);
    (code, hs, body)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Uploads a blob to an open registry; returns its digest.
pub fn upload_blob(reg: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    let (code, hs, _) = http("POST", &reg.url(&format!("/v2/{repo}/blobs/uploads/")), &[], b"");
    assert_eq!(code, 202, "upload session");
    let loc = hs.iter().find(|(k, _)| k.eq_ignore_ascii_case("Location")).unwrap().1.clone();
    let loc = if loc.starts_with("http") { loc } else { reg.url(&loc) };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let (code, _, body) = http("PUT", &format!("{loc}{sep}digest={digest}"), &[("Content-Type", "application/octet-stream")], data);
    assert_eq!(code, 201, "blob upload: {}", String::from_utf8_lossy(&body));
    digest
}

/// Puts a manifest or index document under `reference`; returns its digest.
pub fn put_manifest(reg: &Registry, repo: &str, reference: &str, media_type: &str, doc: &[u8]) -> String {
    let (code, _, body) = http("PUT", &reg.url(&format!("/v2/{repo}/manifests/{reference}")), &[("Content-Type", media_type)], doc);
    assert_eq!(code, 201, "manifest upload: {}", String::from_utf8_lossy(&body));
    format!("sha256:{}", sha256_hex(doc))
}

/// Pushes an image made of `layers` (media type, blob) with a config whose diff IDs are
/// `diff_ids`, straight to an open registry (no berth involved), and returns the manifest digest.
pub fn push_raw(reg: &Registry, repo: &str, tag: &str, arch: &str, layers: &[(&str, Vec<u8>)], diff_ids: &[String]) -> String {
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let cfg_digest = upload_blob(reg, repo, config.as_bytes());
    let mut descs = Vec::new();
    for (mt, data) in layers {
        let d = upload_blob(reg, repo, data);
        descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": data.len()}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": config.len()},
        "layers": descs,
    })
    .to_string();
    put_manifest(reg, repo, tag, "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes())
}

/// A tar holding the given files.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// A front for a registry on 127.0.0.1 that relays everything to it, except blob downloads,
/// which it redirects (307) to a blob server on 127.0.0.2. The blob server records whether a
/// request carried an Authorization header, fetches the blob from the registry with its own
/// credentials, and can be slowed down (bytes per 100 ms) to kill a pull mid-layer.
pub struct RedirectFront {
    pub port: u16,
    pub blob_port: u16,
    pub blob_auth_seen: Arc<Mutex<Vec<Option<String>>>>,
    pub throttle: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RedirectFront {
    pub fn start(reg: &Registry, basic: Option<(&str, &str)>) -> RedirectFront {
        let upstream = reg.host();
        let stop = Arc::new(AtomicBool::new(false));
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = front.local_addr().unwrap().port();
        let blob_listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let blob_port = blob_listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let throttle = Arc::new(AtomicU64::new(0));

        let up = upstream.clone();
        let front_handle: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |s: TcpStream| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some(req) = read_request(&mut r) else { return };
            let mut s = s;
            if req.method == "GET" && req.target.contains("/blobs/sha256:") {
                let loc = format!("http://127.0.0.2:{blob_port}{}", req.target);
                respond(&mut s, "307 Temporary Redirect", &[("Location", loc)], b"");
                return;
            }
            relay(&req, &mut r, &mut s, &up, None, 0);
        });
        let up = upstream.clone();
        let seen2 = seen.clone();
        let throttle2 = throttle.clone();
        let auth = basic.map(|(u, p)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))));
        let blob_handle: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |s: TcpStream| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let Some(req) = read_request(&mut r) else { return };
            seen2.lock().unwrap().push(req.header("Authorization").map(str::to_string));
            let mut s = s;
            relay(&req, &mut r, &mut s, &up, auth.clone(), throttle2.load(Ordering::SeqCst));
        });
        let threads = vec![serve(front, stop.clone(), front_handle), serve(blob_listener, stop.clone(), blob_handle)];
        RedirectFront { port, blob_port, blob_auth_seen: seen, throttle, stop, threads }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedirectFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake("127.0.0.1", self.port);
        wake("127.0.0.2", self.blob_port);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends `req` (and its body) to `upstream` with Connection: close, and copies the answer back,
/// optionally replacing Authorization and sending at most `throttle` bytes per 100 ms.
fn relay(req: &Request, body_in: &mut BufReader<TcpStream>, out: &mut TcpStream, upstream: &str, auth: Option<String>, throttle: u64) {
    let Ok(mut up) = TcpStream::connect(upstream) else { return };
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.target);
    for (k, v) in &req.headers {
        if k.eq_ignore_ascii_case("Connection")
            || k.eq_ignore_ascii_case("Host")
            || (auth.is_some() && k.eq_ignore_ascii_case("Authorization"))
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(a) = &auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    if up.write_all(head.as_bytes()).is_err() {
        return;
    }
    let len: usize = req.header("Content-Length").and_then(|l| l.parse().ok()).unwrap_or(0);
    if len > 0 {
        let mut body = vec![0u8; len];
        if body_in.read_exact(&mut body).is_err() || up.write_all(&body).is_err() {
            return;
        }
    }
    // The answer: its head with Connection: close, then the body.
    let mut ur = BufReader::new(up);
    let mut status = String::new();
    if ur.read_line(&mut status).unwrap_or(0) == 0 {
        return;
    }
    let mut head = status;
    loop {
        let mut line = String::new();
        if ur.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.trim_end().is_empty() {
            break;
        }
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut buf = vec![0u8; if throttle > 0 { throttle as usize } else { 64 << 10 }];
    loop {
        match ur.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
                if throttle > 0 {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    let _ = out.shutdown(Shutdown::Write);
}
