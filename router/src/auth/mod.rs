//! Who is calling: a static key looked up by hash ([`api_key`]), or a token (a JWT, told apart by
//! its shape) verified offline against a trusted issuer and matched to the ApiKey whose subjects
//! it fits ([`token`]). Either way the caller is an ApiKey, with everything that hangs off it.

pub mod api_key;
pub mod crypto;
pub mod jwks;
pub mod jwt;
pub mod subjects;
pub mod token;

use std::sync::Arc;

use axum::http::HeaderMap;
use switchboard_api::{identity::is_jwt_shaped, snapshot::ApiKeyConfig};

use crate::{config::runtime::Runtime, error::ApiError};
pub use jwt::Verified;
pub use token::Tokens;

/// The config in force and the authenticated caller's key.
pub struct Caller {
    /// The config this request is served with, start to end.
    pub runtime: Arc<Runtime>,
    key_hash: String,
    /// The verified token, when the caller presented one rather than a key.
    pub token: Option<Arc<Verified>>,
}

impl Caller {
    /// Authenticates the request against `runtime` at `now_unix`: its key (see
    /// [`api_key::authenticate`]), or its token (verified with `tokens`), then the key's disabled
    /// flag and expiry. `found` sees the key and token first (to record who is calling without
    /// looking them up again).
    pub async fn authenticate(
        runtime: Arc<Runtime>,
        tokens: &Tokens,
        headers: &HeaderMap,
        now_unix: i64,
        found: impl FnOnce(&ApiKeyConfig, Option<&Verified>),
    ) -> Result<Caller, ApiError> {
        let presented = api_key::presented_key(headers).ok_or(ApiError::MissingKey)?;
        let (key, token) = if is_jwt_shaped(presented) {
            let verified = tokens
                .verify(&runtime, presented, now_unix)
                .await
                .map_err(|e| ApiError::InvalidToken {
                    reason: e.reason(),
                    message: e.to_string(),
                })?;
            (token::key_for(&runtime, &verified)?, Some(verified))
        } else {
            (api_key::find(&runtime.config, presented)?, None)
        };
        api_key::usable(key, now_unix)?;
        found(key, token.as_deref());
        let key_hash = key.key_hash.clone();
        Ok(Caller {
            runtime,
            key_hash,
            token,
        })
    }

    /// The caller's ApiKey.
    pub fn key(&self) -> &ApiKeyConfig {
        &self.runtime.config.api_keys[&self.key_hash]
    }
}
