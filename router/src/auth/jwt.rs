//! Tokens verified offline: the header read before anything is trusted (which algorithm, which
//! key, which issuer claims to have signed it), then the signature, `iss`, `aud`, `exp` and `nbf`
//! checked by `jsonwebtoken` against the issuer's key, then the Kubernetes claims. Pure: the keys
//! come from [`super::jwks`]. No error says anything about a token beyond what is wrong with it.

use std::collections::HashSet;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_api::identity::service_account_subject;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token is refused. Messages name what is wrong, never the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON inside.
    #[error("the token is not a well-formed JWT ({0})")]
    Malformed(&'static str),
    /// `alg: none`.
    #[error("unsigned tokens (alg none) are not accepted")]
    Unsigned,
    /// HMAC: a shared secret the gateway does not hold.
    #[error(
        "HMAC-signed tokens ({0}) are not accepted; issuers must sign with RS256, ES256 or another public-key algorithm"
    )]
    Hmac(String),
    /// Any other algorithm this router cannot check.
    #[error("tokens signed with {0} are not accepted")]
    UnsupportedAlgorithm(String),
    /// `iss` is not a trusted issuer.
    #[error("tokens from issuer {0} are not trusted by this gateway")]
    UntrustedIssuer(String),
    /// The issuer's keys could not be fetched (yet).
    #[error("the signing keys of issuer {0} are not available; retry shortly")]
    KeysUnavailable(String),
    /// No key of the issuer matches `kid` (or, without a `kid`, none or several could).
    #[error("issuer {issuer} has no signing key {kid} for {alg}")]
    UnknownKey {
        /// The issuer.
        issuer: String,
        /// The `kid` asked for, or a description when there was none.
        kid: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    #[error("the token's audience (aud) is not one this gateway accepts ({0})")]
    WrongAudience(String),
    /// `iss` differs from the issuer whose key verified it.
    #[error("the token's issuer (iss) does not match")]
    WrongIssuer,
    /// A claim that must be there is not, or has the wrong type.
    #[error("the token's {0} claim is missing or malformed")]
    BadClaim(String),
    /// `kubernetes.io` contradicts `sub`, or is malformed.
    #[error("the token's kubernetes.io claims are invalid: {0}")]
    Kubernetes(String),
}

impl TokenError {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::Unsigned => "unsigned",
            TokenError::Hmac(_) => "hmac",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            TokenError::UntrustedIssuer(_) => "untrusted_issuer",
            TokenError::KeysUnavailable(_) => "keys_unavailable",
            TokenError::UnknownKey { .. } => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongAudience(_) => "wrong_audience",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::BadClaim(_) => "bad_claim",
            TokenError::Kubernetes(_) => "kubernetes_claims",
        }
    }
}

/// What the header and payload say before anything is verified: only used to pick the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified {
    /// The signing algorithm (never HMAC or none).
    pub alg: Algorithm,
    /// The key id, if the header names one.
    pub kid: Option<String>,
    /// The claimed issuer.
    pub issuer: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawIssuer {
    #[serde(default)]
    iss: Option<Value>,
}

fn part<T: for<'de> Deserialize<'de>>(b64: &str, what: &'static str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(what))
}

/// Reads the header's algorithm and key id and the payload's issuer, refusing `none`, HMAC and
/// algorithms this router cannot check before any key is looked up.
pub fn peek(token: &str) -> Result<Unverified, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let header: RawHeader = part(header, "the header is not base64url JSON")?;
    let alg = match header.alg.as_str() {
        a if a.eq_ignore_ascii_case("none") => return Err(TokenError::Unsigned),
        a @ ("HS256" | "HS384" | "HS512") => return Err(TokenError::Hmac(a.into())),
        a => a
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| super::crypto::supported(*alg))
            .ok_or_else(|| TokenError::UnsupportedAlgorithm(a.chars().take(16).collect()))?,
    };
    let claims: RawIssuer = part(payload, "the payload is not base64url JSON")?;
    let issuer = match claims.iss {
        Some(Value::String(iss)) if !iss.is_empty() => iss,
        _ => return Err(TokenError::BadClaim("iss".into())),
    };
    Ok(Unverified {
        alg,
        kid: header.kid,
        issuer,
    })
}

// ---------------------------------------------------------------------------------------------
// Keys

/// One public key of an issuer and the algorithms it may verify.
pub struct Key {
    /// `kid`, if the key set names it.
    pub kid: Option<String>,
    /// Algorithms accepted with this key: the JWK's `alg`, or every one its type allows.
    pub algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// An issuer's signing keys.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

impl KeySet {
    /// The signing keys of a JSON Web Key Set. Keys this router cannot use (symmetric, encryption
    /// keys, unknown types or curves) are skipped and named in the second value; a document that
    /// is not a key set at all is an error.
    pub fn from_jwks(jwks: &Value) -> Result<(KeySet, Vec<String>), String> {
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JSON Web Key Set (no \"keys\" array)")?;
        let mut keys = Vec::with_capacity(list.len());
        let mut skipped = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let name = raw
                .get("kid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("key {i}"), |k| format!("key {k:?}"));
            match Self::key(raw) {
                Ok(key) => keys.push(key),
                Err(why) => skipped.push(format!("{name}: {why}")),
            }
        }
        Ok((KeySet { keys }, skipped))
    }

    fn key(raw: &Value) -> Result<Key, String> {
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            return Err("not a signing key (use)".into());
        }
        let allowed: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err("unsupported curve".into()),
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not used".into()),
            _ => return Err("unsupported key type".into()),
        };
        let algorithms = match jwk.common.key_algorithm {
            None => allowed,
            Some(named) => {
                let alg = Algorithm::try_from(named)
                    .ok()
                    .filter(|a| allowed.contains(a))
                    .ok_or_else(|| format!("alg {named:?} does not fit the key"))?;
                vec![alg]
            }
        };
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        Ok(Key {
            kid: jwk.common.key_id,
            algorithms,
            decoding,
        })
    }

    /// How many usable keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is in the set.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for a token: the one named by `kid` (which must accept `alg`), or without a `kid`
    /// the only key that accepts `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.algorithms.contains(&alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.algorithms.contains(&alg));
                let first = fitting.next();
                first.filter(|_| fitting.next().is_none())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verification

/// The claims read from a verified token.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud`, as a list.
    pub audience: Vec<String>,
    /// The `kid` of the key that verified it, if the header named one.
    pub kid: Option<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
    /// `nbf`, Unix seconds, if set.
    pub not_before: Option<i64>,
    /// The Kubernetes ServiceAccount (and pod) the token was issued to, if it is one.
    pub kubernetes: Option<KubernetesIdentity>,
    /// Every other claim, for subjects that match on claims.
    pub claims: Map<String, Value>,
}

/// Who a Kubernetes ServiceAccount token was issued to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesIdentity {
    /// Namespace.
    pub namespace: String,
    /// ServiceAccount name.
    pub service_account: String,
    /// The pod the token is bound to, if it is bound to one.
    pub pod: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims read; the registered ones optional here so that a missing one is reported as such
/// by `jsonwebtoken`'s required-claims check rather than as a decoding error.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(rename = "kubernetes.io", default)]
    kubernetes: Option<KubernetesClaims>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: NamedObject,
    #[serde(default)]
    pod: Option<NamedObject>,
}

#[derive(Deserialize)]
struct NamedObject {
    name: String,
    #[serde(default)]
    uid: Option<String>,
}

/// Verifies `token` (whose header [`peek`] read as `unverified`) with `key`: the signature, `iss`
/// equal to `issuer`, `aud` naming one of `audiences`, `exp` and `nbf` within [`LEEWAY_SECS`],
/// `sub` present, and the `kubernetes.io` claims, when present, agreeing with `sub`.
pub fn verify(
    token: &str,
    unverified: &Unverified,
    key: &Key,
    issuer: &str,
    audiences: &[String],
) -> Result<Verified, TokenError> {
    super::crypto::install();
    let mut validation = Validation::new(unverified.alg);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    validation.set_issuer(&[issuer]);
    validation.set_audience(audiences);
    let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
        match e.into_kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidAudience => TokenError::WrongAudience(audiences.join(", ")),
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
                TokenError::BadClaim(c)
            }
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                TokenError::UnsupportedAlgorithm(format!("{:?}", unverified.alg))
            }
            ErrorKind::Json(_) => TokenError::Malformed("a claim has the wrong type"),
            _ => TokenError::Malformed("it does not decode"),
        }
    })?;
    let claims = data.claims;
    let missing = |c: &str| TokenError::BadClaim(c.into());
    let subject = claims.sub.ok_or_else(|| missing("sub"))?;
    let kubernetes = claims
        .kubernetes
        .map(|k| kubernetes_identity(k, &subject))
        .transpose()?;
    Ok(Verified {
        issuer: claims.iss.ok_or_else(|| missing("iss"))?,
        subject,
        audience: match claims.aud.ok_or_else(|| missing("aud"))? {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
        },
        kid: unverified.kid.clone(),
        expires_at: claims.exp.ok_or_else(|| missing("exp"))? as i64,
        not_before: claims.nbf.map(|n| n as i64),
        kubernetes,
        claims: claims.rest,
    })
}

fn kubernetes_identity(k: KubernetesClaims, sub: &str) -> Result<KubernetesIdentity, TokenError> {
    let expected = service_account_subject(&k.namespace, &k.serviceaccount.name);
    if k.namespace.is_empty() || k.serviceaccount.name.is_empty() || sub != expected {
        return Err(TokenError::Kubernetes(
            "the namespace and serviceaccount do not match sub".into(),
        ));
    }
    let pod = match k.pod {
        None => None,
        Some(pod) if !pod.name.is_empty() && pod.uid.as_deref().is_some_and(|u| !u.is_empty()) => {
            Some(pod.name)
        }
        Some(_) => {
            return Err(TokenError::Kubernetes(
                "the pod binding has no name or uid".into(),
            ));
        }
    };
    Ok(KubernetesIdentity {
        namespace: k.namespace,
        service_account: k.serviceaccount.name,
        pod,
    })
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
