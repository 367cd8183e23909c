//! `berth cp`: copies files and folders between a service's container and the host (or a tar
//! stream on stdin/stdout), with `docker cp`'s rules for where things land. The copy itself, and
//! what keeps it inside the container (CVE-2018-15664), is `engine::runtime::fsaccess`.

use std::io;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::OneOff;
use crate::cli::GlobalOpts;
use crate::engine::runtime::fsaccess::{self, ContainerFs, CopyDest, CopyOptions, CopySource};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Include containers created by the run command
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    all: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cli::go_bool)]
    follow_link: bool,
    /// Index of the container if service has multiple replicas
    #[arg(long, default_value_t = 0)]
    index: u32,
    /// SERVICE:SRC_PATH or SRC_PATH|-
    #[arg(value_name = "SRC")]
    src: String,
    /// DEST_PATH|- or SERVICE:DEST_PATH
    #[arg(value_name = "DEST")]
    dest: String,
}

/// docker's `splitCpArg`: `SERVICE:PATH`, unless the argument is an absolute or `.`-relative
/// local path.
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((svc, path)) if !svc.starts_with('.') && !svc.is_empty() => (Some(svc), path),
        _ => (None, arg),
    }
}

pub fn run(g: &GlobalOpts, a: CpArgs) -> anyhow::Result<i32> {
    let (src_svc, src_path) = split_arg(&a.src);
    let (dst_svc, dst_path) = split_arg(&a.dest);
    let (service, to_container) = match (src_svc, dst_svc) {
        (Some(_), Some(_)) => anyhow::bail!("copying between services is not supported"),
        (None, None) => anyhow::bail!("unknown copy direction: name the service's side as SERVICE:PATH"),
        (Some(s), None) => (s, false),
        (None, Some(s)) => (s, true),
    };
    let name = super::project_name(g)?;
    let root = g.state_root();
    let list = if a.index > 0 {
        vec![super::specified_container(&root, &name, OneOff::Exclude, true, service, a.index)?]
    } else {
        let oneoff = if a.all { OneOff::Include } else { OneOff::Exclude };
        let mut l = super::containers(&root, &name, oneoff, true, &[service.to_string()]);
        if l.is_empty() {
            anyhow::bail!("no container found for service {service:?}");
        }
        if !to_container {
            l.truncate(1);
        }
        l
    };
    let opts = CopyOptions { follow_link: a.follow_link, archive: a.archive };
    for c in &list {
        let what = if to_container {
            format!("{src_path} to {}:{dst_path}", c.cfg.name)
        } else {
            format!("{}:{src_path} to {dst_path}", c.cfg.name)
        };
        if g.dry_run {
            // Compose's dry-run progress; nothing is read or written.
            eprintln!(" DRY-RUN MODE -  {} copy {what} Copying", c.cfg.name);
            eprintln!(" DRY-RUN MODE -  {} copy {what} Copied", c.cfg.name);
            continue;
        }
        let fs =
            ContainerFs::open(&root, &c.cfg, &c.st).with_context(|| format!("cannot reach the filesystem of container {}", c.cfg.name))?;
        if to_container {
            // As docker, refused before anything is copied.
            if let Some(why) = fsaccess::read_only_reason(&c.cfg, dst_path) {
                anyhow::bail!("cannot copy {what}: {why}");
            }
            let copied = if src_path == "-" {
                fs.copy_in(CopySource::Tar(&mut io::stdin().lock()), dst_path, &opts)
            } else {
                fs.copy_in(CopySource::Host(Path::new(src_path)), dst_path, &opts)
            };
            match copied {
                Ok(c) => c.skipped.iter().for_each(|s| eprintln!("skipping {s}")),
                Err(e) if e.is_read_only_fs() => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "cannot copy {what}: {dst_path} is on a read-only file system in the container; copy into a writable mount instead"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        } else if dst_path == "-" {
            fs.copy_out(src_path, CopyDest::Tar(&mut io::stdout().lock()), &opts)?;
        } else {
            fs.copy_out(src_path, CopyDest::Host(Path::new(dst_path)), &opts)?;
        }
        eprintln!(" {} copy {what} Copied", c.cfg.name);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_docker_splits_them() {
        assert_eq!(split_arg("web:/tmp/x"), (Some("web"), "/tmp/x"));
        assert_eq!(split_arg("/abs:odd"), (None, "/abs:odd"));
        assert_eq!(split_arg("./rel:odd"), (None, "./rel:odd"));
        assert_eq!(split_arg("file.txt"), (None, "file.txt"));
        assert_eq!(split_arg("-"), (None, "-"));
    }
}
