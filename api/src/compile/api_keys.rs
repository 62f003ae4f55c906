//! ApiKeys: the key read from its Secret and hashed; a key held by two ApiKeys rejects both, as do
//! subjects of two ApiKeys naming the same caller (the subjects themselves: [`super::subjects`]).

use std::{collections::BTreeMap, sync::Arc};

use foldhash::{HashMap, HashMapExt};

use super::{
    Compiler, Issues, Rejection,
    budget_scope::{Labels, ReadyKey},
    check_fit,
    compiler::object_ref,
    globs,
    index::Few,
    key::{Key, KeySet},
    reason::*,
    subjects,
};
use crate::{
    identity::is_jwt_shaped,
    resources::{ApiKey, SecretKeyRef, Subject},
    snapshot::{ApiKeyConfig, RateLimits, digest::member_digest, hash_api_key, key_prefix},
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

/// The object of an ApiKey being settled: held by the compiler, or taken apart by a one-shot
/// compile into what settling still reads.
enum Origin {
    Held(Arc<ApiKey>),
    Taken {
        generation: Option<i64>,
        labels: Option<BTreeMap<String, String>>,
        subjects: Vec<Subject>,
    },
}

impl Origin {
    fn generation(&self) -> Option<i64> {
        match self {
            Origin::Held(key) => key.metadata.generation,
            Origin::Taken { generation, .. } => *generation,
        }
    }

    fn subjects(&self) -> &[Subject] {
        match self {
            Origin::Held(key) => &key.spec.subjects,
            Origin::Taken { subjects, .. } => subjects,
        }
    }

    fn into_labels(self) -> Labels {
        match self {
            Origin::Held(key) => Labels::Held(key),
            Origin::Taken { labels, .. } => Labels::Taken(labels),
        }
    }
}

impl Compiler {
    /// Recompiles the marked ApiKeys on their own, then settles every key holding a key hash or
    /// granting a caller they held or hold: a key that is the only holder of its hash and the
    /// only key granting each of its callers is ready; the others are all rejected. Returns the
    /// keys whose place in Budget scopes may have changed.
    pub(super) fn settle_api_keys(&mut self, dirty: KeySet) -> Moved {
        let mut moved = Moved::new();
        let mut hashes = Vec::new();
        let mut callers = Vec::new();
        let mut drafts = Vec::with_capacity(dirty.len());
        if self.fresh() {
            self.index.reserve_keys(dirty.iter());
            self.reserve_fresh(dirty.len());
        }
        for key in dirty {
            // The first recompile has nothing to take back.
            if !self.fresh() {
                hashes.extend(self.index.release(&key));
                callers.extend(self.index.release_subjects(&key));
                let was = self.index.unready(&key);
                moved.insert(key.clone(), was);
            }
            let Some(api_key) = self.api_keys.get(&key).cloned() else {
                self.forget(object_ref("ApiKey", &key));
                continue;
            };
            let compiled = self.compile_api_key(&key, &api_key);
            let origin = self.origin(&key, api_key);
            match compiled {
                Ok(config) => {
                    self.index.hold(key.clone(), config.key_hash.clone());
                    self.index
                        .hold_subjects(&key, subjects::callers(&config.subjects));
                    // Boxed: the drafts are a small list beside the snapshot's, and each config
                    // takes memory the objects dropped before it gave back.
                    drafts.push((key, Box::new(config), origin));
                }
                Err(rejection) => {
                    let r = object_ref("ApiKey", &key);
                    self.reject(r, origin.generation(), rejection);
                }
            }
        }
        // A key alone with its hash and callers (the usual case: every key of the first
        // recompile but the clashing ones) is ready at once. Every other key holding a hash or
        // granting a caller that changed hands is settled again, unless it is alone and ready
        // already; a hash left without holders leaves the snapshot.
        let mut clashing: HashMap<Key, (ApiKeyConfig, Origin)> = HashMap::new();
        for (key, config, origin) in drafts {
            if self.alone(&key) {
                self.key_ready(&key, Ok(*config), origin);
            } else {
                hashes.push(config.key_hash.clone());
                callers.extend(subjects::callers(&config.subjects));
                clashing.insert(key, (*config, origin));
            }
        }
        let settled = |compiler: &Compiler, key: &Key| {
            compiler.alone(key) && compiler.index.ready_key(key).is_some()
        };
        let mut settle = KeySet::default();
        for hash in hashes {
            match self.index.holders.get(&hash) {
                Some(holders) => {
                    settle.extend(holders.iter().filter(|k| !settled(self, k)).cloned());
                }
                None => {
                    self.put::<ApiKeyConfig>(&hash, None);
                }
            }
        }
        for caller in callers {
            if let Some(holders) = self.index.subject_holders.get(&caller) {
                settle.extend(holders.iter().filter(|k| !settled(self, k)).cloned());
            }
        }
        for key in settle {
            let draft = clashing.remove(&key);
            self.settle_key(&key, draft, &mut moved);
        }
        moved
    }

    /// Whether `key` is the only ApiKey holding its hash and granting each of its callers.
    fn alone(&self, key: &Key) -> bool {
        let only = |set: Option<&Few<Key>>| set.is_some_and(|s| s.len() == 1);
        let hash_alone = self
            .index
            .key_hashes
            .get(key)
            .is_some_and(|hash| only(self.index.holders.get(hash)));
        hash_alone
            && self.index.key_subjects.get(key).is_none_or(|callers| {
                callers
                    .iter()
                    .all(|c| only(self.index.subject_holders.get(c)))
            })
    }

    /// Settles one ApiKey that compiled on its own (`draft`, when it was just compiled): ready
    /// when no other key holds its hash or grants one of its callers, else rejected and out of
    /// the snapshot.
    fn settle_key(&mut self, key: &Key, draft: Option<(ApiKeyConfig, Origin)>, moved: &mut Moved) {
        if !self.fresh() && !moved.contains_key(key) {
            let was = self.index.unready(key);
            moved.insert(key.clone(), was);
        }
        let Some(hash) = self.index.key_hashes.get(key).cloned() else {
            return;
        };
        // A one-shot compile settles only keys it just compiled: it has every draft.
        let (draft, origin) = match draft {
            Some((config, origin)) => (Some(config), origin),
            None => (None, Origin::Held(self.api_keys[key].clone())),
        };
        let others = |set: Option<&Few<Key>>| -> Vec<String> {
            set.into_iter()
                .flatten()
                .filter(|k| *k != key)
                .map(|k| format!("ApiKey {}", k.id()))
                .collect()
        };
        let same_key = others(self.index.holders.get(&hash));
        let rejection = if !same_key.is_empty() {
            let message = format!(
                "spec.secretRef: the key is also held by {}; every ApiKey needs its own key, so \
                 all of them are left out",
                same_key.join(", ")
            );
            Some(Rejection::new(DUPLICATE_KEY, message))
        } else {
            let granted = self
                .index
                .key_subjects
                .get(key)
                .cloned()
                .unwrap_or_default();
            let overlaps: Vec<(usize, Vec<String>)> = granted
                .iter()
                .enumerate()
                .map(|(i, caller)| (i, others(self.index.subject_holders.get(caller))))
                .filter(|(_, others)| !others.is_empty())
                .collect();
            (!overlaps.is_empty()).then(|| {
                let granted = subjects::compile_subjects(origin.subjects(), &mut Issues::default());
                let message = subjects::overlap_message(&granted, &overlaps);
                Rejection::new(OVERLAPPING_SUBJECTS, message)
            })
        };
        match rejection {
            None => {
                let config = match (draft, &origin) {
                    (Some(config), _) => Ok(config),
                    (None, Origin::Held(api_key)) => self.compile_api_key(key, api_key),
                    (None, Origin::Taken { .. }) => unreachable!("taken only with a draft"),
                };
                self.key_ready(key, config, origin);
            }
            Some(rejection) => {
                self.put::<ApiKeyConfig>(&hash, None);
                self.index.unready(key);
                self.reject(object_ref("ApiKey", key), origin.generation(), rejection);
            }
        }
    }

    /// Puts the only holder of a key into the snapshot.
    fn key_ready(&mut self, key: &Key, config: Result<ApiKeyConfig, Rejection>, origin: Origin) {
        let generation = origin.generation();
        let r = object_ref("ApiKey", key);
        let config = match config {
            Ok(config) => config,
            Err(rejection) => {
                self.reject(r, generation, rejection);
                return;
            }
        };
        let mut notes = String::from(if config.prefix.is_empty() {
            "subjects accepted"
        } else {
            "key accepted"
        });
        for note in subjects::notes(&config.subjects, &self.config.issuers) {
            notes.push_str(", ");
            notes.push_str(&note);
        }
        if let Some(team) = &config.team {
            notes.push_str(", team ");
            notes.push_str(team);
        }
        if config.disabled {
            notes.push_str(", disabled");
        }
        let team = config.team.clone();
        self.put_api_key(config);
        let member = member_digest(key.id());
        self.index.make_ready(
            key,
            ReadyKey {
                labels: origin.into_labels(),
                team,
                member,
            },
        );
        self.ready(r, generation, COMPILED, notes);
    }

    /// `api_key`, just compiled, as settling it reads it further. A one-shot compile settles
    /// every key once and reads nothing else of it: the object is dropped here, so the parsed
    /// objects are not all held beside the snapshot being built.
    fn origin(&mut self, key: &Key, api_key: Arc<ApiKey>) -> Origin {
        if !self.one_shot {
            return Origin::Held(api_key);
        }
        self.api_keys.swap_remove(key);
        match Arc::try_unwrap(api_key) {
            Ok(owned) => Origin::Taken {
                generation: owned.metadata.generation,
                labels: owned.metadata.labels,
                subjects: owned.spec.subjects,
            },
            Err(shared) => Origin::Taken {
                generation: shared.metadata.generation,
                labels: shared.metadata.labels.clone(),
                subjects: shared.spec.subjects.clone(),
            },
        }
    }

    fn compile_api_key(&self, r: &Key, key: &ApiKey) -> Result<ApiKeyConfig, Rejection> {
        let spec = &key.spec;
        let mut issues = Issues::default();

        let subjects = subjects::compile_subjects(&spec.subjects, &mut issues);
        let by_subjects_only = spec.secret_ref.is_none() && !spec.subjects.is_empty();
        let value = if by_subjects_only {
            None
        } else {
            self.key_value(r, key, &mut issues)
        };

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
        let cache = super::cache::compile_cache(spec.cache.as_ref(), &mut issues);

        issues.finish()?;
        let (key_hash, prefix) = match value {
            Some(value) => (hash_api_key(&value), key_prefix(&value)),
            None => (
                subjects::subject_key_id(r.namespace(), r.name()),
                String::new(),
            ),
        };
        Ok(ApiKeyConfig {
            namespace: r.namespace().to_string(),
            name: r.name().to_string(),
            team,
            key_hash,
            prefix,
            allowed_models: spec.allowed_models.clone(),
            denied_models: spec.denied_models.clone(),
            rate_limits,
            provider_policy: spec.provider_policy.clone().unwrap_or_default(),
            expires_at,
            disabled: spec.disabled,
            fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
            record_content: spec.record_content,
            cache,
            subjects,
        })
    }

    /// The key an ApiKey holds: from `spec.secretRef`, or the generated Secret when it is unset;
    /// each problem added to `issues`.
    fn key_value(&self, r: &Key, key: &ApiKey, issues: &mut Issues) -> Option<String> {
        let spec = &key.spec;
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
        value.filter(|v| {
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
            } else if is_jwt_shaped(v) {
                issues.add(
                    INVALID_KEY,
                    format!(
                        "{field}: the key in {} is shaped like a JWT (three dot-separated \
                         base64url parts starting with eyJ), which routers read as a token; use a \
                         key of another shape",
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
        })
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
