//! ApiKeys: the key read from its Secret and hashed; a key held by two ApiKeys rejects both.

use std::collections::BTreeMap;

use super::{Compiler, Issues, Rejection, check_fit, globs, reason::*};
use crate::{
    manifest::ObjectRef,
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

impl<'a> Compiler<'a> {
    pub(super) fn api_keys(&mut self, keys: Vec<(ObjectRef, &'a ApiKey)>) {
        let mut compiled: Vec<(ObjectRef, &ApiKey, ApiKeyConfig)> = Vec::new();
        for (r, key) in keys {
            match self.compile_api_key(&r, key) {
                Ok(config) => compiled.push((r, key, config)),
                Err(rejection) => self.reject(r, key.metadata.generation, rejection),
            }
        }

        let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (r, _, config) in &compiled {
            holders
                .entry(config.key_hash.clone())
                .or_default()
                .push(format!("{}/{}", r.namespace, r.name));
        }
        for (r, key, config) in compiled {
            let generation = key.metadata.generation;
            let id = config.id();
            let others: Vec<&String> = holders[&config.key_hash]
                .iter()
                .filter(|h| **h != id)
                .collect();
            if !others.is_empty() {
                let others = others
                    .iter()
                    .map(|o| format!("ApiKey {o}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "spec.secretRef: the key is also held by {others}; every ApiKey needs its \
                     own key, so all of them are left out"
                );
                self.reject(r, generation, Rejection::new(DUPLICATE_KEY, message));
                continue;
            }
            let mut notes = vec!["key accepted".to_string()];
            if let Some(team) = &config.team {
                notes.push(format!("team {team}"));
            }
            if config.disabled {
                notes.push("disabled".into());
            }
            self.ready_keys.insert(
                (r.namespace.clone(), r.name.clone()),
                (key, config.team.clone()),
            );
            self.config.api_keys.insert(config.key_hash.clone(), config);
            self.ready(r, generation, COMPILED, notes.join(", "));
        }
    }

    fn compile_api_key(&self, r: &ObjectRef, key: &ApiKey) -> Result<ApiKeyConfig, Rejection> {
        let spec = &key.spec;
        let mut issues = Issues::default();
        let field = "spec.secretRef";

        let generated;
        let secret_ref = match &spec.secret_ref {
            Some(s) => s,
            None => {
                generated = SecretKeyRef {
                    name: generated_key_secret_name(&r.name),
                    key: GENERATED_KEY_SECRET_KEY.to_string(),
                };
                &generated
            }
        };
        let value = match self.secret_value(&r.namespace, secret_ref) {
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
            let location = format!(
                "Secret {}/{} key {:?}",
                r.namespace, secret_ref.name, secret_ref.key
            );
            let chars = v.chars().count();
            if v.chars()
                .any(|c| c.is_whitespace() || !c.is_ascii_graphic())
            {
                issues.add(
                    INVALID_KEY,
                    format!(
                        "{field}: the key in {location} contains whitespace, control or non-ASCII \
                         characters, which clients cannot send in a header"
                    ),
                );
                false
            } else if chars < MIN_KEY_CHARS {
                issues.add(
                    WEAK_KEY,
                    format!(
                        "{field}: the key in {location} is {chars} characters long; at least \
                         {MIN_KEY_CHARS} are required"
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
            namespace: r.namespace.clone(),
            name: r.name.clone(),
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
        })
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
