//! Builders of one valid object of each kind, which tests bend out of shape, and readers of
//! compile results.

#![allow(dead_code)]

pub use std::collections::BTreeMap;

pub use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};
pub use rust_decimal::Decimal;

pub use super::{reason::*, *};
pub use crate::{
    manifest::{Object, ObjectRef, parse_manifests},
    resources::{
        ApiKey, ApiKeySpec, AzureSettings, BedrockSettings, Budget, BudgetAction, BudgetScope,
        BudgetSpec, BudgetWindow, Capability, Credentials, FailureMode, MockBehaviour, ModelRoute,
        ModelRouteSpec, Pricing, Provider, ProviderModel, ProviderSpec, ProviderTimeouts,
        ProviderType, RateLimits, RouteSort, RouteTarget, SecretKeyRef, VertexSettings,
    },
    snapshot::{
        BedrockConfig, CredentialSource, MockConfig, PriceTable, SecretValue, TargetConfig,
        Timeouts, hash_api_key,
    },
};

// ---------------------------------------------------------------------------------------------
// Builders: one valid object of each kind, which tests bend out of shape.

pub const NS: &str = "default";
pub const UPSTREAM_SECRET: &str = "sk-upstream-never-shown-42";
pub const ALICE_KEY: &str = "sk-sb-alice-0123456789abcdef";

pub fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        generation: Some(3),
        ..Default::default()
    }
}

pub fn secret(name: &str, key: &str, value: &str) -> Object {
    let string_data = BTreeMap::from([(key.to_string(), value.to_string())]);
    Object::Secret(Secret {
        metadata: meta(name),
        string_data: Some(string_data),
        ..Default::default()
    })
}

pub fn secret_bytes(name: &str, key: &str, value: &[u8]) -> Object {
    let data = BTreeMap::from([(key.to_string(), ByteString(value.to_vec()))]);
    Object::Secret(Secret {
        metadata: meta(name),
        data: Some(data),
        ..Default::default()
    })
}

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

pub fn secret_ref(name: &str, key: &str) -> Option<SecretKeyRef> {
    Some(SecretKeyRef {
        name: name.into(),
        key: key.into(),
    })
}

/// An `openaiCompatible` Provider at `http://upstream.test/v1` offering model `m`, with its key in
/// Secret `creds` key `apiKey` (see [`creds`]).
pub fn provider(name: &str) -> Provider {
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
    p.metadata = meta(name);
    p
}

pub fn creds() -> Object {
    secret("creds", "apiKey", UPSTREAM_SECRET)
}

pub fn route(name: &str, public: &str, targets: &[(&str, &str)]) -> ModelRoute {
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
        },
    );
    r.metadata = meta(name);
    r
}

/// An ApiKey whose key is in Secret `<name>-key` key `key` (see [`key_secret`]).
pub fn api_key(name: &str) -> ApiKey {
    let mut k = ApiKey::new(
        name,
        ApiKeySpec {
            secret_ref: secret_ref(&format!("{name}-key"), "key"),
            team: None,
            allowed_models: vec![],
            denied_models: vec![],
            rate_limits: None,
            provider_policy: None,
            expires_at: None,
            disabled: false,
            fit_max_tokens: None,
        },
    );
    k.metadata = meta(name);
    k
}

pub fn key_secret(name: &str, value: &str) -> Object {
    secret(&format!("{name}-key"), "key", value)
}

pub fn budget(name: &str, limit: &str) -> Budget {
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
    b.metadata = meta(name);
    b
}

pub fn with_labels(mut meta: ObjectMeta, labels: &[(&str, &str)]) -> ObjectMeta {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.labels = Some(labels);
    meta
}

// ---------------------------------------------------------------------------------------------
// Reading results

pub fn outcome<'c>(c: &'c Compiled, kind: &'static str, name: &str) -> &'c ObjectOutcome {
    let r = ObjectRef {
        kind,
        namespace: NS.into(),
        name: name.into(),
    };
    &c.results
        .get(&r)
        .unwrap_or_else(|| panic!("no result for {r}"))
        .outcome
}

#[track_caller]
pub fn ready(c: &Compiled, kind: &'static str, name: &str) -> (&'static str, String) {
    match outcome(c, kind, name) {
        ObjectOutcome::Ready { reason, message } => (reason, message.clone()),
        other => panic!("{kind} {name} should be ready: {other:?}"),
    }
}

/// Asserts the object is rejected with `reason` and a message naming `field`; returns the message.
#[track_caller]
pub fn assert_rejected(
    c: &Compiled,
    kind: &'static str,
    name: &str,
    reason: &str,
    field: &str,
) -> String {
    match outcome(c, kind, name) {
        ObjectOutcome::Rejected {
            reason: got,
            message,
        } => {
            assert_eq!(*got, reason, "{kind} {name}: {message}");
            assert!(
                message.contains(field),
                "{kind} {name}: message should name {field:?}: {message}"
            );
            message.clone()
        }
        other => panic!("{kind} {name} should be rejected with {reason}: {other:?}"),
    }
}

pub fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub fn provider_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: "Provider",
        namespace: NS.into(),
        name: name.into(),
    }
}
