//! The console's sign-in: the admin token, entered once on the login page, becomes a cookie
//! holding an expiry and an HMAC over it, keyed from the admin token. No server-side session
//! store: every replica that shares the token accepts the cookie, a restart keeps it, and
//! rotating the token signs everyone out. Signing out clears the cookie in the browser (a copy
//! taken before stays valid until it expires, [`LIFETIME`]). Pure.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::hmac;
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub const COOKIE: &str = "sb_console";

/// How long a sign-in lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Version tag of the cookie format, signed along with the expiry.
const VERSION: &str = "v1";

/// The key sessions are signed with, derived from the admin token (its SHA-256, which is all the
/// router keeps of it) under a label of its own, so it is never the token's hash itself.
#[derive(Clone)]
pub struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([set])")
    }
}

impl SessionKey {
    /// The key for an admin token whose SHA-256 is `token_sha256`.
    pub fn from_token_sha256(token_sha256: &[u8; 32]) -> SessionKey {
        let mut h = Sha256::new();
        h.update(b"switchboard console session key\0");
        h.update(token_sha256);
        SessionKey(hmac::Key::new(hmac::HMAC_SHA256, &h.finalize()))
    }

    /// A cookie value valid until `expires_at` (Unix seconds): `v1.<expiry>.<signature>`.
    pub fn issue(&self, expires_at: i64) -> String {
        let payload = format!("{VERSION}.{expires_at}");
        let tag = hmac::sign(&self.0, payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `value` is a cookie this key issued that has not expired at `now` (Unix seconds).
    /// The signature is checked in constant time.
    pub fn verify(&self, value: &str, now: i64) -> bool {
        let Some((payload, signature)) = value.rsplit_once('.') else {
            return false;
        };
        let Some(expires_at) = payload
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|e| e.parse::<i64>().ok())
        else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        hmac::verify(&self.0, payload.as_bytes(), &signature).is_ok() && now < expires_at
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when the console is
/// reached over TLS; `max_age` zero deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the browser reached the console over TLS: the TLS-terminating proxy or Ingress in
/// front of the admin port says so in `X-Forwarded-Proto` (the router's admin listener itself
/// speaks plain HTTP). Only decides the cookie's `Secure` flag.
pub fn over_tls(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().unwrap_or("").trim() == "https")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> SessionKey {
        SessionKey::from_token_sha256(&Sha256::digest(token.as_bytes()).into())
    }

    #[test]
    fn a_cookie_is_valid_until_it_expires_on_every_replica_with_the_token() {
        let value = key("admin-secret").issue(1_000);
        assert!(value.starts_with("v1.1000."), "{value}");
        // Another replica derives the same key from the same token.
        assert!(key("admin-secret").verify(&value, 999));
        assert!(!key("admin-secret").verify(&value, 1_000));
        assert!(!key("rotated-secret").verify(&value, 10));
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let k = key("admin-secret");
        let value = k.issue(1_000);
        let (_, sig) = value.rsplit_once('.').unwrap();
        // A later expiry with the old signature.
        assert!(!k.verify(&format!("v1.9999999999.{sig}"), 10));
        for bad in [
            "",
            "v1",
            "v1.1000",
            "v2.1000.x",
            "v1.abc.x",
            "v1.1000.%%%",
            "1000.sig",
        ] {
            assert!(!k.verify(bad, 10), "{bad}");
        }
        let mut flipped = value.into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(!k.verify(std::str::from_utf8(&flipped).unwrap(), 10));
    }

    #[test]
    fn cookies_are_read_from_any_cookie_header() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; sb_console=v1.2.x".parse().unwrap(),
        );
        h.append(http::header::COOKIE, "sb_csrf=abc".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("v1.2.x"));
        assert_eq!(cookie(&h, "sb_csrf"), Some("abc"));
        assert_eq!(cookie(&h, "sb"), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = set_cookie(COOKIE, "v", LIFETIME, false);
        assert_eq!(
            plain,
            "sb_console=v; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(COOKIE, "v", LIFETIME, true).ends_with("; Secure"));
        let mut h = http::HeaderMap::new();
        assert!(!over_tls(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_tls(&h));
        h.insert("x-forwarded-proto", "http, https".parse().unwrap());
        assert!(!over_tls(&h));
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", key("admin-secret")), "SessionKey([set])");
    }
}
