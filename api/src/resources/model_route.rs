use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CommonStatus;

/// One public model name clients ask for, and the provider models that can serve it.
//
// The CEL rules repeat, for `kubectl apply`, checks of `compile()` (which stays the source of
// truth); api/tests/crd_cel.rs checks that the two agree.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "ModelRoute",
    namespaced,
    derive = "PartialEq",
    status = "ModelRouteStatus",
    shortname = "mr",
    category = "switchboard",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Targets","type":"integer","jsonPath":".status.readyTargets"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.fallbackModels) || !(self.model in self.fallbackModels)")
    .message("fallbackModels must not contain this route's own model")
    .field_path(".fallbackModels"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelRouteSpec {
    /// The public model name clients send as `model`, e.g. `openai/gpt-4o-mini` or an alias such
    /// as `smart`. Unique across all ModelRoutes.
    #[schemars(length(max = 256))]
    pub model: String,
    /// Provider models that can serve this name, tried in the routing order.
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new("size(self) > 0").message("targets must list at least one target"),
        validation = Rule::new(
            "self.all(t, self.exists_one(u, u.provider == t.provider && u.model == t.model))"
        )
        .message("targets must not list the same provider and model twice"),
    )]
    pub targets: Vec<RouteTarget>,
    /// Other public model names tried, in order, once every target has failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    #[x_kube(validation = Rule::new("self.all(f, self.exists_one(g, g == f))")
        .message("fallbackModels must not list the same name twice"))]
    pub fallback_models: Vec<String>,
    /// Routing order across targets: unset means healthy targets first, in `priority` order, then
    /// weighted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<RouteSort>,
    /// Further passes over the targets after all of them failed with a transient error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryPolicy>,
    /// Deadline for a whole request across all attempts, as a duration (e.g. `120s`). Unset: the
    /// providers' own `timeouts.total` bound each attempt and there is no overall deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Keep the prompt and the completion of requests for this model in the usage store (off by
    /// default: records hold no content; docs/usage.md#privacy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_content: bool,
    /// Serve repeated requests from a cache (off unless set; docs/caching.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::CacheSpec>,
}

/// Retries after every target failed with a transient error (connection, timeout, 429, 5xx).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Extra passes over the targets (0-5, default 1). Targets that are ejected or asked to be
    /// left alone (`Retry-After`) are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 5").message("attempts must be at most 5"))]
    pub attempts: Option<u32>,
    /// Wait before the first extra pass, doubled for each further one, with full jitter (default
    /// `200ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Longest wait between passes (default `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
}

/// A provider model that can serve a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTarget {
    /// Name of a Provider in the same namespace.
    #[schemars(length(max = 253))]
    pub provider: String,
    /// One of that Provider's `models[].name`.
    #[schemars(length(max = 256))]
    pub model: String,
    /// Relative share of traffic among targets of equal priority (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1")
        .message("weight must be at least 1 (remove the target to stop sending it traffic)"))]
    pub weight: Option<u32>,
    /// Lower is tried first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// An explicit ordering of a route's targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RouteSort {
    /// Cheapest first.
    Price,
    /// Lowest measured latency first.
    Latency,
    /// Highest measured throughput first.
    Throughput,
}

/// Observed state of a ModelRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouteStatus {
    /// Conditions and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of targets that resolve to a ready Provider model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_targets: Option<u32>,
}
