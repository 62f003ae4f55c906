//! Callers with a token: verified offline against a trusted issuer's keys ([`super::jwt`],
//! [`super::jwks`]), remembered until it expires so a caller's next requests skip the signature
//! check, then matched to the one ApiKey whose subjects it fits ([`super::subjects`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};
use switchboard_api::snapshot::{ApiKeyConfig, RouterConfig};

use super::{
    jwks::Issuers,
    jwt::{self, LEEWAY_SECS, TokenError, Verified},
};
use crate::{config::runtime::Runtime, error::ApiError};

/// Tokens verified and remembered at most, per shard ([`SHARDS`] of them).
pub const CACHED_PER_SHARD: usize = 256;
const SHARDS: usize = 16;

/// Token verification for one router process: the issuers' keys and the tokens already verified,
/// both kept across config versions.
pub struct Tokens {
    issuers: Arc<Issuers>,
    verified: [Mutex<HashMap<[u8; 32], Arc<Verified>>>; SHARDS],
}

impl Tokens {
    /// Nothing trusted yet. `on_fetch(issuer, outcome)` is told of every key fetch.
    pub fn new(on_fetch: impl Fn(&str, &'static str) + Send + Sync + 'static) -> Tokens {
        Tokens {
            issuers: Arc::new(Issuers::new(on_fetch)),
            verified: Default::default(),
        }
    }

    /// Trusts the issuers of `config` from now on (keys of issuers kept are kept).
    pub fn sync(&self, config: &RouterConfig) {
        self.issuers.sync(&config.issuers);
    }

    /// The claims of `token` as `runtime` trusts them: from the cache when this token was
    /// verified before and still holds (unexpired, its issuer still trusted with its audience,
    /// its key still held), else verified now.
    pub async fn verify(
        &self,
        runtime: &Runtime,
        token: &str,
        now_unix: i64,
    ) -> Result<Arc<Verified>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let shard = &self.verified[usize::from(digest[0]) % SHARDS];
        let cached = shard
            .lock()
            .expect("token cache lock poisoned")
            .get(&digest)
            .cloned();
        if let Some(v) = cached
            && self.still_holds(runtime, &v, now_unix)
        {
            return Ok(v);
        }
        let v = self.verify_now(runtime, token).await?;
        // The signature check reads the system clock; the token is judged at `now_unix` as a
        // cached one is, so a token is never admitted past its expiry whichever way it went.
        if !in_time(&v, now_unix) {
            return Err(TokenError::Expired);
        }
        let v = Arc::new(v);
        let mut shard = shard.lock().expect("token cache lock poisoned");
        if shard.len() >= CACHED_PER_SHARD {
            let leeway = LEEWAY_SECS as i64;
            shard.retain(|_, v| v.expires_at + leeway >= now_unix);
            if shard.len() >= CACHED_PER_SHARD {
                shard.clear();
            }
        }
        shard.insert(digest, v.clone());
        Ok(v)
    }

    fn still_holds(&self, runtime: &Runtime, v: &Verified, now_unix: i64) -> bool {
        let trusted = runtime
            .config
            .issuers
            .get(&v.issuer)
            .is_some_and(|i| i.audiences.iter().any(|a| v.audience.contains(a)));
        let key_held = || {
            let Some(keys) = self.issuers.get(&v.issuer) else {
                return false;
            };
            v.kid.as_deref().is_none_or(|kid| keys.holds(kid))
        };
        in_time(v, now_unix) && trusted && key_held()
    }

    async fn verify_now(&self, runtime: &Runtime, token: &str) -> Result<Verified, TokenError> {
        let unverified = jwt::peek(token)?;
        let issuer = runtime
            .config
            .issuers
            .get(&unverified.issuer)
            .ok_or_else(|| TokenError::UntrustedIssuer(unverified.issuer.clone()))?;
        let keys = self
            .issuers
            .get(&unverified.issuer)
            .ok_or_else(|| TokenError::KeysUnavailable(unverified.issuer.clone()))?;
        let set = keys
            .keys_for(unverified.kid.as_deref(), unverified.alg)
            .await?;
        let key = set
            .find(unverified.kid.as_deref(), unverified.alg)
            .ok_or_else(|| TokenError::KeysUnavailable(unverified.issuer.clone()))?;
        jwt::verify(token, &unverified, key, &issuer.issuer, &issuer.audiences)
    }
}

/// Whether `now_unix` is within the token's `nbf`..`exp`, give or take [`LEEWAY_SECS`].
fn in_time(v: &Verified, now_unix: i64) -> bool {
    let leeway = LEEWAY_SECS as i64;
    now_unix <= v.expires_at.saturating_add(leeway)
        && v.not_before
            .is_none_or(|nbf| nbf <= now_unix.saturating_add(leeway))
}

/// The one key `token` may use in `runtime`: refused when no ApiKey lists a subject it fits, or
/// when several do (as a key two ApiKeys held would be).
pub fn key_for<'a>(runtime: &'a Runtime, token: &Verified) -> Result<&'a ApiKeyConfig, ApiError> {
    let keys = runtime.subjects.keys_for(token);
    match keys.as_slice() {
        [one] => runtime
            .config
            .api_keys
            .get(*one)
            .ok_or_else(|| ApiError::Internal(format!("subject index names unknown key {one}"))),
        [] => Err(ApiError::IdentityNotGranted {
            issuer: token.issuer.clone(),
            subject: token.subject.clone(),
        }),
        many => Err(ApiError::AmbiguousIdentity {
            subject: token.subject.clone(),
            keys: many
                .iter()
                .filter_map(|k| runtime.config.api_keys.get(*k).map(ApiKeyConfig::id))
                .collect(),
        }),
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
