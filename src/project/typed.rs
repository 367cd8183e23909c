//! Pass 8: the canonical node tree to the typed [`Project`]: values checked and converted
//! (durations, byte sizes, commands split as a shell would), defaults filled in as compose does.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::error::{LoadError, Result};
use super::model::*;
use super::yaml::{Map, Node, Value};
use crate::util::units::{parse_bytes, parse_duration, shell_split};

fn bad(n: &Node, path: &str, msg: impl Into<String>) -> LoadError {
    LoadError::at(&n.pos, path, msg)
}

/// A node as JSON (for the parts of the model kept as free-form values).
pub fn to_json(n: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &n.v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
    }
}

/// Reads typed fields from one mapping, naming the key path in errors.
pub struct R<'a> {
    pub m: &'a Map,
    pub path: String,
}

impl<'a> R<'a> {
    pub fn new(m: &'a Map, path: impl Into<String>) -> Self {
        R { m, path: path.into() }
    }
    fn p(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }
    fn node(&self, k: &str) -> Option<&'a Node> {
        self.m.get(k).filter(|n| !n.is_null())
    }
    pub fn str(&self, k: &str) -> Result<Option<String>> {
        match self.node(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Seq(_) | Value::Map(_) => Err(bad(n, &self.p(k), format!("must be a string, not {}", n.kind()))),
                _ => Ok(n.scalar_string()),
            },
        }
    }
    pub fn string(&self, k: &str) -> Result<String> {
        Ok(self.str(k)?.unwrap_or_default())
    }
    pub fn bool(&self, k: &str) -> Result<Option<bool>> {
        match self.node(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Bool(b) => Ok(Some(*b)),
                Value::Str(s) => match s.as_str() {
                    "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
                    _ => Err(bad(n, &self.p(k), format!("must be true or false, not {s:?}"))),
                },
                _ => Err(bad(n, &self.p(k), format!("must be true or false, not {}", n.kind()))),
            },
        }
    }
    pub fn flag(&self, k: &str) -> Result<bool> {
        Ok(self.bool(k)?.unwrap_or(false))
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>> {
        match self.node(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Int(i) => Ok(Some(*i)),
                Value::Float(f) if f.fract() == 0.0 => Ok(Some(*f as i64)),
                Value::Str(s) => {
                    s.trim().parse::<i64>().map(Some).map_err(|_| bad(n, &self.p(k), format!("must be an integer, not {s:?}")))
                }
                _ => Err(bad(n, &self.p(k), format!("must be an integer, not {}", n.kind()))),
            },
        }
    }
    pub fn i64(&self, k: &str) -> Result<i64> {
        Ok(self.int(k)?.unwrap_or(0))
    }
    pub fn float(&self, k: &str) -> Result<f64> {
        match self.node(k) {
            None => Ok(0.0),
            Some(n) => match &n.v {
                Value::Int(i) => Ok(*i as f64),
                Value::Float(f) => Ok(*f),
                Value::Str(s) => s.trim().parse::<f64>().map_err(|_| bad(n, &self.p(k), format!("must be a number, not {s:?}"))),
                _ => Err(bad(n, &self.p(k), format!("must be a number, not {}", n.kind()))),
            },
        }
    }
    /// A float as Go's float32 keeps it (cpus), so that 0.1 prints as 0.1.
    pub(crate) fn float32(&self, k: &str) -> Result<f64> {
        let f = self.float(k)?;
        Ok(format!("{}", f as f32).parse::<f64>().unwrap_or(f))
    }
    pub fn bytes(&self, k: &str) -> Result<Bytes> {
        match self.node(k) {
            None => Ok(Bytes(0)),
            Some(n) => match &n.v {
                Value::Int(i) => Ok(Bytes(*i)),
                Value::Float(f) => Ok(Bytes(*f as i64)),
                Value::Str(s) => parse_bytes(s).map(Bytes).map_err(|e| bad(n, &self.p(k), e)),
                _ => Err(bad(n, &self.p(k), format!("must be a size such as 512m, not {}", n.kind()))),
            },
        }
    }
    pub fn duration(&self, k: &str) -> Result<Option<Duration>> {
        match self.node(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Str(s) => parse_duration(s).map(|d| Some(Duration(d))).map_err(|e| bad(n, &self.p(k), e)),
                _ => Err(bad(n, &self.p(k), format!("must be a duration such as 10s or 1m30s, not {}", n.kind()))),
            },
        }
    }
    pub fn list(&self, k: &str) -> Result<Vec<String>> {
        match self.node(k) {
            None => Ok(Vec::new()),
            Some(n) => match &n.v {
                Value::Seq(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        it.scalar_string()
                            .filter(|_| !it.is_null())
                            .ok_or_else(|| bad(it, &format!("{}[{i}]", self.p(k)), format!("must be a string, not {}", it.kind())))
                    })
                    .collect(),
                Value::Str(s) => Ok(vec![s.clone()]),
                _ => Err(bad(n, &self.p(k), format!("must be a list of strings, not {}", n.kind()))),
            },
        }
    }
    pub(crate) fn strmap(&self, k: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.optmap(k)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
    }
    pub(crate) fn optmap(&self, k: &str) -> Result<BTreeMap<String, Option<String>>> {
        match self.node(k) {
            None => Ok(BTreeMap::new()),
            Some(n) => match &n.v {
                Value::Map(m) => {
                    let mut out = BTreeMap::new();
                    for (key, v) in m.iter() {
                        let val =
                            if v.is_null() {
                                None
                            } else {
                                Some(v.scalar_string().ok_or_else(|| {
                                    bad(v, &format!("{}.{key}", self.p(k)), format!("must be a string, not {}", v.kind()))
                                })?)
                            };
                        out.insert(key.to_string(), val);
                    }
                    Ok(out)
                }
                _ => Err(bad(n, &self.p(k), format!("must be a mapping, not {}", n.kind()))),
            },
        }
    }
    pub fn map(&self, k: &str) -> Result<Option<R<'a>>> {
        match self.node(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Map(m) => Ok(Some(R::new(m, self.p(k)))),
                _ => Err(bad(n, &self.p(k), format!("must be a mapping, not {}", n.kind()))),
            },
        }
    }
    pub fn json(&self, k: &str) -> Option<serde_json::Value> {
        self.node(k).map(to_json)
    }
    pub fn seq(&self, k: &str) -> Result<Vec<&'a Node>> {
        match self.node(k) {
            None => Ok(Vec::new()),
            Some(n) => match &n.v {
                Value::Seq(items) => Ok(items.iter().collect()),
                _ => Err(bad(n, &self.p(k), format!("must be a list, not {}", n.kind()))),
            },
        }
    }
    pub fn extensions(&self) -> Extensions {
        Extensions(self.m.iter().filter(|(k, _)| k.starts_with("x-")).map(|(k, v)| (k.to_string(), to_json(v))).collect())
    }
    /// A command: a string is split as a shell would; a list is kept.
    pub fn command(&self, k: &str) -> Result<Option<Vec<String>>> {
        match self.m.get(k) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Null => Ok(None),
                Value::Str(s) => shell_split(s).map(Some).map_err(|e| bad(n, &self.p(k), e)),
                Value::Seq(_) => self.list(k).map(Some),
                _ => Err(bad(n, &self.p(k), format!("must be a string or a list of strings, not {}", n.kind()))),
            },
        }
    }
}

pub fn service(name: &str, n: &Node) -> Result<Service> {
    let path = format!("services.{name}");
    let Some(m) = n.as_map() else {
        return Err(bad(n, &path, format!("must be a mapping, not {}", n.kind())));
    };
    let r = R::new(m, &path);
    let mut s = Service { name: name.to_string(), ..Default::default() };
    s.profiles = r.list("profiles")?;
    s.annotations = r.strmap("annotations")?;
    s.attach = r.bool("attach")?;
    if let Some(b) = r.map("build")? {
        s.build = Some(build(&b)?);
    }
    s.develop = r.json("develop").map(|mut d| {
        if let Some(watch) = d.get_mut("watch").and_then(Json::as_array_mut) {
            for w in watch {
                split_hook_command(w.get_mut("exec"));
            }
        }
        d
    });
    s.blkio_config = r.json("blkio_config");
    s.cap_add = r.list("cap_add")?;
    s.cap_drop = r.list("cap_drop")?;
    s.cgroup_parent = r.str("cgroup_parent")?;
    s.cgroup = r.str("cgroup")?;
    s.cpu_count = r.i64("cpu_count")?;
    s.cpu_percent = r.float("cpu_percent")?;
    s.cpu_period = r.i64("cpu_period")?;
    s.cpu_quota = r.i64("cpu_quota")?;
    s.cpu_rt_period = r.i64("cpu_rt_period")?;
    s.cpu_rt_runtime = r.i64("cpu_rt_runtime")?;
    s.cpus = r.float32("cpus")?;
    s.cpuset = r.str("cpuset")?;
    s.cpu_shares = r.i64("cpu_shares")?;
    s.command = r.command("command")?;
    s.configs = file_mounts(&r, "configs", None)?;
    s.container_name = r.str("container_name")?;
    s.credential_spec = r.json("credential_spec");
    if let Some(d) = r.map("depends_on")? {
        for (dep, v) in d.m.iter() {
            let mut dd = Dependency { condition: Condition::Started, restart: false, required: true };
            if let Some(vm) = v.as_map() {
                let vr = R::new(vm, format!("{path}.depends_on.{dep}"));
                if let Some(c) = vr.str("condition")? {
                    dd.condition = Condition::parse(&c).ok_or_else(|| {
                        let n = vr.node("condition").expect("read above");
                        bad(
                            n,
                            &vr.p("condition"),
                            r#"must be one of the following: "service_started", "service_healthy", "service_completed_successfully""#,
                        )
                    })?;
                }
                dd.restart = vr.flag("restart")?;
                dd.required = vr.bool("required")?.unwrap_or(true);
            }
            s.depends_on.insert(dep.to_string(), dd);
        }
    }
    if let Some(d) = r.map("deploy")? {
        s.deploy = Some(deploy(&d)?);
    }
    s.device_cgroup_rules = r.list("device_cgroup_rules")?;
    for (i, d) in r.seq("devices")?.into_iter().enumerate() {
        let Some(dm) = d.as_map() else {
            return Err(bad(d, &format!("{path}.devices[{i}]"), "must be a string or a mapping"));
        };
        let dr = R::new(dm, format!("{path}.devices[{i}]"));
        s.devices.push(Device { source: dr.string("source")?, target: dr.string("target")?, permissions: dr.string("permissions")? });
    }
    s.dns = r.list("dns")?;
    s.dns_opt = r.list("dns_opt")?;
    s.dns_search = r.list("dns_search")?;
    s.domainname = r.str("domainname")?;
    s.entrypoint = r.command("entrypoint")?;
    s.provider = r.json("provider");
    s.environment = r.optmap("environment")?;
    s.expose = r.list("expose")?;
    s.external_links = r.list("external_links")?;
    s.extra_hosts = r.list("extra_hosts")?;
    s.group_add = r.list("group_add")?;
    s.gpus = r.seq("gpus")?.into_iter().map(to_json).collect();
    s.hostname = r.str("hostname")?;
    if let Some(h) = r.map("healthcheck")? {
        s.healthcheck = Some(healthcheck(&h)?);
    }
    s.image = r.str("image")?;
    s.init = r.bool("init")?;
    s.ipc = r.str("ipc")?;
    s.isolation = r.str("isolation")?;
    s.labels = r.strmap("labels")?;
    s.links = r.list("links")?;
    if let Some(l) = r.map("logging")? {
        s.logging = Some(Logging { driver: l.str("driver")?, options: l.strmap("options")?, extensions: l.extensions() });
    }
    s.mem_limit = r.bytes("mem_limit")?;
    s.mem_reservation = r.bytes("mem_reservation")?;
    s.memswap_limit = r.bytes("memswap_limit")?;
    s.mem_swappiness = r.bytes("mem_swappiness")?;
    s.mac_address = r.str("mac_address")?;
    if let Some(md) = r.map("models")? {
        for (k, v) in md.m.iter() {
            s.models.insert(k.to_string(), if v.is_null() { None } else { Some(to_json(v)) });
        }
    }
    s.network_mode = r.str("network_mode")?;
    if let Some(nets) = r.map("networks")? {
        for (k, v) in nets.m.iter() {
            let sn = match v.as_map() {
                None => None,
                Some(vm) => {
                    let nr = R::new(vm, format!("{path}.networks.{k}"));
                    Some(ServiceNetwork {
                        aliases: nr.list("aliases")?,
                        driver_opts: nr.strmap("driver_opts")?,
                        gw_priority: nr.i64("gw_priority")?,
                        interface_name: nr.str("interface_name")?,
                        ipv4_address: nr.str("ipv4_address")?,
                        ipv6_address: nr.str("ipv6_address")?,
                        link_local_ips: nr.list("link_local_ips")?,
                        mac_address: nr.str("mac_address")?,
                        priority: nr.i64("priority")?,
                        extensions: nr.extensions(),
                    })
                }
            };
            s.networks.insert(k.to_string(), sn);
        }
    }
    s.oom_kill_disable = r.flag("oom_kill_disable")?;
    s.oom_score_adj = r.i64("oom_score_adj")?;
    s.pid = r.str("pid")?;
    s.pids_limit = r.i64("pids_limit")?;
    s.platform = r.str("platform")?;
    for (i, p) in r.seq("ports")?.into_iter().enumerate() {
        s.ports.push(port(p, &format!("{path}.ports[{i}]"))?);
    }
    s.privileged = r.flag("privileged")?;
    s.pull_policy = r.str("pull_policy")?.map(|p| if p == "if_not_present" { "missing".into() } else { p });
    s.read_only = r.flag("read_only")?;
    s.restart = r.str("restart")?;
    s.runtime = r.str("runtime")?;
    s.scale = r.int("scale")?;
    s.secrets = file_mounts(&r, "secrets", Some("/run/secrets/"))?;
    s.security_opt = r.list("security_opt")?;
    s.shm_size = r.bytes("shm_size")?;
    s.stdin_open = r.flag("stdin_open")?;
    s.stop_grace_period = r.duration("stop_grace_period")?;
    s.stop_signal = r.str("stop_signal")?;
    s.storage_opt = r.strmap("storage_opt")?;
    s.sysctls = r.strmap("sysctls")?;
    s.tmpfs = r.list("tmpfs")?;
    s.tty = r.flag("tty")?;
    if let Some(u) = r.map("ulimits")? {
        s.ulimits = ulimits(&u)?;
    }
    s.use_api_socket = r.flag("use_api_socket")?;
    s.user = r.str("user")?;
    s.userns_mode = r.str("userns_mode")?;
    s.uts = r.str("uts")?;
    s.volume_driver = r.str("volume_driver")?;
    for (i, v) in r.seq("volumes")?.into_iter().enumerate() {
        s.volumes.push(mount(v, &format!("{path}.volumes[{i}]"))?);
    }
    s.volumes_from = r.list("volumes_from")?;
    s.working_dir = r.str("working_dir")?;
    let hooks = |k: &str| -> Result<Vec<Json>> {
        Ok(r.seq(k)?
            .into_iter()
            .map(|h| {
                let mut j = to_json(h);
                split_hook_command(Some(&mut j));
                j
            })
            .collect())
    };
    s.pre_start = hooks("pre_start")?;
    s.post_start = hooks("post_start")?;
    s.pre_stop = hooks("pre_stop")?;
    s.extensions = r.extensions();
    Ok(s)
}

/// A hook's or a watch rule's `exec.command` given as a string is split as a shell would, as
/// compose's `ShellCommand` does (an unsplittable one is left as written).
fn split_hook_command(hook: Option<&mut Json>) {
    let Some(cmd) = hook.and_then(|h| h.get_mut("command")) else { return };
    if let Some(split) = cmd.as_str().and_then(|c| shell_split(c).ok()) {
        *cmd = Json::Array(split.into_iter().map(Json::String).collect());
    }
}

fn build(b: &R) -> Result<Build> {
    let mut ssh = Vec::new();
    if let Some(sm) = b.map("ssh")? {
        for (k, v) in sm.m.iter() {
            ssh.push(match v.scalar_string().filter(|_| !v.is_null()) {
                Some(p) => format!("{k}={p}"),
                None => k.to_string(),
            });
        }
    }
    let mut out = Build {
        context: b.string("context")?,
        dockerfile: b.str("dockerfile")?,
        dockerfile_inline: b.str("dockerfile_inline")?,
        entitlements: b.list("entitlements")?,
        args: b.optmap("args")?,
        provenance: b.str("provenance")?,
        sbom: b.str("sbom")?,
        ssh,
        labels: b.strmap("labels")?,
        cache_from: b.list("cache_from")?,
        cache_to: b.list("cache_to")?,
        no_cache: b.flag("no_cache")?,
        no_cache_filter: b.list("no_cache_filter")?,
        additional_contexts: b.strmap("additional_contexts")?,
        pull: b.flag("pull")?,
        extra_hosts: b.list("extra_hosts")?,
        isolation: b.str("isolation")?,
        network: b.str("network")?,
        target: b.str("target")?,
        secrets: file_mounts(b, "secrets", None)?,
        shm_size: b.bytes("shm_size")?,
        tags: b.list("tags")?,
        ulimits: match b.map("ulimits")? {
            Some(u) => ulimits(&u)?,
            None => BTreeMap::new(),
        },
        platforms: b.list("platforms")?,
        privileged: b.flag("privileged")?,
        extensions: b.extensions(),
    };
    if out.dockerfile.is_none() && out.dockerfile_inline.is_none() {
        out.dockerfile = Some("Dockerfile".into());
    }
    // Compose fills the default in only when the key is absent; one interpolated to "" is
    // left empty, and not printed.
    if out.dockerfile.as_deref() == Some("") {
        out.dockerfile = None;
    }
    Ok(out)
}

fn ulimits(u: &R) -> Result<BTreeMap<String, Ulimit>> {
    let mut out = BTreeMap::new();
    for (k, v) in u.m.iter() {
        let p = format!("{}.{k}", u.path);
        let l = match &v.v {
            Value::Map(m) => {
                let lr = R::new(m, p);
                Ulimit { single: 0, soft: lr.i64("soft")?, hard: lr.i64("hard")? }
            }
            Value::Int(i) => Ulimit { single: *i, soft: 0, hard: 0 },
            Value::Str(s) => Ulimit {
                single: s.parse().map_err(|_| bad(v, &p, format!("must be an integer or soft/hard, not {s:?}")))?,
                soft: 0,
                hard: 0,
            },
            _ => return Err(bad(v, &p, "must be an integer or a mapping with soft and hard")),
        };
        out.insert(k.to_string(), l);
    }
    Ok(out)
}

fn healthcheck(h: &R) -> Result<Healthcheck> {
    let test = match h.m.get("test") {
        None => Vec::new(),
        Some(t) => match &t.v {
            Value::Str(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            Value::Null => Vec::new(),
            _ => h.list("test")?,
        },
    };
    let retries = match h.int("retries")? {
        Some(r) if r < 0 => {
            return Err(LoadError::at(
                &h.m.get("retries").map(|n| n.pos.clone()).unwrap_or_default(),
                format!("{}.retries", h.path),
                "must be 0 or more",
            ));
        }
        r => r.map(|r| r as u64),
    };
    Ok(Healthcheck {
        test,
        timeout: h.duration("timeout")?,
        interval: h.duration("interval")?,
        retries,
        start_period: h.duration("start_period")?,
        start_interval: h.duration("start_interval")?,
        disable: h.flag("disable")?,
        extensions: h.extensions(),
    })
}

fn deploy(d: &R) -> Result<Deploy> {
    let resource = |k: &str| -> Result<Option<Resource>> {
        let Some(res) = d.map("resources")? else { return Ok(None) };
        let Some(l) = res.map(k)? else { return Ok(None) };
        let mut devices = Vec::new();
        for dev in l.seq("devices")? {
            let mut j = to_json(dev);
            if let Some(o) = j.as_object_mut() {
                if (!o.contains_key("count") && !o.contains_key("device_ids")) || o.get("count").and_then(|c| c.as_str()) == Some("all") {
                    o.insert("count".into(), serde_json::Value::from(-1));
                }
            }
            devices.push(j);
        }
        Ok(Some(Resource {
            cpus: l.float32("cpus")?,
            memory: l.bytes("memory")?,
            pids: l.i64("pids")?,
            devices,
            generic_resources: l.seq("generic_resources")?.into_iter().map(to_json).collect(),
        }))
    };
    let restart_policy = match d.map("restart_policy")? {
        None => None,
        Some(rp) => Some(RestartPolicy {
            condition: rp.str("condition")?,
            delay: rp.duration("delay")?,
            max_attempts: rp.int("max_attempts")?.map(|v| v.max(0) as u64),
            window: rp.duration("window")?,
        }),
    };
    Ok(Deploy {
        mode: d.str("mode")?,
        replicas: d.int("replicas")?,
        labels: d.strmap("labels")?,
        update_config: d.json("update_config"),
        rollback_config: d.json("rollback_config"),
        resources: Resources { limits: resource("limits")?, reservations: resource("reservations")? },
        restart_policy,
        placement: d.json("placement").unwrap_or_else(|| serde_json::json!({})),
        endpoint_mode: d.str("endpoint_mode")?,
        extensions: d.extensions(),
    })
}

fn port(p: &Node, path: &str) -> Result<Port> {
    let Some(m) = p.as_map() else {
        return Err(bad(p, path, "must be a string, a number or a mapping"));
    };
    let r = R::new(m, path);
    // Every value is checked here, at load, so that `config` reports it and `up` refuses it
    // before it creates anything (Docker's engine only refuses these at container start).
    let target = match r.int("target")? {
        Some(t) if (1..=65535).contains(&t) => t as u32,
        Some(t) => return Err(bad(p, &format!("{path}.target"), format!("invalid container port {t}: expected 1-65535"))),
        None => return Err(bad(p, path, "a port mapping needs a target (the port inside the container)")),
    };
    if let Some(ip) = r.str("host_ip")?.filter(|s| !s.is_empty()) {
        if ip.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_err() {
            return Err(bad(
                p,
                &format!("{path}.host_ip"),
                format!("invalid IP address {ip:?}: expected an address such as 127.0.0.1, 0.0.0.0 or ::1"),
            ));
        }
    }
    match r.str("protocol")?.as_deref() {
        None | Some("tcp" | "udp" | "TCP" | "UDP") => {}
        Some(proto @ ("sctp" | "SCTP")) => {
            return Err(bad(p, &format!("{path}.protocol"), format!("protocol {proto:?} is not supported by berth: publish tcp or udp")));
        }
        Some(proto) => return Err(bad(p, &format!("{path}.protocol"), format!("invalid protocol {proto:?}: expected tcp or udp"))),
    }
    let published = r.str("published")?.filter(|s| !s.is_empty());
    if let Some(pb) = &published {
        let ok = pb.split('-').all(|x| x.parse::<u32>().is_ok_and(|v| v <= 65535)) && pb.split('-').count() <= 2;
        if !ok {
            return Err(bad(
                p,
                &format!("{path}.published"),
                format!("invalid published port {pb:?}: expected a port (0-65535) or a range such as 8000-8010"),
            ));
        }
    }
    Ok(Port {
        name: r.str("name")?,
        mode: r.str("mode")?.unwrap_or_else(|| "ingress".into()),
        host_ip: r.str("host_ip")?,
        target,
        published,
        protocol: r.str("protocol")?.unwrap_or_else(|| "tcp".into()),
        app_protocol: r.str("app_protocol")?,
        extensions: r.extensions(),
    })
}

fn mount(v: &Node, path: &str) -> Result<Mount> {
    let Some(m) = v.as_map() else {
        return Err(bad(v, path, "must be a string or a mapping"));
    };
    let r = R::new(m, path);
    let kind = r.str("type")?.ok_or_else(|| bad(v, path, "a mount needs a type: bind, volume, tmpfs, image, npipe or cluster"))?;
    let target = r.str("target")?.ok_or_else(|| bad(v, path, "a mount needs a target (the path inside the container)"))?;
    let bind = match r.map("bind")? {
        None => None,
        Some(b) => Some(BindOptions {
            selinux: b.str("selinux")?,
            propagation: b.str("propagation")?,
            create_host_path: b.flag("create_host_path")?,
            recursive: b.str("recursive")?,
        }),
    };
    let volume = match m.get("volume") {
        Some(n) if !n.is_null() => {
            let b = r.map("volume")?.ok_or_else(|| bad(n, path, "volume must be a mapping"))?;
            Some(VolumeOptions { labels: b.strmap("labels")?, nocopy: b.flag("nocopy")?, subpath: b.str("subpath")? })
        }
        Some(_) => Some(VolumeOptions::default()),
        None => None,
    };
    let tmpfs = match r.map("tmpfs")? {
        None => None,
        Some(t) => Some(TmpfsOptions { size: t.bytes("size")?, mode: t.int("mode")?.map(|m| m as u32) }),
    };
    Ok(Mount {
        kind,
        source: r.str("source")?.filter(|s| !s.is_empty()),
        target: super::canonical::clean_path(&target),
        read_only: r.flag("read_only")?,
        consistency: r.str("consistency")?,
        bind,
        volume,
        tmpfs,
        image: r.json("image"),
        extensions: r.extensions(),
    })
}

fn file_mounts(r: &R, k: &str, default_dir: Option<&str>) -> Result<Vec<FileMount>> {
    let mut out = Vec::new();
    for (i, n) in r.seq(k)?.into_iter().enumerate() {
        let p = format!("{}.{k}[{i}]", r.path);
        let Some(m) = n.as_map() else {
            return Err(bad(n, &p, "must be a name or a mapping with source"));
        };
        let fr = R::new(m, p.clone());
        let source = fr.str("source")?.ok_or_else(|| bad(n, &p, "needs a source"))?;
        let mut target = fr.str("target")?;
        if target.is_none() {
            if let Some(d) = default_dir {
                target = Some(format!("{d}{source}"));
            }
        }
        let mode = match m.get("mode") {
            None => None,
            Some(mn) => match &mn.v {
                Value::Int(i) => Some(*i as u32),
                Value::Str(s) => Some(u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| {
                    bad(mn, &format!("{p}.mode"), format!("invalid file mode {s:?}: expected an octal number such as 0440"))
                })?),
                Value::Null => None,
                _ => return Err(bad(mn, &format!("{p}.mode"), "must be a number such as 0440")),
            },
        };
        out.push(FileMount { source, target, uid: fr.str("uid")?, gid: fr.str("gid")?, mode, extensions: fr.extensions() });
    }
    Ok(out)
}

pub fn network(name: &str, n: &Node, project: &str) -> Result<Network> {
    let empty = Map::default();
    let m = n.as_map().unwrap_or(&empty);
    let r = R::new(m, format!("networks.{name}"));
    let mut ipam = Ipam::default();
    if let Some(i) = r.map("ipam")? {
        ipam.driver = i.str("driver")?;
        ipam.options = i.strmap("options")?;
        for (j, c) in i.seq("config")?.into_iter().enumerate() {
            let Some(cm) = c.as_map() else {
                return Err(bad(c, &format!("networks.{name}.ipam.config[{j}]"), "must be a mapping"));
            };
            let cr = R::new(cm, format!("networks.{name}.ipam.config[{j}]"));
            ipam.config.push(IpamPool {
                subnet: cr.str("subnet")?,
                gateway: cr.str("gateway")?,
                ip_range: cr.str("ip_range")?,
                aux_addresses: cr.strmap("aux_addresses")?,
            });
        }
    }
    let external = r.flag("external")?;
    Ok(Network {
        name: r.str("name")?.unwrap_or_else(|| if external { name.to_string() } else { format!("{project}_{name}") }),
        driver: r.str("driver")?,
        driver_opts: r.strmap("driver_opts")?,
        ipam,
        external,
        internal: r.flag("internal")?,
        attachable: r.flag("attachable")?,
        labels: r.strmap("labels")?,
        enable_ipv4: r.bool("enable_ipv4")?,
        enable_ipv6: r.bool("enable_ipv6")?,
        extensions: r.extensions(),
    })
}

pub fn volume(name: &str, n: &Node, project: &str) -> Result<Volume> {
    let empty = Map::default();
    let m = n.as_map().unwrap_or(&empty);
    let r = R::new(m, format!("volumes.{name}"));
    let external = r.flag("external")?;
    Ok(Volume {
        name: r.str("name")?.unwrap_or_else(|| if external { name.to_string() } else { format!("{project}_{name}") }),
        driver: r.str("driver")?,
        driver_opts: r.strmap("driver_opts")?,
        external,
        labels: r.strmap("labels")?,
        extensions: r.extensions(),
    })
}

pub(crate) fn file_object(kind: &str, name: &str, n: &Node, project: &str) -> Result<FileObject> {
    let empty = Map::default();
    let m = n.as_map().unwrap_or(&empty);
    let r = R::new(m, format!("{kind}.{name}"));
    let external = r.flag("external")?;
    Ok(FileObject {
        name: r.str("name")?.unwrap_or_else(|| if external { name.to_string() } else { format!("{project}_{name}") }),
        file: r.str("file")?,
        environment: r.str("environment")?,
        content: r.str("content")?,
        external,
        labels: r.strmap("labels")?,
        driver: r.str("driver")?,
        driver_opts: r.strmap("driver_opts")?,
        template_driver: r.str("template_driver")?,
        extensions: r.extensions(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;

    fn web(text: &str) -> Result<Service> {
        let docs = super::super::yaml::parse(text, &Arc::new(PathBuf::from("compose.yaml"))).unwrap();
        let Value::Map(m) = &docs[0].v else { panic!("not a map") };
        let Value::Map(services) = &m.get("services").unwrap().v else { panic!("no services") };
        service("web", services.get("web").unwrap())
    }

    #[test]
    fn depends_on_conditions_are_typed() {
        let s = web("services:\n  web:\n    depends_on:\n      db: {condition: service_healthy, restart: true}\n      init: {condition: service_completed_successfully}\n")
            .unwrap();
        assert_eq!(s.depends_on["db"].condition, Condition::Healthy);
        assert!(s.depends_on["db"].restart);
        assert_eq!(s.depends_on["init"].condition, Condition::CompletedSuccessfully);
        let e = web("services:\n  web:\n    depends_on:\n      db: {condition: service_ready}\n").unwrap_err().to_string();
        assert!(e.contains("services.web.depends_on.db.condition"), "{e}");
        assert!(e.contains("compose.yaml"), "{e}");
        assert!(
            e.contains(r#"must be one of the following: "service_started", "service_healthy", "service_completed_successfully""#),
            "{e}"
        );
    }

    #[test]
    fn condition_names_round_trip() {
        for c in Condition::ALL {
            assert_eq!(Condition::parse(c.as_str()), Some(c));
        }
        assert_eq!(Condition::parse("service_ready"), None);
        assert_eq!(Condition::parse(""), None);
    }
}
