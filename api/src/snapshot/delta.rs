//! A change from one snapshot version to the next: the entries added or changed and the keys
//! removed, section by section. The operator sends one when a change is small; a router applies
//! it only to the exact version (and hash) it was made from, and verifies the hash of the result,
//! so a router that missed a version asks for the whole snapshot instead.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    ApiKeyConfig, BudgetConfig, IssuerConfig, ProviderConfig, RouteConfig, RouterConfig, Section,
    SnapshotDigest, digest::Digested,
};

/// One section's changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "V: Deserialize<'de>"))]
pub struct SectionDelta<V> {
    /// Entries added or changed, by key.
    #[serde(default)]
    pub upsert: BTreeMap<String, V>,
    /// Keys removed.
    #[serde(default)]
    pub remove: BTreeSet<String>,
}

impl<V> Default for SectionDelta<V> {
    fn default() -> Self {
        SectionDelta {
            upsert: BTreeMap::new(),
            remove: BTreeSet::new(),
        }
    }
}

impl<V: Digested> SectionDelta<V> {
    /// Takes the entries it replaces or removes out of `digest` and counts its own in.
    fn rehash(&self, section: Section, current: &BTreeMap<String, V>, digest: &mut SnapshotDigest) {
        for key in self.upsert.keys().chain(&self.remove) {
            if let Some(old) = current.get(key) {
                digest.remove(section, &old.digest(section, key));
            }
        }
        for (key, new) in &self.upsert {
            digest.add(section, &new.digest(section, key));
        }
    }

    fn apply(&self, current: &mut BTreeMap<String, V>)
    where
        V: Clone,
    {
        for key in &self.remove {
            current.remove(key);
        }
        for (key, value) in &self.upsert {
            current.insert(key.clone(), value.clone());
        }
    }

    fn len(&self) -> usize {
        self.upsert.len() + self.remove.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads key changes, setting each key's `key_hash` from the hash it is filed under.
fn key_changes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SectionDelta<ApiKeyConfig>, D::Error> {
    let mut delta = SectionDelta::<ApiKeyConfig>::deserialize(deserializer)?;
    for (hash, key) in &mut delta.upsert {
        key.key_hash.clone_from(hash);
    }
    Ok(delta)
}

/// A change between two snapshot versions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotDelta {
    /// The version it applies to.
    pub from_version: u64,
    /// The hash of the version it applies to.
    pub from_hash: String,
    /// The version it makes.
    pub version: u64,
    /// The content hash of the version it makes.
    pub hash: String,
    /// Provider changes.
    #[serde(default)]
    pub providers: SectionDelta<ProviderConfig>,
    /// Route changes.
    #[serde(default)]
    pub routes: SectionDelta<RouteConfig>,
    /// Key changes.
    #[serde(default, deserialize_with = "key_changes")]
    pub api_keys: SectionDelta<ApiKeyConfig>,
    /// Budget changes.
    #[serde(default)]
    pub budgets: SectionDelta<BudgetConfig>,
    /// Trusted issuer changes.
    #[serde(default, skip_serializing_if = "SectionDelta::is_empty")]
    pub issuers: SectionDelta<IssuerConfig>,
}

/// Why a delta was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// It was made from another version than the one running: the whole snapshot is needed.
    #[error(
        "the delta applies to version {from_version} ({from_hash}), not the running {running_version} ({running_hash})"
    )]
    Base {
        /// What the delta applies to.
        from_version: u64,
        /// Its hash.
        from_hash: String,
        /// What is running.
        running_version: u64,
        /// Its hash.
        running_hash: String,
    },
    /// Applying it would not give the snapshot it names, or a route would target nothing.
    #[error("invalid delta: {0}")]
    Invalid(String),
}

impl SnapshotDelta {
    /// Entries it changes or removes.
    pub fn len(&self) -> usize {
        self.providers.len()
            + self.routes.len()
            + self.api_keys.len()
            + self.budgets.len()
            + self.issuers.len()
    }

    /// Whether it changes nothing (only the version moves).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies the delta to `config`, whose digest is `digest`, checking first that it was made
    /// from `config`'s version and hash, that the result hashes to the delta's `hash`, and that
    /// every route of the result targets a provider and model it holds (what
    /// [`RouterConfig::validate`] checks of a whole snapshot). On any error nothing changed.
    /// Costs what the delta touches, plus one pass over the routes when providers change.
    pub fn apply(
        &self,
        config: &mut RouterConfig,
        digest: &mut SnapshotDigest,
    ) -> Result<(), DeltaError> {
        if (self.from_version, self.from_hash.as_str()) != (config.version, config.hash.as_str()) {
            return Err(DeltaError::Base {
                from_version: self.from_version,
                from_hash: self.from_hash.clone(),
                running_version: config.version,
                running_hash: config.hash.clone(),
            });
        }
        let mut next = *digest;
        self.providers
            .rehash(Section::Providers, &config.providers, &mut next);
        self.routes
            .rehash(Section::Routes, &config.routes, &mut next);
        self.api_keys
            .rehash(Section::ApiKeys, &config.api_keys, &mut next);
        self.budgets
            .rehash(Section::Budgets, &config.budgets, &mut next);
        self.issuers
            .rehash(Section::Issuers, &config.issuers, &mut next);
        if next.hash() != self.hash {
            return Err(DeltaError::Invalid(
                "the result does not hash to the delta's hash".into(),
            ));
        }
        self.check_routes(config).map_err(DeltaError::Invalid)?;
        self.providers.apply(&mut config.providers);
        self.routes.apply(&mut config.routes);
        self.api_keys.apply(&mut config.api_keys);
        self.budgets.apply(&mut config.budgets);
        self.issuers.apply(&mut config.issuers);
        config.version = self.version;
        config.hash = self.hash.clone();
        *digest = next;
        Ok(())
    }

    /// Every route the delta touches, or that targets a provider it touches, must target
    /// providers and models of the result.
    fn check_routes(&self, config: &RouterConfig) -> Result<(), String> {
        let provider = |id: &str| -> Option<&ProviderConfig> {
            if self.providers.remove.contains(id) && !self.providers.upsert.contains_key(id) {
                return None;
            }
            self.providers
                .upsert
                .get(id)
                .or_else(|| config.providers.get(id))
        };
        let touched = |route: &RouteConfig| {
            route.targets.iter().any(|t| {
                self.providers.upsert.contains_key(&t.provider)
                    || self.providers.remove.contains(&t.provider)
            })
        };
        let check = |name: &str, route: &RouteConfig| -> Result<(), String> {
            if route.model != name {
                return Err(format!("route {name} is filed under the wrong name"));
            }
            for t in &route.targets {
                let p = provider(&t.provider).ok_or_else(|| {
                    format!("route {name} targets unknown provider {}", t.provider)
                })?;
                if !p.models.contains_key(&t.model) {
                    return Err(format!(
                        "route {name} targets model {} that provider {} does not offer",
                        t.model, t.provider
                    ));
                }
            }
            Ok(())
        };
        for (name, route) in &self.routes.upsert {
            check(name, route)?;
        }
        if !self.providers.is_empty() {
            for (name, route) in &config.routes {
                let replaced =
                    self.routes.upsert.contains_key(name) || self.routes.remove.contains(name);
                if !replaced && touched(route) {
                    check(name, route)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        compile,
        testing::scale::{self, Scale},
    };

    fn base() -> (RouterConfig, SnapshotDigest) {
        let mut c = compile(&scale::objects(&Scale::keys(200))).config;
        c.version = 3;
        let d = SnapshotDigest::of(&c);
        (c, d)
    }

    fn delta_to(from: &RouterConfig, to: &RouterConfig) -> SnapshotDelta {
        fn section<V: Clone + PartialEq>(
            a: &BTreeMap<String, V>,
            b: &BTreeMap<String, V>,
        ) -> SectionDelta<V> {
            SectionDelta {
                upsert: b
                    .iter()
                    .filter(|(k, v)| a.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                remove: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
            }
        }
        SnapshotDelta {
            from_version: from.version,
            from_hash: from.hash.clone(),
            version: from.version + 1,
            hash: to.content_hash(),
            providers: section(&from.providers, &to.providers),
            routes: section(&from.routes, &to.routes),
            api_keys: section(&from.api_keys, &to.api_keys),
            budgets: section(&from.budgets, &to.budgets),
            issuers: section(&from.issuers, &to.issuers),
        }
    }

    #[test]
    fn a_delta_gives_exactly_the_next_snapshot() {
        let (mut c, mut d) = base();
        let mut next = c.clone();
        let gone = next.api_keys.keys().next().unwrap().clone();
        next.api_keys.remove(&gone);
        next.budgets.values_mut().next().unwrap().limit_usd = 42.into();
        let delta = delta_to(&c, &next);
        assert_eq!(delta.len(), 2);
        delta.apply(&mut c, &mut d).unwrap();
        next.version = 4;
        next.hash = next.content_hash();
        assert_eq!(c, next);
        assert_eq!(d, SnapshotDigest::of(&next));
    }

    #[test]
    fn a_delta_from_another_version_or_with_a_wrong_hash_changes_nothing() {
        let (mut c, mut d) = base();
        let mut next = c.clone();
        next.api_keys.clear();
        let mut delta = delta_to(&c, &next);
        delta.from_version = 2;
        let before = (c.clone(), d);
        assert!(matches!(
            delta.apply(&mut c, &mut d),
            Err(DeltaError::Base { .. })
        ));
        delta.from_version = 3;
        delta.hash = "0".repeat(64);
        assert!(matches!(
            delta.apply(&mut c, &mut d),
            Err(DeltaError::Invalid(_))
        ));
        assert_eq!((c, d), before);
    }

    #[test]
    fn removing_a_provider_a_route_still_targets_is_refused() {
        let (mut c, mut d) = base();
        let mut next = c.clone();
        next.providers.remove("acme/provider-0");
        let delta = delta_to(&c, &next);
        let err = delta.apply(&mut c, &mut d).unwrap_err();
        assert!(
            err.to_string()
                .contains("targets unknown provider acme/provider-0"),
            "{err}"
        );
    }
}
