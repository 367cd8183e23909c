//! `user:` resolution from the image's /etc/passwd and /etc/group, with runc's rules: a name must
//! exist, a number need not; the user's supplementary groups apply only when no group is given;
//! `group_add` always applies; the primary group is always among the supplementary ones. The files are read inside the container root (never through NSS),
//! size-capped, and ids outside 0..2^31-1 are refused (CVE-2024-40635 class).

use std::os::fd::RawFd;

/// Files larger than this are cut (CVE-2026-47262 class).
pub const MAX_FILE: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub sgids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("invalid user or group id {0:?}: ids must be between 0 and 2147483647")]
    Range(String),
}

fn parse_id(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if (0..=i32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
        _ => Err(UserError::Range(s.to_string())),
    }
}

struct PwEnt<'a> {
    name: &'a str,
    uid: &'a str,
    gid: &'a str,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PwEnt<'_>> {
    passwd.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6).then(|| PwEnt { name: f[0], uid: f[2], gid: f[3], home: f[5] })
    })
}

struct GrEnt<'a> {
    name: &'a str,
    gid: &'a str,
    members: Vec<&'a str>,
}

fn group_entries(group: &str) -> impl Iterator<Item = GrEnt<'_>> {
    group.lines().filter(|l| !l.starts_with('#')).filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then(|| GrEnt {
            name: f[0],
            gid: f[2],
            members: f.get(3).map(|m| m.split(',').filter(|x| !x.is_empty()).collect()).unwrap_or_default(),
        })
    })
}

fn group_id(group: &str, spec: &str) -> Result<u32, UserError> {
    if let Some(g) = group_entries(group).find(|g| g.name == spec) {
        return parse_id(g.gid)?.ok_or_else(|| UserError::NoGroup(spec.to_string()));
    }
    parse_id(spec)?.ok_or_else(|| UserError::NoGroup(spec.to_string()))
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`, empty for root) and `group_add`
/// against the contents of /etc/passwd and /etc/group (either may be empty).
pub fn resolve(spec: &str, group_add: &[String], passwd: &str, group: &str) -> Result<ExecUser, UserError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let mut out = ExecUser { uid: 0, gid: 0, sgids: Vec::new(), home: "/".into() };
    let numeric = parse_id(user_part)?;
    let entry = passwd_entries(passwd).find(|e| match numeric {
        Some(n) => parse_id(e.uid).ok().flatten() == Some(n),
        None => e.name == user_part,
    });
    let mut matched_name = None;
    match (entry, numeric) {
        (Some(e), _) => {
            out.uid = parse_id(e.uid)?.ok_or_else(|| UserError::NoUser(user_part.into()))?;
            out.gid = parse_id(e.gid)?.unwrap_or(0);
            if !e.home.is_empty() {
                out.home = e.home.to_string();
            }
            matched_name = Some(e.name.to_string());
        }
        (None, Some(n)) => out.uid = n,
        (None, None) => return Err(UserError::NoUser(user_part.to_string())),
    }
    match group_part.filter(|g| !g.is_empty()) {
        Some(g) => out.gid = group_id(group, g)?,
        None => {
            if let Some(name) = matched_name {
                for g in group_entries(group) {
                    if g.members.contains(&name.as_str()) {
                        if let Ok(Some(id)) = parse_id(g.gid) {
                            if !out.sgids.contains(&id) {
                                out.sgids.push(id);
                            }
                        }
                    }
                }
            }
        }
    }
    for g in group_add {
        let id = group_id(group, g)?;
        if !out.sgids.contains(&id) {
            out.sgids.push(id);
        }
    }
    // The primary group is a supplementary group too, as Docker sets it (`id` shows it).
    if !out.sgids.contains(&out.gid) {
        out.sgids.insert(0, out.gid);
    }
    Ok(out)
}

/// Resolves against the files inside the root `root` (an fd to the container's `/`).
pub fn resolve_in_root(root: RawFd, spec: &str, group_add: &[String]) -> Result<ExecUser, UserError> {
    let read =
        |p: &str| super::fsroot::read_in_root(root, p, MAX_FILE).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    // Root with no extra groups needs no file at all (the common case, and the fast one).
    if (spec.is_empty() || spec == "0" || spec == "0:0") && group_add.is_empty() {
        let passwd = read("/etc/passwd");
        return resolve(spec, group_add, &passwd, "");
    }
    resolve(spec, group_add, &read("/etc/passwd"), &read("/etc/group"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nbob:x:1000:\naudio:x:29:bob,www\nvideo:x:44:bob\n";

    #[test]
    fn names_ids_and_groups() {
        let u = resolve("bob", &[], PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1000, 1000, "/home/bob"));
        assert_eq!(u.sgids, vec![1000, 29, 44]);
        // An explicit group drops the implicit supplementary groups.
        let u = resolve("bob:www", &[], PASSWD, GROUP).unwrap();
        assert_eq!((u.gid, u.sgids.clone()), (33, vec![33]));
        let u = resolve("1234:5678", &["audio".into()], PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.sgids.clone()), (1234, 5678, vec![5678, 29]));
        let u = resolve("", &[], PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.home.as_str()), (0, "/root"));
        let u = resolve("33", &[], PASSWD, GROUP).unwrap();
        assert_eq!(u.home, "/var/www");
    }

    #[test]
    fn unknown_names_and_overflowing_ids_are_refused() {
        assert_eq!(resolve("nobody2", &[], PASSWD, GROUP).unwrap_err(), UserError::NoUser("nobody2".into()));
        assert!(matches!(resolve("bob:nogroup", &[], PASSWD, GROUP), Err(UserError::NoGroup(_))));
        for bad in ["4294967295", "2147483648:0", "-1", "0:-1"] {
            assert!(matches!(resolve(bad, &[], PASSWD, GROUP), Err(UserError::Range(_))), "{bad}");
        }
    }
}
