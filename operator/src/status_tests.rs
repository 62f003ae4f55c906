use serde_json::{Value, json};
use switchboard_api::{ObjectRef, compile, parse_manifests};

use super::*;

const NOW: &str = "2026-05-01T12:00:00Z";
const EARLIER: &str = "2026-04-01T08:00:00Z";

fn statuses(yaml: &str) -> BTreeMap<ObjectRef, DesiredStatus> {
    let objects = parse_manifests(yaml, "team-a")
        .expect("valid manifests")
        .objects;
    desired_all(&compile(&objects), None)
}

fn of<'a>(
    all: &'a BTreeMap<ObjectRef, DesiredStatus>,
    kind: &str,
    name: &str,
) -> &'a DesiredStatus {
    all.iter()
        .find(|(r, _)| r.kind == kind && r.name == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no verdict for {kind} {name}"))
}

const MOCK_PROVIDER: &str = r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: mock, generation: 3}
spec:
  type: mock
  models:
    - {name: chat}
    - {name: embed}
"#;

// ---------------------------------------------------------------------------------------------
// desired(): what each invalid case says

#[test]
fn ready_provider_counts_its_models() {
    let all = statuses(MOCK_PROVIDER);
    let s = of(&all, "Provider", "mock");
    assert!(s.ready);
    assert_eq!(s.reason, "Compiled");
    assert_eq!(s.message, "2 models");
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.fields, KindFields::Provider { models: 2 });
}

#[test]
fn provider_with_missing_secret_is_not_ready_and_counts_no_models() {
    let all = statuses(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: openai}
spec:
  type: openai
  credentials: {secretRef: {name: openai, key: apiKey}}
  models: [{name: gpt-4o-mini}]
"#,
    );
    let s = of(&all, "Provider", "openai");
    assert!(!s.ready);
    assert_eq!(s.reason, "SecretNotFound");
    assert_eq!(
        s.message,
        "spec.credentials.secretRef: Secret team-a/openai not found"
    );
    assert_eq!(s.fields, KindFields::Provider { models: 0 });
}

#[test]
fn provider_with_secret_lacking_the_key_names_the_keys_it_has_never_values() {
    let all = statuses(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: openai}
stringData: {token: sk-very-secret-value-123}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: openai}
spec:
  type: openai
  credentials: {secretRef: {name: openai, key: apiKey}}
  models: [{name: gpt-4o-mini}]
"#,
    );
    let s = of(&all, "Provider", "openai");
    assert_eq!(s.reason, "SecretKeyNotFound");
    assert!(
        s.message.contains(r#"has no key "apiKey""#),
        "{}",
        s.message
    );
    assert!(s.message.contains(r#""token""#), "{}", s.message);
    assert!(!s.message.contains("sk-very-secret"), "{}", s.message);
}

#[test]
fn provider_with_a_bad_price_names_the_field() {
    let all = statuses(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: mock}
spec:
  type: mock
  models: [{name: chat, pricing: {inputUSDPerMillion: "1e3"}}]
"#,
    );
    let s = of(&all, "Provider", "mock");
    assert!(!s.ready);
    assert_eq!(s.reason, "InvalidPrice");
    assert!(
        s.message
            .starts_with("spec.models[0].pricing.inputUSDPerMillion:"),
        "{}",
        s.message
    );
}

#[test]
fn route_to_unknown_provider_is_not_ready_with_no_targets() {
    let all = statuses(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: r, generation: 7}
spec:
  model: smart
  targets: [{provider: ghost, model: x}]
"#,
    );
    let s = of(&all, "ModelRoute", "r");
    assert!(!s.ready);
    assert_eq!(s.reason, "UnknownProvider");
    assert!(
        s.message.contains("Provider team-a/ghost not found"),
        "{}",
        s.message
    );
    assert_eq!(s.observed_generation, Some(7));
    assert_eq!(s.fields, KindFields::ModelRoute { ready_targets: 0 });
}

#[test]
fn route_with_some_targets_unresolved_is_ready_and_counts_the_resolved_ones() {
    let yaml = format!(
        "{MOCK_PROVIDER}---\n{}",
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec:
  model: smart
  targets: [{provider: mock, model: chat}, {provider: mock, model: embed}, {provider: mock, model: nope}]
"#
    );
    let all = statuses(&yaml);
    let s = of(&all, "ModelRoute", "r");
    assert!(s.ready);
    assert_eq!(s.reason, "SomeTargetsUnresolved");
    assert!(
        s.message.starts_with("2 of 3 targets resolve"),
        "{}",
        s.message
    );
    assert_eq!(s.fields, KindFields::ModelRoute { ready_targets: 2 });
}

#[test]
fn duplicate_public_model_rejects_the_newer_route_only() {
    let yaml = format!(
        "{MOCK_PROVIDER}---\n{}",
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: old, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {model: smart, targets: [{provider: mock, model: chat}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: new, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {model: smart, targets: [{provider: mock, model: chat}]}
"#
    );
    let all = statuses(&yaml);
    assert!(of(&all, "ModelRoute", "old").ready);
    let s = of(&all, "ModelRoute", "new");
    assert!(!s.ready);
    assert_eq!(s.reason, "DuplicateModel");
    assert!(s.message.contains("team-a/old"), "{}", s.message);
}

#[test]
fn api_key_status_carries_the_prefix_only_when_ready() {
    let all = statuses(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: k}
stringData: {key: sk-sb-abcdefghijklmnopqrstuvwxyz}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: good}
spec: {secretRef: {name: k, key: key}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: badglob}
spec: {secretRef: {name: k, key: key}, allowedModels: ["gpt [4]"]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: generated}
spec: {}
"#,
    );
    let good = of(&all, "ApiKey", "good");
    assert!(good.ready);
    assert_eq!(
        good.fields,
        KindFields::ApiKey {
            prefix: Some("sk-sb-abcd…".into()),
            spend: None
        }
    );
    let bad = of(&all, "ApiKey", "badglob");
    assert!(!bad.ready);
    assert_eq!(bad.reason, "InvalidGlob");
    assert_eq!(
        bad.fields,
        KindFields::ApiKey {
            prefix: None,
            spend: None
        }
    );
    let generated = of(&all, "ApiKey", "generated");
    assert_eq!(generated.reason, "SecretNotFound");
    assert!(
        generated
            .message
            .contains("Secret team-a/switchboard-apikey-generated not found"),
        "{}",
        generated.message
    );
}

#[test]
fn budget_with_a_malformed_limit_is_not_ready() {
    let all = statuses(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: b}
spec: {limitUSD: "ten", window: monthly}
"#,
    );
    let s = of(&all, "Budget", "b");
    assert!(!s.ready);
    assert_eq!(s.reason, "InvalidLimit");
    assert!(s.message.starts_with("spec.limitUSD:"), "{}", s.message);
    assert_eq!(s.fields, KindFields::Budget { spend: None });
}

#[test]
fn one_bad_object_does_not_change_the_others() {
    let yaml = format!(
        "{MOCK_PROVIDER}---\n{}",
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: broken}
spec: {type: openaiCompatible, models: [{name: x}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec: {model: smart, targets: [{provider: mock, model: chat}]}
"#
    );
    let all = statuses(&yaml);
    assert_eq!(of(&all, "Provider", "broken").reason, "MissingBaseURL");
    assert!(of(&all, "Provider", "mock").ready);
    assert_eq!(
        of(&all, "ModelRoute", "r").fields,
        KindFields::ModelRoute { ready_targets: 1 }
    );
}

// ---------------------------------------------------------------------------------------------
// plan(): what to write, and when not to

fn desired_ready(generation: i64) -> DesiredStatus {
    DesiredStatus {
        ready: true,
        reason: "Compiled".into(),
        message: "2 models".into(),
        observed_generation: Some(generation),
        fields: KindFields::Provider { models: 2 },
    }
}

fn desired_rejected(reason: &str, message: &str) -> DesiredStatus {
    DesiredStatus {
        ready: false,
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        fields: KindFields::Provider { models: 0 },
    }
}

#[test]
fn first_status_stamps_now_and_emits_a_warning_when_not_ready() {
    let change = plan(
        &Value::Null,
        &desired_rejected("SecretNotFound", "Secret a/b not found"),
        NOW,
    )
    .expect("a write");
    assert_eq!(
        change.patch,
        json!({"status": {
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "SecretNotFound",
                "message": "Secret a/b not found", "lastTransitionTime": NOW,
                "observedGeneration": 1
            }],
            "observedGeneration": 1,
            "models": 0
        }})
    );
    assert_eq!(
        change.events,
        [StatusEvent {
            warning: true,
            reason: "SecretNotFound".into(),
            note: "Secret a/b not found".into()
        }]
    );
}

fn written(desired: &DesiredStatus, at: &str) -> Value {
    plan(&Value::Null, desired, at).expect("a write").patch["status"].clone()
}

#[test]
fn unchanged_status_plans_nothing() {
    let current = written(&desired_ready(2), EARLIER);
    assert_eq!(plan(&current, &desired_ready(2), NOW), None);
}

#[test]
fn new_generation_with_same_verdict_rewrites_without_event_or_new_transition_time() {
    let current = written(&desired_ready(2), EARLIER);
    let change = plan(&current, &desired_ready(3), NOW).expect("a write");
    assert_eq!(change.events, []);
    let status = &change.patch["status"];
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["conditions"][0]["lastTransitionTime"], EARLIER);
    assert_eq!(status["conditions"][0]["observedGeneration"], 3);
}

#[test]
fn flip_to_ready_stamps_now_and_emits_normal_ready() {
    let current = written(&desired_rejected("SecretNotFound", "x"), EARLIER);
    let change = plan(&current, &desired_ready(1), NOW).expect("a write");
    assert_eq!(
        change.patch["status"]["conditions"][0]["lastTransitionTime"],
        NOW
    );
    assert_eq!(change.patch["status"]["conditions"][0]["status"], "True");
    assert_eq!(change.patch["status"]["models"], 2);
    let [event] = &change.events[..] else {
        panic!("one event: {:?}", change.events)
    };
    assert!(!event.warning);
    assert_eq!(event.reason, "Ready");
    assert_eq!(event.note, "Compiled: 2 models");
}

#[test]
fn new_reason_while_not_ready_keeps_transition_time_and_warns_again() {
    let current = written(&desired_rejected("SecretNotFound", "x"), EARLIER);
    let change = plan(&current, &desired_rejected("InvalidPrice", "y"), NOW).expect("a write");
    assert_eq!(
        change.patch["status"]["conditions"][0]["lastTransitionTime"],
        EARLIER
    );
    assert_eq!(change.events[0].reason, "InvalidPrice");
}

#[test]
fn new_message_with_same_reason_writes_without_event() {
    let current = written(&desired_rejected("SecretNotFound", "x"), EARLIER);
    let change = plan(&current, &desired_rejected("SecretNotFound", "z"), NOW).expect("a write");
    assert_eq!(change.patch["status"]["conditions"][0]["message"], "z");
    assert_eq!(change.events, []);
}

#[test]
fn other_condition_types_are_kept() {
    let mut current = written(&desired_ready(1), EARLIER);
    let soft = json!({"type": "SoftLimitReached", "status": "True", "reason": "x", "message": "",
                      "lastTransitionTime": EARLIER});
    current["conditions"]
        .as_array_mut()
        .unwrap()
        .push(soft.clone());
    assert_eq!(plan(&current, &desired_ready(1), NOW), None);
    let change = plan(&current, &desired_rejected("InvalidLimit", "m"), NOW).expect("a write");
    assert_eq!(change.patch["status"]["conditions"][1], soft);
}

#[test]
fn api_key_prefix_is_cleared_with_null_when_the_key_no_longer_resolves() {
    let mut was = desired_ready(1);
    was.fields = KindFields::ApiKey {
        prefix: Some("sk-sb-abcd…".into()),
        spend: None,
    };
    let current = written(&was, EARLIER);
    assert_eq!(current["prefix"], "sk-sb-abcd…");
    let mut now = desired_rejected("SecretNotFound", "gone");
    now.fields = KindFields::ApiKey {
        prefix: None,
        spend: None,
    };
    let change = plan(&current, &now, NOW).expect("a write");
    assert_eq!(change.patch["status"]["prefix"], Value::Null);
}

#[test]
fn status_written_by_someone_else_is_corrected() {
    let mut current = written(&desired_ready(1), EARLIER);
    current["models"] = json!(99);
    let change = plan(&current, &desired_ready(1), NOW).expect("a write");
    assert_eq!(change.patch["status"]["models"], 2);
    assert_eq!(change.events, []);
}

#[test]
fn long_messages_are_truncated_on_a_character_boundary() {
    let long = "é".repeat(40_000);
    let cut = truncate(&long, MAX_MESSAGE_BYTES);
    assert!(cut.len() <= MAX_MESSAGE_BYTES);
    assert!(cut.ends_with('…'));
    let change = plan(&Value::Null, &desired_rejected("InvalidModels", &long), NOW).unwrap();
    assert!(change.events[0].note.len() <= MAX_NOTE_BYTES);
}

#[path = "status_spend_tests.rs"]
mod spend;
