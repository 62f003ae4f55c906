//! Workload identity in the snapshot: the subjects an ApiKey grants itself to (ServiceAccounts and
//! OIDC identities, who call with a token they already hold instead of a key) and the issuers
//! whose tokens routers verify. Pure data and the rules both ends share: how a static key is told
//! from a token, and when two subjects claim the same caller.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The audience a token must name (`aud`) unless configured otherwise: what a projected
/// ServiceAccount token is requested with (`audience: switchboard`).
pub const DEFAULT_AUDIENCE: &str = "switchboard";

/// The `sub` of a Kubernetes ServiceAccount token: `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Whether a credential is shaped like a JWT (three dot-separated base64url parts, the first a
/// JSON object: `eyJ…`) rather than a static key. Routers tell them apart by this alone, so a
/// static key of this shape is refused by compile.
pub fn is_jwt_shaped(credential: &str) -> bool {
    credential.starts_with("eyJ")
        && credential.bytes().filter(|b| *b == b'.').count() == 2
        && credential
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// One identity an ApiKey is granted to, compiled from `spec.subjects`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectConfig {
    /// A Kubernetes ServiceAccount: a token from any trusted issuer whose `sub` is
    /// `system:serviceaccount:<namespace>:<name>` and whose `kubernetes.io` claims name the same
    /// namespace and ServiceAccount.
    ServiceAccount {
        /// Namespace of the ServiceAccount.
        namespace: String,
        /// Name of the ServiceAccount.
        name: String,
    },
    /// An OIDC identity: a token from `issuer` with this `sub` (when set) carrying every claim
    /// listed (a string claim equal to the value, or a list claim containing it).
    #[serde(rename_all = "camelCase")]
    Oidc {
        /// The issuer (`iss`).
        issuer: String,
        /// The subject (`sub`), if the match names one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// Claims the token must carry, by name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        claims: BTreeMap<String, String>,
    },
}

impl SubjectConfig {
    /// What makes two subjects claim the same caller: equal identities are one caller, so two
    /// ApiKeys holding them would make that caller's key ambiguous. A ServiceAccount, and an OIDC
    /// subject naming a ServiceAccount's `sub`, are the same caller whatever the issuer; an OIDC
    /// subject is its issuer and `sub` (whatever claims it adds: one subject is one caller); a
    /// subject-less match is its issuer and claims.
    pub fn identity(&self) -> String {
        // JSON arrays: unambiguous whatever the strings hold.
        let json = match self {
            SubjectConfig::ServiceAccount { namespace, name } => {
                serde_json::json!(["sub", service_account_subject(namespace, name)])
            }
            SubjectConfig::Oidc {
                subject: Some(sub), ..
            } if sub.starts_with("system:serviceaccount:") => serde_json::json!(["sub", sub]),
            SubjectConfig::Oidc {
                issuer,
                subject: Some(sub),
                ..
            } => serde_json::json!(["oidc", issuer, sub]),
            SubjectConfig::Oidc {
                issuer,
                subject: None,
                claims,
            } => serde_json::json!(["claims", issuer, claims]),
        };
        json.to_string()
    }

    /// How the subject reads in messages: `ServiceAccount ml/trainer`, `OIDC https://… sub 42`.
    pub fn describe(&self) -> String {
        match self {
            SubjectConfig::ServiceAccount { namespace, name } => {
                format!("ServiceAccount {namespace}/{name}")
            }
            SubjectConfig::Oidc {
                issuer,
                subject,
                claims,
            } => {
                let mut out = format!("OIDC {issuer}");
                if let Some(sub) = subject {
                    out.push_str(&format!(" sub {sub:?}"));
                }
                for (k, v) in claims {
                    out.push_str(&format!(" {k}={v:?}"));
                }
                out
            }
        }
    }
}

/// An issuer whose tokens routers accept, filed under its `iss`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerConfig {
    /// The issuer URL, exactly as tokens carry it in `iss`.
    pub issuer: String,
    /// Audiences accepted: a token's `aud` must name one.
    pub audiences: Vec<String>,
    /// Where its signing keys come from.
    pub keys: KeySource,
}

/// Where a router gets an issuer's signing keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySource {
    /// OpenID discovery: `<issuer>/.well-known/openid-configuration` names the key set
    /// (`jwks_uri`), which routers fetch and refresh.
    Discovery,
    /// A key set URL routers fetch and refresh.
    JwksUri(String),
    /// The key set itself (a JSON Web Key Set), used as it is and never fetched: the cluster's
    /// ServiceAccount issuer as the operator read it from the API server, or a file.
    Jwks(serde_json::Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(issuer: &str, subject: Option<&str>, claims: &[(&str, &str)]) -> SubjectConfig {
        SubjectConfig::Oidc {
            issuer: issuer.into(),
            subject: subject.map(Into::into),
            claims: claims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn jwts_are_told_from_static_keys_by_shape() {
        assert!(is_jwt_shaped("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!is_jwt_shaped("sk-sb-0123456789abcdef"));
        assert!(!is_jwt_shaped("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0"));
        assert!(!is_jwt_shaped("eyJ.a.b.c"));
        assert!(!is_jwt_shaped("eyJ a.b.c"));
        assert!(!is_jwt_shaped("abc.def.ghi"));
    }

    #[test]
    fn one_caller_is_one_identity_whatever_else_a_subject_adds() {
        let sa = SubjectConfig::ServiceAccount {
            namespace: "ml".into(),
            name: "trainer".into(),
        };
        let same_sa = oidc(
            "https://k8s.example",
            Some("system:serviceaccount:ml:trainer"),
            &[],
        );
        assert_eq!(sa.identity(), same_sa.identity());
        let alice = oidc("https://idp", Some("alice"), &[]);
        let alice_in_ml = oidc("https://idp", Some("alice"), &[("groups", "ml")]);
        assert_eq!(alice.identity(), alice_in_ml.identity());
        assert_ne!(
            alice.identity(),
            oidc("https://other", Some("alice"), &[]).identity()
        );
        let ml = oidc("https://idp", None, &[("groups", "ml")]);
        assert_ne!(ml.identity(), alice_in_ml.identity());
        assert_ne!(
            ml.identity(),
            oidc("https://idp", None, &[("groups", "research")]).identity()
        );
    }
}
