//! The dependency graph of a project's services (petgraph): an edge from a service to each
//! service it needs first, through `depends_on`, `links`, `network_mode`/`ipc`/`pid`
//! `service:X` and `volumes_from` (the loader folds all of these into `depends_on`, as compose
//! does). Gives topological levels, the start order and its reverse, and cycle detection that
//! prints the cycle.

use std::collections::BTreeMap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use super::error::{LoadError, Result};
use super::model::{Dependency, Project};

pub struct Graph {
    pub g: DiGraph<String, Dependency>,
    idx: BTreeMap<String, NodeIndex>,
}

impl Graph {
    /// The graph of the project's (enabled) services; dependencies on services that are not in
    /// the project (optional ones, or disabled by profiles) are left out.
    pub fn new(p: &Project) -> Result<Graph> {
        let mut g = DiGraph::new();
        let mut idx = BTreeMap::new();
        for name in p.services.keys() {
            idx.insert(name.clone(), g.add_node(name.clone()));
        }
        for (name, s) in &p.services {
            for (dep, d) in &s.depends_on {
                if let (Some(a), Some(b)) = (idx.get(name), idx.get(dep)) {
                    g.add_edge(*a, *b, d.clone());
                }
            }
        }
        Ok(Graph { g, idx })
    }

    /// The services `name` depends on directly, by name.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        let Some(i) = self.idx.get(name) else { return vec![] };
        let mut v: Vec<&str> = self.g.neighbors_directed(*i, Direction::Outgoing).map(|n| self.g[n].as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The services that depend on `name` directly.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        let Some(i) = self.idx.get(name) else { return vec![] };
        let mut v: Vec<&str> = self.g.neighbors_directed(*i, Direction::Incoming).map(|n| self.g[n].as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Fails with `dependency cycle detected: a -> b -> a` when there is a cycle.
    pub fn check_cycles(&self) -> Result<()> {
        // depth-first search in name order, so that the cycle printed is always the same
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            New,
            Active,
            Done,
        }
        let mut st: BTreeMap<&str, St> = self.idx.keys().map(|k| (k.as_str(), St::New)).collect();
        for start in self.idx.keys() {
            if st[start.as_str()] != St::New {
                continue;
            }
            let mut stack: Vec<(&str, Vec<&str>)> = vec![(start.as_str(), self.dependencies(start))];
            st.insert(start.as_str(), St::Active);
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
                            return Err(LoadError::project(format!("dependency cycle detected: {}", cycle.join(" -> "))));
                        }
                        St::Done => {}
                    }
                } else {
                    st.insert(node, St::Done);
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// Services by level: level 0 needs nothing, level n needs only services of lower levels.
    /// Fails on a cycle.
    pub fn levels(&self) -> Result<Vec<Vec<String>>> {
        self.check_cycles()?;
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        fn depth<'a>(g: &'a Graph, n: &'a str, memo: &mut BTreeMap<&'a str, usize>) -> usize {
            if let Some(d) = memo.get(n) {
                return *d;
            }
            let d = g.dependencies(n).into_iter().map(|x| depth(g, x, memo) + 1).max().unwrap_or(0);
            memo.insert(n, d);
            d
        }
        for k in self.idx.keys() {
            depth(self, k, &mut level);
        }
        let max = level.values().copied().max().map(|m| m + 1).unwrap_or(0);
        let mut out = vec![Vec::new(); max];
        for (k, l) in level {
            out[l].push(k.to_string());
        }
        Ok(out)
    }

    /// Every service after the services it depends on (start order).
    pub fn start_order(&self) -> Result<Vec<String>> {
        Ok(self.levels()?.into_iter().flatten().collect())
    }

    /// Every service before the services it depends on (stop order).
    pub fn stop_order(&self) -> Result<Vec<String>> {
        let mut v = self.start_order()?;
        v.reverse();
        Ok(v)
    }

    /// `config --graph text`: each service with its dependencies indented beneath it.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let roots: Vec<&String> = self.idx.keys().filter(|k| self.dependents(k).is_empty()).collect();
        let roots: Vec<&String> = if roots.is_empty() { self.idx.keys().collect() } else { roots };
        fn walk(g: &Graph, n: &str, prefix: &str, last: bool, top: bool, seen: &mut Vec<String>, out: &mut String) {
            let (branch, next) = if top {
                ("", String::new())
            } else if last {
                ("└── ", format!("{prefix}    "))
            } else {
                ("├── ", format!("{prefix}│   "))
            };
            let idx = g.idx[n];
            let cond = |d: &str| {
                g.g.edges_directed(idx, Direction::Outgoing)
                    .find(|e| g.g[petgraph::visit::EdgeRef::target(e)] == d)
                    .map(|e| e.weight().condition.clone())
                    .unwrap_or_default()
            };
            let _ = cond;
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

    /// `config --graph dot`.
    pub fn render_dot(&self) -> String {
        let mut out = String::from("digraph compose {\n  rankdir=LR;\n");
        for k in self.idx.keys() {
            out.push_str(&format!("  \"{k}\";\n"));
        }
        for k in self.idx.keys() {
            for e in self.g.edges_directed(self.idx[k], Direction::Outgoing) {
                let t = &self.g[petgraph::visit::EdgeRef::target(&e)];
                out.push_str(&format!("  \"{k}\" -> \"{t}\" [label=\"{}\"];\n", e.weight().condition));
            }
        }
        out.push_str("}\n");
        out
    }

    /// `config --graph mermaid`.
    pub fn render_mermaid(&self) -> String {
        let id = |s: &str| s.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let mut out = String::from("graph LR\n");
        for k in self.idx.keys() {
            out.push_str(&format!("  {}[\"{k}\"]\n", id(k)));
        }
        for k in self.idx.keys() {
            for e in self.g.edges_directed(self.idx[k], Direction::Outgoing) {
                let t = &self.g[petgraph::visit::EdgeRef::target(&e)];
                out.push_str(&format!("  {} -->|{}| {}\n", id(k), e.weight().condition, id(t)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::model::Service;

    fn project(edges: &[(&str, &[&str])]) -> Project {
        let mut p = Project::default();
        for (n, deps) in edges {
            let mut s = Service { name: n.to_string(), ..Default::default() };
            for d in *deps {
                s.depends_on.insert(d.to_string(), Dependency { condition: "service_started".into(), restart: false, required: true });
            }
            p.services.insert(n.to_string(), s);
        }
        p
    }

    #[test]
    fn levels_and_orders() {
        let p = project(&[("web", &["api", "db"]), ("api", &["db"]), ("db", &[]), ("cache", &[])]);
        let g = Graph::new(&p).unwrap();
        assert_eq!(g.levels().unwrap(), vec![vec!["cache".to_string(), "db".into()], vec!["api".into()], vec!["web".into()]]);
        assert_eq!(g.stop_order().unwrap().first().map(String::as_str), Some("web"));
        let t = g.render_text();
        assert!(t.contains("web\n├── api\n│   └── db\n└── db\n"), "{t}");
        assert!(g.render_dot().contains("\"web\" -> \"api\""));
        assert!(g.render_mermaid().contains("web -->|service_started| api"));
    }

    #[test]
    fn cycles_are_printed() {
        let p = project(&[("service1", &["service2"]), ("service2", &["service3"]), ("service3", &["service1"])]);
        let e = Graph::new(&p).unwrap().check_cycles().unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: service1 -> service2 -> service3 -> service1");
        let p = project(&[("a", &["a"])]);
        let e = Graph::new(&p).unwrap().check_cycles().unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: a -> a");
    }
}
