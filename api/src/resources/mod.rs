//! The four custom resources of group `switchboard.dev/v1alpha1`, and the small types they share.
//!
//! Field doc comments become the CRD's descriptions, so `kubectl explain` reads them: write them for
//! the platform engineer who applies the resource.

mod api_key;
mod budget;
mod cache;
mod model_route;
mod provider;

pub use api_key::*;
pub use budget::*;
pub use cache::*;
pub use model_route::*;
pub use provider::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Fitting a request to what a budget has left, instead of refusing it: when a blocking budget
/// cannot cover a request's worst case, its output limit (`max_tokens`) is lowered to the largest
/// the budget still covers, and the answer says so in `X-Switchboard-Max-Tokens-Fitted`. Coding
/// agents ask for their model's whole output limit on every call (Claude Code: 128000 tokens),
/// which a modest budget would otherwise refuse outright. The guarantee stays exact: what is
/// reserved is the fitted request's worst case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FitMaxTokens {
    /// Lower the output limit of a request that would not fit, instead of refusing it with 402.
    #[serde(default)]
    pub enabled: bool,
    /// The lowest output limit a request is fitted to; a budget that cannot cover even this many
    /// output tokens refuses the request (402), as without fitting. Default 1024.
    #[serde(default = "FitMaxTokens::default_min_tokens")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("fitMaxTokens.minTokens must be at least 1"))]
    pub min_tokens: u32,
}

impl FitMaxTokens {
    /// The floor when `minTokens` is not set.
    pub const DEFAULT_MIN_TOKENS: u32 = 1024;

    fn default_min_tokens() -> u32 {
        Self::DEFAULT_MIN_TOKENS
    }

    /// The floor, when fitting is on.
    pub fn floor(&self) -> Option<u64> {
        self.enabled.then_some(u64::from(self.min_tokens))
    }
}

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
