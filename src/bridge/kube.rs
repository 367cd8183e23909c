//! The mapping itself: a compose [`Project`] to typed Kubernetes objects (k8s-openapi), with a
//! [`Diagnostic`] for everything that Kubernetes cannot express as compose meant it.
//!
//! The objects, their names and the labels that tie them are compose-bridge's (its
//! `docker/compose-bridge-kubernetes` templates), so that a project converts as `docker compose
//! bridge convert` converts it; where those templates write something Kubernetes refuses or that
//! changes what the project does (a `Never` restart policy in a Deployment, capabilities written
//! as a Go slice, a volume per service where compose shares one), berth writes what works and says
//! so in docs/kubernetes.md. Each compose key is either mapped here, or named in a diagnostic.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction,
    HostAlias, HostPathVolumeSource, ImageVolumeSource, KeyToPath, Lifecycle, LifecycleHandler, Namespace, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodDNSConfig, PodDNSConfigOption, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service, ServicePort,
    ServiceSpec, Sysctl, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{label, label_key, label_key_ok, label_value_ok, port_name, safe, unique_labels};
use super::{BridgeError, Diagnostic, Level, Options};
use crate::project::Project;
use crate::project::model::{Condition, Duration, FileMount, FileObject, Mount, Service as ComposeService};

pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const SECRET_LABEL: &str = "com.docker.compose.secret";
pub const VOLUME_LABEL: &str = "com.docker.compose.volume";
pub const NETWORK_LABEL_PREFIX: &str = "com.docker.compose.network.";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// compose-bridge's defaults, which its Helm chart makes values of.
pub const DEFAULT_CPU_LIMIT: &str = "100m";
pub const DEFAULT_MEMORY_LIMIT: &str = "512Mi";
pub const DEFAULT_STORAGE_SIZE: &str = "100Mi";
pub const DEFAULT_ACCESS_MODE: &str = "ReadWriteOnce";
pub const DEFAULT_STORAGE_CLASS: &str = "hostpath";
pub const DEFAULT_STRATEGY: &str = "Recreate";
pub const DEFAULT_SERVICE_TYPE: &str = "LoadBalancer";

/// Ports of an `expose` range converted one by one, at most.
const MAX_RANGE: u32 = 100;

/// Everything a project converts to.
pub struct Converted {
    pub project: String,
    pub namespace: String,
    pub namespace_object: Namespace,
    pub config_map: Option<ConfigMap>,
    /// By compose name.
    pub secrets: Vec<(String, Secret)>,
    pub policies: Vec<(String, NetworkPolicy)>,
    pub claims: Vec<(String, PersistentVolumeClaim)>,
    pub services: Vec<ConvertedService>,
    pub diagnostics: Vec<Diagnostic>,
}

pub enum Workload {
    Deployment(Box<Deployment>),
    DaemonSet(Box<DaemonSet>),
    Job(Box<Job>),
}

pub struct ConvertedService {
    pub name: String,
    pub workload: Workload,
    /// The ClusterIP Service that gives the service its name in the cluster.
    pub expose: Option<Service>,
    /// The Service of the published ports.
    pub published: Option<Service>,
    /// Whether the compose service has `ports:` at all (compose-bridge's templates write a comment then).
    pub has_ports: bool,
    pub image: String,
    pub pull_policy: String,
    /// Whether the project gave the number of replicas (else the Helm chart makes it a value).
    pub replicas_given: bool,
    pub cpu_limit_given: bool,
    pub memory_limit_given: bool,
}

struct Ctx<'a> {
    project: &'a Project,
    opts: &'a Options,
    namespace: String,
    diags: Vec<Diagnostic>,
    /// Compose service name to its Kubernetes name (Deployment and Service).
    service_names: BTreeMap<String, String>,
    claim_names: BTreeMap<String, String>,
    secret_names: BTreeMap<String, String>,
    config_map_name: String,
    /// Services other services wait for with `service_completed_successfully`: they run as Jobs.
    jobs: BTreeSet<String>,
}

impl Ctx<'_> {
    fn warn(&mut self, service: Option<&str>, key: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            level: Level::Warning,
            service: service.map(str::to_string),
            key: key.into(),
            message: message.into(),
        });
    }
    fn note(&mut self, service: Option<&str>, key: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic { level: Level::Note, service: service.map(str::to_string), key: key.into(), message: message.into() });
    }
}

/// A label value for a compose name: the name itself when Kubernetes accepts it.
pub fn label_value(s: &str) -> String {
    if label_value_ok(s) { s.to_string() } else { label(s, 63) }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), label_value(v))).collect()
}

fn meta(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: if labels.is_empty() { None } else { Some(labels) },
        ..Default::default()
    }
}

fn some_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

fn some_map<K, V>(m: BTreeMap<K, V>) -> Option<BTreeMap<K, V>> {
    if m.is_empty() { None } else { Some(m) }
}

/// Whole seconds, rounded up (Kubernetes counts probes and grace periods in seconds).
fn seconds(d: Duration) -> i64 {
    let ns = d.0.max(0);
    (ns + 999_999_999) / 1_000_000_000
}

/// A CPU quantity: whole cores, or millicores.
pub fn cpu_quantity(cpus: f64) -> Quantity {
    let milli = (cpus * 1000.0).ceil().max(1.0) as i64;
    if milli % 1000 == 0 { Quantity((milli / 1000).to_string()) } else { Quantity(format!("{milli}m")) }
}

/// A memory quantity: with a binary suffix when it divides exactly.
pub fn memory_quantity(bytes: i64) -> Quantity {
    for (suffix, unit) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= unit && bytes % unit == 0 {
            return Quantity(format!("{}{suffix}", bytes / unit));
        }
    }
    Quantity(bytes.to_string())
}

/// Converts `project`; fails only on what it cannot read (a secret's file).
pub fn convert(project: &Project, opts: &Options) -> Result<Converted, BridgeError> {
    let namespace = label(opts.namespace.as_deref().unwrap_or(&project.name), 63);
    let mut ctx = Ctx {
        project,
        opts,
        namespace: namespace.clone(),
        diags: Vec::new(),
        service_names: unique_labels(project.services.keys().map(String::as_str), 63 - "-published".len()),
        claim_names: BTreeMap::new(),
        secret_names: unique_labels(project.secrets.keys().map(String::as_str), 253),
        config_map_name: label(&project.name, 253),
        jobs: BTreeSet::new(),
    };
    for s in project.services.values() {
        for (dep, d) in &s.depends_on {
            if d.condition == Condition::CompletedSuccessfully {
                ctx.jobs.insert(dep.clone());
            }
        }
    }
    let used_volumes: BTreeSet<&str> = project
        .services
        .values()
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source.as_deref())
        .filter(|s| !s.is_empty())
        .collect();
    ctx.claim_names = unique_labels(used_volumes.iter().copied(), 253);

    let namespace_object = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            labels: Some(labels(&[(PROJECT_LABEL, &project.name)])),
            ..Default::default()
        },
        ..Default::default()
    };
    let config_map = config_map(&mut ctx)?;
    let secrets = secrets(&mut ctx)?;
    let policies = policies(&mut ctx);
    let claims = claims(&mut ctx, &used_volumes);
    let mut services = Vec::new();
    for s in project.services.values() {
        services.push(service(&mut ctx, s));
    }
    if !project.models.is_empty() {
        ctx.warn(
            None,
            "models",
            "AI models (Docker Model Runner) are not converted: run a model server in the cluster and point the services at it",
        );
    }
    Ok(Converted {
        project: project.name.clone(),
        namespace,
        namespace_object,
        config_map,
        secrets,
        policies,
        claims,
        services,
        diagnostics: ctx.diags,
    })
}

/// The content of a secret or config: its file, its environment variable or its inline content.
fn content(ctx: &mut Ctx, kind: &str, name: &str, obj: &FileObject) -> Result<Option<Vec<u8>>, BridgeError> {
    if obj.external {
        ctx.warn(
            None,
            format!("{kind}s.{name}"),
            format!("external {kind} is not converted: create it in the namespace yourself before you apply the manifests"),
        );
        return Ok(None);
    }
    if let Some(c) = &obj.content {
        return Ok(Some(c.clone().into_bytes()));
    }
    if let Some(var) = &obj.environment {
        return match ctx.project.environment.get(var) {
            Some(v) => Ok(Some(v.clone().into_bytes())),
            None => Err(BridgeError::UnsetVariable { kind: kind.to_string(), name: name.to_string(), variable: var.clone() }),
        };
    }
    if let Some(file) = &obj.file {
        let path = ctx.project.working_dir.join(file);
        return std::fs::read(&path).map(Some).map_err(|source| BridgeError::Read { what: format!("{kind} {name:?}"), path, source });
    }
    Ok(None)
}

fn config_map(ctx: &mut Ctx) -> Result<Option<ConfigMap>, BridgeError> {
    if ctx.project.configs.is_empty() {
        return Ok(None);
    }
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    let mut size = 0usize;
    for (name, obj) in &ctx.project.configs {
        let Some(bytes) = content(ctx, "config", name, obj)? else { continue };
        size += bytes.len();
        match String::from_utf8(bytes) {
            // As compose-bridge writes it (a literal block): a text ends with a newline.
            Ok(mut text) => {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                data.insert(name.clone(), text);
            }
            Err(e) => {
                binary.insert(name.clone(), ByteString(e.into_bytes()));
            }
        }
    }
    if size > 1 << 20 {
        ctx.warn(
            None,
            "configs",
            format!("the configs add up to {size} bytes, more than the 1 MiB a ConfigMap holds: mount large files from a volume"),
        );
    }
    Ok(Some(ConfigMap {
        metadata: meta(&ctx.config_map_name, &ctx.namespace, labels(&[(PROJECT_LABEL, &ctx.project.name)])),
        data: some_map(data),
        binary_data: some_map(binary),
        ..Default::default()
    }))
}

fn secrets(ctx: &mut Ctx) -> Result<Vec<(String, Secret)>, BridgeError> {
    let mut out = Vec::new();
    for (name, obj) in &ctx.project.secrets {
        let Some(bytes) = content(ctx, "secret", name, obj)? else { continue };
        out.push((
            name.clone(),
            Secret {
                metadata: meta(
                    &ctx.secret_names[name],
                    &ctx.namespace,
                    labels(&[(PROJECT_LABEL, &ctx.project.name), (SECRET_LABEL, name)]),
                ),
                data: Some(BTreeMap::from([(name.clone(), ByteString(bytes))])),
                type_: Some("Opaque".into()),
                ..Default::default()
            },
        ));
    }
    Ok(out)
}

/// One NetworkPolicy per network: its pods (labelled with the network) take traffic from, and
/// send it to, the pods of the same network only, as compose-bridge's templates write it.
fn policies(ctx: &mut Ctx) -> Vec<(String, NetworkPolicy)> {
    let mut out = Vec::new();
    for (name, net) in &ctx.project.networks {
        let key = label_key(NETWORK_LABEL_PREFIX, name);
        let selector = LabelSelector { match_labels: Some(BTreeMap::from([(key, "true".to_string())])), ..Default::default() };
        let peer = NetworkPolicyPeer { pod_selector: Some(selector.clone()), ..Default::default() };
        if net.driver.as_deref().is_some_and(|d| d != "bridge" && d != "overlay") {
            ctx.note(
                None,
                format!("networks.{name}.driver"),
                "network drivers do not apply: the cluster's network plugin carries the traffic",
            );
        }
        out.push((
            name.clone(),
            NetworkPolicy {
                metadata: ObjectMeta {
                    name: Some(format!("{}-network-policy", label(name, 253 - "-network-policy".len()))),
                    namespace: Some(ctx.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(NetworkPolicySpec {
                    pod_selector: Some(selector),
                    policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
                    ingress: Some(vec![NetworkPolicyIngressRule { from: Some(vec![peer.clone()]), ..Default::default() }]),
                    egress: Some(vec![NetworkPolicyEgressRule { to: Some(vec![peer]), ..Default::default() }]),
                }),
            },
        ));
    }
    out
}

fn claims(ctx: &mut Ctx, used: &BTreeSet<&str>) -> Vec<(String, PersistentVolumeClaim)> {
    let mut out = Vec::new();
    for name in used {
        let Some(vol) = ctx.project.volumes.get(*name) else { continue };
        if vol.external {
            ctx.note(
                None,
                format!("volumes.{name}"),
                format!("external volume: create the PersistentVolumeClaim {:?} in the namespace yourself", ctx.claim_names[*name]),
            );
            continue;
        }
        if vol.driver.as_deref().is_some_and(|d| d != "local") || !vol.driver_opts.is_empty() {
            ctx.warn(
                None,
                format!("volumes.{name}.driver"),
                "volume drivers and their options are not converted: the claim uses the cluster's storage class",
            );
        }
        let users: Vec<&String> = ctx
            .project
            .services
            .iter()
            .filter(|(_, s)| s.volumes.iter().any(|m| m.kind == "volume" && m.source.as_deref() == Some(name)))
            .map(|(n, _)| n)
            .collect();
        if users.len() > 1 {
            ctx.note(
                None,
                format!("volumes.{name}"),
                format!(
                    "shared by {}: a ReadWriteOnce claim is shared by pods on one node only; give it a ReadWriteMany storage class for several nodes",
                    users.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let mut l = labels(&[(PROJECT_LABEL, &ctx.project.name), (VOLUME_LABEL, name)]);
        for (k, v) in &vol.labels {
            if label_key_ok(k) && label_value_ok(v) {
                l.insert(k.clone(), v.clone());
            }
        }
        out.push((
            name.to_string(),
            PersistentVolumeClaim {
                metadata: meta(&ctx.claim_names[*name], &ctx.namespace, l),
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec![DEFAULT_ACCESS_MODE.into()]),
                    volume_mode: Some("Filesystem".into()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_string(), Quantity(DEFAULT_STORAGE_SIZE.into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    out
}

/// `N`, `N/proto`, `N-M` or `N-M/proto`.
fn parse_expose(s: &str) -> Option<(u32, u32, String)> {
    let (range, proto) = match s.split_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (s, "tcp".to_string()),
    };
    let (a, b) = match range.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let n = range.trim().parse().ok()?;
            (n, n)
        }
    };
    if a == 0 || b < a || b > 65535 {
        return None;
    }
    Some((a, b, proto))
}

fn port_key(port: u32, proto: &str) -> String {
    if proto == "tcp" { port.to_string() } else { format!("{port}-{proto}") }
}

fn k8s_protocol(proto: &str) -> Option<String> {
    match proto {
        "tcp" => None,
        other => Some(other.to_ascii_uppercase()),
    }
}

fn service(ctx: &mut Ctx, s: &ComposeService) -> ConvertedService {
    let name = s.name.as_str();
    let svc = Some(name);
    let k8s_name = ctx.service_names[name].clone();
    if safe(name) != k8s_name || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        ctx.note(
            svc,
            "name",
            format!(
                "other pods reach this service as {k8s_name:?} (Kubernetes names allow only a-z, 0-9 and -): update references to {name:?}"
            ),
        );
    }
    let selector = labels(&[(PROJECT_LABEL, &ctx.project.name), (SERVICE_LABEL, name)]);
    let image = s.image.clone().unwrap_or_else(|| format!("{}-{}", ctx.project.name, name));
    if s.build.is_some() {
        ctx.note(
            svc,
            "build",
            format!(
                "the cluster pulls {image:?}: build it and push it to a registry the cluster can reach (`berth build` then `berth push`)"
            ),
        );
    }
    let pull_policy = match s.pull_policy.as_deref() {
        None | Some("missing") | Some("if_not_present") | Some("build") => "IfNotPresent",
        Some("always") => "Always",
        Some("never") => "Never",
        Some(other) => {
            ctx.note(svc, "pull_policy", format!("{other:?} has no Kubernetes equivalent: the image is pulled on every start (Always)"));
            "Always"
        }
    }
    .to_string();

    // Ports: what the container listens on (expose, port targets, the image's EXPOSE), and what is published.
    let mut container_ports: BTreeSet<(u32, String)> = BTreeSet::new();
    let image_ports = ctx.opts.image_ports.get(name).cloned().unwrap_or_default();
    for (key, e) in s.expose.iter().map(|e| ("expose", e)).chain(image_ports.iter().map(|e| ("image", e))) {
        match parse_expose(e) {
            Some((a, b, proto)) if b - a < MAX_RANGE => container_ports.extend((a..=b).map(|p| (p, proto.clone()))),
            Some(_) => ctx.warn(
                svc,
                key,
                format!("port range {e:?} is larger than {MAX_RANGE} ports: list the ports the service needs in `expose:`"),
            ),
            None => ctx.warn(svc, key, format!("cannot read port {e:?}: write it as PORT, PORT/PROTOCOL or FIRST-LAST")),
        }
    }
    let mut published_ports = Vec::new();
    let mut published_names = BTreeSet::new();
    for p in &s.ports {
        let proto = if p.protocol.is_empty() { "tcp".to_string() } else { p.protocol.to_ascii_lowercase() };
        container_ports.insert((p.target, proto.clone()));
        let Some(published) = p.published.as_deref().filter(|x| !x.is_empty()) else { continue };
        let first = published.split('-').next().unwrap_or(published);
        let Ok(port) = first.parse::<i32>() else {
            ctx.warn(svc, "ports", format!("cannot read published port {published:?}"));
            continue;
        };
        if published.contains('-') {
            ctx.note(svc, "ports", format!("published range {published:?} becomes port {port}"));
        }
        if p.host_ip.as_deref().is_some_and(|ip| !matches!(ip, "" | "0.0.0.0" | "::")) {
            ctx.warn(
                svc,
                "ports",
                format!(
                    "port {published} is published on {} only; a Kubernetes Service cannot bind a host address, and a LoadBalancer is reachable from outside the cluster",
                    p.host_ip.as_deref().unwrap_or_default()
                ),
            );
        }
        if p.mode == "host" {
            ctx.note(svc, "ports", format!("port {published}: mode host is not converted; the port is published through the Service"));
        }
        let pname = match &p.name {
            Some(n) if !n.is_empty() => {
                let cut: String = n.chars().take(14).collect();
                super::names::port_name(&cut, "").trim_end_matches('-').to_string()
            }
            _ => port_name(name, &port_key(port as u32, &proto)),
        };
        if !published_names.insert(pname.clone()) {
            ctx.warn(svc, "ports", format!("port {published}/{proto} is published twice: the second is left out"));
            continue;
        }
        published_ports.push(ServicePort {
            name: Some(pname),
            port,
            protocol: Some(proto.to_ascii_uppercase()),
            target_port: Some(IntOrString::String(port_name(name, &port_key(p.target, &proto)))),
            ..Default::default()
        });
    }
    let has_ports = !s.ports.is_empty();
    let cports: Vec<ContainerPort> = container_ports
        .iter()
        .map(|(port, proto)| ContainerPort {
            name: Some(port_name(name, &port_key(*port, proto))),
            container_port: *port as i32,
            protocol: k8s_protocol(proto),
            ..Default::default()
        })
        .collect();
    let expose = if cports.is_empty() {
        let depended_on = ctx.project.services.values().any(|o| o.depends_on.contains_key(name));
        if s.network_mode.is_none() && depended_on && !ctx.jobs.contains(name) {
            ctx.warn(
                svc,
                "expose",
                "other services depend on it, but no port is exposed or published (nor known from a local image), so no Service names it and they cannot reach it: list its ports in `expose:`",
            );
        }
        None
    } else {
        Some(Service {
            metadata: meta(&k8s_name, &ctx.namespace, selector.clone()),
            spec: Some(ServiceSpec {
                selector: Some(selector.clone()),
                ports: Some(
                    cports
                        .iter()
                        .map(|c| ServicePort {
                            name: c.name.clone(),
                            port: c.container_port,
                            protocol: c.protocol.clone(),
                            target_port: c.name.clone().map(IntOrString::String),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let published = if published_ports.is_empty() {
        None
    } else {
        Some(Service {
            metadata: meta(&format!("{k8s_name}-published"), &ctx.namespace, selector.clone()),
            spec: Some(ServiceSpec { selector: Some(selector.clone()), ports: Some(published_ports), ..Default::default() }),
            ..Default::default()
        })
    };
    if let Some(net) = s.networks.iter().find(|(_, n)| n.as_ref().is_some_and(|n| !n.aliases.is_empty())) {
        ctx.warn(
            svc,
            format!("networks.{}.aliases", net.0),
            "network aliases are not converted: other pods reach the service by its Service name only",
        );
    }
    if s.networks.values().flatten().any(|n| n.ipv4_address.is_some() || n.ipv6_address.is_some() || n.mac_address.is_some()) {
        ctx.warn(
            svc,
            "networks",
            "fixed addresses (ipv4_address, ipv6_address, mac_address) are not converted: the cluster assigns pod addresses",
        );
    }

    let (container, mut pod) = container_and_pod(ctx, s, &image, &pull_policy, cports);
    let cpu_limit_given = container.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| l.contains_key("cpu"));
    let memory_limit_given = container.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some_and(|l| l.contains_key("memory"));
    pod.containers = vec![container];

    // Pod labels: the selector, one per network (what the NetworkPolicies select), and the service's labels.
    let mut pod_labels = selector.clone();
    if s.network_mode.is_none() {
        for net in s.networks.keys() {
            pod_labels.insert(label_key(NETWORK_LABEL_PREFIX, net), "true".into());
        }
    }
    let mut pod_annotations = BTreeMap::new();
    for (k, v) in &s.labels {
        if label_key_ok(k) && label_value_ok(v) && !k.starts_with("com.docker.compose.") {
            pod_labels.insert(k.clone(), v.clone());
        } else if label_key_ok(k) {
            pod_annotations.insert(k.clone(), v.clone());
        } else {
            ctx.warn(
                svc,
                format!("labels.{k}"),
                "not a valid Kubernetes label or annotation key (DNS prefix, then at most 63 letters, digits, -, _ or .): left out",
            );
        }
    }
    for (k, v) in &s.annotations {
        if label_key_ok(k) {
            pod_annotations.insert(k.clone(), v.clone());
        } else {
            ctx.warn(svc, format!("annotations.{k}"), "not a valid Kubernetes annotation key: left out");
        }
    }
    let mut workload_labels = selector.clone();
    let mut workload_annotations = BTreeMap::new();
    if let Some(d) = &s.deploy {
        for (k, v) in &d.labels {
            if label_key_ok(k) && label_value_ok(v) {
                workload_labels.insert(k.clone(), v.clone());
            } else if label_key_ok(k) {
                workload_annotations.insert(k.clone(), v.clone());
            } else {
                ctx.warn(svc, format!("deploy.labels.{k}"), "not a valid Kubernetes label or annotation key: left out");
            }
        }
    }
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(pod_labels), annotations: some_map(pod_annotations), ..Default::default() }),
        spec: Some(pod),
    };
    let mut workload_meta = meta(&k8s_name, &ctx.namespace, workload_labels);
    workload_meta.annotations = some_map(workload_annotations);
    let match_labels = LabelSelector { match_labels: Some(selector), ..Default::default() };

    let mode = s.deploy.as_ref().and_then(|d| d.mode.as_deref()).unwrap_or("replicated");
    let replicas = s.scale.or(s.deploy.as_ref().and_then(|d| d.replicas));
    let replicas_given = replicas.is_some();
    let replicas = replicas.unwrap_or(1).clamp(0, i32::MAX as i64) as i32;
    let restart = restart_of(s);
    let workload = if ctx.jobs.contains(name) || mode.ends_with("-job") {
        if mode == "global-job" {
            ctx.warn(svc, "deploy.mode", "global-job runs once in the cluster, not once per node: a Job has no per-node mode");
        }
        let mut template = template;
        let (policy, backoff) = match restart {
            Restart::Never | Restart::Unset => ("Never", Some(0)),
            Restart::OnFailure(n) => ("OnFailure", n.map(|n| n.min(i32::MAX as u64) as i32)),
            Restart::Always => {
                ctx.note(svc, "restart", "runs as a Job (other services wait for it to complete): it is restarted on failure only");
                ("OnFailure", None)
            }
        };
        if let Some(spec) = template.spec.as_mut() {
            spec.restart_policy = Some(policy.into());
        }
        let jobs_replicas = if mode.ends_with("-job") { Some(replicas) } else { None };
        Workload::Job(Box::new(Job {
            metadata: workload_meta,
            spec: Some(JobSpec {
                completions: jobs_replicas,
                parallelism: jobs_replicas,
                backoff_limit: backoff,
                template,
                ..Default::default()
            }),
            ..Default::default()
        }))
    } else {
        if matches!(restart, Restart::Never | Restart::OnFailure(_)) {
            ctx.warn(svc, "restart", "a Deployment restarts its pods whenever they exit: run a one-off task as a Job (make other services depend on it with condition service_completed_successfully)");
        }
        if mode == "global" {
            if replicas_given {
                ctx.note(svc, "deploy.replicas", "a DaemonSet runs one pod per node: the number of replicas does not apply");
            }
            Workload::DaemonSet(Box::new(DaemonSet {
                metadata: workload_meta,
                spec: DaemonSetSpec { selector: match_labels, template, ..Default::default() },
                ..Default::default()
            }))
        } else {
            Workload::Deployment(Box::new(Deployment {
                metadata: workload_meta,
                spec: DeploymentSpec {
                    replicas: Some(replicas),
                    selector: match_labels,
                    strategy: Some(DeploymentStrategy { type_: Some(DEFAULT_STRATEGY.into()), ..Default::default() }),
                    template,
                    ..Default::default()
                },
                ..Default::default()
            }))
        }
    };
    depends_on(ctx, s);
    ConvertedService {
        name: name.to_string(),
        workload,
        expose,
        published,
        has_ports,
        image,
        pull_policy,
        replicas_given,
        cpu_limit_given,
        memory_limit_given,
    }
}

enum Restart {
    Unset,
    Never,
    OnFailure(Option<u64>),
    Always,
}

fn restart_of(s: &ComposeService) -> Restart {
    if let Some(rp) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        return match rp.condition.as_deref() {
            Some("none") => Restart::Never,
            Some("on-failure") => Restart::OnFailure(rp.max_attempts),
            _ => Restart::Always,
        };
    }
    match s.restart.as_deref() {
        None => Restart::Unset,
        Some("no") => Restart::Never,
        Some(r) if r.starts_with("on-failure") => Restart::OnFailure(r.split_once(':').and_then(|(_, n)| n.parse().ok())),
        Some(_) => Restart::Always,
    }
}

fn depends_on(ctx: &mut Ctx, s: &ComposeService) {
    let svc = Some(s.name.as_str());
    for (dep, d) in &s.depends_on {
        let key = format!("depends_on.{dep}");
        if d.condition == Condition::CompletedSuccessfully {
            ctx.warn(
                svc,
                key,
                format!("Kubernetes starts pods without waiting: {dep} runs as a Job, and this service starts while it runs (make it retry until its input is ready)"),
            );
        } else if d.restart {
            ctx.warn(svc, format!("{key}.restart"), format!("Kubernetes does not restart this service when {dep} restarts"));
        } else {
            ctx.note(
                svc,
                key,
                format!("Kubernetes has no start order between pods: make this service retry until {dep} answers ({dep}'s Service routes to it only once it is ready)"),
            );
        }
    }
    if !s.links.is_empty() || !s.external_links.is_empty() {
        ctx.warn(svc, "links", "links are not converted: other pods reach a service by its Service name");
    }
}

/// A user as `uid[:gid]`: the numbers, or `None` when it names a user.
fn numeric_user(u: &str) -> Option<(i64, Option<i64>)> {
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid = uid.parse().ok()?;
    let gid = match gid {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

fn hook(ctx: &mut Ctx, svc: &str, key: &str, hooks: &[serde_json::Value]) -> Option<LifecycleHandler> {
    let first = hooks.first()?;
    if hooks.len() > 1 {
        ctx.warn(Some(svc), key, "Kubernetes runs one hook: only the first is converted");
    }
    let command: Vec<String> = match first.get("command") {
        Some(serde_json::Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
        Some(serde_json::Value::String(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        _ => {
            ctx.warn(Some(svc), key, "a hook without a command is not converted");
            return None;
        }
    };
    for k in ["user", "privileged", "working_dir", "environment"] {
        if first.get(k).is_some() {
            ctx.warn(Some(svc), format!("{key}.{k}"), "a Kubernetes hook runs as the container runs: this key is not converted");
        }
    }
    Some(LifecycleHandler { exec: Some(ExecAction { command: Some(command) }), ..Default::default() })
}

fn container_and_pod(ctx: &mut Ctx, s: &ComposeService, image: &str, pull_policy: &str, ports: Vec<ContainerPort>) -> (Container, PodSpec) {
    let name = s.name.as_str();
    let svc = Some(name);
    let mut c = Container {
        name: label(s.container_name.as_deref().unwrap_or(name), 63),
        image: Some(image.to_string()),
        image_pull_policy: Some(pull_policy.to_string()),
        ports: some_vec(ports),
        ..Default::default()
    };
    let mut pod = PodSpec::default();

    match (&s.entrypoint, &s.command) {
        (Some(e), cmd) if e.is_empty() => match cmd {
            Some(cmd) if !cmd.is_empty() => c.command = Some(cmd.clone()),
            _ => ctx.warn(svc, "entrypoint", "an empty entrypoint without a command cannot be written: the image's entrypoint stays"),
        },
        (e, cmd) => {
            c.command = e.clone();
            c.args = cmd.clone().filter(|c| !c.is_empty());
            if cmd.as_ref().is_some_and(|c| c.is_empty()) && e.is_none() {
                ctx.warn(svc, "command", "an empty command cannot be written: the image's command stays");
            }
        }
    }
    c.working_dir = s.working_dir.clone();
    let mut env = Vec::new();
    for (k, v) in &s.environment {
        match v {
            Some(v) => env.push(EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }),
            None => ctx.warn(
                svc,
                format!("environment.{k}"),
                "has no value (compose would take it from the shell): give it a value, or set it in the Deployment",
            ),
        }
    }
    c.env = some_vec(env);
    c.tty = s.tty.then_some(true);
    c.stdin = s.stdin_open.then_some(true);

    // Security.
    let mut sc = SecurityContext::default();
    let mut psc = PodSecurityContext::default();
    if let Some(u) = &s.user {
        match numeric_user(u) {
            Some((uid, gid)) => {
                sc.run_as_user = Some(uid);
                sc.run_as_group = gid;
            }
            None => ctx.warn(svc, "user", format!("{u:?} is a name: Kubernetes needs numbers (uid[:gid]); the image's user stays")),
        }
    }
    if !s.group_add.is_empty() {
        let mut groups = Vec::new();
        for g in &s.group_add {
            match g.parse::<i64>() {
                Ok(n) => groups.push(n),
                Err(_) => ctx.warn(svc, "group_add", format!("group {g:?} is a name: Kubernetes needs a number; left out")),
            }
        }
        psc.supplemental_groups = some_vec(groups);
    }
    if s.read_only {
        sc.read_only_root_filesystem = Some(true);
    }
    if s.privileged {
        sc.privileged = Some(true);
        ctx.warn(
            svc,
            "privileged",
            "the container runs privileged, with every capability and device of its node: most clusters refuse it (Pod Security Standards)",
        );
    }
    let caps = |v: &Vec<String>| -> Option<Vec<String>> {
        some_vec(v.iter().map(|c| c.to_ascii_uppercase().trim_start_matches("CAP_").to_string()).collect())
    };
    if !s.cap_add.is_empty() || !s.cap_drop.is_empty() {
        sc.capabilities = Some(Capabilities { add: caps(&s.cap_add), drop: caps(&s.cap_drop) });
    }
    for opt in &s.security_opt {
        let (k, v) = opt.split_once([':', '=']).unwrap_or((opt.as_str(), "true"));
        match (k, v) {
            ("no-new-privileges", "true") => sc.allow_privilege_escalation = Some(false),
            ("no-new-privileges", _) => {}
            ("seccomp", "unconfined") => {
                sc.seccomp_profile = Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() });
                ctx.warn(svc, "security_opt", "seccomp unconfined: the container runs without a syscall filter");
            }
            ("apparmor", "unconfined") => {
                sc.app_armor_profile = Some(AppArmorProfile { type_: "Unconfined".into(), ..Default::default() });
                ctx.warn(svc, "security_opt", "apparmor unconfined: the container runs without an AppArmor profile");
            }
            ("apparmor", profile) => {
                sc.app_armor_profile = Some(AppArmorProfile { type_: "Localhost".into(), localhost_profile: Some(profile.into()) });
                ctx.note(svc, "security_opt", format!("AppArmor profile {profile:?} must be loaded on every node"));
            }
            _ => ctx.warn(svc, "security_opt", format!("{opt:?} is not converted")),
        }
    }
    if !s.sysctls.is_empty() {
        psc.sysctls = Some(s.sysctls.iter().map(|(k, v)| Sysctl { name: k.clone(), value: v.clone() }).collect());
        ctx.note(svc, "sysctls", "Kubernetes allows only its safe sysctls unless the kubelet allows more (--allowed-unsafe-sysctls)");
    }
    if sc != SecurityContext::default() {
        c.security_context = Some(sc);
    }
    if psc != PodSecurityContext::default() {
        pod.security_context = Some(psc);
    }

    // Resources.
    let limits_cfg = s.deploy.as_ref().and_then(|d| d.resources.limits.as_ref());
    let reserv_cfg = s.deploy.as_ref().and_then(|d| d.resources.reservations.as_ref());
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    let cpus = if s.cpus > 0.0 { s.cpus } else { limits_cfg.map(|l| l.cpus).unwrap_or(0.0) };
    if cpus > 0.0 {
        limits.insert("cpu".to_string(), cpu_quantity(cpus));
    }
    let mem = if s.mem_limit.0 > 0 { s.mem_limit.0 } else { limits_cfg.map(|l| l.memory.0).unwrap_or(0) };
    if mem > 0 {
        limits.insert("memory".to_string(), memory_quantity(mem));
    }
    if let Some(r) = reserv_cfg {
        if r.cpus > 0.0 {
            requests.insert("cpu".to_string(), cpu_quantity(r.cpus));
        }
    }
    let mem_req = if s.mem_reservation.0 > 0 { s.mem_reservation.0 } else { reserv_cfg.map(|r| r.memory.0).unwrap_or(0) };
    if mem_req > 0 {
        requests.insert("memory".to_string(), memory_quantity(mem_req));
    }
    if limits_cfg.is_some_and(|l| l.pids > 0) || s.pids_limit > 0 {
        ctx.warn(svc, "pids_limit", "a pid limit is set per node by the kubelet (--pod-max-pids), not per pod");
    }
    if reserv_cfg.is_some_and(|r| !r.devices.is_empty() || !r.generic_resources.is_empty()) || !s.gpus.is_empty() || !s.devices.is_empty() {
        ctx.warn(
            svc,
            "devices",
            "devices and GPUs are not converted: request them as extended resources of the cluster's device plugin (nvidia.com/gpu...)",
        );
    }
    if !limits.is_empty() || !requests.is_empty() {
        c.resources = Some(ResourceRequirements { limits: some_map(limits), requests: some_map(requests), ..Default::default() });
    }

    // Healthcheck: the readiness probe keeps the pod out of its Services until it is healthy (what
    // `service_healthy` waits for); the liveness probe restarts it when it stops being healthy.
    if let Some(h) = &s.healthcheck {
        let test = &h.test;
        let command = match test.first().map(String::as_str) {
            _ if h.disable => None,
            Some("NONE") | None => None,
            Some("CMD") => Some(test[1..].to_vec()),
            Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
            Some(_) => Some(vec!["/bin/sh".into(), "-c".into(), test.join(" ")]),
        };
        if let Some(command) = command {
            let probe = Probe {
                exec: Some(ExecAction { command: Some(command) }),
                period_seconds: Some(seconds(h.interval.unwrap_or(Duration(30_000_000_000))).clamp(1, i32::MAX as i64) as i32),
                timeout_seconds: Some(seconds(h.timeout.unwrap_or(Duration(30_000_000_000))).clamp(1, i32::MAX as i64) as i32),
                failure_threshold: Some(h.retries.unwrap_or(3).clamp(1, i32::MAX as u64) as i32),
                ..Default::default()
            };
            let start = h.start_period.map(seconds).unwrap_or(0);
            c.readiness_probe = Some(probe.clone());
            c.liveness_probe = Some(Probe { initial_delay_seconds: (start > 0).then_some(start.min(i32::MAX as i64) as i32), ..probe });
        }
    }

    // Lifecycle.
    let post_start = hook(ctx, name, "post_start", &s.post_start);
    let pre_stop = hook(ctx, name, "pre_stop", &s.pre_stop);
    if post_start.is_some() || pre_stop.is_some() {
        c.lifecycle = Some(Lifecycle { post_start, pre_stop, ..Default::default() });
    }
    if !s.pre_start.is_empty() {
        ctx.warn(svc, "pre_start", "not converted: run it as an init container of the Deployment");
    }
    if let Some(g) = s.stop_grace_period {
        pod.termination_grace_period_seconds = Some(seconds(g));
    }
    if let Some(sig) = &s.stop_signal {
        if sig != "SIGTERM" && sig != "TERM" {
            ctx.warn(
                svc,
                "stop_signal",
                format!("Kubernetes stops containers with SIGTERM: {sig} is not converted (have the image's STOPSIGNAL say it)"),
            );
        }
    }
    if s.init == Some(true) {
        pod.share_process_namespace = Some(true);
        ctx.note(
            svc,
            "init",
            "the pod shares one process namespace, whose first process (the pod's pause container) reaps zombies as an init does",
        );
    }

    // Namespaces and host access.
    match s.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => {}
        Some("host") => {
            pod.host_network = Some(true);
            pod.dns_policy = Some("ClusterFirstWithHostNet".into());
            ctx.warn(
                svc,
                "network_mode",
                "host: the pod uses its node's network (hostNetwork), which most clusters refuse and where ports collide between pods",
            );
        }
        Some(mode) => ctx.warn(
            svc,
            "network_mode",
            format!("{mode:?} is not converted: pods cannot share another pod's network namespace; the pod gets its own"),
        ),
    }
    match s.pid.as_deref() {
        None => {}
        Some("host") => {
            pod.host_pid = Some(true);
            ctx.warn(svc, "pid", "host: the pod sees every process of its node (hostPID)");
        }
        Some(p) => ctx.warn(svc, "pid", format!("{p:?} is not converted")),
    }
    match s.ipc.as_deref() {
        None | Some("private") | Some("shareable") => {}
        Some("host") => {
            pod.host_ipc = Some(true);
            ctx.warn(svc, "ipc", "host: the pod shares its node's IPC namespace (hostIPC)");
        }
        Some(p) => ctx.warn(svc, "ipc", format!("{p:?} is not converted")),
    }
    if let Some(h) = &s.hostname {
        if label_value_ok(h) && h.len() <= 63 && !h.contains(['_', '.']) {
            pod.hostname = Some(h.to_ascii_lowercase());
        } else {
            ctx.warn(svc, "hostname", format!("{h:?} is not a DNS label: left out"));
        }
    }
    if s.domainname.is_some() {
        ctx.warn(svc, "domainname", "not converted: a pod's domain is its namespace's");
    }
    if !s.extra_hosts.is_empty() {
        let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &s.extra_hosts {
            let (host, ip) = e.split_once('=').or_else(|| e.split_once(':')).unwrap_or((e.as_str(), ""));
            if ip == "host-gateway" || ip.parse::<std::net::IpAddr>().is_err() {
                ctx.warn(svc, "extra_hosts", format!("{e:?} is not converted: a host alias needs an IP address"));
                continue;
            }
            by_ip.entry(ip.to_string()).or_default().push(host.to_string());
        }
        pod.host_aliases = some_vec(by_ip.into_iter().map(|(ip, hostnames)| HostAlias { ip, hostnames: Some(hostnames) }).collect());
    }
    if !s.dns.is_empty() || !s.dns_search.is_empty() || !s.dns_opt.is_empty() {
        pod.dns_config = Some(PodDNSConfig {
            nameservers: some_vec(s.dns.clone()),
            searches: some_vec(s.dns_search.clone()),
            options: some_vec(
                s.dns_opt
                    .iter()
                    .map(|o| {
                        let (n, v) = o.split_once(':').map(|(n, v)| (n, Some(v.to_string()))).unwrap_or((o.as_str(), None));
                        PodDNSConfigOption { name: Some(n.to_string()), value: v }
                    })
                    .collect(),
            ),
        });
        ctx.note(svc, "dns", "the cluster's DNS stays first, so that service names resolve; these servers, searches and options are added");
    }
    if let Some(p) = &s.platform {
        let mut parts = p.split('/');
        let mut sel = BTreeMap::new();
        if let Some(os) = parts.next().filter(|x| !x.is_empty()) {
            sel.insert("kubernetes.io/os".to_string(), os.to_string());
        }
        if let Some(arch) = parts.next().filter(|x| !x.is_empty()) {
            sel.insert("kubernetes.io/arch".to_string(), arch.to_string());
        }
        pod.node_selector = some_map(sel);
    }

    // Keys with no Kubernetes equivalent.
    let unsupported: &[(&str, bool, &str)] = &[
        ("ulimits", !s.ulimits.is_empty(), "ulimits are set per node by the container runtime, not per pod"),
        ("logging", s.logging.is_some(), "logs go to the cluster's logging, not to a log driver"),
        ("cgroup_parent", s.cgroup_parent.is_some(), "the kubelet places pods in cgroups"),
        ("cgroup", s.cgroup.is_some(), "the kubelet places pods in cgroups"),
        ("cpu_shares", s.cpu_shares != 0, "use deploy.resources.reservations.cpus (a request)"),
        ("cpu_quota", s.cpu_quota != 0 || s.cpu_period != 0, "use cpus or deploy.resources.limits.cpus (a limit)"),
        ("cpuset", s.cpuset.is_some(), "pinning CPUs is the kubelet's CPU manager's job"),
        ("cpu_rt_runtime", s.cpu_rt_runtime != 0 || s.cpu_rt_period != 0, "no real-time scheduling in pods"),
        ("cpu_count", s.cpu_count != 0 || s.cpu_percent != 0.0, "Windows only"),
        ("blkio_config", s.blkio_config.is_some(), "no block IO weights in pods"),
        ("device_cgroup_rules", !s.device_cgroup_rules.is_empty(), "no device rules in pods"),
        ("mem_swappiness", s.mem_swappiness.0 != 0, "swap is the node's setting"),
        ("memswap_limit", s.memswap_limit.0 != 0, "swap is the node's setting"),
        ("oom_kill_disable", s.oom_kill_disable, "the kubelet sets OOM behaviour from the pod's QoS class"),
        ("oom_score_adj", s.oom_score_adj != 0, "the kubelet sets OOM scores from the pod's QoS class"),
        ("storage_opt", !s.storage_opt.is_empty(), "use ephemeral-storage requests and limits"),
        ("userns_mode", s.userns_mode.is_some(), "use hostUsers: false in the pod spec"),
        ("uts", s.uts.is_some(), "pods have their own UTS namespace"),
        ("isolation", s.isolation.is_some(), "Windows only"),
        ("runtime", s.runtime.is_some(), "use a RuntimeClass (runtimeClassName)"),
        ("credential_spec", s.credential_spec.is_some(), "Windows only"),
        ("mac_address", s.mac_address.is_some(), "the cluster assigns pod interfaces"),
        ("volume_driver", s.volume_driver.is_some(), "claims use the cluster's storage class"),
        ("volumes_from", !s.volumes_from.is_empty(), "mount the same claims in both services instead"),
        ("use_api_socket", s.use_api_socket, "there is no Docker API in the cluster"),
        ("provider", s.provider.is_some(), "provider services are not converted"),
        ("models", !s.models.is_empty(), "AI models are not converted"),
    ];
    if let Some(d) = &s.deploy {
        if d.placement.as_object().is_some_and(|o| !o.is_empty()) {
            ctx.warn(svc, "deploy.placement", "not converted: write the constraints as a nodeSelector or node affinity");
        }
        if d.update_config.is_some() || d.rollback_config.is_some() {
            ctx.note(svc, "deploy.update_config", "not converted: the Deployment replaces its pods with the Recreate strategy");
        }
    }
    for (key, present, why) in unsupported {
        if *present {
            ctx.warn(svc, *key, format!("not converted: {why}"));
        }
    }

    volumes(ctx, s, &mut c, &mut pod);
    (c, pod)
}

/// Mounts: named volumes, binds, tmpfs and images from `volumes:`, then the secrets and configs,
/// in compose-bridge's order (its mounts list volumes, secrets, configs; its pod volumes secrets,
/// configs, volumes).
fn volumes(ctx: &mut Ctx, s: &ComposeService, c: &mut Container, pod: &mut PodSpec) {
    let name = s.name.as_str();
    let svc = Some(name);
    let secret_target = |m: &FileMount| m.target.clone().unwrap_or_else(|| format!("/run/secrets/{}", m.source));
    let config_target = |m: &FileMount| match &m.target {
        Some(t) if t.starts_with('/') => t.clone(),
        Some(t) => format!("/{t}"),
        None => format!("/{}", m.source),
    };
    let tmpfs: Vec<(String, Option<i64>)> = s
        .tmpfs
        .iter()
        .map(|t| {
            let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
            let size = opts.split(',').find_map(|o| o.strip_prefix("size=")).and_then(|v| crate::util::units::parse_bytes(v).ok());
            (path.to_string(), size)
        })
        .collect();
    // Pod volume names: compose-bridge's (the mount target, made safe), distinct within the pod.
    let mut targets: Vec<String> = s.volumes.iter().map(|m| m.target.clone()).collect();
    targets.extend(s.secrets.iter().map(secret_target));
    targets.extend(s.configs.iter().map(config_target));
    targets.extend(tmpfs.iter().map(|(p, _)| p.clone()));
    if !s.shm_size.is_zero() {
        targets.push("/dev/shm".into());
    }
    let vnames = unique_labels(targets.iter().map(String::as_str), 63);

    let mut mounts = Vec::new();
    let mut vols_secrets = Vec::new();
    let mut vols_configs = Vec::new();
    let mut vols = Vec::new();
    for m in &s.volumes {
        let vname = vnames[&m.target].clone();
        let source = volume_source(ctx, name, m);
        let Some(source) = source else { continue };
        mounts.push(VolumeMount {
            name: vname.clone(),
            mount_path: m.target.clone(),
            read_only: m.read_only.then_some(true),
            sub_path: m.volume.as_ref().and_then(|v| v.subpath.clone()),
            ..Default::default()
        });
        vols.push(Volume { name: vname, ..source });
    }
    for m in &s.secrets {
        let target = secret_target(m);
        let vname = vnames[&target].clone();
        if !ctx.secret_names.contains_key(&m.source) || ctx.project.secrets.get(&m.source).is_some_and(|o| o.external) {
            ctx.warn(svc, format!("secrets.{}", m.source), "mounts an external secret: create it in the namespace with that key");
        }
        file_owner_warning(ctx, name, "secrets", m);
        mounts.push(VolumeMount {
            name: vname.clone(),
            mount_path: target,
            sub_path: Some(m.source.clone()),
            read_only: Some(true),
            ..Default::default()
        });
        vols_secrets.push(Volume {
            name: vname,
            secret: Some(SecretVolumeSource {
                secret_name: Some(ctx.secret_names.get(&m.source).cloned().unwrap_or_else(|| label(&m.source, 253))),
                items: Some(vec![KeyToPath {
                    key: m.source.clone(),
                    path: m.source.clone(),
                    mode: m.mode.map(|x| x as i32),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    for m in &s.configs {
        let target = config_target(m);
        let vname = vnames[&target].clone();
        if ctx.project.configs.get(&m.source).is_some_and(|o| o.external) {
            ctx.warn(
                svc,
                format!("configs.{}", m.source),
                format!("mounts an external config: add it to the ConfigMap {:?} yourself", ctx.config_map_name),
            );
        }
        file_owner_warning(ctx, name, "configs", m);
        mounts.push(VolumeMount {
            name: vname.clone(),
            mount_path: target,
            sub_path: Some(m.source.clone()),
            read_only: Some(true),
            ..Default::default()
        });
        vols_configs.push(Volume {
            name: vname,
            config_map: Some(ConfigMapVolumeSource {
                name: ctx.config_map_name.clone(),
                items: Some(vec![KeyToPath {
                    key: m.source.clone(),
                    path: m.source.clone(),
                    mode: m.mode.map(|x| x as i32),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let memory_dir = |size: Option<i64>| EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: size.filter(|s| *s > 0).map(memory_quantity),
        ..Default::default()
    };
    for (path, size) in &tmpfs {
        let vname = vnames[path].clone();
        mounts.push(VolumeMount { name: vname.clone(), mount_path: path.clone(), ..Default::default() });
        vols.push(Volume { name: vname, empty_dir: Some(memory_dir(*size)), ..Default::default() });
    }
    if !s.shm_size.is_zero() {
        let vname = vnames["/dev/shm"].clone();
        mounts.push(VolumeMount { name: vname.clone(), mount_path: "/dev/shm".into(), ..Default::default() });
        vols.push(Volume { name: vname, empty_dir: Some(memory_dir(Some(s.shm_size.0))), ..Default::default() });
    }
    vols_secrets.extend(vols_configs);
    vols_secrets.extend(vols);
    c.volume_mounts = some_vec(mounts);
    pod.volumes = some_vec(vols_secrets);
}

fn file_owner_warning(ctx: &mut Ctx, svc: &str, kind: &str, m: &FileMount) {
    if m.uid.is_some() || m.gid.is_some() {
        ctx.warn(
            Some(svc),
            format!("{kind}.{}", m.source),
            "uid and gid are not converted: Kubernetes mounts the file as root (set the pod's fsGroup to give a group access)",
        );
    }
}

/// The pod volume for one entry of `volumes:` (without its name), or `None` when it is left out.
fn volume_source(ctx: &mut Ctx, svc: &str, m: &Mount) -> Option<Volume> {
    let source = m.source.clone().unwrap_or_default();
    match m.kind.as_str() {
        "volume" if source.is_empty() => {
            ctx.note(Some(svc), "volumes", format!("anonymous volume {} becomes an emptyDir, which lives as long as the pod", m.target));
            Some(Volume { empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() })
        }
        "volume" => {
            if m.volume.as_ref().is_some_and(|v| v.nocopy) {
                ctx.note(
                    Some(svc),
                    "volumes",
                    format!("{source}: nocopy is what Kubernetes always does (it never copies the image's files into a claim)"),
                );
            }
            Some(Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: ctx.claim_names.get(&source).cloned().unwrap_or_else(|| label(&source, 253)),
                    read_only: None,
                }),
                ..Default::default()
            })
        }
        "bind" => {
            if ctx.opts.allow_host_path {
                ctx.warn(
                    Some(svc),
                    "volumes",
                    format!(
                        "bind mount {source}:{} becomes a hostPath: the path is read on whichever node runs the pod, not on this machine",
                        m.target
                    ),
                );
                let create = m.bind.as_ref().is_some_and(|b| b.create_host_path);
                Some(Volume {
                    host_path: Some(HostPathVolumeSource { path: source, type_: create.then(|| "DirectoryOrCreate".to_string()) }),
                    ..Default::default()
                })
            } else {
                ctx.warn(
                    Some(svc),
                    "volumes",
                    format!(
                        "bind mount {source}:{} is left out: a cluster node has no such host path; put the files in the image, a config or a named volume (--allow-host-path writes a hostPath)",
                        m.target
                    ),
                );
                None
            }
        }
        "tmpfs" => {
            let size = m.tmpfs.as_ref().map(|t| t.size.0).filter(|s| *s > 0);
            Some(Volume {
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: size.map(memory_quantity),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
        "image" => Some(Volume {
            image: Some(ImageVolumeSource { reference: Some(source), pull_policy: Some("IfNotPresent".into()) }),
            ..Default::default()
        }),
        other => {
            ctx.warn(Some(svc), "volumes", format!("{other} mount {source}:{} is not converted", m.target));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{LoadOptions, load};

    fn convert_yaml(yaml: &str, opts: &Options) -> Converted {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret").unwrap();
        let lo = LoadOptions {
            files: vec![dir.path().join("compose.yaml")],
            project_name: Some("demo".into()),
            project_directory: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            interpolate: true,
            environment: [("TOKEN".to_string(), "t0k".to_string())].into_iter().collect(),
            cwd: Some(dir.path().to_path_buf()),
        };
        convert(&load(&lo).unwrap(), opts).unwrap()
    }

    fn deployment(c: &Converted, name: &str) -> Deployment {
        match &c.services.iter().find(|s| s.name == name).unwrap().workload {
            Workload::Deployment(d) => (**d).clone(),
            _ => panic!("{name} is not a Deployment"),
        }
    }

    fn warned(c: &Converted, service: &str, key: &str) -> bool {
        c.diagnostics.iter().any(|d| d.level == Level::Warning && d.service.as_deref() == Some(service) && d.key == key)
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_quantity(0.5).0, "500m");
        assert_eq!(cpu_quantity(2.0).0, "2");
        assert_eq!(cpu_quantity(0.0001).0, "1m");
        assert_eq!(memory_quantity(512 << 20).0, "512Mi");
        assert_eq!(memory_quantity(1 << 30).0, "1Gi");
        assert_eq!(memory_quantity(1000).0, "1000");
        assert_eq!(parse_expose("53/udp"), Some((53, 53, "udp".into())));
        assert_eq!(parse_expose("8000-8002"), Some((8000, 8002, "tcp".into())));
        assert_eq!(parse_expose("x"), None);
    }

    #[test]
    fn a_service_maps_key_by_key() {
        let c = convert_yaml(
            r#"
services:
  web:
    image: nginx
    command: [nginx, -g, "daemon off;"]
    entrypoint: [/docker-entrypoint.sh]
    working_dir: /srv
    environment: {A: "1", B: "on"}
    user: "101:102"
    read_only: true
    cap_add: [NET_ADMIN]
    cap_drop: [CAP_ALL]
    cpus: 0.5
    mem_limit: 256m
    deploy: {replicas: 3, resources: {reservations: {memory: 64m}}}
    healthcheck: {test: "curl -f http://localhost/", interval: 5s, timeout: 1500ms, retries: 4, start_period: 10s}
    expose: ["9000", "53/udp"]
    ports: ["8080:80"]
    tmpfs: ["/run:size=1m"]
    shm_size: 64m
    extra_hosts: ["db.local=10.0.0.5"]
    init: true
    stop_grace_period: 1m30s
    security_opt: [no-new-privileges:true]
    secrets: [token]
    ulimits: {nofile: 1024}
secrets:
  token: {environment: TOKEN}
"#,
            &Options::default(),
        );
        let d = deployment(&c, "web");
        assert_eq!(d.spec.replicas, Some(3));
        let pod = d.spec.template.spec.unwrap();
        let ctr = &pod.containers[0];
        assert_eq!(ctr.command.as_deref(), Some(&["/docker-entrypoint.sh".to_string()][..]));
        assert_eq!(ctr.args.as_ref().unwrap()[2], "daemon off;");
        assert_eq!(ctr.working_dir.as_deref(), Some("/srv"));
        assert_eq!(ctr.env.as_ref().unwrap().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["A", "B"]);
        let sc = ctr.security_context.as_ref().unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(101), Some(102)));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!((caps.add.as_ref().unwrap()[0].as_str(), caps.drop.as_ref().unwrap()[0].as_str()), ("NET_ADMIN", "ALL"));
        let res = ctr.resources.as_ref().unwrap();
        assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "500m");
        assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "256Mi");
        assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "64Mi");
        let ready = ctr.readiness_probe.as_ref().unwrap();
        assert_eq!(ready.exec.as_ref().unwrap().command.as_ref().unwrap()[..2], ["/bin/sh".to_string(), "-c".to_string()]);
        assert_eq!((ready.period_seconds, ready.timeout_seconds, ready.failure_threshold), (Some(5), Some(2), Some(4)));
        assert_eq!(ready.initial_delay_seconds, None);
        assert_eq!(ctr.liveness_probe.as_ref().unwrap().initial_delay_seconds, Some(10));
        let ports: Vec<(i32, Option<&str>, Option<&str>)> =
            ctr.ports.as_ref().unwrap().iter().map(|p| (p.container_port, p.name.as_deref(), p.protocol.as_deref())).collect();
        assert_eq!(ports, [(53, Some("web-53-udp"), Some("UDP")), (80, Some("web-80"), None), (9000, Some("web-9000"), None)]);
        let mounts: Vec<&str> = ctr.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/run/secrets/token", "/run", "/dev/shm"]);
        let vols = pod.volumes.as_ref().unwrap();
        assert_eq!(vols[0].secret.as_ref().unwrap().secret_name.as_deref(), Some("token"));
        assert_eq!(vols[1].empty_dir.as_ref().unwrap().size_limit.as_ref().unwrap().0, "1Mi");
        assert_eq!(vols[2].empty_dir.as_ref().unwrap().medium.as_deref(), Some("Memory"));
        assert_eq!(pod.host_aliases.as_ref().unwrap()[0].ip, "10.0.0.5");
        assert_eq!(pod.share_process_namespace, Some(true));
        assert_eq!(pod.termination_grace_period_seconds, Some(90));
        assert!(warned(&c, "web", "ulimits"));
        let secret = &c.secrets[0].1;
        assert_eq!(secret.data.as_ref().unwrap()["token"].0, b"t0k");
        let svc = c.services[0].published.as_ref().unwrap().spec.as_ref().unwrap();
        assert_eq!(svc.ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(svc.ports.as_ref().unwrap()[0].target_port, Some(IntOrString::String("web-80".into())));
    }

    #[test]
    fn one_shot_services_and_restart_policies() {
        let c = convert_yaml(
            r#"
services:
  migrate: {image: app, restart: "on-failure:3"}
  app:
    image: app
    restart: "no"
    depends_on: {migrate: {condition: service_completed_successfully}}
  node: {image: agent, deploy: {mode: global}}
"#,
            &Options::default(),
        );
        let job = c.services.iter().find(|s| s.name == "migrate").unwrap();
        let Workload::Job(j) = &job.workload else { panic!("migrate is not a Job") };
        let spec = j.spec.as_ref().unwrap();
        assert_eq!(spec.backoff_limit, Some(3));
        assert_eq!(spec.template.spec.as_ref().unwrap().restart_policy.as_deref(), Some("OnFailure"));
        assert!(warned(&c, "app", "restart"));
        assert!(warned(&c, "app", "depends_on.migrate"));
        assert!(matches!(c.services.iter().find(|s| s.name == "node").unwrap().workload, Workload::DaemonSet(_)));
    }

    #[test]
    fn names_kubernetes_refuses_are_repaired() {
        let c = convert_yaml("services:\n  web_app: {image: x, expose: ['80']}\n  1st: {image: x}\n", &Options::default());
        let names: Vec<String> = c.services.iter().map(|s| deployment(&c, &s.name).metadata.name.unwrap()).collect();
        assert!(names.iter().all(|n| n.starts_with(|ch: char| ch.is_ascii_lowercase()) && !n.contains('_')), "{names:?}");
        assert!(c.diagnostics.iter().any(|d| d.service.as_deref() == Some("web_app") && d.key == "name"));
    }
}
