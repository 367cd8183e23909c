//! Pushing an image from the store: every blob the registry lacks (layers, then the config),
//! then the manifest under the tag.

use std::sync::Arc;

use super::digest::Digest;
use super::error::{ImageError, Result};
use super::progress::Progress;
use super::reference::Reference;
use super::registry::{Client, ClientOptions};
use super::store::{ImageStore, MEDIA_DOCKER_MANIFEST};

#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    pub insecure_registries: Vec<String>,
}

async fn push_blob(client: &Client, store: &ImageStore, r: &Reference, d: &Digest, progress: &Progress, show: bool) -> Result<()> {
    let lp = show.then(|| progress.layer(d.short(), 0));
    if client.has_blob(r, d).await? {
        if let Some(lp) = &lp {
            lp.finish("Layer already exists");
        }
        return Ok(());
    }
    if let Some(lp) = &lp {
        lp.status("Pushing");
    }
    let path = store.blob_path(d);
    let size = std::fs::metadata(&path).map_err(|e| crate::util::fs::FsError::io("read", &path, e))?.len();
    let p = path.clone();
    let body = move || match std::fs::File::open(&p) {
        Ok(f) => reqwest::Body::from(tokio::fs::File::from_std(f)),
        Err(_) => reqwest::Body::from(Vec::new()),
    };
    client.upload_blob(r, d, size, &body).await?;
    if let Some(lp) = &lp {
        lp.finish("Pushed");
    }
    Ok(())
}

/// Pushes `r` (a name with a tag) from `store`; returns the manifest digest.
pub async fn push(store: &ImageStore, r: &Reference, opts: &PushOptions, progress: &Progress) -> Result<Digest> {
    let image = store.require(&r.to_string())?;
    let client = Arc::new(Client::new(ClientOptions { insecure_registries: opts.insecure_registries.clone(), credentials: None })?);
    progress.line(&format!("The push refers to repository [{}]", r.name_for_push()));
    for l in image.layers.iter().rev() {
        if !store.has_blob(&l.blob) {
            return Err(ImageError::corrupt(format!("the blob of layer {} is missing", l.chain_id.short())));
        }
        push_blob(&client, store, r, &l.blob, progress, true).await?;
    }
    push_blob(&client, store, r, &image.id, progress, false).await?;
    let manifest = store.read_blob(&image.manifest)?;
    let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| MEDIA_DOCKER_MANIFEST.to_string());
    let tag = r.tag().unwrap_or("latest").to_string();
    let size = manifest.len();
    client.put_manifest(r, &tag, &media_type, manifest).await?;
    store.add_repo_digest(&image.id, &format!("{}@{}", r.name(), image.manifest))?;
    progress.line(&format!("{tag}: digest: {} size: {size}", image.manifest));
    Ok(image.manifest)
}
