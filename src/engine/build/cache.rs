//! The build cache: one small record per filesystem step (RUN, COPY, ADD, WORKDIR), named by the
//! digest of what the step depends on (the previous step, the instruction, the environment and
//! arguments it sees, and for COPY and ADD the digest of the content). A record holds the layers
//! after the step and the step's history entry; the layers themselves live in the image store.
//!
//! ```text
//! <root>/build/cache/<key hex>.json
//! <root>/build/hashes/<context hex>.json   context files' content digests by inode and times
//! <root>/build/mounts/<id>/                RUN --mount=type=cache directories
//! <root>/build/locks/step-<xx>.lock         held while a step is looked up, run and recorded
//! ```
//! A record whose layers are gone from the store (removed with their last image) is a miss.
//! Builds running at once (threads of one `berth build`, or processes) take the step's lock
//! (one of 256, by the key's first byte) around the lookup, the run and the record, so that the
//! same step is run once and the other build finds it CACHED: two services on one base share
//! its layers, and a rebuild gives each the same image again.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::Result;
use crate::engine::image::{Digest, ImageStore, Layer};
use crate::state::StateRoot;
use crate::util::fs::{create_dir_all_mode, read_json, write_json};

/// What a cached step left.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Every layer of the image after the step, bottom first.
    pub layers: Vec<Layer>,
    /// The step's history entry (its `created` time is the time it first ran).
    pub history: serde_json::Value,
}

pub struct Cache {
    dir: PathBuf,
}

/// The builder's folder in a state root.
pub fn build_dir(root: &StateRoot) -> PathBuf {
    root.path().join("build")
}

impl Cache {
    pub fn open(root: &StateRoot) -> Result<Cache> {
        let dir = build_dir(root).join("cache");
        create_dir_all_mode(&dir, 0o700)?;
        Ok(Cache { dir })
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, if it is there and every layer it names is still in the store (a
    /// record whose layers were removed is dropped).
    pub fn get(&self, store: &ImageStore, key: &Digest) -> Option<Entry> {
        let path = self.path(key);
        let e: Entry = read_json(&path).ok().flatten()?;
        if e.layers.iter().all(|l| store.has_layer(&l.chain_id)) {
            Some(e)
        } else {
            let _ = std::fs::remove_file(&path);
            None
        }
    }

    /// The lock of step `key` (see the module documentation).
    pub fn lock(&self, key: &Digest) -> Result<crate::util::lock::FileLock> {
        let path = self.dir.with_file_name("locks").join(format!("step-{}.lock", &key.hex()[..2]));
        Ok(crate::util::lock::FileLock::exclusive(&path)?)
    }

    pub fn put(&self, key: &Digest, e: &Entry) -> Result<()> {
        Ok(write_json(&self.path(key), e)?)
    }
}

/// The digest of a step's inputs.
pub fn key(parts: &serde_json::Value) -> Digest {
    Digest::of(&serde_json::to_vec(parts).expect("JSON values serialize"))
}
