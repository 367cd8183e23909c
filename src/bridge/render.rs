//! The files of each transformation, made from the converted objects.
//!
//! `kubernetes` writes compose-bridge's Kustomize tree: `base/` (every object, and a
//! `kustomization.yaml` listing them) and `overlays/desktop/` (patches that publish through a
//! LoadBalancer and store claims with Docker Desktop's `hostpath` class). `helm` writes a chart of
//! the same objects, where what compose-bridge's chart makes configurable becomes a Helm action
//! (`{{ .Values.namespace }}`) in the object's tree, with the default in `values.yaml`, so that the
//! chart rendered with its defaults gives the objects of the base.

use serde::Serialize;

use super::BridgeError;
use super::kube::{
    Converted, ConvertedService, DEFAULT_ACCESS_MODE, DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT, DEFAULT_SERVICE_TYPE, DEFAULT_STORAGE_CLASS,
    DEFAULT_STORAGE_SIZE, DEFAULT_STRATEGY, MANAGED_BY_LABEL, Workload,
};
use super::names::{go_identifier, safe};
use super::yaml::{Doc, Entry, Node, Order};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One output file: its path under the output folder, and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub text: String,
}

const GENERATED: &str = "# Generated code, do not edit";
const CHECK_PORTS: &str = "# check if there is at least one published port";

fn tree<T: Serialize>(obj: &T) -> Result<Node, BridgeError> {
    let v = serde_yaml_ng::to_value(obj).map_err(|e| BridgeError::Serialize(e.to_string()))?;
    Ok(Node::from_value(&v, Order::Kubernetes))
}

fn plain_tree<T: Serialize>(obj: &T) -> Result<Node, BridgeError> {
    let v = serde_yaml_ng::to_value(obj).map_err(|e| BridgeError::Serialize(e.to_string()))?;
    Ok(Node::from_value(&v, Order::AsIs))
}

fn generated(file: &str, root: Node) -> Doc {
    Doc { head: vec![format!("#! {file}"), GENERATED.into()], root, foot: Vec::new() }
}

#[derive(Serialize)]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    patches: Vec<Patch>,
}

#[derive(Serialize)]
struct Patch {
    path: String,
}

fn kustomization(resources: Vec<String>, patches: Vec<String>) -> Result<Doc, BridgeError> {
    let k = Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources,
        patches: patches.into_iter().map(|path| Patch { path }).collect(),
    };
    Ok(generated("kustomization.yaml", plain_tree(&k)?))
}

/// compose-bridge's service template writes a comment for every service with `ports:`, before the
/// published Service of each that publishes one; its YAML re-encoding makes a comment before the
/// first document a head comment of that document, and one between two documents a foot comment
/// of the first. Returns, per service, whether its published file gets each.
fn port_comments(services: &[ConvertedService]) -> Vec<(bool, bool)> {
    let mut marks = vec![(false, false); services.len()];
    let mut pending = false;
    let mut last: Option<usize> = None;
    for (i, s) in services.iter().enumerate() {
        if s.has_ports {
            match last {
                Some(j) => marks[j].1 = true,
                None => pending = true,
            }
        }
        if s.published.is_some() {
            if pending {
                marks[i].0 = true;
                pending = false;
            }
            last = Some(i);
        }
    }
    marks
}

fn with_port_comments(mut doc: Doc, (head, foot): (bool, bool)) -> Doc {
    if head {
        doc.head.splice(0..0, [CHECK_PORTS.to_string(), String::new()]);
    }
    if foot {
        doc.foot.push(CHECK_PORTS.into());
    }
    doc
}

fn workload_file(s: &ConvertedService) -> String {
    match s.workload {
        Workload::Job(_) => format!("{}-job.yaml", s.name),
        _ => format!("{}-deployment.yaml", s.name),
    }
}

fn workload_tree(s: &ConvertedService) -> Result<Node, BridgeError> {
    match &s.workload {
        Workload::Deployment(d) => tree(d),
        Workload::DaemonSet(d) => tree(d),
        Workload::Job(j) => tree(j),
    }
}

/// The objects of the base, as (file name, document), namespace first.
fn objects(c: &Converted, helm: bool) -> Result<Vec<(String, Doc)>, BridgeError> {
    let mut out = Vec::new();
    let ns_file = format!("0-{}-namespace.yaml", c.namespace);
    let mut ns = tree(&c.namespace_object)?;
    if helm {
        ns.set(&["metadata", "name"], Node::Raw("{{ .Values.namespace }}".into()));
    }
    out.push((ns_file.clone(), generated(&ns_file, ns)));
    let namespaced = |mut n: Node| {
        if helm {
            n.set(&["metadata", "namespace"], Node::Raw("{{ .Values.namespace }}".into()));
        }
        n
    };
    if let Some(cm) = &c.config_map {
        let f = format!("{}-configs.yaml", c.project);
        let mut n = namespaced(tree(cm)?);
        if helm {
            n.set(&["metadata", "name"], Node::Raw("{{ .Values.projectName }}".into()));
        }
        out.push((f.clone(), generated(&f, n)));
    }
    for (name, s) in &c.secrets {
        let f = format!("{name}-secret.yaml");
        out.push((f.clone(), generated(&f, namespaced(tree(s)?))));
    }
    for (name, p) in &c.policies {
        let f = format!("{name}-network-policy.yaml");
        out.push((f.clone(), generated(&f, namespaced(tree(p)?))));
    }
    let marks = port_comments(&c.services);
    for (s, mark) in c.services.iter().zip(marks) {
        let f = workload_file(s);
        let mut w = namespaced(workload_tree(s)?);
        if helm {
            helm_workload(&mut w, s);
        }
        out.push((f.clone(), generated(&f, w)));
        if let Some(e) = &s.expose {
            let f = format!("{}-expose.yaml", s.name);
            let n = namespaced(tree(&helm_labelled(e.clone(), helm))?);
            out.push((f.clone(), generated(&f, n)));
        }
        if let Some(p) = &s.published {
            let f = format!("{}-service.yaml", s.name);
            let mut svc = helm_labelled(p.clone(), helm);
            if helm {
                svc.spec.get_or_insert_with(Default::default).type_ = Some(DEFAULT_SERVICE_TYPE.into());
            }
            let mut n = namespaced(tree(&svc)?);
            if helm {
                n.set(&["spec", "type"], Node::Raw("{{ .Values.service.type }}".into()));
            }
            out.push((f.clone(), with_port_comments(generated(&f, n), mark)));
        }
    }
    for (name, claim) in &c.claims {
        let f = format!("{name}-persistentVolumeClaim.yaml");
        let mut claim = claim.clone();
        if helm {
            let labels = claim.metadata.labels.get_or_insert_with(Default::default);
            labels.insert(MANAGED_BY_LABEL.into(), "Helm".into());
            claim.spec.get_or_insert_with(Default::default).storage_class_name = Some(DEFAULT_STORAGE_CLASS.into());
        }
        let mut n = namespaced(tree(&claim)?);
        if helm {
            n.set(&["spec", "accessModes", "0"], Node::Raw("{{ .Values.storage.defaultAccessMode }}".into()));
            n.set(&["spec", "storageClassName"], Node::Raw("{{ .Values.storage.defaultStorageClass }}".into()));
            n.set(&["spec", "resources", "requests", "storage"], Node::Raw("{{ .Values.storage.defaultSize }}".into()));
        }
        out.push((f.clone(), generated(&f, n)));
    }
    Ok(out)
}

fn helm_labelled(mut s: Service, helm: bool) -> Service {
    if helm {
        s.metadata.labels.get_or_insert_with(Default::default).insert(MANAGED_BY_LABEL.into(), "Helm".into());
    }
    s
}

/// The values path of a service's settings: `.Values.web`, or `(index .Values "my-web")` for a
/// name that is not a Go identifier.
fn values_ref(key: &str) -> String {
    if go_identifier(key) { format!(".Values.{key}") } else { format!("(index .Values {key:?})") }
}

const RESERVED_VALUES: &[&str] = &["projectName", "namespace", "deployment", "resources", "service", "storage"];

/// The key of a service's settings in `values.yaml`: its name, unless a setting of the chart has it.
fn values_key(service: &str) -> String {
    if RESERVED_VALUES.contains(&service) { format!("{service}Service") } else { service.to_string() }
}

fn helm_workload(w: &mut Node, s: &ConvertedService) {
    if let Some(Node::Map(labels)) = w.get_mut(&["metadata", "labels"]) {
        // After compose's own labels, as compose-bridge's chart writes it.
        let at = labels.iter().position(|e| !e.key.starts_with("com.docker.compose.")).unwrap_or(labels.len());
        labels.insert(at, Entry::new(MANAGED_BY_LABEL, Node::Str("Helm".into())));
    }
    if matches!(s.workload, Workload::Deployment(_)) {
        if !s.replicas_given {
            w.set(&["spec", "replicas"], Node::Raw("{{ .Values.deployment.defaultReplicas }}".into()));
        }
        w.set(&["spec", "strategy", "type"], Node::Raw("{{ .Values.deployment.strategy }}".into()));
    }
    let pod = ["spec", "template", "spec"];
    let container = ["spec", "template", "spec", "containers", "0"];
    let r = values_ref(&values_key(&s.name));
    if let Some(c) = w.get_mut(&container) {
        c.set(&["image"], Node::Raw(format!("{{{{ {r}.image }}}}")));
        c.set(&["imagePullPolicy"], Node::Raw(format!("{{{{ {r}.imagePullPolicy }}}}")));
        // The container's limits, defaults of the chart where the project gave none.
        let limits = Node::Map(vec![
            Entry::new(
                "cpu",
                if s.cpu_limit_given { limit(c, "cpu") } else { Node::Raw("{{ .Values.resources.defaultCpuLimit }}".into()) },
            ),
            Entry::new(
                "memory",
                if s.memory_limit_given { limit(c, "memory") } else { Node::Raw("{{ .Values.resources.defaultMemoryLimit }}".into()) },
            ),
        ]);
        match c.get_mut(&["resources"]) {
            Some(Node::Map(res)) => match res.iter_mut().find(|e| e.key == "limits") {
                Some(e) => e.value = limits,
                None => res.insert(0, Entry::new("limits", limits)),
            },
            _ => {
                if let Node::Map(entries) = c {
                    let at = entries
                        .iter()
                        .position(|e| matches!(e.key.as_str(), "livenessProbe" | "readinessProbe" | "ports" | "volumeMounts"));
                    let entry = Entry::new("resources", Node::Map(vec![Entry::new("limits", limits)]));
                    match at {
                        Some(i) => entries.insert(i, entry),
                        None => entries.push(entry),
                    }
                }
            }
        }
    }
    if let Some(Node::Seq(volumes)) = w.get_mut(&[pod[0], pod[1], pod[2], "volumes"]) {
        for v in volumes {
            v.set(&["configMap", "name"], Node::Raw("{{ .Values.projectName }}".into()));
        }
    }
}

fn limit(container: &mut Node, key: &str) -> Node {
    container.get_mut(&["resources", "limits", key]).cloned().unwrap_or(Node::Null)
}

/// compose-bridge's Kustomize tree.
pub fn kubernetes(c: &Converted) -> Result<Vec<File>, BridgeError> {
    let mut files = Vec::new();
    let base = objects(c, false)?;
    let mut names: Vec<String> = base.iter().map(|(f, _)| f.clone()).collect();
    names.sort();
    for (f, doc) in &base {
        files.push(File { path: format!("base/{f}"), text: doc.render() });
    }
    files.push(File { path: "base/kustomization.yaml".into(), text: kustomization(names, Vec::new())?.render() });

    let mut patches = Vec::new();
    let marks = port_comments(&c.services);
    for (s, mark) in c.services.iter().zip(marks) {
        let Some(p) = &s.published else { continue };
        let f = format!("{}-service.yaml", s.name);
        let patch = Service {
            metadata: ObjectMeta { name: p.metadata.name.clone(), namespace: p.metadata.namespace.clone(), ..Default::default() },
            spec: Some(ServiceSpec { type_: Some(DEFAULT_SERVICE_TYPE.into()), ..Default::default() }),
            ..Default::default()
        };
        patches.push((f.clone(), with_port_comments(generated(&f, tree(&patch)?), mark)));
    }
    for (name, claim) in &c.claims {
        let f = format!("{name}-persistentVolumeClaim.yaml");
        let patch = PersistentVolumeClaim {
            metadata: ObjectMeta { name: claim.metadata.name.clone(), namespace: claim.metadata.namespace.clone(), ..Default::default() },
            spec: Some(PersistentVolumeClaimSpec { storage_class_name: Some(DEFAULT_STORAGE_CLASS.into()), ..Default::default() }),
            ..Default::default()
        };
        patches.push((f.clone(), generated(&f, tree(&patch)?)));
    }
    let mut patch_names: Vec<String> = patches.iter().map(|(f, _)| f.clone()).collect();
    patch_names.sort();
    for (f, doc) in &patches {
        files.push(File { path: format!("overlays/desktop/{f}"), text: doc.render() });
    }
    files.push(File {
        path: "overlays/desktop/kustomization.yaml".into(),
        text: kustomization(vec!["../../base".into()], patch_names)?.render(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

#[derive(Serialize)]
struct Chart {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    name: String,
    version: &'static str,
    description: String,
    #[serde(rename = "type")]
    type_: &'static str,
    keywords: Vec<String>,
    #[serde(rename = "appVersion")]
    app_version: &'static str,
    sources: Option<Vec<String>>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Values {
    project_name: String,
    namespace: String,
    deployment: DeploymentValues,
    resources: ResourceValues,
    service: ServiceValues,
    storage: StorageValues,
    #[serde(flatten)]
    services: std::collections::BTreeMap<String, ImageValues>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentValues {
    strategy: &'static str,
    default_replicas: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceValues {
    default_cpu_limit: &'static str,
    default_memory_limit: &'static str,
}

#[derive(Serialize)]
struct ServiceValues {
    #[serde(rename = "type")]
    type_: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StorageValues {
    default_storage_class: &'static str,
    default_size: &'static str,
    default_access_mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageValues {
    image: String,
    image_pull_policy: String,
}

/// A Helm chart of the same objects.
pub fn helm(c: &Converted) -> Result<Vec<File>, BridgeError> {
    let mut files = Vec::new();
    let name = safe(&c.project);
    let chart = Chart {
        api_version: "v2",
        name: name.clone(),
        version: "0.0.1",
        description: format!("A generated Helm Chart for {} generated via compose-bridge.", c.project),
        type_: "application",
        keywords: vec![name.clone()],
        app_version: "v0.0.1",
        sources: None,
        annotations: None,
    };
    let mut chart = plain_tree(&chart)?;
    chart.set(&["appVersion"], Node::Single("v0.0.1".into()));
    chart.comment(&["description"], &["# kubeVersion: >= 1.29.1"]);
    files.push(File { path: "Chart.yaml".into(), text: Doc::new(&["#! Chart.yaml"], chart).render() });

    let values = Values {
        project_name: name,
        namespace: c.namespace.clone(),
        deployment: DeploymentValues { strategy: DEFAULT_STRATEGY, default_replicas: 1 },
        resources: ResourceValues { default_cpu_limit: DEFAULT_CPU_LIMIT, default_memory_limit: DEFAULT_MEMORY_LIMIT },
        service: ServiceValues { type_: DEFAULT_SERVICE_TYPE },
        storage: StorageValues {
            default_storage_class: DEFAULT_STORAGE_CLASS,
            default_size: DEFAULT_STORAGE_SIZE,
            default_access_mode: DEFAULT_ACCESS_MODE,
        },
        services: c
            .services
            .iter()
            .map(|s| (values_key(&s.name), ImageValues { image: s.image.clone(), image_pull_policy: s.pull_policy.clone() }))
            .collect(),
    };
    let mut v = plain_tree(&values)?;
    for path in [
        ["resources", "defaultCpuLimit"],
        ["resources", "defaultMemoryLimit"],
        ["storage", "defaultStorageClass"],
        ["storage", "defaultSize"],
        ["storage", "defaultAccessMode"],
    ] {
        if let Some(Node::Str(s)) = v.get_mut(&path) {
            let s = std::mem::take(s);
            v.set(&path, Node::Double(s));
        }
    }
    for (key, comment) in [
        ("projectName", "# Project Name"),
        ("namespace", "# Namespace"),
        ("deployment", "# Default deployment settings"),
        ("resources", "# Default resource limits"),
        ("service", "# Service settings"),
        ("storage", "# Storage settings"),
    ] {
        v.comment(&[key], &[comment]);
    }
    let mut doc = Doc::new(&["#! values.yaml"], v);
    match c.services.iter().map(|s| values_key(&s.name)).min() {
        Some(first) => doc.root.comment(&[&first], &["# Services variables"]),
        None => doc.foot.push("# Services variables".into()),
    }
    doc.foot.push("# You can apply the same logic to loop on networks, volumes, secrets and configs...".into());
    files.push(File { path: "values.yaml".into(), text: doc.render() });

    for (f, doc) in objects(c, true)? {
        files.push(File { path: format!("templates/{f}"), text: doc.render() });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
