//! The image module's error type. Every variant names what it concerns (the reference, digest,
//! file or registry) and, where the user can act, what to do.

use std::path::PathBuf;

use crate::util::fs::FsError;
use crate::util::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Lock(#[from] LockError),

    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: &'static str },
    #[error("invalid platform {platform:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")]
    InvalidPlatform { platform: String },

    #[error("no such image: {0}")]
    NotFound(String),
    #[error("refusing to prune images (a tagged image would look unused): {why}")]
    DamagedIndex { why: String },
    #[error("image store is damaged: {what}; remove the image and pull or load it again")]
    Corrupt { what: String },
    #[error(
        "image {image} is damaged: the files of its layer {layer} are missing from the store; \
         pull, load or import it again to repair it, or remove it"
    )]
    Damaged { image: String, layer: String },
    #[error(
        "unable to remove {reference}: image {id} is used by container {container}; \
         remove the container first, or use -f to untag the image anyway"
    )]
    InUse { reference: String, id: String, container: String },
    #[error("unable to remove image {id}: it is tagged in several repositories ({names}); remove the tags, or use -f")]
    MultipleNames { id: String, names: String },

    #[error("{what}: content digest is {actual}, expected {expected}; nothing was stored")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("{what}: size is {actual} bytes, expected {expected}; nothing was stored")]
    SizeMismatch { what: String, expected: u64, actual: u64 },

    #[error("layer {layer}: {reason}; the layer was refused and nothing was kept")]
    UnsafeLayer { layer: String, reason: String },
    #[error("layer {layer}: cannot unpack {}", entry.display())]
    Unpack {
        layer: String,
        entry: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: the archive is unreadable (truncated or not a tar/gzip/zstd stream)")]
    BadArchive {
        layer: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {layer}: {what} exceeds the limit of {limit}; set {var} to raise it")]
    LimitExceeded { layer: String, what: &'static str, limit: u64, var: &'static str },

    #[error("{image}: the image config is too large: {what} is {actual}, over berth's limit of {limit}; nothing was stored")]
    ConfigTooLarge { image: String, what: &'static str, actual: u64, limit: u64 },

    #[error("{what} is not a valid image document")]
    BadManifest {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("{reference}: no image for platform {platform} (the image offers {available})")]
    NoMatchingPlatform { reference: String, platform: String, available: String },

    #[error("cannot reach registry {registry}")]
    Connect {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "{registry}: authentication required for {reference}; run `berth login {login}` \
         (or check that the repository exists and that you may access it)"
    )]
    Unauthorized { registry: String, reference: String, login: String },
    #[error("{registry}: access to {reference} denied; check the name and your rights (`berth login {login}`)")]
    Denied { registry: String, reference: String, login: String },
    #[error("{reference}: not found in registry {registry}: {detail}")]
    RegistryNotFound { registry: String, reference: String, detail: String },
    #[error("{registry}: {method} {url} answered {status}: {detail}")]
    Registry { registry: String, method: &'static str, url: String, status: u16, detail: String },
    #[error("{registry}: the token server {realm} refused the request ({status}): {detail}")]
    TokenServer { registry: String, realm: String, status: u16, detail: String },
    #[error("{registry}: {reason}")]
    Protocol { registry: String, reason: String },
    #[error(
        "registry {registry} can only be reached over plain HTTP, which berth allows only for localhost, \
         127.0.0.0/8 and registries given with --insecure-registry {registry}"
    )]
    InsecureNotAllowed { registry: String },

    #[error("cannot read {}", path.display())]
    DockerConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("credential helper docker-credential-{helper} ({action} for {server}): {reason}")]
    CredentialHelper { helper: String, action: &'static str, server: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl ImageError {
    pub fn corrupt(what: impl Into<String>) -> Self {
        ImageError::Corrupt { what: what.into() }
    }
    pub fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Unsupported { what: what.into(), reason: reason.into() }
    }
    /// True for failures worth retrying: connection trouble and 5xx/429 answers.
    pub fn is_transient(&self) -> bool {
        match self {
            ImageError::Connect { .. } => true,
            ImageError::Registry { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
