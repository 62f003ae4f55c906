//! Builders of one valid custom resource of each kind, and of the Secrets they read, for tests to
//! bend out of shape: `Provider::test("p")`, `ModelRoute::test(..)`, `ApiKey::test("alice")`,
//! `Budget::test("monthly", "5")`. Every object is in [`TEST_NAMESPACE`] with generation 3.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use crate::{
    manifest::Object,
    resources::{
        ApiKey, ApiKeySpec, Budget, BudgetScope, BudgetSpec, Credentials, ModelRoute,
        ModelRouteSpec, Pricing, Provider, ProviderModel, ProviderSpec, ProviderType, RouteTarget,
        SecretKeyRef,
    },
};

/// The namespace every builder puts its object in.
pub const TEST_NAMESPACE: &str = "default";
/// The upstream credential [`creds`] holds, which must never be shown.
pub const UPSTREAM_SECRET: &str = "sk-upstream-never-shown-42";

/// Metadata of an object named `name` in [`TEST_NAMESPACE`], generation 3.
pub fn test_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(TEST_NAMESPACE.into()),
        generation: Some(3),
        ..Default::default()
    }
}

/// `meta` with exactly these labels.
pub fn with_labels(mut meta: ObjectMeta, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.labels = Some(labels);
    meta
}

/// A Secret `name` holding `value` under `key` in `stringData`.
pub fn secret(name: &str, key: &str, value: &str) -> Object {
    let string_data = BTreeMap::from([(key.to_string(), value.to_string())]);
    Object::Secret(Secret {
        metadata: test_meta(name),
        string_data: Some(string_data),
        ..Default::default()
    })
}

/// A Secret `name` holding the bytes `value` under `key` in `data`.
pub fn secret_bytes(name: &str, key: &str, value: &[u8]) -> Object {
    let data = BTreeMap::from([(key.to_string(), ByteString(value.to_vec()))]);
    Object::Secret(Secret {
        metadata: test_meta(name),
        data: Some(data),
        ..Default::default()
    })
}

/// The Secret `creds` (key `apiKey`) that [`Provider::test`] reads its credential from.
pub fn creds() -> Object {
    secret("creds", "apiKey", UPSTREAM_SECRET)
}

/// The Secret `<name>-key` (key `key`) that [`ApiKey::test`] reads its key from.
pub fn key_secret(name: &str, value: &str) -> Object {
    secret(&format!("{name}-key"), "key", value)
}

/// A reference to `key` of the Secret `name`.
pub fn secret_ref(name: &str, key: &str) -> Option<SecretKeyRef> {
    Some(SecretKeyRef {
        name: name.into(),
        key: key.into(),
    })
}

/// A model priced at `input` and `output` USD per million tokens.
pub fn model(name: &str, input: &str, output: &str) -> ProviderModel {
    ProviderModel {
        name: name.into(),
        pricing: Pricing {
            input_usd_per_million: Some(input.into()),
            output_usd_per_million: Some(output.into()),
            ..Default::default()
        },
        context_length: None,
        max_output_tokens: None,
        capabilities: vec![],
    }
}

impl Provider {
    /// An `openaiCompatible` Provider at `http://upstream.test/v1` offering model `m`, with its
    /// key in Secret `creds` key `apiKey` (see [`creds`]).
    pub fn test(name: &str) -> Provider {
        let mut p = Provider::new(
            name,
            ProviderSpec {
                provider_type: ProviderType::OpenaiCompatible,
                base_url: Some("http://upstream.test/v1".into()),
                credentials: Some(Credentials {
                    secret_ref: secret_ref("creds", "apiKey"),
                    env: None,
                }),
                headers: BTreeMap::new(),
                models: vec![model("m", "0.15", "0.60")],
                data_policy: None,
                timeouts: None,
                max_concurrent_requests: None,
                mock: None,
                azure: None,
                bedrock: None,
                vertex: None,
            },
        );
        p.metadata = test_meta(name);
        p
    }
}

impl ModelRoute {
    /// A ModelRoute serving the public model `public` from `targets` (provider, model) pairs.
    pub fn test(name: &str, public: &str, targets: &[(&str, &str)]) -> ModelRoute {
        let targets = targets
            .iter()
            .map(|(provider, model)| RouteTarget {
                provider: provider.to_string(),
                model: model.to_string(),
                weight: None,
                priority: None,
            })
            .collect();
        let mut r = ModelRoute::new(
            name,
            ModelRouteSpec {
                model: public.into(),
                targets,
                fallback_models: vec![],
                sort: None,
                retries: None,
                timeout: None,
                record_content: false,
                cache: None,
            },
        );
        r.metadata = test_meta(name);
        r
    }
}

impl ApiKey {
    /// An ApiKey whose key is in Secret `<name>-key` key `key` (see [`key_secret`]).
    pub fn test(name: &str) -> ApiKey {
        let mut k = ApiKey::new(
            name,
            ApiKeySpec {
                secret_ref: secret_ref(&format!("{name}-key"), "key"),
                subjects: vec![],
                team: None,
                allowed_models: vec![],
                denied_models: vec![],
                rate_limits: None,
                provider_policy: None,
                expires_at: None,
                disabled: false,
                fit_max_tokens: None,
                record_content: false,
                cache: None,
            },
        );
        k.metadata = test_meta(name);
        k
    }
}

impl Budget {
    /// A monthly Budget of `limit` USD over every key of the namespace.
    pub fn test(name: &str, limit: &str) -> Budget {
        let mut b = Budget::new(
            name,
            BudgetSpec {
                limit_usd: limit.into(),
                window: Default::default(),
                scope: BudgetScope::default(),
                soft_limit_percent: None,
                action: Default::default(),
                failure_mode: Default::default(),
                fit_max_tokens: None,
            },
        );
        b.metadata = test_meta(name);
        b
    }
}
