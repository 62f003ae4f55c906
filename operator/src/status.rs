//! What each object's `status` should say, decided from compile's verdict. Pure: the status writer
//! ([`crate::writer`]) only sends what [`plan`] returns.
//!
//! Choices:
//! - The operator owns the `Ready` condition, `observedGeneration` and the kind-specific counters
//!   (Provider `models`, ModelRoute `readyTargets`, ApiKey `prefix`). Other condition types already
//!   on the object are kept as they are.
//! - `lastTransitionTime` changes only when `Ready` flips; a new reason or message alone keeps it.
//! - A patch is planned only when something the operator owns differs, so a quiet cluster sees no
//!   writes.
//! - Events: `Normal`/`Ready` when an object becomes ready, `Warning`/`<reason>` when it becomes
//!   not ready or, while not ready, its reason changes.
//! - Spend fields (Budget `spentUSD`/`remainingUSD`/`resetsAt`, ApiKey `spendUSD`) are not written:
//!   they come from the ledger, which does not exist yet.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use switchboard_api::{Compiled, ObjectOutcome, ObjectRef, ObjectResult, RouterConfig};

/// Condition type the operator owns.
pub const READY: &str = "Ready";

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
    /// ApiKey: the key's recognisable prefix, when the key resolved.
    ApiKey {
        /// `status.prefix`.
        prefix: Option<String>,
    },
    /// Budget: nothing beyond conditions until spend comes from the ledger.
    Budget,
}

/// A Kubernetes Event to emit about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyEvent {
    /// `Warning` when true, else `Normal`.
    pub warning: bool,
    /// `Ready`, or the reason the object is not ready.
    pub reason: String,
    /// Human-readable detail.
    pub note: String,
}

/// A status write to make: the JSON merge patch body and the event it warrants, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// `{"status": {...}}`, a JSON merge patch for the status subresource.
    pub patch: Value,
    /// Event to emit when `Ready` transitioned.
    pub event: Option<ReadyEvent>,
}

/// The desired status of every object compile judged.
pub fn desired_all(compiled: &Compiled) -> BTreeMap<ObjectRef, DesiredStatus> {
    compiled
        .results
        .iter()
        .map(|(r, res)| (r.clone(), desired(r, res, &compiled.config)))
        .collect()
}

/// The desired status of one object, from its verdict and the snapshot it is (or is not) in.
pub fn desired(r: &ObjectRef, result: &ObjectResult, config: &RouterConfig) -> DesiredStatus {
    let ready = result.outcome.is_ready();
    let id = format!("{}/{}", r.namespace, r.name);
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let fields = match r.kind {
        "Provider" => KindFields::Provider {
            models: config
                .providers
                .get(&id)
                .filter(|_| ready)
                .map_or(0, |p| count(p.models.len())),
        },
        "ModelRoute" => KindFields::ModelRoute {
            ready_targets: config
                .routes
                .values()
                .find(|route| ready && route.namespace == r.namespace && route.name == r.name)
                .map_or(0, |route| count(route.targets.len())),
        },
        "ApiKey" => KindFields::ApiKey {
            prefix: config
                .api_keys
                .values()
                .find(|k| ready && k.namespace == r.namespace && k.name == r.name)
                .map(|k| k.prefix.clone()),
        },
        _ => KindFields::Budget,
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
/// `Ready` transition.
pub fn plan(current: &Value, desired: &DesiredStatus, now: &str) -> Option<StatusChange> {
    let conditions: Vec<Value> = current
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let old_ready = conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(READY));
    let status_str = if desired.ready { "True" } else { "False" };
    let old_status = old_ready
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    let old_reason = old_ready
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str);
    let flipped = old_status != Some(status_str);
    let transition_time = match old_ready.and_then(|c| c.get("lastTransitionTime")) {
        Some(t) if !flipped && t.is_string() => t.clone(),
        _ => Value::String(now.to_string()),
    };

    let mut ready = Map::new();
    ready.insert("type".into(), READY.into());
    ready.insert("status".into(), status_str.into());
    ready.insert("reason".into(), desired.reason.clone().into());
    ready.insert("message".into(), desired.message.clone().into());
    ready.insert("lastTransitionTime".into(), transition_time);
    if let Some(g) = desired.observed_generation {
        ready.insert("observedGeneration".into(), g.into());
    }
    let mut new_conditions = vec![Value::Object(ready)];
    new_conditions.extend(
        conditions
            .iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some(READY))
            .cloned(),
    );

    let mut status = Map::new();
    status.insert("conditions".into(), Value::Array(new_conditions.clone()));
    status.insert(
        "observedGeneration".into(),
        desired.observed_generation.map_or(Value::Null, Value::from),
    );
    match &desired.fields {
        KindFields::Provider { models } => {
            status.insert("models".into(), (*models).into());
        }
        KindFields::ModelRoute { ready_targets } => {
            status.insert("readyTargets".into(), (*ready_targets).into());
        }
        KindFields::ApiKey { prefix } => {
            status.insert(
                "prefix".into(),
                prefix.clone().map_or(Value::Null, Value::String),
            );
        }
        KindFields::Budget => {}
    }

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

    let event = if desired.ready && flipped {
        Some(ReadyEvent {
            warning: false,
            reason: READY.into(),
            note: truncate(
                &format!("{}: {}", desired.reason, desired.message),
                MAX_NOTE_BYTES,
            ),
        })
    } else if !desired.ready && (flipped || old_reason != Some(desired.reason.as_str())) {
        Some(ReadyEvent {
            warning: true,
            reason: desired.reason.clone(),
            note: truncate(&desired.message, MAX_NOTE_BYTES),
        })
    } else {
        None
    };
    Some(StatusChange {
        patch: json!({ "status": Value::Object(status) }),
        event,
    })
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
