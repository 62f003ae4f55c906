//! What the compile tests share: the builders of [`crate::testing::resources`] and readers of
//! compile results.

pub use std::collections::BTreeMap;

pub use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Time};
pub use rust_decimal::Decimal;

pub use crate::testing::resources::*;

pub use super::{reason::*, *};
pub use crate::{
    manifest::{Object, ObjectRef, parse_manifests},
    resources::{
        ApiKey, AzureSettings, BedrockSettings, Budget, BudgetAction, BudgetScope, BudgetWindow,
        Capability, Credentials, FailureMode, MockBehaviour, ModelRoute, Provider,
        ProviderTimeouts, ProviderType, RateLimits, RouteSort, VertexSettings,
    },
    snapshot::{
        BedrockConfig, CredentialSource, MockConfig, PriceTable, SecretValue, TargetConfig,
        Timeouts, hash_api_key,
    },
};

/// The namespace of every built object.
pub const NS: &str = TEST_NAMESPACE;
pub const ALICE_KEY: &str = "sk-sb-alice-0123456789abcdef";

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
