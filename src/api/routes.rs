//! Every Engine API endpoint (API 1.47) with its status in berth, and the version negotiation.
//!
//! The table is the router: a request is matched against it, so an endpoint cannot be served
//! without a row saying so, and `docs/api.md` is this table rendered ([`markdown_table`]; the
//! unit test below fails when the two differ). Endpoints berth will serve later answer 501 with
//! a message naming the endpoint, as do those it never will (swarm, plugins); a path that is in no
//! row is a 404, as dockerd's.

/// The newest API version berth answers; clients negotiate down to it (the docker CLI takes
/// `min(its own, ours)` from `/_ping`'s `Api-Version`).
pub const API_VERSION: &str = "1.47";
/// The oldest, as dockerd's.
pub const MIN_API_VERSION: &str = "1.24";

/// An endpoint's status in berth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Implemented,
    /// Served, with what is missing.
    Partial(&'static str),
    /// Answered with 501 and why.
    NotImplemented(&'static str),
}

/// What serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    Ping,
    Version,
    Info,
    ContainerList,
    ContainerInspect,
    ContainerStart,
    ContainerStop,
    ContainerRestart,
    ContainerKill,
    ContainerRemove,
    ContainerWait,
    ContainerLogs,
    ImageList,
    ImageInspect,
    NetworkList,
    NetworkInspect,
    VolumeList,
    VolumeInspect,
}

/// One row: `method` (`*` for any), a path pattern (`{x}` is one segment, `{x*}` one or more).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub status: Status,
    pub(crate) handler: Option<Handler>,
}

const fn r(method: &'static str, path: &'static str, status: Status, handler: Option<Handler>) -> Route {
    Route { method, path, status, handler }
}

use Handler as H;
use Status::{Implemented as Done, NotImplemented as No, Partial};

const NEXT: &str = "not yet: a later slice of issue 14";
const CREATE: &str = "not yet: needs the standalone-container library (issue 15)";
const SWARM: &str = "never: berth is a single-host engine without swarm mode";
const PLUGINS: &str = "never: berth has no plugin system (volumes and networks are built in)";

/// The route table, in the order of the Engine API reference.
pub const ROUTES: &[Route] = &[
    r("GET", "/_ping", Done, Some(H::Ping)),
    r("HEAD", "/_ping", Done, Some(H::Ping)),
    r("GET", "/version", Done, Some(H::Version)),
    r("GET", "/info", Partial("no swarm, plugins beyond the built-in ones, or registry mirrors"), Some(H::Info)),
    r("POST", "/auth", No(NEXT), None),
    r("GET", "/events", No(NEXT), None),
    r("GET", "/system/df", No(NEXT), None),
    r("GET", "/containers/json", Partial("filters id, label, name and status only; `size` is ignored"), Some(H::ContainerList)),
    r("POST", "/containers/create", No(CREATE), None),
    r("GET", "/containers/{id}/json", Done, Some(H::ContainerInspect)),
    r("GET", "/containers/{id}/top", No(NEXT), None),
    r("GET", "/containers/{id}/logs", Partial("`until` is ignored"), Some(H::ContainerLogs)),
    r("GET", "/containers/{id}/changes", No(NEXT), None),
    r("GET", "/containers/{id}/export", No(NEXT), None),
    r("GET", "/containers/{id}/stats", No(NEXT), None),
    r("POST", "/containers/{id}/resize", No(NEXT), None),
    r("POST", "/containers/{id}/start", Partial("`detachKeys` is ignored"), Some(H::ContainerStart)),
    r("POST", "/containers/{id}/stop", Partial("`signal` is ignored: the container's stop signal is sent"), Some(H::ContainerStop)),
    r("POST", "/containers/{id}/restart", Partial("`signal` is ignored: the container's stop signal is sent"), Some(H::ContainerRestart)),
    r("POST", "/containers/{id}/kill", Done, Some(H::ContainerKill)),
    r("POST", "/containers/{id}/update", No(NEXT), None),
    r("POST", "/containers/{id}/rename", No(NEXT), None),
    r("POST", "/containers/{id}/pause", No(NEXT), None),
    r("POST", "/containers/{id}/unpause", No(NEXT), None),
    r("POST", "/containers/{id}/attach", No("not yet: needs connection hijacking (a later slice of issue 14)"), None),
    r("GET", "/containers/{id}/attach/ws", No("not yet: needs connection hijacking (a later slice of issue 14)"), None),
    r("POST", "/containers/{id}/wait", Partial("only the `not-running` condition"), Some(H::ContainerWait)),
    r("DELETE", "/containers/{id}", Partial("`link` is refused"), Some(H::ContainerRemove)),
    r("HEAD", "/containers/{id}/archive", No(NEXT), None),
    r("GET", "/containers/{id}/archive", No(NEXT), None),
    r("PUT", "/containers/{id}/archive", No(NEXT), None),
    r("POST", "/containers/prune", No(NEXT), None),
    r("POST", "/containers/{id}/exec", No(NEXT), None),
    r("POST", "/exec/{id}/start", No(NEXT), None),
    r("POST", "/exec/{id}/resize", No(NEXT), None),
    r("GET", "/exec/{id}/json", No(NEXT), None),
    r("GET", "/images/json", Partial("`filters` and `digests` are ignored"), Some(H::ImageList)),
    r("POST", "/build", No(NEXT), None),
    r("POST", "/build/prune", No(NEXT), None),
    r("POST", "/images/create", No(NEXT), None),
    r("GET", "/images/{name*}/json", Done, Some(H::ImageInspect)),
    r("GET", "/images/{name*}/history", No(NEXT), None),
    r("POST", "/images/{name*}/push", No(NEXT), None),
    r("POST", "/images/{name*}/tag", No(NEXT), None),
    r("DELETE", "/images/{name*}", No(NEXT), None),
    r("GET", "/images/search", No(NEXT), None),
    r("POST", "/images/prune", No(NEXT), None),
    r("POST", "/commit", No(NEXT), None),
    r("GET", "/images/{name*}/get", No(NEXT), None),
    r("GET", "/images/get", No(NEXT), None),
    r("POST", "/images/load", No(NEXT), None),
    r("GET", "/distribution/{name*}/json", No(NEXT), None),
    r("GET", "/networks", Partial("`filters` is ignored"), Some(H::NetworkList)),
    r("GET", "/networks/{id}", Partial("`verbose` and `scope` are ignored"), Some(H::NetworkInspect)),
    r("DELETE", "/networks/{id}", No(NEXT), None),
    r("POST", "/networks/create", No(NEXT), None),
    r("POST", "/networks/{id}/connect", No(NEXT), None),
    r("POST", "/networks/{id}/disconnect", No(NEXT), None),
    r("POST", "/networks/prune", No(NEXT), None),
    r("GET", "/volumes", Partial("`filters` is ignored"), Some(H::VolumeList)),
    r("POST", "/volumes/create", No(NEXT), None),
    r("GET", "/volumes/{name}", Done, Some(H::VolumeInspect)),
    r("PUT", "/volumes/{name}", No("never: cluster volumes are a swarm feature"), None),
    r("DELETE", "/volumes/{name}", No(NEXT), None),
    r("POST", "/volumes/prune", No(NEXT), None),
    r("POST", "/session", No("not yet: BuildKit sessions come with `POST /build`"), None),
    r("*", "/swarm", No(SWARM), None),
    r("*", "/swarm/{path*}", No(SWARM), None),
    r("*", "/nodes", No(SWARM), None),
    r("*", "/nodes/{path*}", No(SWARM), None),
    r("*", "/services", No(SWARM), None),
    r("*", "/services/{path*}", No(SWARM), None),
    r("*", "/tasks", No(SWARM), None),
    r("*", "/tasks/{path*}", No(SWARM), None),
    r("*", "/secrets", No(SWARM), None),
    r("*", "/secrets/{path*}", No(SWARM), None),
    r("*", "/configs", No(SWARM), None),
    r("*", "/configs/{path*}", No(SWARM), None),
    r("*", "/plugins", No(PLUGINS), None),
    r("*", "/plugins/{path*}", No(PLUGINS), None),
];

/// A request's path without the `/v1.NN` prefix, and the version it asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Versioned<'a> {
    pub version: Option<(u32, u32)>,
    pub path: &'a str,
}

/// Splits `/v1.41/containers/json` into (1.41, `/containers/json`).
pub fn split_version(path: &str) -> Versioned<'_> {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        if let Some((a, b)) = rest[..end].split_once('.') {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                let p = &rest[end..];
                return Versioned { version: Some((a, b)), path: if p.is_empty() { "/" } else { p } };
            }
        }
    }
    Versioned { version: None, path }
}

fn parse_version(s: &str) -> (u32, u32) {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// dockerd's refusal of a version out of range, if `v` is.
pub fn check_version(v: (u32, u32)) -> Result<(), String> {
    let shown = format!("{}.{}", v.0, v.1);
    if v > parse_version(API_VERSION) {
        return Err(format!("client version {shown} is too new. Maximum supported API version is {API_VERSION}"));
    }
    if v < parse_version(MIN_API_VERSION) {
        return Err(format!(
            "client version {shown} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ));
    }
    Ok(())
}

/// Whether `path` matches `pattern`, and its parameters in order.
fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_start_matches('/').trim_end_matches('/').split('/').collect();
    let mut out = Vec::new();
    match_segs(&pat, &segs, &mut out).then_some(out)
}

fn match_segs(pat: &[&str], segs: &[&str], out: &mut Vec<String>) -> bool {
    let Some((p, prest)) = pat.split_first() else { return segs.is_empty() };
    if p.starts_with('{') && p.ends_with("*}") {
        // One or more segments, as few as leave the rest of the pattern matching from the end.
        for n in (1..=segs.len().saturating_sub(prest.len())).rev() {
            let mut tail = Vec::new();
            if match_segs(prest, &segs[n..], &mut tail) {
                out.push(segs[..n].join("/"));
                out.extend(tail);
                return true;
            }
        }
        return false;
    }
    let Some((s, srest)) = segs.split_first() else { return false };
    if p.starts_with('{') && p.ends_with('}') {
        if s.is_empty() {
            return false;
        }
        out.push((*s).to_string());
    } else if p != s {
        return false;
    }
    match_segs(prest, srest, out)
}

/// The route for `method` and `path` (without the version prefix), with its parameters. A
/// literal segment wins over a parameter (`/images/search` before `/images/{name}`).
pub fn find(method: &str, path: &str) -> Option<(&'static Route, Vec<String>)> {
    let method =
        if method == "HEAD" && !ROUTES.iter().any(|r| r.method == "HEAD" && match_path(r.path, path).is_some()) { "GET" } else { method };
    let mut best: Option<(&'static Route, Vec<String>)> = None;
    for route in ROUTES {
        if route.method != "*" && route.method != method {
            continue;
        }
        if let Some(params) = match_path(route.path, path) {
            if best.as_ref().is_none_or(|(_, p)| params.len() < p.len()) {
                best = Some((route, params));
            }
        }
    }
    best
}

/// `docs/api.md`'s table.
pub fn markdown_table() -> String {
    let mut s = String::from("| method | path | status | notes |\n| --- | --- | --- | --- |\n");
    for r in ROUTES {
        let (status, note) = match r.status {
            Status::Implemented => ("implemented", ""),
            Status::Partial(n) => ("partial", n),
            Status::NotImplemented(n) => ("not implemented", n),
        };
        let method = if r.method == "*" { "any" } else { r.method };
        s.push_str(&format!("| {method} | `{}` | {status} | {note} |\n", r.path));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_and_checked_as_dockerd_does() {
        assert_eq!(split_version("/v1.41/containers/json"), Versioned { version: Some((1, 41)), path: "/containers/json" });
        assert_eq!(split_version("/_ping"), Versioned { version: None, path: "/_ping" });
        assert_eq!(split_version("/v1.47"), Versioned { version: Some((1, 47)), path: "/" });
        assert_eq!(split_version("/volumes"), Versioned { version: None, path: "/volumes" });
        assert!(check_version((1, 41)).is_ok());
        assert!(check_version((1, 47)).is_ok());
        assert!(check_version((1, 48)).unwrap_err().contains("too new. Maximum supported API version is 1.47"));
        assert!(check_version((1, 12)).unwrap_err().contains("too old"));
    }

    #[test]
    fn routes_match_with_parameters() {
        let (r, p) = find("GET", "/images/docker.io/library/busybox:latest/json").unwrap();
        assert_eq!((r.handler, p), (Some(Handler::ImageInspect), vec!["docker.io/library/busybox:latest".to_string()]));
        assert_eq!(find("GET", "/images/search").unwrap().0.path, "/images/search");
        assert_eq!(find("GET", "/images/json").unwrap().0.handler, Some(Handler::ImageList));
        assert_eq!(find("HEAD", "/_ping").unwrap().0.method, "HEAD");
        assert_eq!(find("DELETE", "/containers/abc").unwrap().1, vec!["abc".to_string()]);
        assert_eq!(find("POST", "/swarm/init").unwrap().0.status, Status::NotImplemented(SWARM));
        assert!(find("GET", "/nothing").is_none());
        assert!(find("GET", "/containers/abc/nothing").is_none());
    }

    /// docs/api.md holds the route table as [`markdown_table`] renders it: a route added,
    /// removed or changed here must be documented in the same commit. `BERTH_BLESS=1` rewrites it.
    #[test]
    fn docs_api_md_lists_every_route() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
        let text = std::fs::read_to_string(&path).expect("docs/api.md");
        let (start, end) = ("<!-- routes: generated from src/api/routes.rs -->\n", "<!-- /routes -->");
        let a = text.find(start).expect("docs/api.md has the routes marker") + start.len();
        let b = text.find(end).expect("docs/api.md has the end-of-routes marker");
        let want = markdown_table();
        if text[a..b] != want {
            if std::env::var_os("BERTH_BLESS").is_some() {
                std::fs::write(&path, format!("{}{want}{}", &text[..a], &text[b..])).unwrap();
                return;
            }
            panic!("docs/api.md's route table differs from src/api/routes.rs: run with BERTH_BLESS=1 to rewrite it, then review");
        }
        for r in ROUTES {
            assert!(want.contains(&format!("`{}`", r.path)));
        }
    }
}
