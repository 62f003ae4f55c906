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
    /// `now_unix`.
    pub fn authenticate(
        runtime: Arc<Runtime>,
        headers: &HeaderMap,
        now_unix: i64,
    ) -> Result<Caller, ApiError> {
        let key_hash = api_key::authenticate(&runtime.config, headers, now_unix)?
            .key_hash
            .clone();
        Ok(Caller { runtime, key_hash })
    }

    /// The caller's ApiKey.
    pub fn key(&self) -> &ApiKeyConfig {
        &self.runtime.config.api_keys[&self.key_hash]
    }
}
