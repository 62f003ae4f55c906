//! The snapshot stored in Kubernetes objects, each under the API server's 1 MiB limit: the
//! entries split over `count` shards ([`shard_of`](super::text::shard_of)), each
//! zstd-compressed, and a small manifest naming the shards with the SHA-256 of their bytes. The
//! operator writes the shards first and the manifest last; a reader takes the shards the
//! manifest names, checks each against its hash and the assembled snapshot against the
//! manifest's content hash, so it gets one consistent version or an error, never a mix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiKeyConfig, BudgetConfig, IssuerConfig, ProviderConfig, RouteConfig, RouterConfig};

/// The data key (and mounted file name) of the manifest.
pub const MANIFEST_KEY: &str = "manifest.json";

/// Most bytes one compressed shard may take: the API server refuses a Secret whose data exceeds
/// 1 MiB; this leaves room for its metadata and for growth until the next reshard.
pub const MAX_SHARD_BYTES: usize = 768 * 1024;

/// Largest snapshot a shard may decompress to (refuses a decompression bomb).
const MAX_DECOMPRESSED_BYTES: usize = 1 << 30;

/// The data key (and mounted file name) of shard `index`.
pub fn shard_key(index: usize) -> String {
    format!("shard-{index}.json.zst")
}

/// Which shards make up which version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardManifest {
    /// The snapshot version.
    pub version: u64,
    /// Its content hash.
    pub hash: String,
    /// Every shard, in order.
    pub shards: Vec<ShardRef>,
}

/// One shard as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// Its data key (and file name): [`shard_key`].
    pub key: String,
    /// Hex SHA-256 of its compressed bytes.
    pub sha256: String,
    /// Its compressed size.
    pub bytes: u64,
}

/// The entries of one shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotShard {
    /// Providers.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Routes.
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    /// Keys.
    #[serde(default, deserialize_with = "super::keys_by_hash")]
    pub api_keys: BTreeMap<String, ApiKeyConfig>,
    /// Budgets.
    #[serde(default)]
    pub budgets: BTreeMap<String, BudgetConfig>,
    /// Trusted token issuers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issuers: BTreeMap<String, IssuerConfig>,
}

impl SnapshotShard {
    /// Moves the entries into `config`; an entry already there is an error (shards partition
    /// the snapshot).
    pub fn merge_into(self, config: &mut RouterConfig) -> Result<(), String> {
        fn merge<V>(
            into: &mut BTreeMap<String, V>,
            from: BTreeMap<String, V>,
        ) -> Result<(), String> {
            for (k, v) in from {
                if into.insert(k.clone(), v).is_some() {
                    return Err(format!("entry {k} is in two shards"));
                }
            }
            Ok(())
        }
        merge(&mut config.providers, self.providers)?;
        merge(&mut config.routes, self.routes)?;
        merge(&mut config.api_keys, self.api_keys)?;
        merge(&mut config.budgets, self.budgets)?;
        merge(&mut config.issuers, self.issuers)
    }
}

/// A shard's JSON, compressed, and its reference.
pub fn compress(key: String, json: &[u8]) -> (ShardRef, Vec<u8>) {
    let bytes = zstd::bulk::compress(json, 3).expect("compressing into memory does not fail");
    let shard = ShardRef {
        key,
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
    };
    (shard, bytes)
}

/// Why the stored snapshot could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// A shard the manifest names is not there (yet).
    #[error("shard {0} is missing")]
    Missing(String),
    /// A shard does not have the bytes the manifest names: it belongs to another version (the
    /// manifest and shards are being rewritten); read again later.
    #[error("shard {0} does not match the manifest (another version)")]
    Stale(String),
    /// The shards do not make up the snapshot the manifest names.
    #[error("invalid stored snapshot: {0}")]
    Invalid(String),
}

/// The snapshot a manifest names, assembled from the shards `read` returns by key (`None`:
/// missing). Every shard is checked against the manifest, the result against its hash.
pub fn assemble(
    manifest: &ShardManifest,
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Result<RouterConfig, ShardError> {
    let mut config = RouterConfig::default();
    for shard in &manifest.shards {
        let bytes = read(&shard.key).ok_or_else(|| ShardError::Missing(shard.key.clone()))?;
        if hex::encode(Sha256::digest(&bytes)) != shard.sha256 {
            return Err(ShardError::Stale(shard.key.clone()));
        }
        let json = decompress(&bytes)
            .map_err(|e| ShardError::Invalid(format!("shard {}: {e}", shard.key)))?;
        let entries: SnapshotShard = serde_json::from_slice(&json)
            .map_err(|e| ShardError::Invalid(format!("shard {}: {e}", shard.key)))?;
        entries
            .merge_into(&mut config)
            .map_err(ShardError::Invalid)?;
    }
    config.version = manifest.version;
    config.hash = manifest.hash.clone();
    config.validate().map_err(ShardError::Invalid)?;
    Ok(config)
}

/// Decompresses one shard, refusing one that grows past [`MAX_DECOMPRESSED_BYTES`].
fn decompress(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::new(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    decoder
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not zstd: {e}"))?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err("decompresses to more than 1 GiB".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compile,
        snapshot::text::SnapshotText,
        testing::scale::{self, Scale},
    };

    fn stored(count: usize) -> (RouterConfig, ShardManifest, BTreeMap<String, Vec<u8>>) {
        let mut config = compile(&scale::objects(&Scale::keys(400))).config;
        config.version = 9;
        let text = SnapshotText::of(&config);
        let mut files = BTreeMap::new();
        let mut shards = Vec::new();
        for i in 0..count {
            let (shard, bytes) = compress(shard_key(i), text.shard(i, count).as_bytes());
            files.insert(shard.key.clone(), bytes);
            shards.push(shard);
        }
        let manifest = ShardManifest {
            version: 9,
            hash: config.hash.clone(),
            shards,
        };
        (config, manifest, files)
    }

    #[test]
    fn shards_reassemble_into_the_snapshot() {
        for count in [1, 2, 8] {
            let (config, manifest, files) = stored(count);
            let back = assemble(&manifest, |k| files.get(k).cloned()).unwrap();
            assert_eq!(back, config);
        }
    }

    #[test]
    fn shards_compress_well_below_the_json() {
        let (config, manifest, _) = stored(1);
        let json = serde_json::to_vec(&config).unwrap().len() as u64;
        assert!(
            manifest.shards[0].bytes * 3 < json,
            "{manifest:?} vs {json}"
        );
    }

    #[test]
    fn a_missing_stale_or_foreign_shard_is_an_error() {
        let (_, manifest, mut files) = stored(2);
        let key = shard_key(1);
        let good = files.remove(&key).unwrap();
        assert_eq!(
            assemble(&manifest, |k| files.get(k).cloned()),
            Err(ShardError::Missing(key.clone()))
        );
        let (_, _, other) = stored(4);
        files.insert(key.clone(), other[&shard_key(1)].clone());
        assert_eq!(
            assemble(&manifest, |k| files.get(k).cloned()),
            Err(ShardError::Stale(key.clone()))
        );
        files.insert(key, good);
        let mut wrong = manifest.clone();
        wrong.hash = "0".repeat(64);
        assert!(matches!(
            assemble(&wrong, |k| files.get(k).cloned()),
            Err(ShardError::Invalid(_))
        ));
    }
}
