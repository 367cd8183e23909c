//! One function per endpoint: parse the query, call the library on a blocking thread, render
//! Docker's JSON. Errors are Docker's `{"message": ...}` with its status codes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, header};
use serde_json::{Value, json};

use super::routes::{self, API_VERSION, Handler, MIN_API_VERSION, Status};
use crate::cli::render::container::{PortEntry, status as status_text};
use crate::engine::image::store::ImageStore;
use crate::engine::runtime::{self, ContainerConfig, ContainerState, RuntimeError, ops};
use crate::state::StateRoot;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// An error as Docker words it.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let code = match &e {
            RuntimeError::NoSuchContainer(_) => StatusCode::NOT_FOUND,
            RuntimeError::NameInUse { .. } | RuntimeError::NotRunning(_) | RuntimeError::RemoveRunning(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(code, e.to_string())
    }
}

type Result<T> = std::result::Result<T, ApiError>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(full(format!("{v}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: ApiError) -> Response<Body> {
    json_response(e.code, &json!({ "message": e.message }))
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// Serves one request; never fails (errors are responses).
pub(crate) async fn handle(root: Arc<StateRoot>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    // No endpoint of this slice reads a body, but one is read to its end before answering (up to
    // a limit): a client still writing it when the answer comes and the connection closes gets
    // EPIPE instead of the answer (`docker swarm init`'s 501).
    let _ = http_body_util::Limited::new(body, 16 << 20).collect().await;
    let mut resp = match route(root, parts).await {
        Ok(r) => r,
        Err(e) => error_response(e),
    };
    let h = resp.headers_mut();
    h.insert("Api-Version", header::HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", header::HeaderValue::from_static("false"));
    h.insert("Ostype", header::HeaderValue::from_static("linux"));
    h.insert(header::SERVER, header::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")));
    resp
}

async fn route(root: Arc<StateRoot>, req: hyper::http::request::Parts) -> Result<Response<Body>> {
    let method = req.method.as_str().to_string();
    let uri_path = req.uri.path().to_string();
    let query = Query::parse(req.uri.query().unwrap_or(""));
    let v = routes::split_version(&uri_path);
    if let Some(ver) = v.version {
        routes::check_version(ver).map_err(ApiError::bad)?;
    }
    let Some((r, params)) = routes::find(&method, v.path) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "page not found"));
    };
    let handler = match (r.status, r.handler) {
        (_, Some(h)) => h,
        (Status::NotImplemented(why), _) | (Status::Partial(why), None) => {
            return Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, format!("berth does not implement {method} {}: {why}", v.path)));
        }
        (Status::Implemented, None) => return Err(ApiError::new(StatusCode::NOT_FOUND, "page not found")),
    };
    let head = method == "HEAD";
    let p = params.into_iter().next().unwrap_or_default();
    if handler == Handler::ContainerLogs {
        return logs(root, p, query).await;
    }
    let resp = tokio::task::spawn_blocking(move || blocking(&root, handler, &p, &query)).await.map_err(ApiError::internal)??;
    Ok(if head { resp.map(|_| full(Bytes::new())) } else { resp })
}

fn blocking(root: &StateRoot, h: Handler, p: &str, q: &Query) -> Result<Response<Body>> {
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match h {
        Handler::Ping => {
            let mut r = Response::new(full("OK"));
            let hd = r.headers_mut();
            hd.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
            hd.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache, no-store, must-revalidate"));
            hd.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
            // The classic builder's protocol (`POST /build` with a tar), not BuildKit's sessions.
            hd.insert("Builder-Version", header::HeaderValue::from_static("1"));
            Ok(r)
        }
        Handler::Version => ok(version()),
        Handler::Info => ok(info(root)?),
        Handler::ContainerList => ok(container_list(root, q)?),
        Handler::ContainerInspect => ok(ops::inspect(root, p)?),
        Handler::ContainerStart => {
            let cfg = ops::lookup(root, p)?;
            if ops::state_for(root, &cfg)?.status.is_active() {
                return Ok(not_modified());
            }
            ops::start(root, p, None)?;
            Ok(no_content())
        }
        Handler::ContainerStop => {
            let cfg = ops::lookup(root, p)?;
            if !ops::state_for(root, &cfg)?.status.is_active() {
                return Ok(not_modified());
            }
            ops::stop(root, p, q.timeout()?)?;
            Ok(no_content())
        }
        Handler::ContainerRestart => {
            let cfg = ops::lookup(root, p)?;
            if ops::state_for(root, &cfg)?.status.is_active() {
                ops::stop(root, p, q.timeout()?)?;
            }
            ops::start(root, p, None)?;
            Ok(no_content())
        }
        Handler::ContainerKill => {
            let signal = match q.get("signal") {
                None | Some("") => libc::SIGKILL,
                Some(s) => crate::util::sys::signal::parse_signal(s).ok_or_else(|| ApiError::bad(format!("Invalid signal: {s}")))?,
            };
            ops::kill(root, p, signal)?;
            Ok(no_content())
        }
        Handler::ContainerRemove => {
            if q.flag("link")? {
                return Err(ApiError::bad("berth has no container links: remove the container without link=1"));
            }
            ops::remove(root, p, q.flag("force")?, q.flag("v")?)?;
            Ok(no_content())
        }
        Handler::ContainerWait => {
            match q.get("condition") {
                None | Some("") | Some("not-running") => {}
                Some(c) => return Err(ApiError::bad(format!("berth waits only for condition=not-running, not {c:?}"))),
            }
            let code = ops::wait(root, p)?;
            ok(json!({ "StatusCode": code, "Error": null }))
        }
        Handler::ImageList => ok(image_list(root)?),
        Handler::ImageInspect => {
            let store = ImageStore::open(root).map_err(ApiError::internal)?;
            match store.resolve(p).map_err(ApiError::internal)? {
                Some(img) => ok(crate::cli::image::inspect_json(&store, &img)),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("No such image: {p}"))),
            }
        }
        Handler::NetworkList => {
            let mut out = Vec::new();
            for n in crate::net::network::list(root).map_err(ApiError::internal)? {
                let endpoints = crate::net::network::read_endpoints(root, &n.name).map(|e| e.endpoints).unwrap_or_default();
                let info = crate::net::network::NetworkInfo { network: n, endpoints };
                out.push(serde_json::to_value(crate::cli::network::inspect_out(&info)).map_err(ApiError::internal)?);
            }
            ok(Value::Array(out))
        }
        Handler::NetworkInspect => match crate::net::network::inspect(root, p) {
            Ok(i) => ok(serde_json::to_value(crate::cli::network::inspect_out(&i)).map_err(ApiError::internal)?),
            Err(crate::net::NetError::NetworkNotFound(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("network {p} not found"))),
            Err(e) => Err(ApiError::internal(e)),
        },
        Handler::VolumeList => {
            let vols = runtime::volumes::list(root).map_err(ApiError::internal)?;
            ok(json!({ "Volumes": vols.iter().map(crate::cli::volume::inspect_json).collect::<Vec<_>>(), "Warnings": [] }))
        }
        Handler::VolumeInspect => {
            let vols = runtime::volumes::list(root).map_err(ApiError::internal)?;
            match vols.iter().find(|v| v.name == p) {
                Some(v) => ok(crate::cli::volume::inspect_json(v)),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("get {p}: no such volume"))),
            }
        }
        Handler::ContainerLogs => Err(ApiError::internal("logs are streamed")),
    }
}

fn not_modified() -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NOT_MODIFIED;
    r
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn version() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine", "Version": v,
            "Details": { "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": go_arch(), "KernelVersion": kernel() },
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
    })
}

/// The architecture as Go (and so Docker) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn info(root: &StateRoot) -> Result<Value> {
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    let configs = ops::list_configs(root);
    for c in &configs {
        match ops::state_for(root, c).map(|s| s.status) {
            Ok(runtime::Status::Running | runtime::Status::Restarting) => running += 1,
            Ok(runtime::Status::Paused) => paused += 1,
            _ => stopped += 1,
        }
    }
    let images = ImageStore::open(root).and_then(|s| s.list()).map(|l| l.len()).unwrap_or(0);
    let mem_total: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map_or(0, |kb| kb * 1024);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let cgroup2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".into());
    let mut v = json!({
        "ID": "",
        "Containers": configs.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": { "Volume": ["local"], "Network": ["bridge"], "Authorization": null, "Log": ["json-file"] },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    });
    let more = json!({
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if cgroup2 { "2" } else { "1" },
        "KernelVersion": kernel(),
        "OperatingSystem": os,
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": [] },
        "DockerRootDir": root.path().display().to_string(),
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": { "berth": { "path": "berth" } },
        "DefaultRuntime": "berth",
        "Swarm": { "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    });
    // (Two literals: one is past serde_json's macro recursion limit.)
    if let (Some(a), Value::Object(b)) = (v.as_object_mut(), more) {
        a.extend(b);
    }
    Ok(v)
}

fn unix_time(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp())
}

/// `GET /containers/json`'s filters, as docker sends them: `{"label":{"a=b":true}}` (or the old
/// `{"label":["a=b"]}`).
fn parse_filters(q: &Query) -> Result<BTreeMap<String, Vec<String>>> {
    let Some(raw) = q.get("filters").filter(|s| !s.is_empty()) else { return Ok(BTreeMap::new()) };
    let v: Value = serde_json::from_str(raw).map_err(|e| ApiError::bad(format!("invalid filters {raw:?}: {e}")))?;
    let obj = v.as_object().ok_or_else(|| ApiError::bad(format!("invalid filters {raw:?}: expected an object")))?;
    let mut out = BTreeMap::new();
    for (k, vals) in obj {
        let list: Vec<String> = match vals {
            Value::Object(m) => m.keys().cloned().collect(),
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            _ => return Err(ApiError::bad(format!("invalid filter {k:?} in {raw:?}"))),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

fn container_matches(c: &ContainerConfig, st: &ContainerState, filters: &BTreeMap<String, Vec<String>>) -> Result<bool> {
    for (k, vals) in filters {
        let any = |f: &dyn Fn(&str) -> Result<bool>| -> Result<bool> {
            for v in vals {
                if f(v)? {
                    return Ok(true);
                }
            }
            Ok(vals.is_empty())
        };
        let hit = match k.as_str() {
            // Every label filter must hold (Docker ANDs labels, ORs the values of other keys).
            "label" => vals.iter().all(|v| match v.split_once('=') {
                Some((lk, lv)) => c.labels.get(lk).is_some_and(|x| x == lv),
                None => c.labels.contains_key(v.as_str()),
            }),
            "name" => any(&|v| {
                let re = regex::Regex::new(v).map_err(|e| ApiError::bad(format!("invalid name filter {v:?}: {e}")))?;
                Ok(re.is_match(&c.name) || re.is_match(&format!("/{}", c.name)))
            })?,
            "id" => any(&|v| Ok(c.id.starts_with(v)))?,
            "status" => any(&|v| match v {
                "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead" => Ok(st.status.as_str() == v),
                _ => Err(ApiError::bad(format!(
                    "invalid filter 'status={v}': use created, restarting, running, removing, paused, exited or dead"
                ))),
            })?,
            other => {
                return Err(ApiError::bad(format!("berth does not filter containers by {other:?} yet: use id, label, name or status")));
            }
        };
        if !hit {
            return Ok(false);
        }
    }
    Ok(true)
}

fn container_list(root: &StateRoot, q: &Query) -> Result<Value> {
    let all = q.flag("all")?;
    let filters = parse_filters(q)?;
    let limit: Option<usize> = match q.get("limit") {
        None | Some("") | Some("-1") | Some("0") => None,
        Some(n) => Some(n.parse().map_err(|_| ApiError::bad(format!("invalid limit {n:?}")))?),
    };
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    // Newest first, as docker lists.
    for c in ops::list_configs(root).into_iter().rev() {
        let st = ops::state_for(root, &c).unwrap_or_default();
        let status_filter = filters.contains_key("status");
        if !all && !status_filter && !st.status.is_active() {
            continue;
        }
        if !container_matches(&c, &st, &filters)? {
            continue;
        }
        out.push(container_summary(&c, &st, now));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(Value::Array(out))
}

fn container_summary(c: &ContainerConfig, st: &ContainerState, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut ports: Vec<PortEntry> = st
        .network
        .as_ref()
        .filter(|_| st.status.is_active())
        .map(|n| n.ports.iter().map(PortEntry::from_published).collect())
        .unwrap_or_default();
    crate::cli::render::container::sort_ports(&mut ports);
    let ports: Vec<Value> =
        ports.iter().map(|p| json!({ "IP": p.ip, "PrivatePort": p.private, "PublicPort": p.public, "Type": p.proto })).collect();
    let networks: serde_json::Map<String, Value> = st
        .network
        .as_ref()
        .map(|n| {
            n.endpoints
                .iter()
                .map(|e| {
                    (
                        e.network.clone(),
                        json!({
                            "MacAddress": e.mac,
                            "IPAddress": e.ipv4.map(|i| i.to_string()).unwrap_or_default(),
                            "IPPrefixLen": e.ipv4_prefix,
                            "Gateway": e.gateway.map(|i| i.to_string()).unwrap_or_default(),
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mounts: Vec<Value> =
        c.mounts.iter().map(|m| json!({ "Type": m.kind, "Source": m.source, "Destination": m.target, "RW": !m.read_only })).collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_ref,
        "ImageID": c.image,
        "Command": c.argv().join(" "),
        "Created": unix_time(&c.created),
        "Ports": ports,
        "Labels": c.labels,
        "State": st.status.as_str(),
        "Status": status_text(st, now),
        "HostConfig": { "NetworkMode": networks.keys().next().cloned().unwrap_or_else(|| "none".into()) },
        "NetworkSettings": { "Networks": networks },
        "Mounts": mounts,
    })
}

fn image_list(root: &StateRoot) -> Result<Value> {
    let store = ImageStore::open(root).map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for img in store.list().map_err(ApiError::internal)? {
        let created = ImageStore::created(&img).map_or(0, |t| t.timestamp());
        let tags: Vec<String> =
            img.names.iter().filter(|n| n.tag().is_some()).map(|n| n.familiar_name() + ":" + n.tag().unwrap_or("")).collect();
        let labels = img.raw_config.pointer("/config/Labels").cloned().unwrap_or(json!({}));
        out.push(json!({
            "Id": img.id.to_string(),
            "ParentId": "",
            "RepoTags": tags,
            "RepoDigests": img.repo_digests,
            "Created": created,
            "Size": img.size,
            "VirtualSize": img.size,
            "SharedSize": -1,
            "Labels": if labels.is_null() { json!({}) } else { labels },
            "Containers": -1,
        }));
    }
    Ok(Value::Array(out))
}

/// A request's query parameters.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    /// Docker's boolean parameters: absent, empty, `0`, `false` or `no` are false.
    fn flag(&self, k: &str) -> Result<bool> {
        Ok(match self.get(k) {
            None | Some("") | Some("0") => false,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "false" | "no" => false,
                "1" | "true" | "yes" => true,
                _ => return Err(ApiError::bad(format!("invalid value for {k}: {v:?}: expected 1/0 or true/false"))),
            },
        })
    }
    /// `t` (or `timeout`), seconds to wait before killing; negative waits forever.
    fn timeout(&self) -> Result<Option<std::time::Duration>> {
        match self.get("t").or_else(|| self.get("timeout")) {
            None | Some("") => Ok(None),
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| ApiError::bad(format!("invalid value for t: {s:?}: expected a number of seconds")))?;
                Ok(Some(if n < 0 { std::time::Duration::from_secs(u64::MAX / 4) } else { std::time::Duration::from_secs(n as u64) }))
            }
        }
    }
}

/// A response body fed by a channel: a log stream written by a blocking thread.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn unix_param(q: &Query, k: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    match q.get(k) {
        None | Some("") | Some("0") => Ok(None),
        Some(s) => {
            let secs: f64 = s.parse().map_err(|_| ApiError::bad(format!("invalid value for {k}: {s:?}: expected a Unix time")))?;
            Ok(chrono::DateTime::from_timestamp_micros((secs * 1e6) as i64))
        }
    }
}

/// `GET /containers/{id}/logs`: Docker's 8-byte multiplexed frames (stream, 0, 0, 0, big-endian
/// length), or the raw bytes for a TTY container; with `follow`, until the container stops or the
/// client goes.
async fn logs(root: Arc<StateRoot>, key: String, q: Query) -> Result<Response<Body>> {
    let (stdout, stderr) = (q.flag("stdout")?, q.flag("stderr")?);
    if !stdout && !stderr {
        return Err(ApiError::bad("you must choose at least one stream"));
    }
    let opts = runtime::logs::ReadOptions {
        tail: match q.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => Some(n.parse().map_err(|_| ApiError::bad(format!("invalid value for tail: {n:?}")))?),
        },
        since: unix_param(&q, "since")?,
        until: None,
        follow: q.flag("follow")?,
    };
    let timestamps = q.flag("timestamps")?;
    let root2 = root.clone();
    let key2 = key.clone();
    let cfg = tokio::task::spawn_blocking(move || ops::lookup(&root2, &key2)).await.map_err(ApiError::internal)??;
    let tty = cfg.tty;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    // The first record (or the end) decides between a stream and an error response.
    tokio::task::spawn_blocking(move || {
        let res = ops::logs(&root, &key, &opts, &mut |rec, time| {
            let (code, wanted) = if rec.stream == "stderr" { (2u8, stderr) } else { (1u8, stdout) };
            if !wanted {
                return Ok(());
            }
            let mut payload = Vec::new();
            if timestamps {
                payload.extend_from_slice(time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
                payload.push(b' ');
            }
            payload.extend_from_slice(rec.log.as_bytes());
            let mut frame = Vec::with_capacity(payload.len() + 8);
            if !tty {
                frame.extend_from_slice(&[code, 0, 0, 0]);
                frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            }
            frame.extend_from_slice(&payload);
            tx.blocking_send(Bytes::from(frame)).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        });
        if let Err(e) = res {
            // Mid-stream there is no way to send a status any more: the stream just ends.
            let _ = tx.blocking_send(Bytes::from(format!("Error: {e}\n")));
        }
    });
    let mut r = Response::new(BoxBody::new(ChannelBody(rx)));
    let ct = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(ct));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> (ContainerConfig, ContainerState) {
        let c = ContainerConfig {
            id: "abc123".into(),
            name: "apiweb-web-1".into(),
            labels: [("com.docker.compose.project".to_string(), "apiweb".to_string())].into(),
            ..Default::default()
        };
        let st = ContainerState { status: runtime::Status::Running, ..Default::default() };
        (c, st)
    }

    fn matches(filters: &str) -> Result<bool> {
        let (c, st) = web();
        let q = Query::parse(&format!("filters={}", url::form_urlencoded::byte_serialize(filters.as_bytes()).collect::<String>()));
        container_matches(&c, &st, &parse_filters(&q)?)
    }

    #[test]
    fn container_filters_as_docker_sends_them() {
        assert!(matches(r#"{"label":{"com.docker.compose.project=apiweb":true}}"#).unwrap());
        assert!(matches(r#"{"label":["com.docker.compose.project"]}"#).unwrap());
        assert!(!matches(r#"{"label":{"com.docker.compose.project=other":true}}"#).unwrap());
        assert!(matches(r#"{"name":{"^/apiweb-web":true}}"#).unwrap());
        assert!(matches(r#"{"status":{"exited":true,"running":true}}"#).unwrap());
        assert!(!matches(r#"{"status":{"exited":true}}"#).unwrap());
        assert!(matches(r#"{"id":{"abc":true}}"#).unwrap());
        assert_eq!(matches(r#"{"status":{"sleeping":true}}"#).err().unwrap().code, StatusCode::BAD_REQUEST);
        assert_eq!(matches(r#"{"ancestor":{"busybox":true}}"#).err().unwrap().code, StatusCode::BAD_REQUEST);
        assert_eq!(matches("{bad").err().unwrap().code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn boolean_and_timeout_parameters() {
        let q = Query::parse("all=1&force=true&v=0&link=False&x=maybe&t=-1");
        assert!(q.flag("all").unwrap() && q.flag("force").unwrap());
        assert!(!q.flag("v").unwrap() && !q.flag("link").unwrap() && !q.flag("absent").unwrap());
        assert!(q.flag("x").is_err());
        assert!(q.timeout().unwrap().unwrap() > std::time::Duration::from_secs(1 << 40));
        assert_eq!(Query::parse("t=3").timeout().unwrap(), Some(std::time::Duration::from_secs(3)));
        assert!(Query::parse("t=soon").timeout().is_err());
    }

    #[test]
    fn runtime_errors_get_dockers_codes() {
        assert_eq!(ApiError::from(RuntimeError::NoSuchContainer("x".into())).code, StatusCode::NOT_FOUND);
        assert_eq!(ApiError::from(RuntimeError::RemoveRunning("x".into())).code, StatusCode::CONFLICT);
    }
}
