//! Snapshot versions, and the snapshot as stored in Secrets. Pure: the controller feeds content
//! hashes and what the stored manifest says, and publishes what comes out; the leader's store task
//! writes what [`ShardStore::plan`] returns.
//!
//! Version rules (routers refuse a snapshot older than the one they run, so versions only go up):
//! - A compiled snapshot with the same content hash as the current one is not a new version.
//! - A new content gets `max(current, stored) + 1`, where `stored` is the version in the snapshot
//!   manifest: a restarted operator continues where the last one stopped.
//! - When the manifest holds the same content under a higher version (another replica, the
//!   leader, numbered it), this replica adopts that version and republishes, so every replica
//!   converges on the leader's numbering and routers can switch replicas without going backwards.
//!
//! Storage: the entries are split over `count` shard Secrets `<name>-<i>`
//! ([`switchboard_api::snapshot::shards`]), zstd-compressed, each at most
//! [`MAX_SHARD_BYTES`] (the API server refuses a Secret over 1 MiB); the manifest Secret `<name>`
//! names them with their SHA-256s and is written last. The count is a power of two chosen for
//! about half that size per shard, doubled when a shard outgrows the limit.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use sha2::{Digest, Sha256};
use switchboard_api::snapshot::{
    SnapshotText,
    shards::{self, MANIFEST_KEY, MAX_SHARD_BYTES, ShardManifest, ShardRef, shard_key},
};

use crate::keys::MANAGED_BY;

/// The key of the snapshot Secret that held the whole snapshot before it was sharded; the
/// manifest write removes it.
pub const LEGACY_SNAPSHOT_KEY: &str = "snapshot.json";
/// Annotation with the snapshot version, for people reading the Secrets.
pub const VERSION_ANNOTATION: &str = "switchboard.dev/snapshot-version";
/// Annotation with the snapshot hash.
pub const HASH_ANNOTATION: &str = "switchboard.dev/snapshot-hash";

/// Numbers snapshots by content hash.
#[derive(Debug, Default)]
pub struct Versioner {
    current: Option<(u64, String)>,
    stored: Option<(u64, String)>,
}

impl Versioner {
    /// A versioner continuing after what the manifest holds (`(version, hash)`), if any.
    pub fn new(stored: Option<(u64, String)>) -> Self {
        Versioner {
            current: None,
            stored,
        }
    }

    /// The (version, hash) being published, if any.
    pub fn current(&self) -> Option<(u64, &str)> {
        self.current.as_ref().map(|(v, h)| (*v, h.as_str()))
    }

    /// A freshly compiled content hash: `Some(version)` when the content is new.
    pub fn offer(&mut self, hash: &str) -> Option<u64> {
        let current_version = self.current.as_ref().map_or(0, |c| c.0);
        if self.current.as_ref().is_some_and(|c| c.1 == hash) {
            return None;
        }
        let version = match &self.stored {
            Some((v, h)) if h == hash && *v > current_version => *v,
            Some((v, _)) => current_version.max(*v) + 1,
            None => current_version + 1,
        };
        self.current = Some((version, hash.to_string()));
        Some(version)
    }

    /// The manifest now holds `version` with `hash`: `Some(version)` (to republish under) when
    /// that is our content under a higher version.
    pub fn observe_stored(&mut self, version: u64, hash: &str) -> Option<u64> {
        let stored_version = self.stored.as_ref().map_or(0, |(v, _)| *v);
        if version >= stored_version {
            self.stored = Some((version, hash.to_string()));
        }
        let current = self.current.as_mut()?;
        if current.1 == hash && version > current.0 {
            current.0 = version;
            return Some(version);
        }
        None
    }

    /// Before the leader stores: when the manifest holds other content under a version at least
    /// ours (an earlier leader numbered further), renumber ours above it and return the new
    /// version to republish under.
    pub fn reassert(&mut self) -> Option<u64> {
        let (stored_version, stored_hash) = self.stored.as_ref()?;
        let current = self.current.as_mut()?;
        if *stored_hash != current.1 && *stored_version >= current.0 {
            current.0 = stored_version + 1;
            return Some(current.0);
        }
        None
    }

    /// Whether the manifest (as last observed) already holds the current snapshot.
    pub fn stored_is_current(&self) -> bool {
        match (&self.stored, &self.current) {
            (Some(s), Some(c)) => s == c,
            (_, None) => true,
            (None, Some(_)) => false,
        }
    }

    /// Records that the manifest was written with `version` and `hash`.
    pub fn stored_now(&mut self, version: u64, hash: &str) {
        self.stored = Some((version, hash.to_string()));
    }
}

/// One shard Secret to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardWrite {
    /// Its index.
    pub index: usize,
    /// Its reference in the manifest.
    pub shard: ShardRef,
    /// Its compressed bytes.
    pub bytes: Vec<u8>,
}

/// What to write to store one version: the shards that changed, then the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePlan {
    /// Shards whose bytes changed.
    pub shards: Vec<ShardWrite>,
    /// The manifest naming every shard.
    pub manifest: ShardManifest,
    /// The shard count (to [`ShardStore::commit`]).
    count: usize,
    /// SHA-256 of each shard's JSON, for the next plan.
    json_hashes: Vec<[u8; 32]>,
}

/// Why a version cannot be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the snapshot needs more than {max} shards of at most {MAX_SHARD_BYTES} bytes each \
     (raise --snapshot-max-shards and the chart's operator.snapshotMaxShards together)"
)]
pub struct TooBig {
    /// The most shards allowed.
    pub max: usize,
}

/// What the leader last stored, so the next version rewrites only the shards that changed.
#[derive(Debug, Default)]
pub struct ShardStore {
    count: usize,
    refs: Vec<ShardRef>,
    json_hashes: Vec<[u8; 32]>,
}

/// Shards are sized for this many compressed bytes each, leaving room to grow.
const TARGET_SHARD_BYTES: usize = MAX_SHARD_BYTES * 2 / 3;

impl ShardStore {
    /// Plans storing `text` as `version`/`hash` in at most `max` shards (a power of two): every
    /// shard's JSON is spliced and hashed, and only those that changed are compressed.
    pub fn plan(
        &self,
        text: &SnapshotText,
        version: u64,
        hash: &str,
        max: usize,
    ) -> Result<StorePlan, TooBig> {
        let max = max.max(1).next_power_of_two();
        // At least what compresses ~8x into shards of the target size.
        let estimate = (text.len() / (8 * TARGET_SHARD_BYTES) + 1).next_power_of_two();
        let mut count = self.count.max(estimate).max(1);
        loop {
            if count > max {
                return Err(TooBig { max });
            }
            match self.plan_in(text, version, hash, count) {
                Some(plan) => return Ok(plan),
                None => count *= 2,
            }
        }
    }

    /// [`ShardStore::plan`] in `count` shards; `None` when one would be too big.
    fn plan_in(
        &self,
        text: &SnapshotText,
        version: u64,
        hash: &str,
        count: usize,
    ) -> Option<StorePlan> {
        let mut plan = StorePlan {
            shards: Vec::new(),
            manifest: ShardManifest {
                version,
                hash: hash.to_string(),
                shards: Vec::with_capacity(count),
            },
            count,
            json_hashes: Vec::with_capacity(count),
        };
        for index in 0..count {
            let json = text.shard(index, count);
            let json_hash: [u8; 32] = Sha256::digest(json.as_bytes()).into();
            let unchanged = count == self.count && self.json_hashes.get(index) == Some(&json_hash);
            let shard = if unchanged {
                self.refs[index].clone()
            } else {
                let (shard, bytes) = shards::compress(shard_key(index), json.as_bytes());
                if bytes.len() > MAX_SHARD_BYTES {
                    return None;
                }
                plan.shards.push(ShardWrite {
                    index,
                    shard: shard.clone(),
                    bytes,
                });
                shard
            };
            plan.manifest.shards.push(shard);
            plan.json_hashes.push(json_hash);
        }
        Some(plan)
    }

    /// Records that `plan` was written.
    pub fn commit(&mut self, plan: &StorePlan) {
        self.count = plan.count;
        self.refs = plan.manifest.shards.clone();
        self.json_hashes = plan.json_hashes.clone();
    }

    /// Forgets what was stored (another leader may have written since).
    pub fn forget(&mut self) {
        *self = ShardStore::default();
    }
}

fn secret(namespace: &str, name: &str, version: u64, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                VERSION_ANNOTATION.to_string(),
                version.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The name of shard `index` of the snapshot Secret `name`.
pub fn shard_secret_name(name: &str, index: usize) -> String {
    format!("{name}-{index}")
}

/// The Secret holding one shard.
pub fn shard_secret(namespace: &str, name: &str, version: u64, write: &ShardWrite) -> Secret {
    let data = BTreeMap::from([(write.shard.key.clone(), ByteString(write.bytes.clone()))]);
    secret(
        namespace,
        &shard_secret_name(name, write.index),
        version,
        data,
    )
}

/// The manifest Secret `name`.
pub fn manifest_secret(namespace: &str, name: &str, manifest: &ShardManifest) -> Secret {
    let json = serde_json::to_vec(manifest).expect("manifests always serialize");
    let mut s = secret(
        namespace,
        name,
        manifest.version,
        BTreeMap::from([(MANIFEST_KEY.to_string(), ByteString(json))]),
    );
    if let Some(a) = &mut s.metadata.annotations {
        a.insert(HASH_ANNOTATION.to_string(), manifest.hash.clone());
    }
    s
}

/// The (version, hash) a snapshot Secret says it holds, from its annotations (which the sharded
/// manifest and the whole snapshot of earlier releases both carry).
pub fn stored_version(secret: &Secret) -> Option<(u64, String)> {
    let a = secret.metadata.annotations.as_ref()?;
    let version = a.get(VERSION_ANNOTATION)?.parse().ok()?;
    Some((version, a.get(HASH_ANNOTATION)?.clone()))
}

#[cfg(test)]
#[path = "publish_tests.rs"]
mod tests;
