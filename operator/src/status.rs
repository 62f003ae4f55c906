//! What each object's `status` should say, decided from compile's verdict. Pure: the status writer
//! ([`crate::writer`]) only sends what [`plan`] returns.
//!
//! Choices:
//! - The operator owns the `Ready` condition, `observedGeneration` and the kind-specific counters
//!   (Provider `models`, ModelRoute `readyTargets`, ApiKey `prefix`). Other condition types already
//!   on the object are kept as they are.
//! - Spend comes from the ledger as [`SpendFigures`] read at one instant (the controller reads; this
//!   module only takes the numbers). With figures for a Budget, the operator also owns its
//!   `spentUSD`, `remainingUSD`, `windowStart`, `resetsAt` and the `SoftLimitReached` (only while
//!   `softLimitPercent` is set) and `Exceeded` conditions; with figures for an ApiKey, its
//!   `spendUSD` (the current UTC month). Without figures (no ledger configured, the ledger
//!   unreachable, an object the last read did not cover) those fields and conditions are left as
//!   they are.
//! - `lastTransitionTime` changes only when a condition's status flips; a new reason or message
//!   alone keeps it.
//! - A patch is planned only when something the operator owns differs, so a quiet cluster sees no
//!   writes.
//! - Events: `Normal`/`Ready` when an object becomes ready, `Warning`/`<reason>` when it becomes
//!   not ready or, while not ready, its reason changes; `Warning` when `SoftLimitReached` or
//!   `Exceeded` turns True, `Normal` when one that was True turns False (a new window).

use std::collections::BTreeMap;

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use switchboard_api::{
    Compiled, Compiler, ObjectOutcome, ObjectRef, ObjectResult, RouterConfig,
    counters::{budget_counter, key_usage_counter},
    money::{from_nanos, to_nanos},
    snapshot::{
        ApiKeyConfig, BudgetAction, BudgetConfig, BudgetWindow, ProviderConfig, RouteConfig,
    },
    windows::window_bounds,
};
use switchboard_ledger::CounterState;

/// Condition type the operator owns on every object.
pub const READY: &str = "Ready";
/// Budget condition: spend reached `softLimitPercent` of the limit.
pub const SOFT_LIMIT_REACHED: &str = "SoftLimitReached";
/// Budget condition: spend reached the limit.
pub const EXCEEDED: &str = "Exceeded";
/// Window an ApiKey's `status.spendUSD` covers.
pub const API_KEY_SPEND_WINDOW: BudgetWindow = BudgetWindow::Monthly;

/// Longest condition message written (the API server allows 32768 bytes).
const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Longest event note written (the API server allows 1 kB).
const MAX_NOTE_BYTES: usize = 1000;

/// What the operator wants one object's status to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStatus {
    /// `Ready` condition status.
    pub ready: bool,
    /// `Ready` condition reason.
    pub reason: String,
    /// `Ready` condition message.
    pub message: String,
    /// The generation the verdict is about.
    pub observed_generation: Option<i64>,
    /// Kind-specific fields.
    pub fields: KindFields,
}

/// The status fields particular to each kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindFields {
    /// Provider: models in the running config (0 when rejected).
    Provider {
        /// `status.models`.
        models: u32,
    },
    /// ModelRoute: targets that resolve (0 when rejected).
    ModelRoute {
        /// `status.readyTargets`.
        ready_targets: u32,
    },
    /// ApiKey: the key's recognisable prefix, when the key resolved, and its spend.
    ApiKey {
        /// `status.prefix`.
        prefix: Option<String>,
        /// `status.spendUSD`: nano-dollars spent in the UTC month of the figures; `None` leaves
        /// the field as it is.
        spend: Option<i64>,
    },
    /// Budget: its current window as the ledger sees it; `None` leaves the spend fields and
    /// conditions as they are.
    Budget {
        /// The figures, when known.
        spend: Option<BudgetSpend>,
    },
}

/// One Budget's current window: its limit and what the ledger holds against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetSpend {
    /// `limitUSD` in nano-dollars.
    pub limit: i64,
    /// Settled spend in the window, nano-dollars.
    pub spent: i64,
    /// Held by requests in flight, nano-dollars.
    pub reserved: i64,
    /// `softLimitPercent`.
    pub soft_limit_percent: Option<u8>,
    /// `action`, for the `Exceeded` message.
    pub action: BudgetAction,
    /// The window kind.
    pub window: BudgetWindow,
    /// Start of the window.
    pub window_start: Timestamp,
    /// End of the window (exclusive); `None` for `total`.
    pub resets_at: Option<Timestamp>,
}

/// What the ledger held at one instant, keyed by counter name. A counter name holds the object id
/// (`namespace/name`) and the window containing `at` ([`spend_counters`]), so figures read for one
/// window are never taken for another (a Budget whose window changed since, a new month).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendFigures {
    /// When the counters were read.
    pub at: Timestamp,
    /// Counter name to its state.
    pub counters: BTreeMap<String, CounterState>,
}

impl SpendFigures {
    /// Pairs the `counters` asked for with the `states` the ledger answered (same order).
    pub fn new(at: Timestamp, counters: Vec<String>, states: Vec<CounterState>) -> SpendFigures {
        SpendFigures {
            at,
            counters: counters.into_iter().zip(states).collect(),
        }
    }

    /// Whether these figures hold every counter `config` needs.
    pub fn covers(&self, config: &RouterConfig) -> bool {
        spend_counters(config, self.at)
            .iter()
            .all(|c| self.counters.contains_key(c))
    }
}

/// The counters whose state the status needs at `at`: each Budget's current window, then each
/// ApiKey's current UTC month. Read in one `Ledger::read` call.
pub fn spend_counters(config: &RouterConfig, at: Timestamp) -> Vec<String> {
    spend_targets(config, at)
        .into_iter()
        .map(|(c, _)| c)
        .collect()
}

/// [`spend_counters`], each with the object whose status shows it.
pub fn spend_targets(config: &RouterConfig, at: Timestamp) -> Vec<(String, ObjectRef)> {
    let budgets = config.budgets.iter().map(|(id, b)| {
        let r = ObjectRef {
            kind: "Budget",
            namespace: b.namespace.clone(),
            name: b.name.clone(),
        };
        (budget_counter(id, b.window, at), r)
    });
    let keys = config.api_keys.values().map(|k| {
        let r = ObjectRef {
            kind: "ApiKey",
            namespace: k.namespace.clone(),
            name: k.name.clone(),
        };
        (key_usage_counter(&k.id(), API_KEY_SPEND_WINDOW, at), r)
    });
    budgets.chain(keys).collect()
}

/// A Kubernetes Event to emit about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    /// `Warning` when true, else `Normal`.
    pub warning: bool,
    /// `Ready`, the reason the object is not ready, or a spend condition's reason.
    pub reason: String,
    /// Human-readable detail.
    pub note: String,
}

/// A status write to make: the JSON merge patch body and the events it warrants.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// `{"status": {...}}`, a JSON merge patch for the status subresource.
    pub patch: Value,
    /// Events to emit once the patch is written, `Ready`'s first.
    pub events: Vec<StatusEvent>,
}

/// What status needs of the snapshot about one object.
pub trait SnapshotView {
    /// The provider `namespace/name`.
    fn provider(&self, id: &str) -> Option<&ProviderConfig>;
    /// The route the ModelRoute `namespace/name` serves, if it serves one.
    fn route_of(&self, namespace: &str, name: &str) -> Option<&RouteConfig>;
    /// The key of the ApiKey `namespace/name`, if it is in the snapshot.
    fn api_key_of(&self, namespace: &str, name: &str) -> Option<&ApiKeyConfig>;
    /// The budget `namespace/name`.
    fn budget(&self, id: &str) -> Option<&BudgetConfig>;
}

/// A whole snapshot, searched (for tests and small configs).
impl SnapshotView for RouterConfig {
    fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers.get(id)
    }
    fn route_of(&self, namespace: &str, name: &str) -> Option<&RouteConfig> {
        self.routes
            .values()
            .find(|r| r.namespace == namespace && r.name == name)
    }
    fn api_key_of(&self, namespace: &str, name: &str) -> Option<&ApiKeyConfig> {
        self.api_keys
            .values()
            .find(|k| k.namespace == namespace && k.name == name)
    }
    fn budget(&self, id: &str) -> Option<&BudgetConfig> {
        self.budgets.get(id)
    }
}

/// The live compiler, looked up by its indexes.
impl SnapshotView for Compiler {
    fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.config().providers.get(id)
    }
    fn route_of(&self, namespace: &str, name: &str) -> Option<&RouteConfig> {
        Compiler::route_of(self, namespace, name)
    }
    fn api_key_of(&self, namespace: &str, name: &str) -> Option<&ApiKeyConfig> {
        Compiler::api_key_of(self, namespace, name)
    }
    fn budget(&self, id: &str) -> Option<&BudgetConfig> {
        self.config().budgets.get(id)
    }
}

/// The desired status of every object compile judged, with the spend `figures` when known.
pub fn desired_all(
    compiled: &Compiled,
    figures: Option<&SpendFigures>,
) -> BTreeMap<ObjectRef, DesiredStatus> {
    compiled
        .results
        .iter()
        .map(|(r, res)| (r.clone(), desired(r, res, &compiled.config, figures)))
        .collect()
}

/// The desired status of one object, from its verdict, the snapshot it is (or is not) in and the
/// spend `figures` when known. An object left out of the snapshot gets no spend figures.
pub fn desired(
    r: &ObjectRef,
    result: &ObjectResult,
    config: &impl SnapshotView,
    figures: Option<&SpendFigures>,
) -> DesiredStatus {
    let ready = result.outcome.is_ready();
    let id = format!("{}/{}", r.namespace, r.name);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let fields = match r.kind {
        "Provider" => KindFields::Provider {
            models: config
                .provider(&id)
                .filter(|_| ready)
                .map_or(0, |p| count(p.models.len())),
        },
        "ModelRoute" => KindFields::ModelRoute {
            ready_targets: config
                .route_of(&r.namespace, &r.name)
                .filter(|_| ready)
                .map_or(0, |route| count(route.targets.len())),
        },
        "ApiKey" => {
            let key = config.api_key_of(&r.namespace, &r.name).filter(|_| ready);
            KindFields::ApiKey {
                prefix: key.map(|k| k.prefix.clone()),
                spend: key.zip(figures).and_then(|(k, f)| {
                    let counter = key_usage_counter(&k.id(), API_KEY_SPEND_WINDOW, f.at);
                    f.counters.get(&counter).map(|c| c.spent)
                }),
            }
        }
        _ => KindFields::Budget {
            spend: config
                .budget(&id)
                .filter(|_| ready)
                .zip(figures)
                .and_then(|(b, f)| {
                    let state = f.counters.get(&budget_counter(&id, b.window, f.at))?;
                    let (window_start, resets_at) = window_bounds(b.window, f.at);
                    Some(BudgetSpend {
                        limit: to_nanos(b.limit_usd),
                        spent: state.spent,
                        reserved: state.reserved,
                        soft_limit_percent: b.soft_limit_percent,
                        action: b.action,
                        window: b.window,
                        window_start,
                        resets_at,
                    })
                }),
        },
    };
    DesiredStatus {
        ready,
        reason: result.outcome.reason().to_string(),
        message: truncate(result.outcome.message(), MAX_MESSAGE_BYTES),
        observed_generation: result.generation,
        fields,
    }
}

/// The status write that brings `current` (the object's `status`, `Value::Null` when unset) to
/// `desired`, or `None` when it already says that. `now` is the RFC 3339 time stamped on a
/// condition that flips.
pub fn plan(current: &Value, desired: &DesiredStatus, now: &str) -> Option<StatusChange> {
    let conditions: Vec<Value> = current
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (new_conditions, events) = plan_conditions(&conditions, desired, now);
    let mut status = Map::new();
    status.insert("conditions".into(), Value::Array(new_conditions.clone()));
    status.insert(
        "observedGeneration".into(),
        desired.observed_generation.map_or(Value::Null, Value::from),
    );
    insert_kind_fields(&mut status, &desired.fields);

    // Same condition set (order aside) and same owned fields: nothing to write.
    let same_conditions = conditions.len() == new_conditions.len()
        && new_conditions.iter().all(|c| conditions.contains(c));
    let same_fields = status
        .iter()
        .filter(|(k, _)| k.as_str() != "conditions")
        .all(|(k, v)| current.get(k).unwrap_or(&Value::Null) == v);
    if same_conditions && same_fields {
        return None;
    }
    Some(StatusChange {
        patch: json!({ "status": Value::Object(status) }),
        events,
    })
}

/// The conditions to write (the owned ones as desired, `lastTransitionTime` kept unless the status
/// flips; the others as they are) and the Events the changes call for.
fn plan_conditions(
    conditions: &[Value],
    desired: &DesiredStatus,
    now: &str,
) -> (Vec<Value>, Vec<StatusEvent>) {
    let type_of = |c: &Value| c.get("type").and_then(Value::as_str).map(str::to_string);
    let (owned, managed) = owned_conditions(desired);
    let mut new_conditions = Vec::new();
    let mut events = Vec::new();
    for c in &owned {
        let old = conditions
            .iter()
            .find(|o| type_of(o).as_deref() == Some(c.type_));
        let old_status = old.and_then(|o| o.get("status")).and_then(Value::as_str);
        let old_reason = old.and_then(|o| o.get("reason")).and_then(Value::as_str);
        let status_str = if c.status { "True" } else { "False" };
        let flipped = old_status != Some(status_str);
        let transition_time = match old.and_then(|o| o.get("lastTransitionTime")) {
            Some(t) if !flipped && t.is_string() => t.clone(),
            _ => Value::String(now.to_string()),
        };
        let mut cond = Map::new();
        cond.insert("type".into(), c.type_.into());
        cond.insert("status".into(), status_str.into());
        cond.insert("reason".into(), c.reason.clone().into());
        cond.insert("message".into(), c.message.clone().into());
        cond.insert("lastTransitionTime".into(), transition_time);
        if let Some(g) = desired.observed_generation {
            cond.insert("observedGeneration".into(), g.into());
        }
        new_conditions.push(Value::Object(cond));
        if let Some(e) = c.event(flipped, old_status, old_reason) {
            events.push(e);
        }
    }
    new_conditions.extend(
        conditions
            .iter()
            .filter(|c| !type_of(c).is_some_and(|t| managed.contains(&t.as_str())))
            .cloned(),
    );
    (new_conditions, events)
}

/// The kind-specific status fields the operator owns.
fn insert_kind_fields(status: &mut Map<String, Value>, fields: &KindFields) {
    match fields {
        KindFields::Provider { models } => {
            status.insert("models".into(), (*models).into());
        }
        KindFields::ModelRoute { ready_targets } => {
            status.insert("readyTargets".into(), (*ready_targets).into());
        }
        KindFields::ApiKey { prefix, spend } => {
            status.insert(
                "prefix".into(),
                prefix.clone().map_or(Value::Null, Value::String),
            );
            if let Some(spent) = spend {
                status.insert("spendUSD".into(), usd(*spent).into());
            }
        }
        KindFields::Budget { spend: Some(s) } => {
            let remaining = s.limit.saturating_sub(s.spent).saturating_sub(s.reserved);
            status.insert("spentUSD".into(), usd(s.spent).into());
            status.insert("remainingUSD".into(), usd(remaining.max(0)).into());
            // A `total` window has neither a start nor an end worth writing.
            let total = s.window == BudgetWindow::Total;
            status.insert(
                "windowStart".into(),
                if total {
                    Value::Null
                } else {
                    rfc3339(s.window_start).into()
                },
            );
            status.insert(
                "resetsAt".into(),
                s.resets_at.map_or(Value::Null, |t| rfc3339(t).into()),
            );
        }
        KindFields::Budget { spend: None } => {}
    }
}

/// A condition the operator sets, with what its transitions announce.
struct OwnedCondition {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

impl OwnedCondition {
    /// The Event this condition warrants, given what it was.
    fn event(
        &self,
        flipped: bool,
        old_status: Option<&str>,
        old_reason: Option<&str>,
    ) -> Option<StatusEvent> {
        let warn = |note: &str| StatusEvent {
            warning: true,
            reason: self.reason.clone(),
            note: truncate(note, MAX_NOTE_BYTES),
        };
        if self.type_ == READY {
            return if self.status && flipped {
                Some(StatusEvent {
                    warning: false,
                    reason: READY.into(),
                    note: truncate(
                        &format!("{}: {}", self.reason, self.message),
                        MAX_NOTE_BYTES,
                    ),
                })
            } else if !self.status && (flipped || old_reason != Some(self.reason.as_str())) {
                Some(warn(&self.message))
            } else {
                None
            };
        }
        // Spend conditions: a warning when one turns True, a note when one that was True clears
        // (first seen False is not news).
        if self.status && flipped {
            Some(warn(&self.message))
        } else if !self.status && old_status == Some("True") {
            Some(StatusEvent {
                warning: false,
                reason: self.reason.clone(),
                note: truncate(&self.message, MAX_NOTE_BYTES),
            })
        } else {
            None
        }
    }
}

/// The conditions `desired` sets, in order, and every condition type it manages (those set plus
/// those it removes; other types on the object are kept).
fn owned_conditions(desired: &DesiredStatus) -> (Vec<OwnedCondition>, Vec<&'static str>) {
    let mut owned = vec![OwnedCondition {
        type_: READY,
        status: desired.ready,
        reason: desired.reason.clone(),
        message: desired.message.clone(),
    }];
    let mut managed = vec![READY];
    if let KindFields::Budget { spend: Some(s) } = &desired.fields {
        owned.extend(budget_conditions(s));
        managed.extend([SOFT_LIMIT_REACHED, EXCEEDED]);
    }
    (owned, managed)
}

/// `SoftLimitReached` (only while a soft limit is set) and `Exceeded` of a Budget, with messages
/// that say the numbers. Comparisons are exact, in nano-dollars.
fn budget_conditions(s: &BudgetSpend) -> Vec<OwnedCondition> {
    let spent = format!("spent ${} of the ${} limit", usd(s.spent), usd(s.limit));
    let mut out = Vec::new();
    if let Some(pct) = s.soft_limit_percent {
        let reached = i128::from(s.spent) * 100 >= i128::from(s.limit) * i128::from(pct);
        let threshold = (from_nanos(s.limit) * Decimal::from(pct) / Decimal::from(100)).normalize();
        out.push(OwnedCondition {
            type_: SOFT_LIMIT_REACHED,
            status: reached,
            reason: if reached {
                "SoftLimitReached"
            } else {
                "BelowSoftLimit"
            }
            .into(),
            message: format!(
                "{spent}, {} the {pct}% soft limit (${threshold})",
                if reached { "at or above" } else { "below" }
            ),
        });
    }
    let window = match s.window {
        BudgetWindow::Total => "in total".to_string(),
        w => format!(
            "in the {} window from {}",
            w.name(),
            rfc3339(s.window_start)
        ),
    };
    let exceeded = s.spent >= s.limit;
    let message = if exceeded {
        let consequence = match (s.action, s.resets_at) {
            (BudgetAction::AlertOnly, _) => "requests are still served (action alertOnly)".into(),
            (BudgetAction::Block, Some(t)) => {
                format!("requests in scope are refused until {}", rfc3339(t))
            }
            (BudgetAction::Block, None) => {
                "requests in scope are refused (a total budget never resets)".into()
            }
        };
        format!("{spent} {window}; {consequence}")
    } else {
        let left = s
            .limit
            .saturating_sub(s.spent)
            .saturating_sub(s.reserved)
            .max(0);
        format!("{spent} {window}; ${} left", usd(left))
    };
    out.push(OwnedCondition {
        type_: EXCEEDED,
        status: exceeded,
        reason: if exceeded {
            "LimitReached"
        } else {
            "WithinLimit"
        }
        .into(),
        message,
    });
    out
}

/// Nano-dollars as the exact decimal string status carries (`"0.000002"`, `"5"`).
fn usd(nanos: i64) -> String {
    from_nanos(nanos).to_string()
}

/// RFC 3339 in UTC to the second, as every time the operator writes.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Rejected objects by reason, for the `switchboard_operator_rejected_objects` gauge.
pub fn rejected_counts(compiled: &Compiled) -> BTreeMap<(&'static str, &'static str), i64> {
    let mut out = BTreeMap::new();
    for (r, res) in &compiled.results {
        if let ObjectOutcome::Rejected { reason, .. } = res.outcome {
            *out.entry((r.kind, reason)).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
