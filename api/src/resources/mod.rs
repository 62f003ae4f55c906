//! The four custom resources of group `switchboard.dev/v1alpha1`, and the small types they share.
//!
//! Field doc comments become the CRD's descriptions, so `kubectl explain` reads them: write them for
//! the platform engineer who applies the resource.

mod api_key;
mod budget;
mod model_route;
mod provider;

pub use api_key::*;
pub use budget::*;
pub use model_route::*;
pub use provider::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key inside a Secret in the same namespace as the object that names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace).
    pub name: String,
    /// Key inside the Secret's `data` or `stringData`.
    pub key: String,
}

/// The status every Switchboard resource carries: conditions plus the generation they describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// Kubernetes-style conditions; `Ready` says whether the object is part of the running config
    /// and, when not, exactly why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` these conditions were computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
