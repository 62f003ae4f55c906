//! Static keys: `Authorization: Bearer <key>` or `x-api-key: <key>`, looked up by SHA-256 hash
//! and confirmed in constant time, then checked for disabled and expiry.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;
use switchboard_api::snapshot::{ApiKeyConfig, RouterConfig, hash_api_key};

use crate::error::ApiError;

/// The key the client sent, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The ApiKey holding `key`. Lookup is by hash of the presented key, so timing can only reveal
/// hash bits, which do not help forge a key; the final comparison is constant-time anyway.
pub fn find<'a>(config: &'a RouterConfig, key: &str) -> Result<&'a ApiKeyConfig, ApiError> {
    let hash = hash_api_key(key);
    config
        .api_keys
        .get(&hash)
        .filter(|k| bool::from(k.key_hash.as_bytes().ct_eq(hash.as_bytes())))
        .ok_or(ApiError::InvalidKey)
}

/// Refuses a disabled or expired key.
pub fn usable(key: &ApiKeyConfig, now_unix: i64) -> Result<(), ApiError> {
    if key.disabled {
        return Err(ApiError::DisabledKey(key.name.clone()));
    }
    if key.expires_at.is_some_and(|t| t <= now_unix) {
        return Err(ApiError::ExpiredKey(key.name.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticate<'a>(
        config: &'a RouterConfig,
        headers: &HeaderMap,
        now_unix: i64,
    ) -> Result<&'a ApiKeyConfig, ApiError> {
        let found = find(config, presented_key(headers).ok_or(ApiError::MissingKey)?)?;
        usable(found, now_unix)?;
        Ok(found)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn config_with(key: &str, disabled: bool, expires_at: Option<i64>) -> RouterConfig {
        let mut c = RouterConfig::default();
        c.api_keys.insert(
            hash_api_key(key),
            ApiKeyConfig {
                key_hash: hash_api_key(key),
                prefix: "sk-sb…".into(),
                expires_at,
                disabled,
                ..ApiKeyConfig::test()
            },
        );
        c
    }

    #[test]
    fn accepts_bearer_and_x_api_key() {
        let c = config_with("sk-sb-0123456789abcdef", false, None);
        for h in [
            headers(&[("authorization", "Bearer sk-sb-0123456789abcdef")]),
            headers(&[("x-api-key", "sk-sb-0123456789abcdef")]),
        ] {
            assert_eq!(authenticate(&c, &h, 0).unwrap().name, "k");
        }
    }

    #[test]
    fn refuses_missing_unknown_disabled_and_expired_keys() {
        let c = config_with("sk-sb-0123456789abcdef", false, Some(100));
        let good = headers(&[("authorization", "Bearer sk-sb-0123456789abcdef")]);
        assert!(matches!(
            authenticate(&c, &HeaderMap::new(), 0),
            Err(ApiError::MissingKey)
        ));
        assert!(matches!(
            authenticate(&c, &headers(&[("authorization", "Bearer nope")]), 0),
            Err(ApiError::InvalidKey)
        ));
        assert!(matches!(
            authenticate(&c, &good, 100),
            Err(ApiError::ExpiredKey(_))
        ));
        assert!(authenticate(&c, &good, 99).is_ok());
        let d = config_with("sk-sb-0123456789abcdef", true, None);
        assert!(matches!(
            authenticate(&d, &good, 0),
            Err(ApiError::DisabledKey(_))
        ));
    }
}
