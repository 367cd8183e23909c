//! Pulling: resolve the manifest (choosing a platform from an index), fetch the config, then
//! stream every missing layer straight from the network through the digest check, the
//! decompressor and the safe unpacker, several layers at once. Layers and blobs already in the
//! store are skipped; nothing is recorded unless every digest matched.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use tokio::sync::mpsc;

use super::digest::{Digest, chain_ids};
use super::error::{ImageError, Result};
use super::platform::Platform;
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{Client, ClientOptions, MAX_CONFIG};
use super::store::{Image, ImageStore, IngestSpec, Layer, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// The platform to choose from a multi-platform image (default: the host's).
    pub platform: Option<Platform>,
    /// Registries that may be reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// How many layers download at once.
    pub max_parallel: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { platform: None, insecure_registries: Vec::new(), max_parallel: 6 }
    }
}

/// A compose `pull_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
    Build,
}

impl PullPolicy {
    /// Parses a compose `pull_policy` (`if_not_present` is `missing`; `daily`, `weekly` and
    /// `every_<duration>` are treated as `missing`, as berth keeps no pull times yet).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" | "if_not_present" | "" | "daily" | "weekly" => Ok(PullPolicy::Missing),
            s if s.starts_with("every_") => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            "build" => Ok(PullPolicy::Build),
            other => Err(ImageError::Other(format!("invalid pull policy {other:?}: use always, missing, never or build"))),
        }
    }
}

/// What a manifest document turned out to be.
#[derive(Debug)]
enum Doc {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// Classifies a manifest body strictly: one kind only, its mediaType agreeing with the
/// Content-Type, no schema 1.
fn classify(body: &[u8], ctype: &str, what: &str) -> Result<Doc> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| ImageError::BadManifest { what: what.into(), source: e })?;
    if v.get("schemaVersion").and_then(|s| s.as_i64()) == Some(1) {
        return Err(ImageError::unsupported(
            what,
            "it is a Docker schema 1 manifest, which berth (like current Docker) does not pull; push the image again with a current tool",
        ));
    }
    let has_manifests = v.get("manifests").is_some();
    let has_layers = v.get("layers").is_some() || v.get("config").is_some();
    if has_manifests && has_layers {
        return Err(ImageError::unsupported(what, "the document is both an index and a manifest"));
    }
    let mt = v.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    let generic = ctype.is_empty() || ctype == "application/json" || ctype == "text/plain" || ctype == "application/octet-stream";
    if !mt.is_empty() && !generic && mt != ctype {
        return Err(ImageError::unsupported(what, format!("its mediaType {mt} differs from its Content-Type {ctype}")));
    }
    let kind = if !mt.is_empty() { mt } else { ctype };
    let index = match kind {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => true,
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => false,
        _ if has_manifests => true,
        _ if has_layers => false,
        other => return Err(ImageError::unsupported(what, format!("the media type {other:?} is not a container image"))),
    };
    if index != has_manifests {
        return Err(ImageError::unsupported(what, format!("a document of type {kind} has the wrong fields")));
    }
    if index {
        Ok(Doc::Index(Box::new(serde_json::from_slice(body).map_err(|e| ImageError::BadManifest { what: what.into(), source: e })?)))
    } else {
        Ok(Doc::Manifest(Box::new(serde_json::from_slice(body).map_err(|e| ImageError::BadManifest { what: what.into(), source: e })?)))
    }
}

/// Picks the manifest for `platform` from an index.
pub fn choose(index: &ImageIndex, platform: &Platform, what: &str) -> Result<Digest> {
    let mut candidates = Vec::new();
    let mut available = Vec::new();
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        let variant = p.variant().clone();
        available.push(match &variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        if platform.matches(&os, &arch, variant.as_deref()) {
            let exact = variant.as_deref() == platform.variant.as_deref();
            candidates.push((exact, m.digest().clone()));
        }
    }
    candidates.sort_by_key(|(exact, _)| !*exact);
    match candidates.first() {
        Some((_, d)) => Digest::try_from(d),
        None => Err(ImageError::NoMatchingPlatform {
            reference: what.into(),
            platform: platform.to_string(),
            available: if available.is_empty() { "no platforms".into() } else { available.join(", ") },
        }),
    }
}

/// A resolved image manifest.
pub struct Resolved {
    pub manifest: ImageManifest,
    pub body: Vec<u8>,
    pub digest: Digest,
}

/// Fetches the manifest of `r` for `platform` (through an index if the registry has one).
pub async fn resolve_manifest(client: &Client, r: &Reference, platform: &Platform) -> Result<Resolved> {
    let what = r.familiar();
    let (body, ctype, digest) = client.get_manifest(r, &r.api_reference()).await?;
    if let Some(want) = r.digest() {
        if *want != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("the manifest of {what}"),
                expected: want.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    match classify(&body, &ctype, &format!("the manifest of {what}"))? {
        Doc::Manifest(manifest) => Ok(Resolved { manifest: *manifest, body, digest }),
        Doc::Index(index) => {
            let chosen = choose(&index, platform, &what)?;
            let (body, ctype, digest) = client.get_manifest(r, &chosen.to_string()).await?;
            if digest != chosen {
                return Err(ImageError::DigestMismatch {
                    what: format!("the {platform} manifest of {what}"),
                    expected: chosen.to_string(),
                    actual: digest.to_string(),
                });
            }
            match classify(&body, &ctype, &format!("the {platform} manifest of {what}"))? {
                Doc::Manifest(manifest) => Ok(Resolved { manifest: *manifest, body, digest }),
                Doc::Index(_) => Err(ImageError::unsupported(what, "an index points to another index")),
            }
        }
    }
}

fn layer_media_ok(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
        || mt == "application/vnd.docker.image.rootfs.diff.tar.gzip"
}

/// Reads the chunks a download task sends, as a blocking `Read` for the unpacker.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

struct LayerJob {
    index: usize,
    blob: Digest,
    size: u64,
    media_type: String,
    diff_id: Digest,
    chain_id: Digest,
    parent: Option<Digest>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ImageError::Other(format!("a worker thread failed: {e}")))?
}

/// Brings one layer into the store: nothing if present, an unpack if only the blob is here,
/// else a streamed download (retried from the start on a network failure). True with the layer
/// when it was not already there whole (pulled, or a damaged one repaired).
async fn fetch_layer(client: Arc<Client>, store: ImageStore, r: Reference, job: LayerJob, progress: Progress) -> Result<(Layer, bool)> {
    let lp = progress.layer(job.blob.short(), job.size);
    let layer = Layer {
        chain_id: job.chain_id.clone(),
        diff_id: job.diff_id.clone(),
        blob: job.blob.clone(),
        media_type: job.media_type.clone(),
        blob_size: job.size,
        size: 0,
    };
    let (s, b) = (store.clone(), job.blob.clone());
    let _lock = blocking(move || s.lock_blob(&b)).await?;
    let has_layer = store.has_layer(&job.chain_id);
    let has_blob = store.has_blob(&job.blob);
    if has_layer && has_blob {
        lp.finish("Already exists");
        return Ok((layer, false));
    }
    if has_blob {
        lp.status("Extracting");
        let (s, l, p) = (store.clone(), layer.clone(), job.parent.clone());
        blocking(move || s.unpack_stored_blob(&l, p.as_ref())).await?;
        lp.finish("Pull complete");
        return Ok((layer, true));
    }
    lp.status("Pulling fs layer");
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = client.get_blob(&r, &job.blob).await?;
        lp.bar_status("Downloading");
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(64);
        let spec = IngestSpec {
            name: format!("blob {}", job.blob),
            parent_chain: job.parent.clone(),
            expect_blob: Some(job.blob.clone()),
            expect_size: Some(job.size),
            expect_diff: Some(job.diff_id.clone()),
            media_type: Some(job.media_type.clone()),
            keep_blob: true,
            unpack: !has_layer,
        };
        let s = store.clone();
        let worker = tokio::task::spawn_blocking(move || s.ingest_layer(ChannelReader { rx, cur: Bytes::new() }, &spec));
        let mut resp = resp;
        let mut net_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    lp.inc(c.len() as u64);
                    if tx.send(Ok(c)).await.is_err() {
                        break; // the unpacker stopped: its error says why
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(format!("download interrupted: {e}")))).await;
                    net_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = worker.await.map_err(|e| ImageError::Other(format!("a worker thread failed: {e}")))?;
        match (result, net_error) {
            (Ok(l), _) => {
                lp.status("Download complete");
                lp.finish("Pull complete");
                return Ok((Layer { size: l.size, ..layer }, true));
            }
            (Err(_), Some(e)) if attempt < 3 => {
                lp.status(&format!("Retrying ({e})"));
                lp.reset();
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
            (Err(_), Some(e)) => return Err(ImageError::Connect { registry: r.api_host().into(), source: e }),
            (Err(e), None) => return Err(e),
        }
    }
}

/// Pulls `r` into `store`, printing progress, and returns the image.
pub async fn pull(store: &ImageStore, r: &Reference, opts: &PullOptions, progress: &Progress) -> Result<Image> {
    let client = Arc::new(Client::new(ClientOptions { insecure_registries: opts.insecure_registries.clone(), credentials: None })?);
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let what = r.familiar();
    let label = r.tag().map(str::to_string).unwrap_or_else(|| r.api_reference());
    progress.line(&format!("{label}: Pulling from {}", r.path()));

    let resolved = resolve_manifest(&client, r, &platform).await?;
    let m = &resolved.manifest;
    let config_digest = Digest::try_from(m.config().digest())?;
    let s = store.clone();
    let _guard = blocking(move || s.writer_guard()).await?;

    let config_bytes = if store.has_blob(&config_digest) {
        store.read_blob(&config_digest)?
    } else {
        // Stored with the image record, once every layer is in.
        client.get_small_blob(r, &config_digest, MAX_CONFIG).await?
    };
    super::store::check_config(&config_bytes, &what)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadManifest { what: format!("the config of {what}"), source: e })?;
    let diff_ids: Vec<Digest> = config.rootfs().diff_ids().iter().map(|d| Digest::parse(d)).collect::<Result<_>>()?;
    if diff_ids.len() != m.layers().len() {
        return Err(ImageError::unsupported(
            format!("the manifest of {what}"),
            format!("it lists {} layers but the config {}", m.layers().len(), diff_ids.len()),
        ));
    }
    let chains = chain_ids(&diff_ids);
    let mut jobs = Vec::new();
    for (i, desc) in m.layers().iter().enumerate() {
        let mt = desc.media_type().to_string();
        if !layer_media_ok(&mt) {
            return Err(ImageError::unsupported(
                format!("layer {} of {what}", i + 1),
                format!("its media type {mt} is not a container layer"),
            ));
        }
        jobs.push(LayerJob {
            index: i,
            blob: Digest::try_from(desc.digest())?,
            size: desc.size(),
            media_type: mt,
            diff_id: diff_ids[i].clone(),
            chain_id: chains[i].clone(),
            parent: if i == 0 { None } else { Some(chains[i - 1].clone()) },
        });
    }

    let sem = Arc::new(tokio::sync::Semaphore::new(opts.max_parallel.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let (client, store, r, progress, sem) = (client.clone(), store.clone(), r.clone(), progress.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("the semaphore is never closed");
            let index = job.index;
            fetch_layer(client, store, r, job, progress).await.map(|(l, pulled)| (index, l, pulled))
        });
    }
    let mut layers: Vec<Option<Layer>> = vec![None; m.layers().len()];
    let mut layers_pulled = false;
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok((i, l, pulled))) => {
                layers[i] = Some(l);
                layers_pulled |= pulled;
            }
            Ok(Err(e)) => {
                set.abort_all();
                // Let the workers see the end of their streams and clean up.
                while set.join_next().await.is_some() {}
                return Err(e);
            }
            Err(e) => return Err(ImageError::Other(format!("a download task failed: {e}"))),
        }
    }
    let mut layers: Vec<Layer> = layers.into_iter().map(|l| l.expect("every task reported")).collect();
    // Sizes of layers that were already here come from the store.
    for l in layers.iter_mut() {
        if l.size == 0 {
            l.size = store.layer_size(&l.chain_id).unwrap_or(0);
        }
    }
    let before = store.resolve(&r.to_string())?.map(|i| i.id);
    let names: Vec<Reference> =
        if r.tag().is_some() { vec![Reference::parse(&format!("{}:{}", r.name(), r.tag().unwrap_or("latest")))?] } else { vec![] };
    let repo_digest = format!("{}@{}", r.name(), resolved.digest);
    let image = store.put_image(&config_bytes, layers, &resolved.body, Some(repo_digest), &names)?;
    progress.line(&format!("Digest: {}", resolved.digest));
    // As Docker's: "newer" when a layer had to be pulled (a damaged one repaired included) or
    // the tag moved.
    if before.as_ref() == Some(&image.id) && !layers_pulled {
        progress.line(&format!("Status: Image is up to date for {what}"));
    } else {
        progress.line(&format!("Status: Downloaded newer image for {what}"));
    }
    Ok(image)
}

/// One image of a compose-level pull.
#[derive(Clone, Debug)]
pub struct PullItem {
    /// What to call it in progress lines (the service name).
    pub label: String,
    pub reference: Reference,
    pub platform: Option<Platform>,
}

/// Pulls several images at once (compose `pull`), printing `<label> Pulling` / `Pulled` /
/// `Error` lines, and returns each result in order.
pub async fn pull_many(store: &ImageStore, items: &[PullItem], opts: &PullOptions, progress: &Progress) -> Vec<Result<Image>> {
    let mut set = tokio::task::JoinSet::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    for (i, item) in items.iter().enumerate() {
        let (store, item, progress, sem) = (store.clone(), item.clone(), progress.clone(), sem.clone());
        let mut opts = opts.clone();
        if item.platform.is_some() {
            opts.platform = item.platform.clone();
        }
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("the semaphore is never closed");
            progress.line(&format!(" {} Pulling", item.label));
            let quiet = Progress::new(super::progress::ProgressMode::Quiet);
            let r = pull(&store, &item.reference, &opts, &quiet).await;
            match &r {
                Ok(_) => progress.line(&format!(" {} Pulled", item.label)),
                Err(e) => progress.line(&format!(" {} Error {e}", item.label)),
            }
            (i, r)
        });
    }
    let mut out: Vec<Option<Result<Image>>> = (0..items.len()).map(|_| None).collect();
    while let Some(res) = set.join_next().await {
        if let Ok((i, r)) = res {
            out[i] = Some(r);
        }
    }
    out.into_iter().map(|r| r.unwrap_or_else(|| Err(ImageError::Other("a pull task failed".into())))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_classified_strictly() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        assert!(matches!(classify(m, MEDIA_OCI_MANIFEST, "m").unwrap(), Doc::Manifest(_)));
        assert!(classify(m, MEDIA_OCI_INDEX, "m").is_err(), "a mediaType/Content-Type mismatch is refused");
        let both = br#"{"schemaVersion":2,"manifests":[],"layers":[]}"#;
        assert!(classify(both, "", "m").is_err());
        let s1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(classify(s1, "", "m").unwrap_err().to_string().contains("schema 1"));
        assert!(classify(b"{trunc", "", "m").is_err());
    }

    #[test]
    fn an_index_gives_the_host_platform() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let d3 = format!("sha256:{}", "3".repeat(64));
        let idx: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [
                {"mediaType": MEDIA_OCI_MANIFEST, "digest": d1, "size": 1, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": MEDIA_OCI_MANIFEST, "digest": d2, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MEDIA_OCI_MANIFEST, "digest": d3, "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ]
        }))
        .unwrap();
        assert_eq!(choose(&idx, &Platform::parse("linux/amd64").unwrap(), "x").unwrap().to_string(), d2);
        assert_eq!(choose(&idx, &Platform::parse("linux/arm64").unwrap(), "x").unwrap().to_string(), d3);
        let err = choose(&idx, &Platform::parse("linux/s390x").unwrap(), "x").unwrap_err().to_string();
        assert!(err.contains("linux/amd64") && err.contains("linux/s390x"), "{err}");
    }
}
