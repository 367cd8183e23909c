//! Pushing an image from the store: every blob the registry lacks (layers, then the config),
//! then the manifest under the tag.
//!
//! As `docker push` does, a layer stored uncompressed (an imported or built one) is sent gzipped:
//! registries and their clients expect compressed layers, and it is a third of the bytes. The
//! gzip is deterministic (no name, no time, one level), so that pushing again finds the same
//! digest. A blob the registry already has (HEAD) is not sent, and one it has in another
//! repository this image came from or was pushed to is mounted from there (no upload). The
//! manifest pushed then names the gzipped layers; it is recorded as the image's repo digest.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::digest::{Digest, HashingWriter};
use super::error::{ImageError, Result};
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{Client, ClientOptions};
use super::store::{Image, ImageStore, Layer, MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP};
use crate::util::fs::FsError;

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub insecure_registries: Vec<String>,
}

/// The uncompressed layer media types, and the gzip type each is sent as.
const UNCOMPRESSED: &[(&str, &str)] =
    &[(MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP), ("application/vnd.docker.image.rootfs.diff.tar", MEDIA_DOCKER_LAYER_GZIP)];

/// A blob as it goes to the registry.
struct Blob {
    digest: Digest,
    size: u64,
    media_type: String,
    path: PathBuf,
    /// A temp file (a gzip made for this push), removed when done.
    temp: bool,
}

impl Drop for Blob {
    fn drop(&mut self) {
        if self.temp {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The layer as it is sent: its stored blob, or the gzip of it when it is stored uncompressed.
fn layer_blob(store: &ImageStore, l: &Layer) -> Result<Blob> {
    let path = store.blob_path(&l.blob);
    let Some((_, gz_type)) = UNCOMPRESSED.iter().find(|(t, _)| *t == l.media_type) else {
        return Ok(Blob { digest: l.blob.clone(), size: l.blob_size, media_type: l.media_type.clone(), path, temp: false });
    };
    let tmp = store.temp_path("gz");
    let mut blob = Blob { digest: l.blob.clone(), size: 0, media_type: gz_type.to_string(), path: tmp.clone(), temp: true };
    let mut src = std::fs::File::open(&path).map_err(|e| FsError::io("open", &path, e))?;
    let out = std::fs::File::create(&tmp).map_err(|e| FsError::io("create", &tmp, e))?;
    let hashing = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let mut gz = flate2::GzBuilder::new().mtime(0).write(hashing, flate2::Compression::default());
    std::io::copy(&mut src, &mut gz).map_err(|e| FsError::io("compress", &path, e))?;
    let hashing = gz.finish().map_err(|e| FsError::io("write", &tmp, e))?;
    let (digest, size, mut w) = hashing.finish();
    w.flush().map_err(|e| FsError::io("write", &tmp, e))?;
    blob.digest = digest;
    blob.size = size;
    Ok(blob)
}

/// The other repositories of the same registry that have this image (pulled from or pushed
/// to), to mount its blobs from.
fn mount_sources(image: &Image, r: &Reference) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rd in &image.repo_digests {
        let Ok(other) = Reference::parse(rd) else { continue };
        if other.api_host() == r.api_host() && other.path() != r.path() && !out.iter().any(|p| p == other.path()) {
            out.push(other.path().to_string());
        }
    }
    out
}

async fn push_blob(client: &Client, r: &Reference, blob: &Blob, from: &[String], progress: &Progress, show: bool) -> Result<()> {
    let d = &blob.digest;
    let lp = show.then(|| progress.layer(d.short(), 0));
    if client.has_blob(r, d).await? {
        if let Some(lp) = &lp {
            lp.finish("Layer already exists");
        }
        return Ok(());
    }
    for repo in from {
        if client.mount_blob(r, d, repo).await? {
            if let Some(lp) = &lp {
                lp.finish(&format!("Mounted from {repo}"));
            }
            return Ok(());
        }
    }
    if let Some(lp) = &lp {
        lp.status("Pushing");
    }
    let p = blob.path.clone();
    let body = move || match std::fs::File::open(&p) {
        Ok(f) => reqwest::Body::from(tokio::fs::File::from_std(f)),
        Err(_) => reqwest::Body::from(Vec::new()),
    };
    client.upload_blob(r, d, blob.size, &body).await?;
    if let Some(lp) = &lp {
        lp.finish("Pushed");
    }
    Ok(())
}

/// The stored manifest with its layers replaced by the blobs sent (same order, bottom first).
fn manifest_for(stored: &[u8], sent: &[Blob]) -> Result<Option<Vec<u8>>> {
    let mut m: serde_json::Value =
        serde_json::from_slice(stored).map_err(|e| ImageError::corrupt(format!("the stored manifest is not JSON: {e}")))?;
    let Some(layers) = m.get_mut("layers").and_then(|l| l.as_array_mut()) else { return Ok(None) };
    if layers.len() != sent.len() {
        return Err(ImageError::corrupt("the stored manifest does not list the image's layers".to_string()));
    }
    let mut changed = false;
    for (entry, b) in layers.iter_mut().zip(sent) {
        if entry.get("digest").and_then(|d| d.as_str()) != Some(&b.digest.to_string()) {
            entry["digest"] = b.digest.to_string().into();
            entry["size"] = b.size.into();
            entry["mediaType"] = b.media_type.clone().into();
            changed = true;
        }
    }
    changed.then(|| serde_json::to_vec(&m)).transpose().map_err(|e| ImageError::corrupt(e.to_string()))
}

/// Pushes `r` (a name with a tag) from `store`; returns the manifest digest.
pub async fn push(store: &ImageStore, r: &Reference, opts: &PushOptions, progress: &Progress) -> Result<Digest> {
    let image = store.require(&r.to_string())?;
    let client = Arc::new(Client::new(ClientOptions { insecure_registries: opts.insecure_registries.clone(), credentials: None })?);
    progress.line(&format!("The push refers to repository [{}]", r.name_for_push()));
    let from = mount_sources(&image, r);
    let mut sent = Vec::new();
    for l in &image.layers {
        if !store.has_blob(&l.blob) {
            return Err(ImageError::corrupt(format!("the blob of layer {} is missing", l.chain_id.short())));
        }
        sent.push(layer_blob(store, l)?);
    }
    for b in sent.iter().rev() {
        push_blob(&client, r, b, &from, progress, true).await?;
    }
    let path = store.blob_path(&image.id);
    let size = std::fs::metadata(&path).map_err(|e| FsError::io("read", &path, e))?.len();
    let config = Blob { digest: image.id.clone(), size, media_type: String::new(), path, temp: false };
    push_blob(&client, r, &config, &from, progress, false).await?;
    let stored = store.read_blob(&image.manifest)?;
    let (manifest, digest) = match manifest_for(&stored, &sent)? {
        Some(m) => {
            let d = store.write_blob(&m, None, "manifest")?;
            (m, d)
        }
        None => (stored, image.manifest.clone()),
    };
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| MEDIA_DOCKER_MANIFEST.to_string());
    let tag = r.tag().unwrap_or("latest").to_string();
    let size = manifest.len();
    client.put_manifest(r, &tag, &media_type, manifest).await?;
    store.add_repo_digest(&image.id, &format!("{}@{}", r.name(), digest))?;
    progress.line(&format!("{tag}: digest: {digest} size: {size}"));
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncompressed_layers_go_gzipped_in_the_manifest() {
        let d = |s: &str| Digest::of(s.as_bytes());
        let stored = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d("c").to_string(), "size": 1},
            "layers": [
                {"mediaType": MEDIA_OCI_LAYER_GZIP, "digest": d("a").to_string(), "size": 10},
                {"mediaType": MEDIA_OCI_LAYER, "digest": d("b").to_string(), "size": 100},
            ]
        });
        let stored = serde_json::to_vec(&stored).unwrap();
        let keep = |s: &str, t: &str, n| Blob { digest: d(s), size: n, media_type: t.into(), path: PathBuf::new(), temp: false };
        let same = [keep("a", MEDIA_OCI_LAYER_GZIP, 10), keep("b", MEDIA_OCI_LAYER, 100)];
        assert_eq!(manifest_for(&stored, &same).unwrap(), None, "nothing to change: the stored manifest goes");
        let sent = [keep("a", MEDIA_OCI_LAYER_GZIP, 10), keep("bz", MEDIA_OCI_LAYER_GZIP, 40)];
        let m: serde_json::Value = serde_json::from_slice(&manifest_for(&stored, &sent).unwrap().unwrap()).unwrap();
        assert_eq!(m["layers"][1]["digest"], d("bz").to_string());
        assert_eq!(m["layers"][1]["size"], 40);
        assert_eq!(m["layers"][1]["mediaType"], MEDIA_OCI_LAYER_GZIP);
        assert_eq!(m["layers"][0]["digest"], d("a").to_string());
        assert!(manifest_for(&stored, &sent[..1]).is_err());
    }
}
