//! Image archives: `load` reads `docker save` archives (manifest.json) and OCI image layouts
//! (index.json); `save` writes the `docker save` format, which `docker load` accepts.
//!
//! Loading unpacks the archive's files under the store's `tmp/` first (regular files only,
//! names checked like layer entries, symlinks between its own files resolved by name), then
//! ingests every layer through the same verified path as a pull.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest};

use super::digest::{Digest, chain_ids};
use super::error::{ImageError, Result};
use super::platform::Platform;
use super::reference::Reference;
use super::store::{Image, ImageStore, IngestSpec, Layer, oci_manifest};
use super::unpack;
use crate::util::fs::{FsError, create_dir_all_mode};

/// The files of an archive, unpacked under a temp dir.
struct Extracted {
    dir: PathBuf,
    links: HashMap<String, String>,
}

impl Extracted {
    /// The path of archive member `name`, following the archive's own symlinks.
    fn path(&self, name: &str) -> Result<PathBuf> {
        let mut name = clean(name).ok_or_else(|| bad(format!("the archive refers to {name:?}, outside itself")))?;
        for _ in 0..16 {
            match self.links.get(&name) {
                Some(target) => {
                    let base = Path::new(&name).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                    let joined = if target.starts_with('/') { target.clone() } else { format!("{base}/{target}") };
                    name = clean(&joined).ok_or_else(|| bad(format!("the archive link {name:?} points outside it")))?;
                }
                None => return Ok(self.dir.join(&name)),
            }
        }
        Err(bad(format!("the archive links {name:?} in a loop")))
    }
    /// Reads an image config, refusing one over the cap with the cap's error naming `image`
    /// (not the generic "larger than" of other archive members).
    fn read_config(&self, name: &str, image: &str) -> Result<Vec<u8>> {
        let max = super::store::MAX_CONFIG_BYTES;
        let p = self.path(name)?;
        let md = fs::metadata(&p).map_err(|_| bad(format!("the archive has no {name}")))?;
        if md.len() > max {
            return Err(ImageError::ConfigTooLarge { image: image.to_string(), what: "its size in bytes", actual: md.len(), limit: max });
        }
        let config = self.read(name, max)?;
        super::store::check_config(&config, image)?;
        Ok(config)
    }
    fn read(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let p = self.path(name)?;
        let md = fs::metadata(&p).map_err(|_| bad(format!("the archive has no {name}")))?;
        if md.len() > max {
            return Err(bad(format!("{name} is larger than {max} bytes")));
        }
        fs::read(&p).map_err(|e| FsError::io("read", &p, e).into())
    }
}

fn bad(reason: String) -> ImageError {
    ImageError::unsupported("the image archive", reason)
}

/// Normalizes an archive member name; `None` if it climbs out.
fn clean(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn extract<R: Read + Send>(input: R, dir: &Path) -> Result<Extracted> {
    let (_, r) = unpack::decompress(input).map_err(|e| ImageError::BadArchive { layer: "the image archive".into(), source: e })?;
    let mut archive = tar::Archive::new(r);
    let mut links = HashMap::new();
    let entries = archive.entries().map_err(|e| ImageError::BadArchive { layer: "the image archive".into(), source: e })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::BadArchive { layer: "the image archive".into(), source: e })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(name) = clean(&raw).filter(|n| !n.is_empty() && !raw.split('/').any(|c| c == "..")) else {
            if raw.trim_matches('/').trim_start_matches("./").is_empty() {
                continue;
            }
            return Err(bad(format!("it has an entry {raw:?} outside itself")));
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory => create_dir_all_mode(&dir.join(&name), 0o700)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let p = dir.join(&name);
                if let Some(parent) = p.parent() {
                    create_dir_all_mode(parent, 0o700)?;
                }
                // Never through a symlink: the archive cannot make any, only regular files.
                let mut f = File::create(&p).map_err(|e| FsError::io("create", &p, e))?;
                io::copy(&mut entry, &mut f).map_err(|e| ImageError::BadArchive { layer: "the image archive".into(), source: e })?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let target = if entry.header().entry_type() == tar::EntryType::Link { format!("/{target}") } else { target };
                links.insert(name, target);
            }
            _ => {}
        }
    }
    Ok(Extracted { dir: dir.to_path_buf(), links })
}

/// What `load` added: the names, or the id of an image without one.
#[derive(Debug)]
pub enum Loaded {
    Name(String),
    Id(Digest),
}

/// Loads every image of a `docker save` archive or an OCI layout archive.
pub fn load<R: Read + Send>(store: &ImageStore, input: R) -> Result<Vec<Loaded>> {
    let _guard = store.writer_guard()?;
    let dir = store.temp_path("load");
    create_dir_all_mode(&dir, 0o700)?;
    let result = (|| {
        let x = extract(input, &dir)?;
        if x.path("manifest.json").map(|p| p.exists()).unwrap_or(false) {
            load_docker(store, &x)
        } else if x.path("index.json").map(|p| p.exists()).unwrap_or(false) {
            load_oci(store, &x)
        } else {
            Err(bad("it has neither manifest.json (docker save) nor index.json (OCI layout)".into()))
        }
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

fn ingest_file(store: &ImageStore, path: &Path, spec: &IngestSpec) -> Result<Layer> {
    let f = File::open(path).map_err(|e| FsError::io("open", path, e))?;
    store.ingest_layer(io::BufReader::with_capacity(1 << 20, f), spec)
}

fn layers_for(
    store: &ImageStore,
    x: &Extracted,
    files: &[(String, Option<Digest>, Option<String>)],
    diff_ids: &[Digest],
) -> Result<Vec<Layer>> {
    if files.len() != diff_ids.len() {
        return Err(bad(format!("an image lists {} layers but its config {}", files.len(), diff_ids.len())));
    }
    let chains = chain_ids(diff_ids);
    let mut layers = Vec::new();
    for (i, (name, blob, media)) in files.iter().enumerate() {
        let path = x.path(name)?;
        let parent = if i == 0 { None } else { Some(chains[i - 1].clone()) };
        let spec = IngestSpec {
            name: name.clone(),
            parent_chain: parent,
            expect_blob: blob.clone(),
            expect_diff: Some(diff_ids[i].clone()),
            media_type: media.clone(),
            keep_blob: true,
            unpack: !store.has_layer(&chains[i]),
            ..Default::default()
        };
        let mut l = ingest_file(store, &path, &spec)?;
        if l.size == 0 {
            l.size = store.layer_size(&l.chain_id).unwrap_or(l.size);
        }
        layers.push(l);
    }
    Ok(layers)
}

fn diff_ids_of(config: &[u8], what: &str) -> Result<Vec<Digest>> {
    let v: serde_json::Value = serde_json::from_slice(config).map_err(|e| ImageError::BadManifest { what: what.into(), source: e })?;
    v.pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .ok_or_else(|| bad(format!("{what} has no rootfs.diff_ids")))?
        .iter()
        .map(|d| Digest::parse(d.as_str().unwrap_or("")))
        .collect()
}

fn load_docker(store: &ImageStore, x: &Extracted) -> Result<Vec<Loaded>> {
    let m = x.read("manifest.json", 16 << 20)?;
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&m).map_err(|e| ImageError::BadManifest { what: "manifest.json".into(), source: e })?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_name = e.get("Config").and_then(|c| c.as_str()).ok_or_else(|| bad("a manifest.json entry has no Config".into()))?;
        // Named in errors by its first tag, as the user knows it.
        let shown = e
            .get("RepoTags")
            .and_then(|t| t.as_array())
            .and_then(|t| t.first())
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| cfg_name.to_string());
        let config = x.read_config(cfg_name, &shown)?;
        let diff_ids = diff_ids_of(&config, cfg_name)?;
        let files: Vec<(String, Option<Digest>, Option<String>)> = e
            .get("Layers")
            .and_then(|l| l.as_array())
            .map(|l| l.iter().filter_map(|s| s.as_str()).map(|s| (s.to_string(), None, None)).collect())
            .unwrap_or_default();
        let layers = layers_for(store, x, &files, &diff_ids)?;
        let names: Vec<Reference> = e
            .get("RepoTags")
            .and_then(|t| t.as_array())
            .map(|t| t.iter().filter_map(|s| s.as_str()).filter_map(|s| Reference::parse(s).ok()).collect())
            .unwrap_or_default();
        let manifest = oci_manifest(&Digest::of(&config), config.len() as u64, &layers);
        let image = store.put_image(&config, layers, &manifest, None, &names)?;
        report(&image, &names, &mut out);
    }
    Ok(out)
}

fn report(image: &Image, names: &[Reference], out: &mut Vec<Loaded>) {
    if names.is_empty() {
        out.push(Loaded::Id(image.id.clone()));
    } else {
        out.extend(names.iter().map(|n| Loaded::Name(n.familiar())));
    }
}

fn load_oci(store: &ImageStore, x: &Extracted) -> Result<Vec<Loaded>> {
    let idx_bytes = x.read("index.json", 4 << 20)?;
    let index: ImageIndex =
        serde_json::from_slice(&idx_bytes).map_err(|e| ImageError::BadManifest { what: "index.json".into(), source: e })?;
    let blob = |d: &Digest, max: u64| -> Result<Vec<u8>> {
        let data = x.read(&format!("blobs/sha256/{}", d.hex()), max)?;
        let got = Digest::of(&data);
        if got != *d {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {d} of the archive"),
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(data)
    };
    let mut out = Vec::new();
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        let name = annotations
            .get("io.containerd.image.name")
            .or_else(|| annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains(':') || n.contains('/')))
            .and_then(|n| Reference::parse(n).ok());
        let mut d = Digest::try_from(desc.digest())?;
        let mut body = blob(&d, 4 << 20)?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ImageError::BadManifest { what: format!("blob {d}"), source: e })?;
        if v.get("manifests").is_some() {
            let nested: ImageIndex =
                serde_json::from_slice(&body).map_err(|e| ImageError::BadManifest { what: format!("blob {d}"), source: e })?;
            d = super::pull::choose(&nested, &Platform::host(), "the image archive")?;
            body = blob(&d, 4 << 20)?;
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&body).map_err(|e| ImageError::BadManifest { what: format!("manifest {d}"), source: e })?;
        let cfg_digest = Digest::try_from(manifest.config().digest())?;
        let shown = name.as_ref().map(|n| n.familiar()).unwrap_or_else(|| format!("config {cfg_digest}"));
        let config = x.read_config(&format!("blobs/sha256/{}", cfg_digest.hex()), &shown)?;
        let got = Digest::of(&config);
        if got != cfg_digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {cfg_digest} of the archive"),
                expected: cfg_digest.to_string(),
                actual: got.to_string(),
            });
        }
        let diff_ids = diff_ids_of(&config, &format!("config {cfg_digest}"))?;
        let files: Vec<(String, Option<Digest>, Option<String>)> = manifest
            .layers()
            .iter()
            .map(|l| {
                let d = Digest::try_from(l.digest())?;
                Ok((format!("blobs/sha256/{}", d.hex()), Some(d), Some(l.media_type().to_string())))
            })
            .collect::<Result<_>>()?;
        let layers = layers_for(store, x, &files, &diff_ids)?;
        let names: Vec<Reference> = name.into_iter().collect();
        let image = store.put_image(&config, layers, &body, None, &names)?;
        report(&image, &names, &mut out);
    }
    Ok(out)
}

/// Writes `images` (each with the name it was asked by, if any) as a `docker save` archive.
pub fn save<W: Write>(store: &ImageStore, images: &[(Image, Option<Reference>)], out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut repositories: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    let mut written = std::collections::HashSet::new();
    let io_err = |e: io::Error| ImageError::Other(format!("cannot write the archive: {e}"));
    let mtime = 0u64;
    let add = |b: &mut tar::Builder<W>, name: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        b.append_data(&mut h, name, data).map_err(io_err)
    };
    for (image, name) in images {
        let config = store.read_blob(&image.id)?;
        let cfg_name = format!("{}.json", image.id.hex());
        if written.insert(cfg_name.clone()) {
            add(&mut b, &cfg_name, &config)?;
        }
        let mut layer_names = Vec::new();
        let mut parent: Option<String> = None;
        for l in &image.layers {
            let dir = l.chain_id.hex().to_string();
            let tar_name = format!("{dir}/layer.tar");
            if written.insert(dir.clone()) {
                let mut dh = tar::Header::new_gnu();
                dh.set_entry_type(tar::EntryType::Directory);
                dh.set_size(0);
                dh.set_mode(0o755);
                dh.set_mtime(mtime);
                b.append_data(&mut dh, format!("{dir}/"), io::empty()).map_err(io_err)?;
                add(&mut b, &format!("{dir}/VERSION"), b"1.0")?;
                let mut v1 = serde_json::json!({"id": dir, "created": "1970-01-01T00:00:00Z", "container_config": {}});
                if let Some(p) = &parent {
                    v1["parent"] = p.clone().into();
                }
                add(&mut b, &format!("{dir}/json"), v1.to_string().as_bytes())?;
                let size = if l.size > 0 { l.size } else { store.layer_size(&l.chain_id).unwrap_or(0) };
                let p = store.blob_path(&l.blob);
                let f = File::open(&p).map_err(|e| FsError::io("open", &p, e))?;
                let (_, r) = unpack::decompress(io::BufReader::with_capacity(1 << 20, f))
                    .map_err(|e| ImageError::BadArchive { layer: l.blob.to_string(), source: e })?;
                let mut h = tar::Header::new_gnu();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_mtime(mtime);
                let mut counted = SizeCheck { inner: r, left: size };
                b.append_data(&mut h, &tar_name, &mut counted).map_err(io_err)?;
                if counted.left != 0 {
                    return Err(ImageError::corrupt(format!("layer {} is shorter than recorded", l.chain_id.short())));
                }
            }
            layer_names.push(tar_name);
            parent = Some(dir);
        }
        let tags: Vec<String> = match name {
            Some(n) if n.tag().is_some() => vec![n.familiar()],
            Some(n) => image.names.iter().filter(|m| m.name() == n.name()).map(|m| m.familiar()).collect(),
            None => Vec::new(),
        };
        for t in &tags {
            if let (Some((repo, tag)), Some(top)) = (t.rsplit_once(':'), &parent) {
                let e = repositories.entry(repo.to_string()).or_insert_with(|| serde_json::json!({}));
                e[tag] = top.clone().into();
            }
        }
        manifest.push(serde_json::json!({"Config": cfg_name, "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { tags.into() }, "Layers": layer_names}));
    }
    add(&mut b, "manifest.json", serde_json::to_vec(&manifest).expect("JSON").as_slice())?;
    if !repositories.is_empty() {
        add(&mut b, "repositories", serde_json::to_vec(&repositories).expect("JSON").as_slice())?;
    }
    b.into_inner().map_err(io_err)
}

/// Passes at most `left` bytes through (a layer must be exactly its recorded size).
struct SizeCheck<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for SizeCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "layer shorter than recorded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
