//! Who is calling: the client's key, authenticated against the config being served.

pub mod api_key;

use std::sync::Arc;

use axum::http::HeaderMap;
use switchboard_api::snapshot::ApiKeyConfig;

use crate::{config::runtime::Runtime, error::ApiError};

/// The config in force and the authenticated caller's key.
pub struct Caller {
    /// The config this request is served with, start to end.
    pub runtime: Arc<Runtime>,
    key_hash: String,
}

impl Caller {
    /// Authenticates the request's key (see [`api_key::authenticate`]) against `runtime` at
    /// `now_unix`. `found` sees the key first (to record who is calling without looking it up
    /// again: the lookup compares hashes among every key of the config).
    pub fn authenticate(
        runtime: Arc<Runtime>,
        headers: &HeaderMap,
        now_unix: i64,
        found: impl FnOnce(&ApiKeyConfig),
    ) -> Result<Caller, ApiError> {
        let key = api_key::authenticate(&runtime.config, headers, now_unix)?;
        found(key);
        let key_hash = key.key_hash.clone();
        Ok(Caller { runtime, key_hash })
    }

    /// The caller's ApiKey.
    pub fn key(&self) -> &ApiKeyConfig {
        &self.runtime.config.api_keys[&self.key_hash]
    }
}
