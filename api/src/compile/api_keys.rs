//! ApiKeys: the key read from its Secret and hashed; a key held by two ApiKeys rejects both.

use foldhash::{HashMap, HashMapExt};

use super::{
    Compiler, Issues, Rejection, check_fit,
    compiler::{Key, KeySet, object_ref},
    globs,
    index::ReadyKey,
    reason::*,
};
use crate::{
    resources::{ApiKey, SecretKeyRef},
    snapshot::{ApiKeyConfig, RateLimits, hash_api_key, key_prefix},
};

/// The key inside a generated ApiKey Secret that holds the key clients send.
pub const GENERATED_KEY_SECRET_KEY: &str = "key";

/// The Secret the operator generates for an ApiKey without `spec.secretRef`:
/// `switchboard-apikey-<name>`, in the ApiKey's namespace, holding the key under
/// [`GENERATED_KEY_SECRET_KEY`].
pub fn generated_key_secret_name(api_key_name: &str) -> String {
    format!("switchboard-apikey-{api_key_name}")
}

/// Shortest key (in characters, after trimming) an ApiKey may hold.
pub const MIN_KEY_CHARS: usize = 16;

/// ApiKeys whose place in Budget scopes may have changed, with what they were before (`None`:
/// not ready).
pub(super) type Moved = HashMap<Key, Option<ReadyKey>>;

impl Compiler {
    /// Recompiles the marked ApiKeys on their own, then settles each key hash they held or hold:
    /// one holder is ready, two or more are all rejected. Returns the keys whose place in Budget
    /// scopes may have changed.
    pub(super) fn settle_api_keys(&mut self, dirty: KeySet) -> Moved {
        let mut moved = Moved::new();
        let mut released = Vec::new();
        let mut drafts = Vec::new();
        for key in dirty {
            // The first recompile has nothing to take back.
            if !self.fresh() {
                released.extend(self.index.release(&key));
                let was = self.index.unready(&key);
                moved.insert(key.clone(), was);
            }
            let Some(api_key) = self.api_keys.get(&key).cloned() else {
                self.forget(object_ref("ApiKey", &key));
                continue;
            };
            match self.compile_api_key(&key, &api_key) {
                Ok(config) => {
                    self.index.hold(key.clone(), config.key_hash.clone());
                    drafts.push((key, config));
                }
                Err(rejection) => {
                    let r = object_ref("ApiKey", &key);
                    self.reject(r, api_key.metadata.generation, rejection);
                }
            }
        }
        // Hashes whose holders were settled as a group (none, or two and more).
        let mut settled = foldhash::HashSet::default();
        for (key, config) in drafts {
            if self.index.holders.get(&config.key_hash).map(|h| h.len()) == Some(1) {
                self.key_ready(&key, Ok(config));
            } else if settled.insert(config.key_hash.clone()) {
                self.settle_hash(&config.key_hash, &mut moved);
            }
        }
        for hash in released {
            let holders = self.index.holders.get(&hash);
            let ready = holders.is_some_and(|h| {
                h.len() == 1 && h.iter().all(|k| self.index.ready_key(k).is_some())
            });
            if !ready && settled.insert(hash.clone()) {
                self.settle_hash(&hash, &mut moved);
            }
        }
        moved
    }

    /// Settles every holder of `hash`: none takes it out of the snapshot, one is ready, two and
    /// more are all rejected.
    fn settle_hash(&mut self, hash: &str, moved: &mut Moved) {
        let holders: Vec<Key> = self
            .index
            .holders
            .get(hash)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        for key in &holders {
            if !self.fresh() && !moved.contains_key(key) {
                let was = self.index.unready(key);
                moved.insert(key.clone(), was);
            }
        }
        match holders.as_slice() {
            [] => {
                self.put::<ApiKeyConfig>(hash, None);
            }
            [one] => {
                let api_key = self.api_keys[one].clone();
                let config = self.compile_api_key(one, &api_key);
                self.key_ready(one, config);
            }
            many => {
                self.put::<ApiKeyConfig>(hash, None);
                for key in many {
                    self.index.unready(key);
                    let others = many
                        .iter()
                        .filter(|k| *k != key)
                        .map(|k| format!("ApiKey {}", k.id()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let message = format!(
                        "spec.secretRef: the key is also held by {others}; every ApiKey needs \
                         its own key, so all of them are left out"
                    );
                    let generation = self.api_keys[key].metadata.generation;
                    let r = object_ref("ApiKey", key);
                    self.reject(r, generation, Rejection::new(DUPLICATE_KEY, message));
                }
            }
        }
    }

    /// Puts the only holder of a key into the snapshot.
    fn key_ready(&mut self, key: &Key, config: Result<ApiKeyConfig, Rejection>) {
        let api_key = self.api_keys[key].clone();
        let generation = api_key.metadata.generation;
        let r = object_ref("ApiKey", key);
        let config = match config {
            Ok(config) => config,
            Err(rejection) => {
                self.reject(r, generation, rejection);
                return;
            }
        };
        let mut notes = String::from("key accepted");
        if let Some(team) = &config.team {
            notes.push_str(", team ");
            notes.push_str(team);
        }
        if config.disabled {
            notes.push_str(", disabled");
        }
        let team = config.team.clone();
        self.put_api_key(config);
        self.index.make_ready(key, ReadyKey { key: api_key, team });
        self.ready(r, generation, COMPILED, notes);
    }

    fn compile_api_key(&self, r: &Key, key: &ApiKey) -> Result<ApiKeyConfig, Rejection> {
        let spec = &key.spec;
        let mut issues = Issues::default();
        let field = "spec.secretRef";

        let generated;
        let secret_ref = match &spec.secret_ref {
            Some(s) => s,
            None => {
                generated = SecretKeyRef {
                    name: generated_key_secret_name(r.name()),
                    key: GENERATED_KEY_SECRET_KEY.to_string(),
                };
                &generated
            }
        };
        let value = match self.secret_value(r.namespace(), secret_ref) {
            Ok(value) => Some(value),
            Err(e) => {
                let message = if spec.secret_ref.is_some() {
                    format!("{field}: {}", e.message)
                } else {
                    format!(
                        "{field} is unset, so the key is read from the generated Secret: {}; the \
                         operator generates it for ApiKeys without spec.secretRef (without the \
                         operator, set spec.secretRef to a Secret holding the key)",
                        e.message
                    )
                };
                issues.add(e.reason, message);
                None
            }
        };
        let value = value.filter(|v| {
            let location = || {
                format!(
                    "Secret {}/{} key {:?}",
                    r.namespace(),
                    secret_ref.name,
                    secret_ref.key
                )
            };
            let chars = v.chars().count();
            if v.chars()
                .any(|c| c.is_whitespace() || !c.is_ascii_graphic())
            {
                issues.add(
                    INVALID_KEY,
                    format!(
                        "{field}: the key in {} contains whitespace, control or non-ASCII \
                         characters, which clients cannot send in a header",
                        location()
                    ),
                );
                false
            } else if chars < MIN_KEY_CHARS {
                issues.add(
                    WEAK_KEY,
                    format!(
                        "{field}: the key in {} is {chars} characters long; at least \
                         {MIN_KEY_CHARS} are required",
                        location()
                    ),
                );
                false
            } else {
                true
            }
        });

        let team = spec
            .team
            .clone()
            .or_else(|| {
                key.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("team").cloned())
            })
            .filter(|t| !t.is_empty());

        globs("spec.allowedModels", &spec.allowed_models, &mut issues);
        globs("spec.deniedModels", &spec.denied_models, &mut issues);

        let expires_at =
            spec.expires_at
                .as_ref()
                .and_then(|s| match s.parse::<jiff::Timestamp>() {
                    Ok(ts) => Some(ts.as_second()),
                    Err(e) => {
                        issues.add(
                            INVALID_EXPIRY,
                            format!(
                                "spec.expiresAt: {s:?} is not an RFC 3339 timestamp such as \
                             \"2027-01-01T00:00:00Z\" ({e})"
                            ),
                        );
                        None
                    }
                });

        let rate_limits = spec.rate_limits.clone().unwrap_or_default();
        let RateLimits {
            requests_per_minute,
            tokens_per_minute,
            concurrent_requests,
        } = &rate_limits;
        for (name, value) in [
            ("requestsPerMinute", requests_per_minute.map(u64::from)),
            ("tokensPerMinute", *tokens_per_minute),
            ("concurrentRequests", concurrent_requests.map(u64::from)),
        ] {
            if value == Some(0) {
                issues.add(
                    INVALID_RATE_LIMIT,
                    format!("spec.rateLimits.{name}: must be at least 1 (omit it for no limit)"),
                );
            }
        }

        check_fit(spec.fit_max_tokens.as_ref(), &mut issues);

        issues.finish()?;
        let value = value.expect("issues are empty only when the key resolved");
        Ok(ApiKeyConfig {
            namespace: r.namespace().to_string(),
            name: r.name().to_string(),
            team,
            key_hash: hash_api_key(&value),
            prefix: key_prefix(&value),
            allowed_models: spec.allowed_models.clone(),
            denied_models: spec.denied_models.clone(),
            rate_limits,
            provider_policy: spec.provider_policy.clone().unwrap_or_default(),
            expires_at,
            disabled: spec.disabled,
            fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
            record_content: spec.record_content,
        })
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
