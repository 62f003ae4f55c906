use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, FitMaxTokens};
use crate::money::UsdAmount;

/// A money limit over a window, for a set of ApiKeys and optionally a set of models.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "Budget",
    namespaced,
    derive = "PartialEq",
    status = "BudgetStatus",
    shortname = "sbbudget",
    category = "switchboard",
    printcolumn = r#"{"name":"Limit","type":"string","jsonPath":".spec.limitUSD"}"#,
    printcolumn = r#"{"name":"Spent","type":"string","jsonPath":".status.spentUSD"}"#,
    printcolumn = r#"{"name":"Window","type":"string","jsonPath":".spec.window"}"#,
    printcolumn = r#"{"name":"Resets","type":"string","jsonPath":".status.resetsAt"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetSpec {
    /// The most this budget lets its scope spend in one window, in USD, as a decimal string.
    #[serde(rename = "limitUSD")]
    pub limit_usd: UsdAmount,
    /// The window spend is counted over, aligned to UTC (weeks start on Monday).
    #[serde(default)]
    pub window: BudgetWindow,
    /// Which requests count against this budget. An empty scope covers every key in the namespace.
    #[serde(default)]
    pub scope: BudgetScope,
    /// Percentage of the limit at which the budget reports `SoftLimitReached` (1-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100")
        .message("softLimitPercent must be between 1 and 100"))]
    pub soft_limit_percent: Option<u8>,
    /// What happens when a request would exceed the limit.
    #[serde(default)]
    pub action: BudgetAction,
    /// What happens when the shared spend store is unreachable.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Fit requests this budget cannot cover by lowering their `max_tokens` (down to
    /// `minTokens`) instead of refusing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_max_tokens: Option<FitMaxTokens>,
}

/// The window a Budget counts spend over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BudgetWindow {
    /// A UTC day.
    Daily,
    /// A UTC week starting Monday 00:00.
    Weekly,
    /// A UTC calendar month.
    #[default]
    Monthly,
    /// Never resets.
    Total,
}

/// Which requests a Budget counts. Conditions combine with AND; an empty scope covers the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetScope {
    /// ApiKey names (same namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<String>,
    /// ApiKeys whose labels include all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// ApiKeys of this team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Public model names, as globs; empty means every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(g, size(g) > 0)")
        .message("scope.models must not contain an empty glob"))]
    pub models: Vec<String>,
}

/// What a Budget does when a request would exceed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BudgetAction {
    /// Refuse the request with HTTP 402.
    #[default]
    Block,
    /// Let it through and raise the `Exceeded` condition and metric.
    AlertOnly,
}

/// What a Budget does when the spend store cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Refuse requests in scope (default).
    #[default]
    Closed,
    /// Let requests through uncounted.
    Open,
}

/// Observed state of a Budget.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// Conditions (`Ready`, `SoftLimitReached`, `Exceeded`) and observed generation.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// USD spent in the current window.
    #[serde(default, rename = "spentUSD", skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<String>,
    /// USD left in the current window.
    #[serde(
        default,
        rename = "remainingUSD",
        skip_serializing_if = "Option::is_none"
    )]
    pub remaining_usd: Option<String>,
    /// Start of the current window, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// When the current window ends, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
}
