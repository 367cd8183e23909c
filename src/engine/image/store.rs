//! The content-addressed image store under `<root>/images`:
//!
//! ```text
//! images/
//!   blobs/sha256/<hex>        manifests, configs and layer blobs, each verified before it is renamed here
//!   layers/<chain hex>/       one unpacked layer, shared by every image that has it:
//!     diff/                   its files (whiteouts as overlayfs reads them)
//!     layer.json              chain ID, diff ID, blob, sizes
//!   l/<short id>              -> ../layers/<chain hex>/diff (short overlay lowerdir paths)
//!   records/<id hex>.json     one image: manifest, layers, repo digests (its id is its config's digest)
//!   repositories.json         tags: "docker.io/library/busybox:latest" -> image id
//!   tmp/                      work in progress: <pid>-<random>.*, removed when the pid is gone
//!   locks/                    images.lock (records and tags), gc.lock, one lock per blob and layer
//! ```
//!
//! A blob, layer or record exists under its final name only once it is complete and verified:
//! everything is written under `tmp/` first and renamed. Writers (pull, load, import, commit)
//! hold `gc.lock` shared for their duration, so that removal never collects a layer that a
//! record about to be written will use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::digest::{Digest, Hasher, chain_ids};
use super::error::{ImageError, Result};
use super::reference::Reference;
use super::unpack::{self, Compression, Limits};
use crate::state::StateRoot;
use crate::util::fs::{FsError, create_dir_all_mode, read_json, write_json};
use crate::util::lock::FileLock;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The chain ID: names the unpacked directory (this layer on top of its parents).
    pub chain_id: Digest,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The digest of the blob as distributed (compressed or not).
    pub blob: Digest,
    pub media_type: String,
    pub blob_size: u64,
    /// The size of the uncompressed tar.
    pub size: u64,
}

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image id: the digest of its config blob.
    pub id: Digest,
    /// The references that name it (`docker.io/library/busybox:latest`).
    pub names: Vec<Reference>,
    /// `docker.io/library/busybox@sha256:...` for images that came from a registry.
    pub repo_digests: Vec<String>,
    pub config: ImageConfiguration,
    /// The config as stored, with the Docker fields oci-spec does not model (Healthcheck, Shell...).
    pub raw_config: serde_json::Value,
    /// Bottom to top.
    pub layers: Vec<Layer>,
    /// The digest of the manifest stored with it (the one pulled, or one berth made).
    pub manifest: Digest,
    /// The bytes of file content in its layers (what `docker images` shows as SIZE).
    pub size: u64,
    /// When this image was added to the store (RFC 3339).
    pub added: String,
}

impl Image {
    /// `busybox:latest`, or the short id for an untagged image.
    pub fn display_name(&self) -> String {
        self.names.first().map(|n| n.familiar()).unwrap_or_else(|| self.id.short().to_string())
    }
    /// The image's `config` section (Docker's capitalized keys), or null.
    pub fn container_config(&self) -> &serde_json::Value {
        self.raw_config.get("config").unwrap_or(&serde_json::Value::Null)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    id: Digest,
    manifest: Digest,
    #[serde(default)]
    repo_digests: Vec<String>,
    layers: Vec<Layer>,
    added: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LayerMeta {
    chain_id: Digest,
    diff_id: Digest,
    size: u64,
    /// The sum of its regular files' sizes, what Docker shows as a layer's size (0 for a layer
    /// of directories only). Absent in records written before berth kept it: the tar size then.
    #[serde(default)]
    content_size: Option<u64>,
}

impl LayerMeta {
    fn shown_size(&self) -> u64 {
        self.content_size.unwrap_or(self.size)
    }
}

/// What `remove` did, in Docker's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(Digest),
}

/// Caps on an image config, the same for every way in (pull, load, import, build): a config is
/// parsed whole into memory and its env and labels are copied into every container's config, so
/// a hostile image could otherwise make each command that reads it slow and huge (1e6 env entries
/// or 1e5 labels fit in a few MB). The config size is pull's; the others are far above what real
/// images carry (tens of entries), and the env's total stays under the kernel's exec limits.
pub const MAX_CONFIG_BYTES: u64 = super::registry::MAX_CONFIG as u64;
pub const MAX_ENV_ENTRIES: u64 = 4096;
pub const MAX_ENV_BYTES: u64 = 1 << 20;
pub const MAX_LABELS: u64 = 4096;
pub const MAX_LABEL_BYTES: u64 = 1 << 20;

/// Checks an image config against the caps above; `image` names it in the error (a reference, a
/// file name or a digest).
pub fn check_config(config: &[u8], image: &str) -> Result<()> {
    let too = |what, actual: u64, limit| {
        if actual > limit { Err(ImageError::ConfigTooLarge { image: image.to_string(), what, actual, limit }) } else { Ok(()) }
    };
    too("its size in bytes", config.len() as u64, MAX_CONFIG_BYTES)?;
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| ImageError::BadManifest { what: format!("the config of {image}"), source: e })?;
    for c in [v.get("config"), v.get("container_config")].into_iter().flatten() {
        if let Some(env) = c.get("Env").and_then(|e| e.as_array()) {
            too("the number of Env entries", env.len() as u64, MAX_ENV_ENTRIES)?;
            let bytes: usize = env.iter().map(|e| e.as_str().map_or(0, str::len)).sum();
            too("the size of its Env in bytes", bytes as u64, MAX_ENV_BYTES)?;
        }
        if let Some(labels) = c.get("Labels").and_then(|l| l.as_object()) {
            too("the number of Labels", labels.len() as u64, MAX_LABELS)?;
            let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
            too("the size of its Labels in bytes", bytes as u64, MAX_LABEL_BYTES)?;
        }
    }
    Ok(())
}

/// The store on one state root.
#[derive(Clone, Debug)]
pub struct ImageStore {
    state: StateRoot,
    dir: PathBuf,
}

/// What to expect of a layer being ingested, and what to keep of it.
#[derive(Clone, Debug, Default)]
pub struct IngestSpec {
    /// Names the layer in errors (its blob digest, or the file it came from).
    pub name: String,
    pub parent_chain: Option<Digest>,
    pub expect_blob: Option<Digest>,
    pub expect_size: Option<u64>,
    pub expect_diff: Option<Digest>,
    pub media_type: Option<String>,
    /// Keep the blob (false when it is already stored).
    pub keep_blob: bool,
    /// Unpack it (false when the layer is already unpacked).
    pub unpack: bool,
}

impl ImageStore {
    /// Opens (and creates) the store of `root`, and removes the leftovers of dead writers.
    pub fn open(root: &StateRoot) -> Result<Self> {
        root.ensure()?;
        let dir = root.images_dir();
        for sub in ["blobs/sha256", "layers", "l", "records", "tmp", "locks"] {
            create_dir_all_mode(&dir.join(sub), 0o700)?;
        }
        let store = ImageStore { state: root.clone(), dir };
        store.clean_tmp();
        Ok(store)
    }

    /// `<root>/images`: overlay lower dirs given as [`ImageStore::layer_links`] are relative to it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn state_root(&self) -> &StateRoot {
        &self.state
    }
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }
    fn layer_root(&self, chain: &Digest) -> PathBuf {
        self.dir.join("layers").join(chain.hex())
    }
    /// The unpacked directory of the layer with this chain ID.
    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.layer_root(chain).join("diff")
    }
    /// Whether the layer is here whole: its record (`layer.json`, written only once the unpack
    /// finished) and its files (`diff/`). A layer with its files gone (deleted by hand, a disk
    /// repair) is not here, so that pull, load and import unpack it again.
    pub fn has_layer(&self, chain: &Digest) -> bool {
        let root = self.layer_root(chain);
        root.join("layer.json").is_file() && root.join("diff").is_dir()
    }
    /// The first layer of `image` that is damaged (recorded but its files gone, or not here at
    /// all), as an error naming the image: checked before a container uses it, and shown by
    /// `image ls` and `image inspect`. Cheap: two stats per layer.
    pub fn check_layers(&self, image: &Image) -> Result<()> {
        let whole = |c: &Digest| self.has_layer(c) && self.dir.join(self.layer_link(c)).is_dir();
        match image.layers.iter().find(|l| !whole(&l.chain_id)) {
            Some(l) => Err(ImageError::Damaged { image: image.display_name(), layer: l.chain_id.short().to_string() }),
            None => Ok(()),
        }
    }
    /// The bytes of file content in an unpacked layer (Docker's layer size).
    pub fn layer_content_size(&self, chain: &Digest) -> Option<u64> {
        read_json::<LayerMeta>(&self.layer_root(chain).join("layer.json")).ok().flatten().map(|m| m.shown_size())
    }
    /// The uncompressed size of an unpacked layer.
    pub fn layer_size(&self, chain: &Digest) -> Option<u64> {
        read_json::<LayerMeta>(&self.layer_root(chain).join("layer.json")).ok().flatten().map(|m| m.size)
    }
    /// The short link name of a layer (`l/<id>`, relative to [`ImageStore::dir`]).
    pub fn layer_link(&self, chain: &Digest) -> PathBuf {
        PathBuf::from("l").join(&chain.hex()[..26])
    }
    /// The unpacked layer directories of `image`, bottom to top.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().map(|l| self.layer_dir(&l.chain_id)).collect()
    }
    /// The short links of `image`'s layers, bottom to top, relative to [`ImageStore::dir`]
    /// (mount with that as the working directory to keep overlay options short).
    pub fn layer_links(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().map(|l| self.layer_link(&l.chain_id)).collect()
    }

    fn lock_images(&self) -> Result<FileLock> {
        Ok(FileLock::exclusive(&self.dir.join("locks/images.lock"))?)
    }
    /// Held (shared) by every writer for its duration; taken exclusive to collect garbage.
    pub fn writer_guard(&self) -> Result<FileLock> {
        Ok(FileLock::shared(&self.dir.join("locks/gc.lock"))?)
    }
    pub fn lock_blob(&self, d: &Digest) -> Result<FileLock> {
        Ok(FileLock::exclusive(&self.dir.join("locks").join(format!("blob-{}.lock", d.hex())))?)
    }
    fn lock_layer(&self, chain: &Digest) -> Result<FileLock> {
        Ok(FileLock::exclusive(&self.dir.join("locks").join(format!("layer-{}.lock", chain.hex())))?)
    }

    /// A fresh path under `tmp/` for this process.
    pub fn temp_path(&self, suffix: &str) -> PathBuf {
        let rnd: u64 = rand::random();
        self.dir.join("tmp").join(format!("{}-{rnd:016x}.{suffix}", std::process::id()))
    }

    /// Removes work in progress left by processes that are gone (a killed pull).
    fn clean_tmp(&self) {
        let Ok(rd) = fs::read_dir(self.dir.join("tmp")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let p = e.path();
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        }
    }

    // ---- blobs ----

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(|e| FsError::io("read", &p, e).into())
    }

    /// Stores `data` as a blob (verified against `expected` if given) and returns its digest.
    pub fn write_blob(&self, data: &[u8], expected: Option<&Digest>, what: &str) -> Result<Digest> {
        let d = Digest::of(data);
        if let Some(e) = expected {
            if *e != d {
                return Err(ImageError::DigestMismatch { what: what.into(), expected: e.to_string(), actual: d.to_string() });
            }
        }
        if self.has_blob(&d) {
            return Ok(d);
        }
        let tmp = self.temp_path("blob");
        fs::write(&tmp, data).map_err(|e| FsError::io("write", &tmp, e))?;
        self.commit_blob(&tmp, &d)?;
        Ok(d)
    }

    /// Renames a verified temp file into place as blob `d`.
    pub fn commit_blob(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        if dest.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(());
        }
        fs::rename(tmp, &dest).map_err(|e| FsError::io("rename into place", &dest, e))?;
        Ok(())
    }

    // ---- layers ----

    /// Reads a layer stream (tar, gzip or zstd) from `src`: keeps the blob as given and/or unpacks
    /// it, checking the digests `spec` expects, and returns the layer. Nothing is kept unless
    /// every check passes.
    pub fn ingest_layer<R: Read + Send>(&self, src: R, spec: &IngestSpec) -> Result<Layer> {
        let blob_tmp = self.temp_path("blob");
        let layer_tmp = self.temp_path("layer");
        let result = self.ingest_inner(src, spec, &blob_tmp, &layer_tmp);
        let _ = fs::remove_file(&blob_tmp);
        if layer_tmp.exists() {
            let _ = fs::remove_dir_all(&layer_tmp);
        }
        result
    }

    fn ingest_inner<R: Read + Send>(&self, src: R, spec: &IngestSpec, blob_tmp: &Path, layer_tmp: &Path) -> Result<Layer> {
        let name = if spec.name.is_empty() { "layer".to_string() } else { spec.name.clone() };
        let file = if spec.keep_blob { Some(File::create(blob_tmp).map_err(|e| FsError::io("create", blob_tmp, e))?) } else { None };
        let tee = Tee { inner: src, file, hasher: Hasher::new(), write_error: None };
        // Two stages on two threads: reading, hashing, keeping the blob and decompressing on
        // one; unpacking (file system calls) on the other.
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        let (tee, compression, stats) = std::thread::scope(|scope| -> Result<_> {
            let producer = scope.spawn(move || {
                let mut tee = tee;
                let compression = match unpack::decompress(&mut tee) {
                    Ok((compression, mut dec)) => {
                        loop {
                            let mut buf = vec![0u8; 1 << 20];
                            match unpack::fill(&mut dec, &mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    buf.truncate(n);
                                    if tx.send(Ok(buf)).is_err() {
                                        break; // the unpacker stopped; its error says why
                                    }
                                }
                                Err(e) => {
                                    let _ = tx.send(Err(e));
                                    break;
                                }
                            }
                        }
                        Some(compression)
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        None
                    }
                };
                drop(tx);
                // The rest of the stream (bytes after the compressed end) counts for the blob
                // digest, and explains a broken stream better than the stream error does.
                let drained = io::copy(&mut tee, &mut io::sink());
                (tee, compression, drained)
            });
            let input = ChannelReader { rx, cur: Vec::new(), pos: 0 };
            let stats = if spec.unpack {
                let diff = layer_tmp.join("diff");
                create_dir_all_mode(&diff, 0o755)?;
                unpack::unpack_layer(&name, input, &diff, &Limits::from_env())
            } else {
                let mut h = super::digest::HashingReader::new(input);
                match io::copy(&mut h, &mut io::sink()).and_then(|_| h.finish()) {
                    Ok((diff_id, tar_size, _)) => Ok(unpack::UnpackStats { diff_id, tar_size, entries: 0, content_size: 0 }),
                    Err(e) => Err(ImageError::BadArchive { layer: name.clone(), source: e }),
                }
            };
            let (tee, compression, drained) =
                producer.join().map_err(|_| ImageError::Other(format!("{name}: the decompressing thread failed")))?;
            Ok((tee, (compression, drained), stats))
        })?;
        let mut tee = tee;
        let (compression, drained) = compression;
        if let Some(e) = tee.write_error.take() {
            return Err(FsError::io("write", blob_tmp, e).into());
        }
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                if let (Some(exp), Ok(_)) = (&spec.expect_blob, &drained) {
                    let got = std::mem::take(&mut tee.hasher).finish();
                    if &got != exp && !matches!(e, ImageError::UnsafeLayer { .. }) {
                        return Err(ImageError::DigestMismatch { what: name, expected: exp.to_string(), actual: got.to_string() });
                    }
                }
                return Err(e);
            }
        };
        drained.map_err(|e| ImageError::BadArchive { layer: name.clone(), source: e })?;
        let compression = compression.unwrap_or(Compression::None);
        let blob_size = tee.hasher.len();
        let blob = std::mem::take(&mut tee.hasher).finish();
        if let Some(exp) = &spec.expect_blob {
            if *exp != blob {
                return Err(ImageError::DigestMismatch { what: name, expected: exp.to_string(), actual: blob.to_string() });
            }
        }
        if let Some(exp) = spec.expect_size {
            if exp != blob_size {
                return Err(ImageError::SizeMismatch { what: name, expected: exp, actual: blob_size });
            }
        }
        if let Some(exp) = &spec.expect_diff {
            if *exp != stats.diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("{name} (uncompressed, the diff ID in the image config)"),
                    expected: exp.to_string(),
                    actual: stats.diff_id.to_string(),
                });
            }
        }
        let chain_id = match &spec.parent_chain {
            None => stats.diff_id.clone(),
            Some(p) => Digest::of(format!("{p} {}", stats.diff_id).as_bytes()),
        };
        if let Some(f) = tee.file.take() {
            drop(f);
            // Same content, same name: a concurrent writer's rename is as good as ours.
            self.commit_blob(blob_tmp, &blob)?;
        }
        if spec.unpack {
            self.commit_layer_dir(layer_tmp, &chain_id, &stats.diff_id, stats.tar_size, stats.content_size)?;
        }
        let media_type = spec.media_type.clone().unwrap_or_else(|| {
            match compression {
                Compression::Gzip => MEDIA_OCI_LAYER_GZIP,
                Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
                Compression::None => MEDIA_OCI_LAYER,
            }
            .to_string()
        });
        Ok(Layer { chain_id, diff_id: stats.diff_id, blob, media_type, blob_size, size: stats.tar_size })
    }

    /// Renames an unpacked temp layer into place (unless another writer got there first) and
    /// makes its short link.
    fn commit_layer_dir(&self, tmp: &Path, chain: &Digest, diff_id: &Digest, size: u64, content_size: u64) -> Result<()> {
        let _lock = self.lock_layer(chain)?;
        let root = self.layer_root(chain);
        if !self.has_layer(chain) {
            write_json(
                &tmp.join("layer.json"),
                &LayerMeta { chain_id: chain.clone(), diff_id: diff_id.clone(), size, content_size: Some(content_size) },
            )?;
            if root.exists() {
                // A half-removed layer from an interrupted prune.
                crate::util::fs::remove_dir_all_if_exists(&root)?;
            }
            fs::rename(tmp, &root).map_err(|e| FsError::io("rename into place", &root, e))?;
        }
        self.ensure_link(chain)
    }

    fn ensure_link(&self, chain: &Digest) -> Result<()> {
        let link = self.dir.join(self.layer_link(chain));
        let target = PathBuf::from("../layers").join(chain.hex()).join("diff");
        match fs::read_link(&link) {
            Ok(t) if t == target => Ok(()),
            Ok(_) => {
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(&target, &link).map_err(|e| FsError::io("create link", &link, e).into())
            }
            Err(_) => match std::os::unix::fs::symlink(&target, &link) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(FsError::io("create link", &link, e).into()),
            },
        }
    }

    /// Unpacks a stored blob as layer `chain` (when the blob is here but the layer is not).
    pub fn unpack_stored_blob(&self, layer: &Layer, parent_chain: Option<&Digest>) -> Result<()> {
        if self.has_layer(&layer.chain_id) {
            return self.ensure_link(&layer.chain_id);
        }
        let p = self.blob_path(&layer.blob);
        let f = File::open(&p).map_err(|e| FsError::io("open", &p, e))?;
        let spec = IngestSpec {
            name: layer.blob.to_string(),
            parent_chain: parent_chain.cloned(),
            expect_diff: Some(layer.diff_id.clone()),
            keep_blob: false,
            unpack: true,
            ..Default::default()
        };
        self.ingest_layer(io::BufReader::with_capacity(1 << 20, f), &spec)?;
        Ok(())
    }

    /// Adds a layer from a tar stream (tar, gzip or zstd) on top of the layer `parent` (a chain ID).
    pub fn add_layer<R: Read + Send>(&self, parent: Option<&Digest>, tar: R, name: &str) -> Result<Layer> {
        let spec =
            IngestSpec { name: name.to_string(), parent_chain: parent.cloned(), keep_blob: true, unpack: true, ..Default::default() };
        self.ingest_layer(tar, &spec)
    }

    /// Adds a bottom layer from a tar stream, unpacking it only when the store does not have it
    /// yet: the stream is hashed (and kept as the blob) first, then unpacked from the blob if
    /// its layer is new. Importing the same tarball again costs a read, not an unpack (which is
    /// most of the time: 13-26 s for a 140 MB layer).
    fn add_base_layer_once<R: Read + Send>(&self, tar: R, name: &str) -> Result<Layer> {
        let spec = IngestSpec { name: name.to_string(), keep_blob: true, unpack: false, ..Default::default() };
        let layer = self.ingest_layer(tar, &spec)?;
        self.unpack_stored_blob(&layer, None)?;
        Ok(layer)
    }

    /// Commits a directory (a container's overlay upper dir, as the builder leaves it) as a new
    /// layer on top of `parent` (a chain ID): overlay whiteouts become OCI whiteouts.
    pub fn commit_layer(&self, parent: Option<&Digest>, upper: &Path) -> Result<Layer> {
        let tmp = self.temp_path("tar");
        let result = (|| {
            let f = File::create(&tmp).map_err(|e| FsError::io("create", &tmp, e))?;
            let w = io::BufWriter::with_capacity(1 << 20, f);
            let mut w = unpack::pack_dir(upper, w).map_err(|e| ImageError::Unpack {
                layer: upper.display().to_string(),
                entry: upper.to_path_buf(),
                source: e,
            })?;
            w.flush().map_err(|e| FsError::io("write", &tmp, e))?;
            drop(w);
            let f = File::open(&tmp).map_err(|e| FsError::io("open", &tmp, e))?;
            self.add_layer(parent, io::BufReader::with_capacity(1 << 20, f), &upper.display().to_string())
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    // ---- images ----

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.dir.join("records").join(format!("{}.json", id.hex()))
    }

    fn repositories_path(&self) -> PathBuf {
        self.dir.join("repositories.json")
    }

    /// The tags. A damaged index (truncated, garbage) does not block the store: what can be
    /// salvaged from it is used, the other images show untagged, and
    /// [`ImageStore::index_damage`] says so. The next write (pull, tag, load, rmi) rebuilds it.
    fn repositories(&self) -> Result<BTreeMap<String, Digest>> {
        match read_json(&self.repositories_path()) {
            Ok(r) => Ok(r.unwrap_or_default()),
            Err(FsError::Json { .. }) => Ok(self.salvage_repositories()),
            Err(e) => Err(e.into()),
        }
    }

    /// The complete `"name": "sha256:<hex>"` entries of a damaged index whose image exists.
    fn salvage_repositories(&self) -> BTreeMap<String, Digest> {
        let data = fs::read(self.repositories_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&data);
        let mut out = BTreeMap::new();
        let mut rest: &str = &text;
        // Each entry is a quoted name, a colon and a quoted digest; anything else is skipped.
        while let Some(start) = rest.find('"') {
            rest = &rest[start + 1..];
            let Some(end) = rest.find('"') else { break };
            let name = &rest[..end];
            let after = rest[end + 1..].trim_start();
            let Some(after) = after.strip_prefix(':') else {
                rest = &rest[end + 1..];
                continue;
            };
            let after = after.trim_start();
            if let Some(v) = after.strip_prefix("\"sha256:") {
                if let Some(hex) = v.get(..64) {
                    if v[64..].starts_with('"') {
                        if let (Ok(id), Ok(r)) = (Digest::from_hex(hex), Reference::parse(name)) {
                            if r.to_string() == name && self.record_path(&id).is_file() {
                                out.insert(name.to_string(), id);
                            }
                        }
                    }
                }
            }
            rest = &rest[end + 1..];
        }
        out
    }

    /// Why the tag index cannot be read, with what to do, or `None` while it is sound. Image
    /// commands print it as a warning; `prune` refuses to run while it is set.
    pub fn index_damage(&self) -> Option<String> {
        let path = self.repositories_path();
        match read_json::<BTreeMap<String, Digest>>(&path) {
            Ok(_) => None,
            Err(FsError::Json { source, .. }) => Some(format!(
                "the image tag index {} is damaged ({source}): {} tag(s) could be recovered, other images show as <none>; \
                 `berth pull`, `berth tag` or `berth load` rebuilds it (the damaged file is kept as {}.damaged)",
                path.display(),
                self.salvage_repositories().len(),
                path.display()
            )),
            Err(e) => Some(e.to_string()),
        }
    }

    fn write_repositories(&self, repos: &BTreeMap<String, Digest>) -> Result<()> {
        let path = self.repositories_path();
        if let Err(FsError::Json { .. }) = read_json::<BTreeMap<String, Digest>>(&path) {
            // Rebuilding a damaged index: keep the old file for whoever wants to look at it.
            let kept = self.dir.join("repositories.json.damaged");
            fs::rename(&path, &kept).map_err(|e| FsError::io("rename", &path, e))?;
        }
        Ok(write_json(&path, repos)?)
    }

    fn read_record(&self, id: &Digest) -> Result<Option<Record>> {
        Ok(read_json(&self.record_path(id))?)
    }

    fn load(&self, rec: Record, repos: &BTreeMap<String, Digest>) -> Result<Image> {
        let raw =
            self.read_blob(&rec.id).map_err(|_| ImageError::corrupt(format!("the config blob of image {} is missing", rec.id.short())))?;
        let config: ImageConfiguration = serde_json::from_slice(&raw)
            .map_err(|e| ImageError::BadManifest { what: format!("the config of image {}", rec.id.short()), source: e })?;
        let raw_config: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| ImageError::BadManifest { what: format!("the config of image {}", rec.id.short()), source: e })?;
        let mut names: Vec<Reference> =
            repos.iter().filter(|(_, id)| **id == rec.id).filter_map(|(n, _)| Reference::parse(n).ok()).collect();
        names.sort_by_key(|r| r.to_string());
        let size = rec
            .layers
            .iter()
            .map(|l| match read_json::<LayerMeta>(&self.layer_root(&l.chain_id).join("layer.json")) {
                Ok(Some(m)) => m.shown_size(),
                _ => l.size,
            })
            .sum();
        Ok(Image {
            id: rec.id,
            names,
            repo_digests: rec.repo_digests,
            config,
            raw_config,
            layers: rec.layers,
            manifest: rec.manifest,
            size,
            added: rec.added,
        })
    }

    /// The image with id `id`.
    pub fn get(&self, id: &Digest) -> Result<Option<Image>> {
        match self.read_record(id)? {
            Some(rec) => Ok(Some(self.load(rec, &self.repositories()?)?)),
            None => Ok(None),
        }
    }

    /// Every image, newest first. A damaged image (its config blob gone) is left out; `resolve`
    /// reports it, and `remove` and a new pull repair it.
    pub fn list(&self) -> Result<Vec<Image>> {
        let repos = self.repositories()?;
        let mut out = Vec::new();
        for id in self.record_ids()? {
            if let Ok(Some(rec)) = self.read_record(&id) {
                if let Ok(img) = self.load(rec, &repos) {
                    out.push(img);
                }
            }
        }
        out.sort_by(|a, b| b.added.cmp(&a.added).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn record_ids(&self) -> Result<Vec<Digest>> {
        let dir = self.dir.join("records");
        let rd = fs::read_dir(&dir).map_err(|e| FsError::io("read directory", &dir, e))?;
        let mut ids = Vec::new();
        for e in rd {
            let e = e.map_err(|e| FsError::io("read directory", &dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".json") {
                if let Ok(d) = Digest::from_hex(hex) {
                    ids.push(d);
                }
            }
        }
        Ok(ids)
    }

    /// Finds an image by reference (`busybox`, `busybox:1`, `name@sha256:...`), full id
    /// (`sha256:...` or 64 hex digits) or unique id prefix.
    pub fn resolve(&self, s: &str) -> Result<Option<Image>> {
        let repos = self.repositories()?;
        let hexpart = s.strip_prefix("sha256:").unwrap_or(s);
        if hexpart.len() == 64 {
            if let Ok(d) = Digest::from_hex(hexpart) {
                if let Some(rec) = self.read_record(&d)? {
                    return Ok(Some(self.load(rec, &repos)?));
                }
            }
        }
        if let Ok(r) = Reference::parse(s) {
            if let Some(digest) = r.digest() {
                let want = format!("{}@{}", r.name(), digest);
                for id in self.record_ids()? {
                    if let Some(rec) = self.read_record(&id)? {
                        let same_repo = rec.repo_digests.iter().any(|d| d.starts_with(&format!("{}@", r.name())));
                        if rec.repo_digests.contains(&want) || (rec.manifest == *digest && same_repo) {
                            return Ok(Some(self.load(rec, &repos)?));
                        }
                    }
                }
            } else if let Some(id) = repos.get(&r.to_string()) {
                if let Some(rec) = self.read_record(id)? {
                    return Ok(Some(self.load(rec, &repos)?));
                }
            }
        }
        // A short id (Docker accepts any unique prefix).
        if !hexpart.is_empty() && hexpart.len() < 64 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<Digest> = self.record_ids()?.into_iter().filter(|d| d.hex().starts_with(hexpart)).collect();
            if matches.len() == 1 {
                if let Some(rec) = self.read_record(&matches[0])? {
                    return Ok(Some(self.load(rec, &repos)?));
                }
            }
        }
        Ok(None)
    }

    /// Like [`ImageStore::resolve`], but a missing image is an error naming `s`.
    pub fn require(&self, s: &str) -> Result<Image> {
        self.resolve(s)?.ok_or_else(|| ImageError::NotFound(s.to_string()))
    }

    /// Records an image whose blobs and layers are all in the store: `config` is its config
    /// blob as bytes (its digest is the id), `manifest` the manifest blob. The names are moved
    /// to this image. Checks that the config's diff IDs are the layers'.
    pub fn put_image(
        &self,
        config: &[u8],
        layers: Vec<Layer>,
        manifest: &[u8],
        repo_digest: Option<String>,
        names: &[Reference],
    ) -> Result<Image> {
        let shown = names.first().map(|n| n.familiar()).unwrap_or_else(|| format!("image {}", Digest::of(config).short()));
        check_config(config, &shown)?;
        let cfg: ImageConfiguration =
            serde_json::from_slice(config).map_err(|e| ImageError::BadManifest { what: "the image config".into(), source: e })?;
        let diff_ids: Vec<&str> = cfg.rootfs().diff_ids().iter().map(|s| s.as_str()).collect();
        let ours: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        if diff_ids != ours.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(ImageError::corrupt(format!(
                "the image config lists {} layers ({}) that differ from the {} layers given",
                diff_ids.len(),
                diff_ids.join(", "),
                ours.len()
            )));
        }
        let expect_chains = chain_ids(&layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
        for (l, c) in layers.iter().zip(&expect_chains) {
            if l.chain_id != *c || !self.has_layer(c) || !self.has_blob(&l.blob) {
                return Err(ImageError::corrupt(format!("layer {} is missing from the store", l.chain_id.short())));
            }
        }
        // A layer that was already here may have lost its short link (the overlay mounts go
        // through it): make it again.
        for l in &layers {
            self.ensure_link(&l.chain_id)?;
        }
        let id = self.write_blob(config, None, "image config")?;
        let manifest = self.write_blob(manifest, None, "manifest")?;
        let _lock = self.lock_images()?;
        let mut repo_digests = self.read_record(&id)?.map(|r| r.repo_digests).unwrap_or_default();
        if let Some(rd) = repo_digest {
            // One digest per repository, as Docker keeps it.
            let repo = rd.split('@').next().unwrap_or_default().to_string();
            repo_digests.retain(|d| !d.starts_with(&format!("{repo}@")));
            repo_digests.push(rd);
        }
        let rec = Record {
            id: id.clone(),
            manifest,
            repo_digests,
            layers,
            added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        write_json(&self.record_path(&id), &rec)?;
        let mut repos = self.repositories()?;
        for n in names {
            if n.tag().is_some() && n.digest().is_none() {
                repos.insert(n.to_string(), id.clone());
            }
        }
        self.write_repositories(&repos)?;
        let image = self.load(rec, &repos)?;
        Ok(image)
    }

    /// Creates an image from a config (Docker's JSON, whose `rootfs` is set here from `layers`)
    /// and layers already in the store, with a manifest berth writes. For the builder and import.
    pub fn create_image(&self, mut config: serde_json::Value, layers: &[Layer], names: &[Reference]) -> Result<Image> {
        let obj = config.as_object_mut().ok_or_else(|| ImageError::Other("an image config must be a JSON object".into()))?;
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        obj.insert("rootfs".into(), serde_json::json!({"type": "layers", "diff_ids": diff_ids}));
        let host = super::platform::Platform::host();
        obj.entry("architecture").or_insert_with(|| host.architecture.clone().into());
        obj.entry("os").or_insert_with(|| "linux".into());
        let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Other(e.to_string()))?;
        let manifest = oci_manifest(&Digest::of(&config_bytes), config_bytes.len() as u64, layers);
        self.put_image(&config_bytes, layers.to_vec(), &manifest, None, names)
    }

    /// Imports a root filesystem tarball (tar, gzip or zstd) as a one-layer image, as
    /// `docker import` does: `config` is the container config (Cmd, Env...) to give it.
    /// `platform` sets the config's os/architecture/variant (default: the host's).
    pub fn import_rootfs<R: Read + Send>(
        &self,
        tar: R,
        source: &str,
        config: serde_json::Value,
        message: Option<&str>,
        platform: Option<&super::platform::Platform>,
        names: &[Reference],
    ) -> Result<Image> {
        // The caps first, so that a refused config leaves no layer behind.
        let shown = names.first().map(|n| n.familiar()).unwrap_or_else(|| source.to_string());
        check_config(&serde_json::to_vec(&serde_json::json!({ "config": &config })).unwrap_or_default(), &shown)?;
        let _guard = self.writer_guard()?;
        let layer = self.add_base_layer_once(tar, source)?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let comment = message.map(str::to_string).unwrap_or_else(|| format!("Imported from {source}"));
        let host = platform.cloned().unwrap_or_else(super::platform::Platform::host);
        let mut cfg = serde_json::json!({
            "architecture": host.architecture,
            "os": host.os,
            "created": now,
            "comment": comment,
            "config": config,
            "history": [{"created": now, "comment": comment, "created_by": "berth image import"}],
        });
        if let Some(v) = &host.variant {
            cfg["variant"] = v.clone().into();
        }
        self.create_image(cfg, &[layer], names)
    }

    /// Records that image `id` is `repo@digest` in a registry (after a push).
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        let _lock = self.lock_images()?;
        let Some(mut rec) = self.read_record(id)? else { return Err(ImageError::NotFound(id.to_string())) };
        let repo = repo_digest.split('@').next().unwrap_or_default().to_string();
        rec.repo_digests.retain(|d| !d.starts_with(&format!("{repo}@")));
        rec.repo_digests.push(repo_digest.to_string());
        Ok(write_json(&self.record_path(id), &rec)?)
    }

    /// Tags image `id` as `name` (moving the tag if another image had it).
    pub fn tag(&self, id: &Digest, name: &Reference) -> Result<()> {
        if name.digest().is_some() {
            return Err(ImageError::InvalidReference { reference: name.to_string(), reason: "a tag cannot hold a digest".into() });
        }
        let _lock = self.lock_images()?;
        if self.read_record(id)?.is_none() {
            return Err(ImageError::NotFound(id.to_string()));
        }
        let mut repos = self.repositories()?;
        repos.insert(name.to_string(), id.clone());
        self.write_repositories(&repos)
    }

    /// Container ids using each image, from `containers/*/config.json` (`Image` field).
    pub fn containers_by_image(&self) -> Result<HashMap<Digest, Vec<String>>> {
        let dir = self.state.containers_dir();
        let mut out: HashMap<Digest, Vec<String>> = HashMap::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(FsError::io("read directory", &dir, e).into()),
        };
        for e in rd.flatten() {
            let p = e.path().join("config.json");
            // A container being created or removed may have no config yet: skip it.
            let Ok(Some(v)) = read_json::<serde_json::Value>(&p) else { continue };
            if let Some(img) = v.get("Image").and_then(|i| i.as_str()) {
                if let Ok(d) = Digest::parse(img).or_else(|_| Digest::from_hex(img)) {
                    out.entry(d).or_default().push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        Ok(out)
    }

    /// Removes `reference` as `docker rmi` does: a name is untagged, and the image is deleted
    /// when no name is left and no container uses it. With `force`, an image named by id loses
    /// all its names, and an image in use is untagged but kept.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Vec<Removed>> {
        let image = match self.require(reference) {
            Ok(i) => i,
            Err(ImageError::Corrupt { .. }) | Err(ImageError::BadManifest { .. }) => return self.remove_damaged(reference),
            Err(e) => return Err(e),
        };
        let used = self.containers_by_image()?;
        let users = used.get(&image.id).cloned().unwrap_or_default();
        let by_name = Reference::parse(reference).ok().filter(|r| r.digest().is_none() && image.names.iter().any(|n| n == r));
        let mut out = Vec::new();
        let lock = self.lock_images()?;
        let mut repos = self.repositories()?;
        if let Some(name) = &by_name {
            if !users.is_empty() && image.names.len() == 1 && !force {
                return Err(ImageError::InUse { reference: reference.into(), id: image.id.short().into(), container: short(&users[0]) });
            }
            repos.remove(&name.to_string());
            out.push(Removed::Untagged(name.familiar()));
            if image.names.len() > 1 {
                self.write_repositories(&repos)?;
                return Ok(out);
            }
        } else {
            if !users.is_empty() && !force {
                return Err(ImageError::InUse { reference: reference.into(), id: image.id.short().into(), container: short(&users[0]) });
            }
            if image.names.len() > 1 && !force {
                let names: Vec<String> = image.names.iter().map(|n| n.familiar()).collect();
                return Err(ImageError::MultipleNames { id: image.id.short().into(), names: names.join(", ") });
            }
            for n in &image.names {
                repos.remove(&n.to_string());
                out.push(Removed::Untagged(n.familiar()));
            }
        }
        self.write_repositories(&repos)?;
        if users.is_empty() {
            for rd in &image.repo_digests {
                out.push(Removed::Untagged(familiar_digest(rd)));
            }
            let p = self.record_path(&image.id);
            fs::remove_file(&p).map_err(|e| FsError::io("remove", &p, e))?;
            out.push(Removed::Deleted(image.id.clone()));
        }
        drop(lock);
        self.collect_garbage(false)?;
        Ok(out)
    }

    /// Removes an image whose config can no longer be read: its record and every name for it.
    fn remove_damaged(&self, reference: &str) -> Result<Vec<Removed>> {
        let lock = self.lock_images()?;
        let mut repos = self.repositories()?;
        let hexpart = reference.strip_prefix("sha256:").unwrap_or(reference);
        let id = match Reference::parse(reference).ok().and_then(|r| repos.get(&r.to_string()).cloned()) {
            Some(id) => id,
            None => {
                let m: Vec<Digest> =
                    self.record_ids()?.into_iter().filter(|d| !hexpart.is_empty() && d.hex().starts_with(hexpart)).collect();
                match m.as_slice() {
                    [one] => one.clone(),
                    _ => return Err(ImageError::NotFound(reference.to_string())),
                }
            }
        };
        let mut out = Vec::new();
        for (name, _) in repos.iter().filter(|(_, v)| **v == id) {
            if let Ok(r) = Reference::parse(name) {
                out.push(Removed::Untagged(r.familiar()));
            }
        }
        repos.retain(|_, v| *v != id);
        self.write_repositories(&repos)?;
        let p = self.record_path(&id);
        let _ = fs::remove_file(&p);
        out.push(Removed::Deleted(id));
        drop(lock);
        self.collect_garbage(false)?;
        Ok(out)
    }

    /// Removes dangling images (all unused ones with `all`) that no container uses, then the
    /// layers and blobs nothing references. Returns the deleted ids and the bytes reclaimed.
    /// Refused while the tag index is damaged: an image whose tag was lost would look dangling.
    pub fn prune(&self, all: bool) -> Result<(Vec<Digest>, u64)> {
        if let Some(why) = self.index_damage() {
            return Err(ImageError::DamagedIndex { why });
        }
        let used = self.containers_by_image()?;
        let mut deleted = Vec::new();
        {
            let _lock = self.lock_images()?;
            let repos = self.repositories()?;
            let named: HashSet<&Digest> = repos.values().collect();
            for id in self.record_ids()? {
                if used.contains_key(&id) || (!all && named.contains(&id)) {
                    continue;
                }
                let mut repos = repos.clone();
                repos.retain(|_, v| *v != id);
                self.write_repositories(&repos)?;
                let p = self.record_path(&id);
                fs::remove_file(&p).map_err(|e| FsError::io("remove", &p, e))?;
                deleted.push(id);
            }
            if all {
                let mut repos = self.repositories()?;
                let ids: HashSet<Digest> = self.record_ids()?.into_iter().collect();
                repos.retain(|_, v| ids.contains(v));
                self.write_repositories(&repos)?;
            }
        }
        let reclaimed = self.collect_garbage(true)?;
        Ok((deleted, reclaimed))
    }

    /// Deletes layers and blobs that no record references. Skipped (returns 0) if a writer is
    /// at work and `wait` is false.
    pub fn collect_garbage(&self, wait: bool) -> Result<u64> {
        let path = self.dir.join("locks/gc.lock");
        let _gc = if wait {
            FileLock::exclusive(&path)?
        } else {
            match FileLock::try_exclusive(&path) {
                Ok(l) => l,
                Err(crate::util::lock::LockError::Busy { .. }) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        };
        self.clean_tmp();
        let _lock = self.lock_images()?;
        let mut keep_layers = HashSet::new();
        let mut keep_blobs = HashSet::new();
        for id in self.record_ids()? {
            if let Some(rec) = self.read_record(&id)? {
                keep_blobs.insert(rec.id.hex().to_string());
                keep_blobs.insert(rec.manifest.hex().to_string());
                for l in rec.layers {
                    keep_layers.insert(l.chain_id.hex().to_string());
                    keep_blobs.insert(l.blob.hex().to_string());
                }
            }
        }
        let mut reclaimed = 0u64;
        let layers = self.dir.join("layers");
        for e in fs::read_dir(&layers).map_err(|e| FsError::io("read directory", &layers, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if keep_layers.contains(&name) {
                continue;
            }
            if let Ok(d) = Digest::from_hex(&name) {
                if let Ok(Some(meta)) = read_json::<LayerMeta>(&e.path().join("layer.json")) {
                    reclaimed += meta.size;
                }
                let _ = fs::remove_file(self.dir.join(self.layer_link(&d)));
                // layer.json first, so that a half-removed layer is never taken as complete.
                let _ = fs::remove_file(e.path().join("layer.json"));
                crate::util::fs::remove_dir_all_if_exists(&e.path())?;
            }
        }
        let blobs = self.dir.join("blobs/sha256");
        for e in fs::read_dir(&blobs).map_err(|e| FsError::io("read directory", &blobs, e))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep_blobs.contains(&name) {
                reclaimed += e.metadata().map(|m| m.len()).unwrap_or(0);
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(reclaimed)
    }

    /// The time an image's config says it was created.
    pub fn created(image: &Image) -> Option<chrono::DateTime<chrono::Utc>> {
        image.config.created().as_deref().and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()).map(|d| d.with_timezone(&chrono::Utc))
    }
}

fn short(id: &str) -> String {
    crate::util::id::short(id).to_string()
}

/// `busybox@sha256:...` from `docker.io/library/busybox@sha256:...`.
pub fn familiar_digest(rd: &str) -> String {
    match rd.split_once('@') {
        Some((name, d)) => match Reference::parse_name_only(name) {
            Ok(r) => format!("{}@{d}", r.familiar_name()),
            Err(_) => rd.to_string(),
        },
        None => rd.to_string(),
    }
}

/// An OCI image manifest for a config and layers.
pub fn oci_manifest(config: &Digest, config_size: u64, layers: &[Layer]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> =
        layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.blob_size})).collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config.to_string(), "size": config_size},
        "layers": layers,
    });
    serde_json::to_vec(&m).expect("JSON values serialize")
}

/// The unpacking side of the two-stage pipeline.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Copies everything read into a file (if any) and a hasher; a write failure is kept aside so
/// that it is reported as a disk error, not as a bad stream.
struct Tee<R> {
    inner: R,
    file: Option<File>,
    hasher: Hasher,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(&buf[..n]) {
                let msg = e.to_string();
                self.write_error = Some(e);
                return Err(io::Error::other(msg));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn import_resolve_tag_remove_and_collect() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path().join("r"));
        let store = ImageStore::open(&root).unwrap();
        let tar = tar_of(&[("bin/sh", b"#!")]);
        let name = Reference::parse("busybox").unwrap();
        let img = store.import_rootfs(&tar[..], "-", serde_json::json!({"Cmd": ["sh"]}), None, None, std::slice::from_ref(&name)).unwrap();
        assert_eq!(img.layers.len(), 1);
        assert_eq!(img.layers[0].diff_id, Digest::of(&tar));
        assert_eq!(img.names, vec![name.clone()]);
        assert_eq!(img.container_config()["Cmd"][0], "sh");
        let dirs = store.layer_dirs(&img);
        assert_eq!(fs::read(dirs[0].join("bin/sh")).unwrap(), b"#!");
        let link = store.dir().join(&store.layer_links(&img)[0]);
        assert_eq!(fs::read(link.join("bin/sh")).unwrap(), b"#!");
        for r in ["busybox", "busybox:latest", "docker.io/library/busybox:latest", img.id.short(), &img.id.to_string(), img.id.hex()] {
            assert_eq!(store.resolve(r).unwrap().unwrap().id, img.id, "{r}");
        }
        assert!(store.resolve("nothere").unwrap().is_none());

        // A layer shared by a second image is unpacked once.
        let other = Reference::parse("other:1").unwrap();
        let img2 =
            store.import_rootfs(&tar[..], "-", serde_json::json!({"Cmd": ["ls"]}), None, None, std::slice::from_ref(&other)).unwrap();
        assert_ne!(img2.id, img.id);
        assert_eq!(store.layer_dirs(&img2), dirs);

        // In use by a container: refused, unless forced (then only untagged).
        let cdir = root.container_dir("c1");
        fs::create_dir_all(&cdir).unwrap();
        write_json(&cdir.join("config.json"), &serde_json::json!({"Id": "c1", "Image": img.id.to_string()})).unwrap();
        let err = store.remove("busybox", false).unwrap_err();
        assert!(matches!(err, ImageError::InUse { .. }), "{err}");
        store.tag(&img.id, &Reference::parse("alias:2").unwrap()).unwrap();
        assert_eq!(store.remove("alias:2", false).unwrap(), vec![Removed::Untagged("alias:2".into())]);
        let out = store.remove("busybox", true).unwrap();
        assert_eq!(out, vec![Removed::Untagged("busybox:latest".into())]);
        assert!(store.get(&img.id).unwrap().is_some());
        store.prune(true).unwrap();
        assert!(dirs[0].join("bin/sh").exists(), "a layer a container uses was pruned");
        fs::remove_dir_all(&cdir).unwrap();

        assert!(store.get(&img2.id).unwrap().is_none(), "prune -a keeps an unused image");
        let (deleted, _) = store.prune(false).unwrap();
        assert_eq!(deleted, vec![img.id.clone()]);
        assert!(!dirs[0].exists());
        assert_eq!(fs::read_dir(store.dir().join("blobs/sha256")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(store.dir().join("l")).unwrap().count(), 0);
    }

    #[test]
    fn config_caps_are_counted_per_kind_and_name_the_image() {
        let env = |n: usize| serde_json::json!({"config": {"Env": (0..n).map(|i| format!("V{i}=1")).collect::<Vec<_>>()}});
        assert!(check_config(&serde_json::to_vec(&env(MAX_ENV_ENTRIES as usize)).unwrap(), "x").is_ok());
        let e = check_config(&serde_json::to_vec(&env(MAX_ENV_ENTRIES as usize + 1)).unwrap(), "me/app:1").unwrap_err().to_string();
        assert!(e.contains("me/app:1") && e.contains("Env entries") && e.contains("4097"), "{e}");
        let labels: serde_json::Map<String, serde_json::Value> = (0..=MAX_LABELS).map(|i| (format!("l{i}"), "v".into())).collect();
        let e = check_config(&serde_json::to_vec(&serde_json::json!({"container_config": {"Labels": labels}})).unwrap(), "y")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Labels"), "{e}");
        let big = serde_json::json!({"config": {"Env": ["A=".to_string() + &"x".repeat(MAX_ENV_BYTES as usize)]}});
        assert!(check_config(&serde_json::to_vec(&big).unwrap(), "z").unwrap_err().to_string().contains("Env in bytes"));
        let huge = vec![b' '; MAX_CONFIG_BYTES as usize + 1];
        assert!(check_config(&huge, "w").unwrap_err().to_string().contains("size in bytes"));
    }

    #[test]
    fn a_damaged_image_is_reported_and_can_be_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&StateRoot::new(tmp.path().join("r"))).unwrap();
        let name = Reference::parse("dmg").unwrap();
        let img =
            store.import_rootfs(&tar_of(&[("a", b"1")])[..], "-", serde_json::json!({}), None, None, std::slice::from_ref(&name)).unwrap();
        fs::remove_file(store.blob_path(&img.id)).unwrap();
        let err = store.resolve("dmg").unwrap_err();
        assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        let out = store.remove("dmg", false).unwrap();
        assert_eq!(out.last(), Some(&Removed::Deleted(img.id.clone())));
        assert!(store.resolve("dmg").unwrap().is_none());
    }

    #[test]
    fn a_layer_without_its_files_is_damaged_until_unpacked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&StateRoot::new(tmp.path().join("r"))).unwrap();
        let name = Reference::parse("lost").unwrap();
        let img =
            store.import_rootfs(&tar_of(&[("a", b"1")])[..], "-", serde_json::json!({}), None, None, std::slice::from_ref(&name)).unwrap();
        let layer = &img.layers[0];
        fs::remove_dir_all(store.layer_dir(&layer.chain_id)).unwrap();
        fs::remove_file(store.dir().join(store.layer_link(&layer.chain_id))).unwrap();
        assert!(!store.has_layer(&layer.chain_id));
        let img = store.require("lost").unwrap();
        let err = store.check_layers(&img).unwrap_err();
        assert!(matches!(err, ImageError::Damaged { .. }) && err.to_string().contains("lost:latest"), "{err}");
        // The blob is still here: unpacking it again repairs the layer and its short link.
        store.unpack_stored_blob(layer, None).unwrap();
        store
            .put_image(&store.read_blob(&img.id).unwrap(), img.layers.clone(), &store.read_blob(&img.manifest).unwrap(), None, &[])
            .unwrap();
        assert_eq!(fs::read(store.layer_dir(&layer.chain_id).join("a")).unwrap(), b"1");
        store.check_layers(&img).unwrap();
    }

    #[test]
    fn a_corrupt_layer_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&StateRoot::new(tmp.path().join("r"))).unwrap();
        let tar = tar_of(&[("a", b"1")]);
        let spec = IngestSpec {
            name: "l".into(),
            expect_blob: Some(Digest::of(b"something else")),
            keep_blob: true,
            unpack: true,
            ..Default::default()
        };
        let err = store.ingest_layer(&tar[..], &spec).unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        for sub in ["blobs/sha256", "layers", "tmp", "l"] {
            assert_eq!(fs::read_dir(store.dir().join(sub)).unwrap().count(), 0, "{sub}");
        }
    }

    #[test]
    fn commit_layer_round_trips_an_upper_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&StateRoot::new(tmp.path().join("r"))).unwrap();
        let base = store.add_layer(None, &tar_of(&[("etc/a", b"1"), ("etc/b", b"2")])[..], "base").unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/c"), b"3").unwrap();
        let l = store.commit_layer(Some(&base.chain_id), &upper).unwrap();
        assert_eq!(l.chain_id, chain_ids(&[base.diff_id.clone(), l.diff_id.clone()])[1]);
        assert_eq!(fs::read(store.layer_dir(&l.chain_id).join("etc/c")).unwrap(), b"3");
        let img = store
            .create_image(serde_json::json!({"config": {"Cmd": ["true"]}}), &[base, l], &[Reference::parse("built").unwrap()])
            .unwrap();
        assert_eq!(img.config.rootfs().diff_ids().len(), 2);
        assert_eq!(store.layer_dirs(&img).len(), 2);
    }
}
