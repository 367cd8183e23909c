//! Pass 4: `extends`: a service built on another one, from the same file or from `file:`
//! (relative to the file that names it; the base service's relative paths stay relative to its
//! own file). The service's own settings are merged over the base with the merge rules.

use std::path::{Path, PathBuf};

use super::error::{LoadError, Result};
use super::load::Loader;
use super::merge;
use super::yaml::Node;

/// Resolves `extends` for every service of `doc`, a canonical document of `file`.
pub fn apply(loader: &mut Loader, doc: &mut Node, file: &Path) -> Result<()> {
    let names: Vec<String> = match doc.as_map().and_then(|m| m.get("services")).and_then(Node::as_map) {
        Some(s) => s.keys().map(str::to_string).collect(),
        None => return Ok(()),
    };
    for name in names {
        let mut chain = Vec::new();
        let resolved = resolve(loader, doc, file, &name, &mut chain)?;
        if let Some(svcs) = doc.as_map_mut().and_then(|m| m.get_mut("services")).and_then(Node::as_map_mut) {
            svcs.insert(&name, resolved);
        }
    }
    Ok(())
}

/// The service `name` of `doc` with its `extends` chain applied.
fn resolve(loader: &mut Loader, doc: &Node, file: &Path, name: &str, chain: &mut Vec<(PathBuf, String)>) -> Result<Node> {
    let svcs = doc.as_map().and_then(|m| m.get("services")).and_then(Node::as_map);
    let Some(svc) = svcs.and_then(|s| s.get(name)).cloned() else {
        return Err(LoadError::file(file, format!("cannot extend service {name:?}: no such service in this file")));
    };
    let link = (file.to_path_buf(), name.to_string());
    if chain.contains(&link) {
        let mut msg = String::from("circular reference with extends: ");
        for (f, s) in chain.iter() {
            msg.push_str(&format!("{} ({}) -> ", s, f.display()));
        }
        msg.push_str(&format!("{name} ({})", file.display()));
        return Err(LoadError::at(&svc.pos, format!("services.{name}.extends"), msg));
    }
    chain.push(link);
    let Some(ext) = svc.as_map().and_then(|m| m.get("extends")).cloned() else {
        chain.pop();
        return Ok(svc);
    };
    let path = format!("services.{name}.extends");
    let Some(em) = ext.as_map() else {
        return Err(LoadError::at(&ext.pos, path, "must be a service name or a mapping with service and file"));
    };
    let r = super::typed::R::new(em, path.clone());
    let Some(base_name) = r.str("service")? else {
        return Err(LoadError::at(&ext.pos, path, "needs the name of the service to extend"));
    };
    let mut base = match r.str("file")? {
        None => {
            if svcs.and_then(|s| s.get(&base_name)).is_none() {
                return Err(LoadError::at(
                    &ext.pos,
                    path,
                    format!("service {base_name:?} not found in {}: extends names an undefined service", file.display()),
                ));
            }
            resolve(loader, doc, file, &base_name, chain)?
        }
        Some(f) => {
            let dir = file.parent().unwrap_or(Path::new("/"));
            let other = PathBuf::from(super::paths::abs(&f, dir, loader.home()));
            let other_doc = loader.load_for_extends(&other, &ext.pos, &path)?;
            if other_doc.as_map().and_then(|m| m.get("services")).and_then(Node::as_map).and_then(|s| s.get(&base_name)).is_none() {
                return Err(LoadError::at(&ext.pos, path, format!("service {base_name:?} not found in {}", other.display())));
            }
            let mut b = resolve(loader, &other_doc, &other, &base_name, chain)?;
            let dir = other.parent().unwrap_or(Path::new("/"));
            super::paths::resolve_service(&mut b, dir, loader.home());
            super::paths::default_context(&mut b, dir);
            b
        }
    };
    chain.pop();
    let mut over = svc;
    if let Some(m) = over.as_map_mut() {
        m.remove("extends");
    }
    if let Some(m) = base.as_map_mut() {
        m.remove("extends");
    }
    let mut p = vec!["services".to_string(), name.to_string()];
    merge::merge(&mut base, over, &mut p)?;
    merge::strip_tags(&mut base);
    Ok(base)
}
