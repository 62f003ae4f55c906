//! Generated client keys for ApiKeys without `spec.secretRef`: which ones need a Secret (pure),
//! the key itself, and the Secret that holds it (owned by the ApiKey, so deleting the ApiKey
//! deletes it; deleting the Secret makes the operator generate a new key: rotation).

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use rand::{Rng, distr::Alphanumeric};
use switchboard_api::{
    compile::{GENERATED_KEY_SECRET_KEY, generated_key_secret_name},
    resources::ApiKey,
};

/// Prefix of every generated key.
pub const KEY_PREFIX: &str = "sk-sb-";
/// Random alphanumeric characters after the prefix (~285 bits of entropy).
pub const KEY_RANDOM_CHARS: usize = 48;
/// Label on Secrets the operator creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "switchboard-operator");

/// An ApiKey that needs its key generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyToGenerate {
    /// Namespace of the ApiKey (and of the Secret).
    pub namespace: String,
    /// Name of the ApiKey.
    pub api_key: String,
    /// UID of the ApiKey, for the owner reference.
    pub uid: String,
    /// Name of the Secret to create.
    pub secret: String,
}

/// ApiKeys without `secretRef` whose generated Secret does not exist. `secret_known(namespace,
/// name)` says whether a Secret is known. ApiKeys being deleted or without a UID (not from an API
/// server) are skipped.
pub fn keys_to_generate<'a>(
    api_keys: impl IntoIterator<Item = &'a ApiKey>,
    secret_known: impl Fn(&str, &str) -> bool,
) -> Vec<KeyToGenerate> {
    let mut out = Vec::new();
    for key in api_keys {
        let meta = &key.metadata;
        if key.spec.secret_ref.is_some() || meta.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(namespace), Some(name), Some(uid)) = (&meta.namespace, &meta.name, &meta.uid)
        else {
            continue;
        };
        let secret = generated_key_secret_name(name);
        if !secret_known(namespace, &secret) {
            out.push(KeyToGenerate {
                namespace: namespace.clone(),
                api_key: name.clone(),
                uid: uid.clone(),
                secret,
            });
        }
    }
    out
}

/// A new random client key: `sk-sb-` and 48 alphanumerics from the OS-seeded CSPRNG.
pub fn generate_key() -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("{KEY_PREFIX}{random}")
}

/// The Secret holding a generated `key` for `target`, owned by its ApiKey.
pub fn key_secret(target: &KeyToGenerate, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(target.secret.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_string(),
                MANAGED_BY.1.to_string(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: format!("{}/{}", switchboard_api::GROUP, switchboard_api::VERSION),
                kind: "ApiKey".into(),
                name: target.api_key.clone(),
                uid: target.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            GENERATED_KEY_SECRET_KEY.to_string(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use switchboard_api::resources::SecretKeyRef;

    use super::*;

    fn api_key(name: &str, secret_ref: Option<SecretKeyRef>) -> ApiKey {
        let mut k: ApiKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "switchboard.dev/v1alpha1",
            "kind": "ApiKey",
            "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}")},
            "spec": {},
        }))
        .expect("valid ApiKey");
        k.spec.secret_ref = secret_ref;
        k
    }

    #[test]
    fn only_keys_without_secret_ref_and_without_their_secret_are_generated() {
        let own = api_key(
            "own",
            Some(SecretKeyRef {
                name: "mine".into(),
                key: "key".into(),
            }),
        );
        let has = api_key("has", None);
        let needs = api_key("needs", None);
        let mut deleting = api_key("deleting", None);
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let secrets =
            BTreeSet::from([("team-a".to_string(), "switchboard-apikey-has".to_string())]);
        let known = |ns: &str, name: &str| secrets.contains(&(ns.to_string(), name.to_string()));
        let out = keys_to_generate([&own, &has, &needs, &deleting], known);
        assert_eq!(
            out,
            vec![KeyToGenerate {
                namespace: "team-a".into(),
                api_key: "needs".into(),
                uid: "uid-needs".into(),
                secret: "switchboard-apikey-needs".into(),
            }]
        );
    }

    #[test]
    fn a_secret_in_another_namespace_does_not_count() {
        let needs = api_key("needs", None);
        let secrets =
            BTreeSet::from([("team-b".to_string(), "switchboard-apikey-needs".to_string())]);
        let known = |ns: &str, name: &str| secrets.contains(&(ns.to_string(), name.to_string()));
        assert_eq!(keys_to_generate([&needs], known).len(), 1);
    }

    #[test]
    fn generated_keys_are_long_random_and_distinct() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + KEY_RANDOM_CHARS);
        assert!(a.starts_with("sk-sb-"));
        assert!(
            a[KEY_PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }

    #[test]
    fn key_secret_is_owned_by_the_api_key_and_compiles() {
        let target = keys_to_generate([&api_key("alice", None)], |_, _| false).remove(0);
        let key = generate_key();
        let secret = key_secret(&target, &key);
        let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ApiKey");
        assert_eq!(owner.uid, "uid-alice");
        assert_eq!(owner.controller, Some(true));
        // The Secret is exactly what compile reads for an ApiKey without secretRef.
        let objects = vec![api_key("alice", None).into(), secret.into()];
        let compiled = switchboard_api::compile(&objects);
        let cfg = compiled
            .config
            .api_keys
            .values()
            .next()
            .expect("key compiled");
        assert_eq!(cfg.key_hash, switchboard_api::snapshot::hash_api_key(&key));
    }
}
