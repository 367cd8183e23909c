//! Pass 3: `include`: other compose projects loaded on their own (their relative paths resolved
//! against their own project directory) and their resources added to this one. A resource
//! defined both here and in an included project is an error, as is an include cycle.

use std::path::{Path, PathBuf};

use super::error::{LoadError, Result};
use super::load::{FileCtx, Loader};
use super::yaml::{Node, Value};

/// Applies the `include` section of `doc` (a document of the file `ctx.file`).
pub fn apply(loader: &mut Loader, doc: &mut Node, ctx: &FileCtx) -> Result<()> {
    let Some(m) = doc.as_map_mut() else { return Ok(()) };
    let Some(inc) = m.remove("include") else { return Ok(()) };
    let Value::Seq(items) = inc.v else {
        return Err(LoadError::at(&inc.pos, "include", "must be a list"));
    };
    let file_dir = ctx.file.parent().map(Path::to_path_buf).unwrap_or_default();
    for (i, it) in items.into_iter().enumerate() {
        let key = format!("include[{i}]");
        let it = match &it.v {
            Value::Str(p) => {
                let mut m = super::yaml::Map::default();
                m.insert("path", Node::str(p.clone(), it.pos.clone()));
                Node::map(m, it.pos.clone())
            }
            _ => it,
        };
        let Some(im) = it.as_map() else {
            return Err(LoadError::at(&it.pos, key, "must be a path or a mapping with path"));
        };
        let r = super::typed::R::new(im, key.clone());
        let paths: Vec<PathBuf> = r.list("path")?.iter().map(|p| PathBuf::from(super::paths::abs(p, &file_dir, loader.home()))).collect();
        if paths.is_empty() {
            return Err(LoadError::at(&it.pos, key, "needs a path"));
        }
        let project_dir = match r.str("project_directory")? {
            Some(d) => PathBuf::from(super::paths::abs(&d, &file_dir, loader.home())),
            None => paths[0].parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let env_files: Vec<PathBuf> =
            r.list("env_file")?.iter().map(|p| PathBuf::from(super::paths::abs(p, &file_dir, loader.home()))).collect();
        for p in &paths {
            if ctx.chain.contains(p) {
                let mut msg = String::from("include cycle detected:\n");
                msg.push_str(&ctx.chain[0].display().to_string());
                for c in ctx.chain.iter().skip(1).chain(std::iter::once(p)) {
                    msg.push_str(&format!("\n include {}", c.display()));
                }
                return Err(LoadError::at(&it.pos, "include", msg));
            }
        }
        let included = loader.load_included(&paths, &project_dir, &env_files, &ctx.chain)?;
        add_resources(doc, included, &it)?;
    }
    Ok(())
}

fn add_resources(doc: &mut Node, included: Node, at: &Node) -> Result<()> {
    let Some(m) = doc.as_map_mut() else { return Ok(()) };
    let Value::Map(im) = included.v else { return Ok(()) };
    for (k, v) in im.0 {
        if !matches!(k.name.as_str(), "services" | "networks" | "volumes" | "secrets" | "configs" | "models") {
            continue;
        }
        let Value::Map(res) = v.v else { continue };
        if m.get(&k.name).is_none() {
            m.insert(&k.name, Node::map(Default::default(), at.pos.clone()));
        }
        let Some(target) = m.get_mut(&k.name).and_then(Node::as_map_mut) else {
            continue;
        };
        for (rk, rv) in res.0 {
            if let Some(existing) = target.get(&rk.name) {
                if existing.v != rv.v {
                    return Err(LoadError::at(
                        &existing.pos,
                        format!("{}.{}", k.name, rk.name),
                        format!("conflicts with the {} imported by include at line {}", k.name.trim_end_matches('s'), at.pos.line),
                    ));
                }
                continue;
            }
            target.insert_key(rk, rv);
        }
    }
    Ok(())
}
