//! Which ApiKey a verified token is: the subjects of every key, indexed once per config version
//! (ServiceAccounts by `sub`, OIDC subjects by issuer and `sub`, claim-only matches by issuer), so
//! a token costs the few subjects that could match it. Pure.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use switchboard_api::{
    RouterConfig,
    identity::{SubjectConfig, service_account_subject},
};

use super::jwt::Verified;

/// A match on claims, and the key (its filing id in `apiKeys`) it grants.
#[derive(Debug)]
struct ClaimMatch {
    claims: BTreeMap<String, String>,
    key: String,
}

/// Every key's subjects, indexed.
#[derive(Debug, Default)]
pub struct SubjectIndex {
    /// `system:serviceaccount:<ns>:<name>` → keys.
    service_accounts: HashMap<String, Vec<String>>,
    /// (issuer, sub) → matches.
    by_subject: HashMap<(String, String), Vec<ClaimMatch>>,
    /// issuer → subject-less matches.
    by_claims: HashMap<String, Vec<ClaimMatch>>,
}

impl SubjectIndex {
    /// The index of `config`'s keys.
    pub fn build(config: &RouterConfig) -> SubjectIndex {
        let mut index = SubjectIndex::default();
        for (filed, key) in &config.api_keys {
            for subject in &key.subjects {
                match subject {
                    SubjectConfig::ServiceAccount { namespace, name } => index
                        .service_accounts
                        .entry(service_account_subject(namespace, name))
                        .or_default()
                        .push(filed.clone()),
                    SubjectConfig::Oidc {
                        issuer,
                        subject: Some(sub),
                        claims,
                    } => index
                        .by_subject
                        .entry((issuer.clone(), sub.clone()))
                        .or_default()
                        .push(ClaimMatch {
                            claims: claims.clone(),
                            key: filed.clone(),
                        }),
                    SubjectConfig::Oidc {
                        issuer,
                        subject: None,
                        claims,
                    } => index
                        .by_claims
                        .entry(issuer.clone())
                        .or_default()
                        .push(ClaimMatch {
                            claims: claims.clone(),
                            key: filed.clone(),
                        }),
                }
            }
        }
        index
    }

    /// Whether no key has a subject.
    pub fn is_empty(&self) -> bool {
        self.service_accounts.is_empty() && self.by_subject.is_empty() && self.by_claims.is_empty()
    }

    /// The keys (filing ids, sorted, each once) whose subjects `token` matches.
    pub fn keys_for(&self, token: &Verified) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if token.kubernetes.is_some()
            && let Some(keys) = self.service_accounts.get(&token.subject)
        {
            out.extend(keys.iter().map(String::as_str));
        }
        let by_subject = self
            .by_subject
            .get(&(token.issuer.clone(), token.subject.clone()));
        let by_claims = self.by_claims.get(&token.issuer);
        for m in by_subject.into_iter().chain(by_claims).flatten() {
            if m.claims
                .iter()
                .all(|(name, want)| token.claims.get(name).is_some_and(|v| claim_has(v, want)))
            {
                out.push(&m.key);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether a claim's value is `want`: a string equal to it, a list holding it, or a boolean or
/// number whose JSON text it is.
fn claim_has(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Number(n) => n.to_string() == want,
        Value::Array(items) => items.iter().any(|v| !v.is_array() && claim_has(v, want)),
        Value::Null | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_api::snapshot::ApiKeyConfig;

    use super::*;
    use crate::auth::jwt::KubernetesIdentity;

    fn key(filed: &str, subjects: Vec<SubjectConfig>) -> (String, ApiKeyConfig) {
        (
            filed.to_string(),
            ApiKeyConfig {
                name: filed.into(),
                key_hash: filed.into(),
                subjects,
                ..ApiKeyConfig::test()
            },
        )
    }

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

    fn token(issuer: &str, subject: &str, claims: serde_json::Value) -> Verified {
        Verified {
            issuer: issuer.into(),
            subject: subject.into(),
            audience: vec!["switchboard".into()],
            kid: None,
            expires_at: 0,
            not_before: None,
            kubernetes: None,
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn tokens_find_the_keys_whose_subjects_they_match() {
        let mut config = RouterConfig::default();
        config.api_keys.extend([
            key(
                "sa",
                vec![SubjectConfig::ServiceAccount {
                    namespace: "ml".into(),
                    name: "trainer".into(),
                }],
            ),
            key("alice", vec![oidc("https://idp", Some("alice"), &[])]),
            key(
                "ml-group",
                vec![oidc(
                    "https://idp",
                    None,
                    &[("groups", "ml"), ("email_verified", "true")],
                )],
            ),
            key(
                "bob-eng",
                vec![oidc("https://idp", Some("bob"), &[("groups", "eng")])],
            ),
        ]);
        let index = SubjectIndex::build(&config);
        assert!(!index.is_empty());

        let mut sa = token("https://k8s", "system:serviceaccount:ml:trainer", json!({}));
        assert!(index.keys_for(&sa).is_empty(), "no kubernetes.io claims");
        sa.kubernetes = Some(KubernetesIdentity {
            namespace: "ml".into(),
            service_account: "trainer".into(),
            pod: None,
        });
        assert_eq!(index.keys_for(&sa), ["sa"]);

        assert_eq!(
            index.keys_for(&token("https://idp", "alice", json!({}))),
            ["alice"]
        );
        assert!(
            index
                .keys_for(&token("https://other", "alice", json!({})))
                .is_empty()
        );
        let ml = json!({"groups": ["eng", "ml"], "email_verified": true});
        assert_eq!(
            index.keys_for(&token("https://idp", "carol", ml.clone())),
            ["ml-group"]
        );
        assert_eq!(
            index.keys_for(&token("https://idp", "alice", ml)),
            ["alice", "ml-group"],
            "two keys: the caller refuses it as ambiguous"
        );
        let unverified = json!({"groups": ["ml"], "email_verified": false});
        assert!(
            index
                .keys_for(&token("https://idp", "carol", unverified))
                .is_empty()
        );
        assert_eq!(
            index.keys_for(&token("https://idp", "bob", json!({"groups": "eng"}))),
            ["bob-eng"]
        );
        assert!(
            index
                .keys_for(&token("https://idp", "bob", json!({"groups": ["ml"]})))
                .is_empty()
        );
    }

    #[test]
    fn claims_match_strings_lists_and_scalars_by_their_json_text() {
        assert!(claim_has(&json!("a"), "a"));
        assert!(claim_has(&json!(["b", "a"]), "a"));
        assert!(claim_has(&json!(true), "true"));
        assert!(claim_has(&json!(42), "42"));
        assert!(claim_has(&json!([1, 2]), "2"));
        assert!(!claim_has(&json!([["a"]]), "a"));
        assert!(!claim_has(&json!({"a": "a"}), "a"));
        assert!(!claim_has(&json!(null), "null"));
        assert!(!claim_has(&json!("A"), "a"));
    }
}
