//! The one dependency graph of a project's services. Every question about order asks it: the
//! loader (cycles), the planner (start order for `up`/`start`/`restart`, stop order for
//! `stop`/`down`, the closure of `up web`, the dependents `restart db` restarts), the builder
//! (which builds wait for which) and `config --graph`.
//!
//! Why one type: the graph comes from two sources that must give the same answers — the model
//! (`depends_on`, into which the loader folds `links`, `network_mode`/`ipc`/`pid: service:X`
//! and `volumes_from`, as compose does) when the file is at hand, and the
//! `com.docker.compose.depends_on` label of the containers when only `-p NAME` is (the label
//! format and its parser live here too). Orders are deterministic: ties go by service name, so
//! the planner's golden text never moves.
//!
//! An edge points from a service to a service it needs first, and carries the `depends_on`
//! entry: its condition, `restart` and `required`. Edges to services outside the graph
//! (optional ones, disabled by profiles, without containers) are never kept.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{LoadError, Result};
use super::model::{Project, Service};
use super::observe::Observed;
use super::plan::{Condition, Desired};

/// One dependency: the service needed first and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub target: String,
    /// What the dependent waits for.
    pub condition: Condition,
    /// `restart: true`: the dependent restarts when the target is restarted or recreated.
    pub restart: bool,
    /// `required: false`: a missing or failing target never blocks the dependent.
    pub required: bool,
}

impl Edge {
    /// An edge that waits for the target to start (namespace parents, labels without condition).
    pub fn started(target: &str) -> Edge {
        Edge { target: target.to_string(), condition: Condition::Started, restart: false, required: true }
    }
}

/// Services and their dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepGraph {
    /// Service -> the services it needs first, in the order the file (or label) lists them, each
    /// target once.
    nodes: BTreeMap<String, Vec<Edge>>,
}

impl DepGraph {
    /// From explicit edges: `service -> edges`. Edges to services that are not keys are dropped,
    /// a second edge to the same target is ignored.
    pub fn from_edges(edges: impl IntoIterator<Item = (String, Vec<Edge>)>) -> DepGraph {
        let mut nodes: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
        for (s, es) in edges {
            let v = nodes.entry(s).or_default();
            for e in es {
                if !v.iter().any(|x| x.target == e.target) {
                    v.push(e);
                }
            }
        }
        let names: BTreeSet<String> = nodes.keys().cloned().collect();
        for es in nodes.values_mut() {
            es.retain(|e| names.contains(&e.target));
        }
        DepGraph { nodes }
    }

    /// The graph of the project's enabled services, from `depends_on`.
    pub fn from_project(p: &Project) -> DepGraph {
        DepGraph::from_edges(p.services.iter().map(|(name, s)| {
            let edges = s
                .depends_on
                .iter()
                .map(|(t, d)| Edge { target: t.clone(), condition: d.condition.into(), restart: d.restart, required: d.required })
                .collect();
            (name.clone(), edges)
        }))
    }

    /// The graph of the planner's desired services: `depends_on` and namespace parents.
    pub fn from_desired(d: &Desired) -> DepGraph {
        DepGraph::from_edges(d.services.iter().map(|s| {
            let mut edges: Vec<Edge> = s
                .depends_on
                .iter()
                .map(|x| Edge { target: x.service.clone(), condition: x.condition, restart: x.restart, required: x.required })
                .collect();
            edges.extend(s.namespace_parents.iter().map(|p| Edge::started(p)));
            (s.name.clone(), edges)
        }))
    }

    /// The graph of the services that have containers (one-offs aside), from their
    /// `com.docker.compose.depends_on` labels (the first container of a service that names a
    /// dependency wins). Labels carry no `required`: every edge is required.
    pub fn from_labels(o: &Observed) -> DepGraph {
        DepGraph::from_edges(o.containers.iter().filter(|c| !c.oneoff).map(|c| (c.service.clone(), c.depends_on.clone())))
    }

    /// The same services, with only the edges `keep` accepts (`restart` uses the
    /// `restart: true` ones).
    pub fn filter(&self, keep: impl Fn(&Edge) -> bool) -> DepGraph {
        let nodes = self.nodes.iter().map(|(k, v)| (k.clone(), v.iter().filter(|e| keep(e)).cloned().collect())).collect();
        DepGraph { nodes }
    }

    /// The graph on exactly `services` (those not in this graph join without edges).
    pub fn restrict<S: AsRef<str>>(&self, services: impl IntoIterator<Item = S>) -> DepGraph {
        DepGraph::from_edges(
            services.into_iter().map(|s| (s.as_ref().to_string(), self.nodes.get(s.as_ref()).cloned().unwrap_or_default())),
        )
    }

    /// The services, by name.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    pub fn contains(&self, service: &str) -> bool {
        self.nodes.contains_key(service)
    }

    /// The edges of `service`, in the order of its `depends_on`.
    pub fn edges(&self, service: &str) -> &[Edge] {
        self.nodes.get(service).map(Vec::as_slice).unwrap_or_default()
    }

    /// The services `service` depends on directly, by name.
    pub fn dependencies(&self, service: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self.edges(service).iter().map(|e| e.target.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The services that depend on `service` directly, by name.
    pub fn dependents(&self, service: &str) -> Vec<&str> {
        self.nodes.iter().filter(|(_, es)| es.iter().any(|e| e.target == service)).map(|(k, _)| k.as_str()).collect()
    }

    /// `services` and everything they depend on, transitively: the services given first (as
    /// given), then their dependencies breadth-first, each once.
    pub fn closure(&self, services: &[String]) -> Vec<String> {
        self.walk(services, |s| self.dependencies(s))
    }

    /// `services` and everything that depends on them, transitively (what `restart db` also
    /// restarts): the services given first, then their dependents breadth-first, each once.
    pub fn dependents_closure(&self, services: &[String]) -> Vec<String> {
        self.walk(services, |s| self.dependents(s))
    }

    fn walk<'a>(&'a self, start: &[String], next: impl Fn(&str) -> Vec<&'a str>) -> Vec<String> {
        let mut out: Vec<String> = start.to_vec();
        let mut i = 0;
        while i < out.len() {
            for n in next(&out[i]) {
                if !out.iter().any(|x| x == n) {
                    out.push(n.to_string());
                }
            }
            i += 1;
        }
        out
    }

    /// Fails with `dependency cycle detected: a -> b -> a` when there is a cycle.
    pub fn check_cycles(&self) -> Result<()> {
        match self.find_cycle() {
            Some(cycle) => Err(LoadError::project(format!("dependency cycle detected: {}", cycle.join(" -> ")))),
            None => Ok(()),
        }
    }

    /// A cycle, first node repeated at the end, found by a depth-first search in name order (so
    /// that the cycle printed is always the same).
    pub fn find_cycle(&self) -> Option<Vec<&str>> {
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            New,
            Active,
            Done,
        }
        let mut st: BTreeMap<&str, St> = self.services().map(|k| (k, St::New)).collect();
        for start in self.services() {
            if st[start] != St::New {
                continue;
            }
            let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, self.dependencies(start))];
            st.insert(start, St::Active);
            while let Some((node, deps)) = stack.last_mut() {
                let node = *node;
                if let Some(next) = (!deps.is_empty()).then(|| deps.remove(0)) {
                    match st[next] {
                        St::New => {
                            st.insert(next, St::Active);
                            let d = self.dependencies(next);
                            stack.push((next, d));
                        }
                        St::Active => {
                            let mut cycle: Vec<&str> = stack.iter().map(|(n, _)| *n).collect();
                            let from = cycle.iter().position(|n| *n == next).unwrap_or(0);
                            cycle.drain(..from);
                            cycle.push(next);
                            return Some(cycle);
                        }
                        St::Done => {}
                    }
                } else {
                    st.insert(node, St::Done);
                    stack.pop();
                }
            }
        }
        None
    }

    /// Services in rounds: each round holds the services whose `before` services are all in
    /// earlier rounds, by name. A cycle (impossible from a valid file, possible from stale
    /// labels) is broken by taking the first remaining service by name alone; a service never
    /// waits for itself.
    fn rounds<'a>(&'a self, before: impl Fn(&str) -> Vec<&'a str>) -> Vec<Vec<String>> {
        let mut left: BTreeSet<&str> = self.services().collect();
        let mut out = Vec::new();
        while let Some(first) = left.first().copied() {
            let ready: Vec<&str> = left.iter().copied().filter(|s| before(s).iter().all(|d| !left.contains(d) || d == s)).collect();
            let batch = if ready.is_empty() { vec![first] } else { ready };
            for s in &batch {
                left.remove(s);
            }
            out.push(batch.into_iter().map(String::from).collect());
        }
        out
    }

    /// Start rounds: each service after the services it depends on (cycles broken by name).
    pub fn start_rounds(&self) -> Vec<Vec<String>> {
        self.rounds(|s| self.dependencies(s))
    }

    /// Stop rounds: each service after the services that depend on it (cycles broken by name).
    pub fn stop_rounds(&self) -> Vec<Vec<String>> {
        self.rounds(|s| self.dependents(s))
    }

    /// Services by level: level 0 needs nothing, level n needs only services of lower levels,
    /// by name within a level. Fails on a cycle.
    pub fn levels(&self) -> Result<Vec<Vec<String>>> {
        self.check_cycles()?;
        Ok(self.start_rounds())
    }

    /// Every service after the services it depends on (start order). Fails on a cycle.
    pub fn start_order(&self) -> Result<Vec<String>> {
        Ok(self.levels()?.into_iter().flatten().collect())
    }

    /// Every service before the services it depends on (stop order). Fails on a cycle.
    pub fn stop_order(&self) -> Result<Vec<String>> {
        let mut v = self.start_order()?;
        v.reverse();
        Ok(v)
    }

    /// `config --graph text`: each service with its dependencies indented beneath it.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let roots: Vec<&str> = self.services().filter(|k| self.dependents(k).is_empty()).collect();
        let roots: Vec<&str> = if roots.is_empty() { self.services().collect() } else { roots };
        fn walk(g: &DepGraph, n: &str, prefix: &str, last: bool, top: bool, seen: &mut Vec<String>, out: &mut String) {
            let (branch, next) = if top {
                ("", String::new())
            } else if last {
                ("└── ", format!("{prefix}    "))
            } else {
                ("├── ", format!("{prefix}│   "))
            };
            out.push_str(&format!("{prefix}{branch}{n}\n"));
            if seen.iter().any(|s| s == n) {
                return;
            }
            seen.push(n.to_string());
            let deps = g.dependencies(n);
            for (i, d) in deps.iter().enumerate() {
                walk(g, d, &next, i + 1 == deps.len(), false, seen, out);
            }
            seen.pop();
        }
        for r in roots {
            walk(self, r, "", true, true, &mut Vec::new(), &mut out);
        }
        out
    }

    /// The edges of `service` as `config --graph dot|mermaid` lists them: last listed first (the
    /// order these formats have always had).
    fn edges_for_render(&self, service: &str) -> impl Iterator<Item = &Edge> {
        self.edges(service).iter().rev()
    }

    /// `config --graph dot`.
    pub fn render_dot(&self) -> String {
        let mut out = String::from("digraph compose {\n  rankdir=LR;\n");
        for k in self.services() {
            out.push_str(&format!("  \"{k}\";\n"));
        }
        for k in self.services() {
            for e in self.edges_for_render(k) {
                out.push_str(&format!("  \"{k}\" -> \"{}\" [label=\"{}\"];\n", e.target, e.condition.as_str()));
            }
        }
        out.push_str("}\n");
        out
    }

    /// `config --graph mermaid`.
    pub fn render_mermaid(&self) -> String {
        let id = |s: &str| s.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut out = String::from("graph LR\n");
        for k in self.services() {
            out.push_str(&format!("  {}[\"{k}\"]\n", id(k)));
        }
        for k in self.services() {
            for e in self.edges_for_render(k) {
                out.push_str(&format!("  {} -->|{}| {}\n", id(k), e.condition.as_str(), id(&e.target)));
            }
        }
        out
    }
}

/// The `com.docker.compose.depends_on` label of a service's containers, as compose writes it:
/// `svc:condition:restart`, comma-separated.
pub fn depends_on_label(service: &Service) -> String {
    service.depends_on.iter().map(|(k, d)| format!("{k}:{}:{}", d.condition.as_str(), d.restart)).collect::<Vec<_>>().join(",")
}

/// Parses a `depends_on` label back into edges (a missing condition is `service_started`; the
/// label has no `required`, so every edge is required).
pub fn parse_depends_on_label(s: &str) -> Vec<Edge> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut it = p.splitn(3, ':');
            let target = it.next().unwrap_or_default().to_string();
            let condition = it.next().filter(|c| !c.is_empty()).map(Condition::parse).unwrap_or(Condition::Started);
            let restart = it.next() == Some("true");
            Edge { target, condition, restart, required: true }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::model::{Condition as ModelCondition, Dependency, Service};
    use crate::project::observe::Container;

    fn project(edges: &[(&str, &[&str])]) -> Project {
        let mut p = Project::default();
        for (n, deps) in edges {
            let mut s = Service { name: n.to_string(), ..Default::default() };
            for d in *deps {
                s.depends_on.insert(d.to_string(), Dependency { condition: ModelCondition::Started, restart: false, required: true });
            }
            p.services.insert(n.to_string(), s);
        }
        p
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn levels_and_orders() {
        let p = project(&[("web", &["api", "db"]), ("api", &["db"]), ("db", &[]), ("cache", &[])]);
        let g = DepGraph::from_project(&p);
        assert_eq!(g.levels().unwrap(), vec![vec!["cache".to_string(), "db".into()], vec!["api".into()], vec!["web".into()]]);
        assert_eq!(g.start_order().unwrap(), names(&["cache", "db", "api", "web"]));
        assert_eq!(g.stop_order().unwrap(), names(&["web", "api", "db", "cache"]));
        // stop rounds: dependents first, by name among equals (not the start order reversed)
        assert_eq!(g.stop_rounds(), vec![names(&["cache", "web"]), names(&["api"]), names(&["db"])]);
        let t = g.render_text();
        assert!(t.contains("web\n├── api\n│   └── db\n└── db\n"), "{t}");
        assert!(g.render_dot().contains("\"web\" -> \"api\""));
        assert!(g.render_mermaid().contains("web -->|service_started| api"));
        // the last listed edge first, as these formats always printed them
        assert!(g.render_dot().contains("  \"web\" -> \"db\" [label=\"service_started\"];\n  \"web\" -> \"api\""), "{}", g.render_dot());
    }

    #[test]
    fn closure_and_dependents() {
        let p = project(&[("web", &["api"]), ("api", &["db"]), ("db", &[]), ("worker", &["db"]), ("other", &[])]);
        let g = DepGraph::from_project(&p);
        assert_eq!(g.closure(&names(&["web"])), names(&["web", "api", "db"]));
        assert_eq!(g.closure(&names(&["worker", "web"])), names(&["worker", "web", "db", "api"]));
        assert_eq!(g.dependencies("web"), ["api"]);
        assert_eq!(g.dependents("db"), ["api", "worker"]);
        assert_eq!(g.dependents_closure(&names(&["db"])), names(&["db", "api", "worker", "web"]));
        assert_eq!(g.dependents_closure(&names(&["other"])), names(&["other"]));
        // edges filtered: only `restart: true` ones are followed
        let only_restart = g.filter(|e| e.restart);
        assert_eq!(only_restart.dependents_closure(&names(&["db"])), names(&["db"]));
        // restricted to the services that have containers
        let r = g.restrict(["web", "db", "orphan"]);
        assert_eq!(r.services().collect::<Vec<_>>(), ["db", "orphan", "web"]);
        assert!(r.edges("web").is_empty(), "api is not in the restricted graph");
    }

    #[test]
    fn edges_keep_the_dependency() {
        let mut p = project(&[("web", &[]), ("db", &[]), ("gone", &[])]);
        let web = p.services.get_mut("web").unwrap();
        web.depends_on.insert("db".into(), Dependency { condition: ModelCondition::Healthy, restart: true, required: false });
        web.depends_on.insert("disabled".into(), Dependency { condition: ModelCondition::Started, restart: false, required: true });
        let g = DepGraph::from_project(&p);
        assert_eq!(g.edges("web"), [Edge { target: "db".into(), condition: Condition::Healthy, restart: true, required: false }]);
        assert!(!g.contains("disabled"));
    }

    #[test]
    fn cycles_are_printed() {
        let p = project(&[("service1", &["service2"]), ("service2", &["service3"]), ("service3", &["service1"])]);
        let e = DepGraph::from_project(&p).check_cycles().unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: service1 -> service2 -> service3 -> service1");
        let p = project(&[("a", &["a"])]);
        let e = DepGraph::from_project(&p).check_cycles().unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: a -> a");
        assert!(DepGraph::from_project(&p).start_order().is_err());
    }

    fn container(service: &str, label: &str, oneoff: bool) -> Container {
        Container {
            id: format!("id-{service}"),
            name: format!("demo-{service}-1"),
            service: service.into(),
            number: 1,
            oneoff,
            config_hash: String::new(),
            image: String::new(),
            status: crate::engine::runtime::state::Status::Running,
            health: None,
            exit_code: 0,
            created: String::new(),
            depends_on: parse_depends_on_label(label),
            has_healthcheck: false,
            volumes: vec![],
            anonymous_volumes: vec![],
            stop_grace_secs: 10,
        }
    }

    #[test]
    fn from_labels_and_cycles_from_stale_labels() {
        let o = Observed {
            project: "demo".into(),
            containers: vec![
                container("web", "api:service_healthy:true,db::false", false),
                container("api", "web:service_started:false", false),
                container("db", "", false),
                container("run", "db:service_started:false", true),
                container("web", "db:service_healthy:true", false),
            ],
            ..Default::default()
        };
        let g = DepGraph::from_labels(&o);
        assert_eq!(g.services().collect::<Vec<_>>(), ["api", "db", "web"], "one-offs are no service");
        assert_eq!(
            g.edges("web"),
            [Edge { target: "api".into(), condition: Condition::Healthy, restart: true, required: true }, Edge::started("db"),],
            "the first container naming a dependency wins"
        );
        // api <-> web is a cycle: the loader would refuse it, the orders break it by name
        assert_eq!(g.find_cycle(), Some(vec!["api", "web", "api"]));
        assert_eq!(g.start_rounds(), vec![names(&["db"]), names(&["api"]), names(&["web"])]);
        assert_eq!(g.stop_rounds(), vec![names(&["api"]), names(&["web"]), names(&["db"])]);
    }

    #[test]
    fn label_round_trip() {
        let mut s = Service { name: "web".into(), ..Default::default() };
        s.depends_on.insert("db".into(), Dependency { condition: ModelCondition::Healthy, restart: true, required: true });
        s.depends_on.insert("init".into(), Dependency { condition: ModelCondition::CompletedSuccessfully, restart: false, required: true });
        let l = depends_on_label(&s);
        assert_eq!(l, "db:service_healthy:true,init:service_completed_successfully:false");
        assert_eq!(
            parse_depends_on_label(&l),
            [
                Edge { target: "db".into(), condition: Condition::Healthy, restart: true, required: true },
                Edge { target: "init".into(), condition: Condition::CompletedSuccessfully, restart: false, required: true },
            ]
        );
        assert_eq!(parse_depends_on_label(""), []);
        assert_eq!(parse_depends_on_label("db"), [Edge::started("db")]);
    }
}
