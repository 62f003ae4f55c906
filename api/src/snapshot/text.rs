//! The snapshot as JSON, kept entry by entry: what the operator sends and stores. A change
//! re-serializes the entries it touched, not the snapshot; a full snapshot, a delta or one shard
//! is then spliced from the entries' JSON without serializing anything again. Cloning it (once per
//! published version) shares every entry.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    sync::Arc,
};

use serde::Serialize;

use super::{RouterConfig, Section};

/// The JSON of every snapshot entry, by section and key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotText {
    /// Per section (in [`Section::ALL`] order): key → `"key":value`, ready to splice.
    sections: [BTreeMap<Arc<str>, Arc<str>>; 4],
    /// Bytes of JSON the entries take (each with its separating comma).
    bytes: usize,
}

fn fragment<V: Serialize>(key: &str, value: &V) -> Arc<str> {
    let mut out = serde_json::to_string(key).expect("a string serializes");
    out.push(':');
    let value = serde_json::to_string(value).expect("snapshot types always serialize");
    out.push_str(&value);
    out.into()
}

fn index(section: Section) -> usize {
    Section::ALL
        .iter()
        .position(|s| *s == section)
        .expect("every section is listed")
}

/// The shard (of `count`) an entry is stored in: FNV-1a of the section name and key, modulo
/// `count`. With a power of two, doubling the count splits each shard in two.
pub fn shard_of(section: Section, key: &str, count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in section.name().bytes().chain([0]).chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % count.max(1) as u64) as usize
}

impl SnapshotText {
    /// Every entry of `config`.
    pub fn of(config: &RouterConfig) -> SnapshotText {
        let mut text = SnapshotText::default();
        for section in Section::ALL {
            let keys: Vec<String> = match section {
                Section::Providers => config.providers.keys().cloned().collect(),
                Section::Routes => config.routes.keys().cloned().collect(),
                Section::ApiKeys => config.api_keys.keys().cloned().collect(),
                Section::Budgets => config.budgets.keys().cloned().collect(),
            };
            text.update(config, section, keys.iter().map(String::as_str));
        }
        text
    }

    /// Re-serializes the entries `keys` of `section` from `config` (removing those it no longer
    /// holds).
    pub fn update<'a>(
        &mut self,
        config: &RouterConfig,
        section: Section,
        keys: impl IntoIterator<Item = &'a str>,
    ) {
        let map = &mut self.sections[index(section)];
        for key in keys {
            let value = match section {
                Section::Providers => config.providers.get(key).map(|v| fragment(key, v)),
                Section::Routes => config.routes.get(key).map(|v| fragment(key, v)),
                Section::ApiKeys => config.api_keys.get(key).map(|v| fragment(key, v)),
                Section::Budgets => config.budgets.get(key).map(|v| fragment(key, v)),
            };
            let added = value.as_ref().map_or(0, |v| v.len() + 1);
            let removed = match value {
                Some(v) => map.insert(key.into(), v),
                None => map.remove(key),
            };
            self.bytes = self.bytes + added - removed.map_or(0, |v| v.len() + 1);
        }
    }

    /// Bytes of JSON the entries take.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(BTreeMap::is_empty)
    }

    fn object<'a>(out: &mut String, fragments: impl Iterator<Item = &'a Arc<str>>) {
        out.push('{');
        for (i, f) in fragments.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(f);
        }
        out.push('}');
    }

    /// The whole snapshot, as [`RouterConfig`] JSON with this `version` and `hash`.
    pub fn full(&self, version: u64, hash: &str) -> String {
        let mut out = String::with_capacity(self.len() + 128);
        let _ = write!(out, r#"{{"version":{version},"hash":"#);
        out.push_str(&serde_json::to_string(hash).expect("a string serializes"));
        for section in Section::ALL {
            let _ = write!(out, r#","{}":"#, section.name());
            Self::object(&mut out, self.sections[index(section)].values());
        }
        out.push('}');
        out
    }

    /// The entries of shard `shard` of `count`, as [`SnapshotShard`](super::shards::SnapshotShard)
    /// JSON.
    pub fn shard(&self, shard: usize, count: usize) -> String {
        let mut out = String::new();
        out.push('{');
        for (i, section) in Section::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, r#""{}":"#, section.name());
            let entries = self.sections[index(section)]
                .iter()
                .filter(|(k, _)| shard_of(section, k, count) == shard)
                .map(|(_, v)| v);
            Self::object(&mut out, entries);
        }
        out.push('}');
        out
    }

    /// A [`SnapshotDelta`](super::delta::SnapshotDelta) from `from` (version, hash) to `to`,
    /// carrying the entries `changed` lists: their JSON when this holds them, a removal when not.
    pub fn delta(
        &self,
        from: (u64, &str),
        to: (u64, &str),
        changed: &BTreeMap<Section, BTreeSet<String>>,
    ) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let mut out = String::new();
        let _ = write!(
            out,
            r#"{{"fromVersion":{},"fromHash":{},"version":{},"hash":{}"#,
            from.0,
            quote(from.1),
            to.0,
            quote(to.1)
        );
        for section in Section::ALL {
            let map = &self.sections[index(section)];
            let keys = changed.get(&section);
            let upserts = keys
                .into_iter()
                .flatten()
                .filter_map(|k| map.get(k.as_str()));
            let _ = write!(out, r#","{}":{{"upsert":"#, section.name());
            Self::object(&mut out, upserts);
            out.push_str(r#","remove":["#);
            let removed = keys
                .into_iter()
                .flatten()
                .filter(|k| !map.contains_key(k.as_str()));
            for (i, k) in removed.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(k));
            }
            out.push_str("]}");
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compile,
        snapshot::{delta::SnapshotDelta, shards::SnapshotShard},
        testing::scale::{self, Scale},
    };

    fn config() -> RouterConfig {
        compile(&scale::objects(&Scale::keys(300))).config
    }

    #[test]
    fn the_full_text_is_the_snapshot_json() {
        let mut c = config();
        c.version = 7;
        let text = SnapshotText::of(&c);
        let back: RouterConfig = serde_json::from_str(&text.full(7, &c.hash)).unwrap();
        assert_eq!(back, c);
        back.validate().unwrap();
        assert!(text.len() > 1000 && !text.is_empty());
    }

    #[test]
    fn shards_partition_the_entries() {
        let c = config();
        let text = SnapshotText::of(&c);
        let mut merged = RouterConfig::default();
        for i in 0..4 {
            let shard: SnapshotShard = serde_json::from_str(&text.shard(i, 4)).unwrap();
            assert!(!shard.api_keys.is_empty(), "every shard gets some keys");
            shard.merge_into(&mut merged).unwrap();
        }
        merged.hash = merged.content_hash();
        assert_eq!(merged.hash, c.hash);
    }

    #[test]
    fn a_delta_carries_changed_entries_and_removals() {
        let c = config();
        let mut after = c.clone();
        let key = after.api_keys.keys().next().unwrap().clone();
        after.api_keys.remove(&key);
        after.routes.get_mut("model-3").unwrap().retry.attempts = 4;
        after.hash = after.content_hash();
        let mut text = SnapshotText::of(&c);
        text.update(&after, Section::ApiKeys, [key.as_str()]);
        text.update(&after, Section::Routes, ["model-3"]);
        let changed = BTreeMap::from([
            (Section::ApiKeys, BTreeSet::from([key.clone()])),
            (Section::Routes, BTreeSet::from(["model-3".to_string()])),
        ]);
        let json = text.delta((1, &c.hash), (2, &after.hash), &changed);
        let delta: SnapshotDelta = serde_json::from_str(&json).unwrap();
        assert_eq!(delta.api_keys.remove, BTreeSet::from([key]));
        assert_eq!(delta.routes.upsert["model-3"].retry.attempts, 4);
        assert!(delta.providers.upsert.is_empty() && delta.budgets.remove.is_empty());
        assert_eq!(text, SnapshotText::of(&after));
    }
}
