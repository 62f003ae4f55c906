//! The snapshot the operator stored, read out of the mock Kubernetes API as a router reads its
//! mounted Secrets: the manifest Secret, then the shard Secrets it names, checked and assembled.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;
use switchboard_api::{
    RouterConfig,
    snapshot::shards::{MANIFEST_KEY, ShardManifest, assemble},
};

use crate::kube_api::MockKubeApi;

const SECRETS: &str = "api/v1/secrets";

fn data(secret: &Value, key: &str) -> Option<Vec<u8>> {
    let b64 = secret["data"][key].as_str()?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The manifest in the Secret `namespace/name`, if it holds one.
pub fn manifest(api: &MockKubeApi, namespace: &str, name: &str) -> Option<ShardManifest> {
    let secret = api.get(SECRETS, namespace, name)?;
    serde_json::from_slice(&data(&secret, MANIFEST_KEY)?).ok()
}

/// The snapshot stored under the manifest Secret `namespace/name` (shards `name-<i>`), or why
/// it cannot be read.
pub fn snapshot(api: &MockKubeApi, namespace: &str, name: &str) -> Result<RouterConfig, String> {
    let manifest = manifest(api, namespace, name).ok_or("no manifest")?;
    let shards: Vec<Value> = api
        .list(SECRETS)
        .into_iter()
        .filter(|s| {
            s["metadata"]["namespace"] == namespace
                && s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{name}-")))
        })
        .collect();
    assemble(&manifest, |key| shards.iter().find_map(|s| data(s, key))).map_err(|e| e.to_string())
}

/// Writes the stored snapshot Secrets' files into `dir` as the chart mounts them (the manifest
/// Secret's `manifest.json` and each shard Secret's `shard-<i>.json.zst`); the manifest's path.
pub fn mount(kube: &MockKubeApi, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for secret in kube.list(SECRETS) {
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        if secret["metadata"]["namespace"] != "switchboard-system"
            || !name.starts_with("switchboard-config")
        {
            continue;
        }
        for (key, value) in secret["data"].as_object().unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().unwrap())
                .unwrap();
            std::fs::write(dir.join(key), bytes).unwrap();
        }
    }
    dir.join("manifest.json")
}
