//! One authentication for the whole admin listener: everything on it but `/healthz`, `/readyz`
//! and (unless `--admin-protect-metrics`) `/metrics` goes through [`require_admin`].
//!
//! Who may call, in the order checked:
//! 1. The admin bearer token (`--admin-token-file`): `Authorization: Bearer <token>`, compared in
//!    constant time through its SHA-256 (only the hash is kept in memory; neither is ever
//!    logged). A wrong token is refused outright.
//! 2. With a token configured, the web console's session cookie (signed with a key derived from
//!    the token, [`crate::console::session`]): the token, entered once on the console's login
//!    page. Outside the console (whose own forms check a CSRF token) it admits reads only (`GET`,
//!    `HEAD`): a change such as `PUT /loglevel` takes the bearer token.
//! 3. With `--admin-trust-proxy-headers`: the identity an authenticating proxy in front of the
//!    admin port sets (oauth2-proxy's `X-Auth-Request-Email`, or `X-Forwarded-Email`). Enable it
//!    only when nothing but that proxy can reach the admin port: anyone who can reach it can set
//!    the header.
//! 4. With no token configured, any caller on the loopback interface (the peer address the
//!    router's own accept loop saw, `ConnectInfo`, IPv4-mapped `::ffff:127.0.0.1` included) that
//!    addressed the router by a loopback name (`Host`: `localhost`, `127.0.0.1`, `[::1]`, or
//!    none), and no one else. The `Host` check
//!    keeps out a web page that a local browser loaded from elsewhere and that rebinds its own
//!    name to 127.0.0.1 (DNS rebinding) to read the console or `/config` as its own origin.

use std::{net::SocketAddr, path::Path};

use anyhow::Context;
use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    console::session::{self, SessionKey},
    error::ApiError,
};

/// Headers an authenticating proxy (oauth2-proxy) sets to the signed-in user's email.
pub const PROXY_EMAIL_HEADERS: [&str; 2] = ["x-auth-request-email", "x-forwarded-email"];

/// Who an admin request was admitted as (a request extension, for handlers that want to say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admin {
    /// The admin bearer token.
    Token,
    /// A user signed in at the authenticating proxy.
    Proxy(String),
    /// A console session (the token, entered on the login page).
    Session,
    /// A loopback caller, with no token configured.
    Loopback,
}

/// The admin listener's authentication settings.
#[derive(Clone, Default)]
pub struct AdminAuth {
    token_sha256: Option<[u8; 32]>,
    session: Option<SessionKey>,
    trust_proxy_headers: bool,
    /// Whether `/metrics` requires the token too.
    pub protect_metrics: bool,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token_sha256.map(|_| "[set]"))
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .field("protect_metrics", &self.protect_metrics)
            .finish()
    }
}

impl AdminAuth {
    /// Settings with `token` (if any).
    pub fn new(token: Option<&str>, trust_proxy_headers: bool, protect_metrics: bool) -> AdminAuth {
        let token_sha256: Option<[u8; 32]> = token.map(|t| Sha256::digest(t.as_bytes()).into());
        AdminAuth {
            session: token_sha256.as_ref().map(SessionKey::from_token_sha256),
            token_sha256,
            trust_proxy_headers,
            protect_metrics,
        }
    }

    /// Reads the token from `path` (surrounding whitespace ignored); an empty file is an error.
    pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(
            !token.is_empty(),
            "the admin token file {} is empty",
            path.display()
        );
        Ok(token.to_string())
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token_sha256.is_some()
    }

    /// Whether `headers` carry the admin token as a bearer token (false without one configured).
    pub fn bearer_is_admin(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|presented| self.is_token(presented))
    }

    /// Whether `presented` is the admin token (false without one configured), in constant time.
    pub fn is_token(&self, presented: &str) -> bool {
        self.token_sha256.is_some_and(|want| {
            let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            bool::from(got.ct_eq(&want))
        })
    }

    /// The key console sessions are signed with (only with a token configured).
    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session.as_ref()
    }

    /// Whether `headers` carry a console session cookie valid at `now` (Unix seconds).
    fn has_session(&self, headers: &HeaderMap, now: i64) -> bool {
        match (&self.session, session::cookie(headers, session::COOKIE)) {
            (Some(key), Some(value)) => key.verify(value, now),
            _ => false,
        }
    }

    /// Admits a request, or says why not (401 without or with a wrong credential, 403 off the
    /// loopback interface when no token is configured).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Admin, ApiError> {
        if self.token_sha256.is_some() && bearer(headers).is_some() {
            return if self.bearer_is_admin(headers) {
                Ok(Admin::Token)
            } else {
                Err(ApiError::InvalidAdminToken)
            };
        }
        if self.has_session(headers, jiff::Timestamp::now().as_second()) {
            return Ok(Admin::Session);
        }
        if self.trust_proxy_headers
            && let Some(email) = PROXY_EMAIL_HEADERS.iter().find_map(|h| {
                headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            })
        {
            return Ok(Admin::Proxy(email.to_string()));
        }
        if self.token_sha256.is_some() {
            return Err(ApiError::AdminCredentialRequired);
        }
        match peer {
            Some(p) if is_loopback(p.ip()) && host_is_loopback(headers) => Ok(Admin::Loopback),
            Some(p) if is_loopback(p.ip()) => Err(ApiError::AdminHostNotLoopback),
            _ => Err(ApiError::AdminLoopbackOnly),
        }
    }

    /// One line for the start-up log: which mode the admin listener is in.
    pub fn describe(&self) -> &'static str {
        match (self.has_token(), self.trust_proxy_headers) {
            (true, false) => "admin endpoints require the admin bearer token",
            (true, true) => {
                "admin endpoints require the admin bearer token or an authenticating proxy's \
                 identity headers"
            }
            (false, true) => {
                "admin endpoints trust an authenticating proxy's identity headers, and otherwise \
                 answer only loopback peers (no admin token configured)"
            }
            (false, false) => {
                "no admin token configured: admin endpoints answer only loopback peers \
                 (set --admin-token-file to reach them from elsewhere)"
            }
        }
    }
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `ip` is on the loopback interface, an IPv4 loopback address written as IPv6
/// (`::ffff:127.0.0.1`, what a dual-stack listener on `[::]` sees an IPv4 client as) included.
fn is_loopback(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether the request named a loopback host: `localhost` or a name under `.localhost`, a
/// loopback IP address (any port), or no `Host` header at all.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = value.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((ip, rest)) if rest.is_empty() || rest.starts_with(':') => ip,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const LOOPBACK: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        5000,
    ));
    const REMOTE: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
        5000,
    ));

    #[test]
    fn with_a_token_only_the_token_admits() {
        let auth = AdminAuth::new(Some("s3cret-admin"), false, false);
        let ok = headers(&[("authorization", "Bearer s3cret-admin")]);
        assert_eq!(auth.authenticate(&ok, REMOTE).unwrap(), Admin::Token);
        let lower = headers(&[("authorization", "bearer s3cret-admin")]);
        assert_eq!(auth.authenticate(&lower, REMOTE).unwrap(), Admin::Token);
        let wrong = headers(&[("authorization", "Bearer s3cret-admin2")]);
        assert!(matches!(
            auth.authenticate(&wrong, LOOPBACK),
            Err(ApiError::InvalidAdminToken)
        ));
        // With a token, loopback is no exception.
        assert!(matches!(
            auth.authenticate(&HeaderMap::new(), LOOPBACK),
            Err(ApiError::AdminCredentialRequired)
        ));
    }

    #[test]
    fn without_a_token_only_loopback_peers_are_admitted() {
        let auth = AdminAuth::default();
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), LOOPBACK).unwrap(),
            Admin::Loopback
        );
        let v6 = Some("[::1]:80".parse().unwrap());
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), v6).unwrap(),
            Admin::Loopback
        );
        for peer in [REMOTE, None] {
            assert!(matches!(
                auth.authenticate(&headers(&[("authorization", "Bearer x")]), peer),
                Err(ApiError::AdminLoopbackOnly)
            ));
        }
    }

    #[test]
    fn an_ipv4_loopback_peer_seen_by_a_dual_stack_listener_is_loopback() {
        let auth = AdminAuth::default();
        // A listener on [::] sees an IPv4 client as an IPv4-mapped IPv6 address.
        let mapped = Some("[::ffff:127.0.0.1]:5000".parse().unwrap());
        assert_eq!(
            auth.authenticate(&HeaderMap::new(), mapped).unwrap(),
            Admin::Loopback
        );
        let h = headers(&[("host", "[::ffff:127.0.0.1]:9090")]);
        assert_eq!(auth.authenticate(&h, mapped).unwrap(), Admin::Loopback);
        assert!(matches!(
            auth.authenticate(&headers(&[("host", "evil.example")]), mapped),
            Err(ApiError::AdminHostNotLoopback)
        ));
        // A mapped address that is not loopback is remote.
        let remote = Some("[::ffff:10.1.2.3]:5000".parse().unwrap());
        assert!(matches!(
            auth.authenticate(&HeaderMap::new(), remote),
            Err(ApiError::AdminLoopbackOnly)
        ));
    }

    #[test]
    fn without_a_token_a_loopback_peer_must_also_name_a_loopback_host() {
        let auth = AdminAuth::default();
        for host in [
            "localhost",
            "localhost:9090",
            "LOCALHOST.",
            "console.localhost:8080",
            "127.0.0.1:9090",
            "127.8.9.10",
            "[::1]:9090",
            "[::1]",
        ] {
            assert_eq!(
                auth.authenticate(&headers(&[("host", host)]), LOOPBACK)
                    .unwrap(),
                Admin::Loopback,
                "{host}"
            );
        }
        // A rebinding page's own name, another address, or something unparsable: refused, and
        // told why.
        for host in [
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "10.1.2.3:9090",
            "0.0.0.0:9090",
            "[::2]:9090",
            "[::1]x",
            "::1",
        ] {
            assert!(
                matches!(
                    auth.authenticate(&headers(&[("host", host)]), LOOPBACK),
                    Err(ApiError::AdminHostNotLoopback)
                ),
                "{host}"
            );
        }
        // With a token the Host plays no part.
        let with_token = AdminAuth::new(Some("s3cret-admin"), false, false);
        let h = headers(&[
            ("host", "evil.example"),
            ("authorization", "Bearer s3cret-admin"),
        ]);
        assert_eq!(with_token.authenticate(&h, REMOTE).unwrap(), Admin::Token);
    }

    #[test]
    fn proxy_headers_count_only_when_trusted() {
        let h = headers(&[("x-auth-request-email", "ops@example.com")]);
        assert!(
            AdminAuth::new(Some("t"), false, false)
                .authenticate(&h, REMOTE)
                .is_err()
        );
        let trusted = AdminAuth::new(Some("t"), true, false);
        assert_eq!(
            trusted.authenticate(&h, REMOTE).unwrap(),
            Admin::Proxy("ops@example.com".into())
        );
        let fwd = headers(&[("x-forwarded-email", "dev@example.com")]);
        assert_eq!(
            AdminAuth::new(None, true, false)
                .authenticate(&fwd, REMOTE)
                .unwrap(),
            Admin::Proxy("dev@example.com".into())
        );
        // A wrong token is refused even with proxy headers beside it.
        let both = headers(&[
            ("x-auth-request-email", "ops@example.com"),
            ("authorization", "Bearer nope"),
        ]);
        assert!(trusted.authenticate(&both, REMOTE).is_err());
    }

    #[test]
    fn a_console_session_admits_only_with_its_own_token_configured() {
        let auth = AdminAuth::new(Some("s3cret-admin"), false, false);
        let key = auth.session_key().unwrap();
        let later = jiff::Timestamp::now().as_second() + 60;
        let cookie = format!("{}={}", session::COOKIE, key.issue(later));
        let h = headers(&[("cookie", &cookie)]);
        assert_eq!(auth.authenticate(&h, REMOTE).unwrap(), Admin::Session);
        // Expired, or signed under another token, or with no token configured: refused.
        let old = format!("{}={}", session::COOKIE, key.issue(later - 3600));
        assert!(
            auth.authenticate(&headers(&[("cookie", &old)]), REMOTE)
                .is_err()
        );
        let other = AdminAuth::new(Some("another-token"), false, false);
        assert!(other.authenticate(&h, REMOTE).is_err());
        assert!(AdminAuth::default().session_key().is_none());
        assert!(matches!(
            AdminAuth::default().authenticate(&h, REMOTE),
            Err(ApiError::AdminLoopbackOnly)
        ));
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let auth = AdminAuth::new(Some("s3cret-admin"), false, true);
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let hash = hex::encode(Sha256::digest(b"s3cret-admin"));
        assert!(!shown.contains(&hash[..16]), "{shown}");
        assert!(shown.contains("[set]"));
    }
}
