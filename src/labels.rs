//! The labels that hold project state on containers, networks and volumes, as Docker Compose keeps
//! them (`pkg/api/labels.go`). Discovery works only through these.

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const IMAGE: &str = "com.docker.compose.image";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
pub const VERSION: &str = "com.docker.compose.version";
pub const REPLACE: &str = "com.docker.compose.replace";
pub const SLUG: &str = "com.docker.compose.slug";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";

/// The compose version berth reports in its labels; the one its behaviour follows.
pub const COMPOSE_VERSION: &str = "2.40.3";

/// Labels under this prefix are berth's or compose's own. Labels from an image or a user may never
/// set them (CVE-2026-53488 class): callers strip them from untrusted label sets.
pub const RESERVED_PREFIX: &str = "com.docker.compose.";

/// Removes reserved labels from a label set that came from an image or another untrusted source.
pub fn strip_reserved(labels: &mut std::collections::BTreeMap<String, String>) {
    labels.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
}
