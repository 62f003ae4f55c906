//! Spend: what the ledger figures make of Budget and ApiKey status.

use super::*;

/// $5 in nano-dollars.
const FIVE_USD: i64 = 5_000_000_000;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const SPEND_OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: k}
stringData: {key: sk-sb-abcdefghijklmnopqrstuvwxyz}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: app}
spec: {secretRef: {name: k, key: key}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: b, generation: 4}
spec: {limitUSD: "5.00", window: monthly, softLimitPercent: 80, scope: {apiKeys: [app]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata: {name: broken}
spec: {limitUSD: "ten", window: daily}
"#;

fn compiled_spend_objects() -> Compiled {
    let objects = parse_manifests(SPEND_OBJECTS, "team-a")
        .expect("valid manifests")
        .objects;
    compile(&objects)
}

fn state(spent: i64, reserved: i64) -> CounterState {
    CounterState { spent, reserved }
}

#[test]
fn spend_counters_are_each_budget_window_then_each_key_month_and_cover_the_config() {
    let compiled = compiled_spend_objects();
    let at = ts(NOW);
    let counters = spend_counters(&compiled.config, at);
    assert_eq!(counters, ["b:team-a/b:m2026-05", "k:team-a/app:m2026-05"]);
    let figures = SpendFigures::new(at, counters, vec![state(1, 0), state(2, 0)]);
    assert!(figures.covers(&compiled.config));
    // A new month needs new counters: the May figures do not cover June.
    let june = SpendFigures {
        at: ts("2026-06-01T00:00:01Z"),
        ..figures.clone()
    };
    assert!(!june.covers(&compiled.config));
    // Neither do figures read before a Budget existed.
    let partial = SpendFigures::new(at, vec!["k:team-a/app:m2026-05".into()], vec![state(2, 0)]);
    assert!(!partial.covers(&compiled.config));
}

#[test]
fn budget_and_key_spend_come_from_their_current_window_counters() {
    let compiled = compiled_spend_objects();
    let at = ts(NOW);
    let figures = SpendFigures::new(
        at,
        vec![
            budget_counter("team-a/b", BudgetWindow::Monthly, at),
            key_usage_counter("team-a/app", BudgetWindow::Monthly, at),
        ],
        vec![state(1_250_000_000, 10), state(1_300_000_000, 0)],
    );
    let all = desired_all(&compiled, Some(&figures));
    let b = of(&all, "Budget", "b");
    assert!(b.ready);
    assert_eq!(
        b.fields,
        KindFields::Budget {
            spend: Some(BudgetSpend {
                limit: FIVE_USD,
                spent: 1_250_000_000,
                reserved: 10,
                soft_limit_percent: Some(80),
                action: BudgetAction::Block,
                window: BudgetWindow::Monthly,
                window_start: ts("2026-05-01T00:00:00Z"),
                resets_at: Some(ts("2026-06-01T00:00:00Z")),
            })
        }
    );
    assert_eq!(
        of(&all, "ApiKey", "app").fields,
        KindFields::ApiKey {
            prefix: Some("sk-sb-abcd…".into()),
            spend: Some(1_300_000_000)
        }
    );
    // A Budget left out of the snapshot gets no figures.
    assert_eq!(
        of(&all, "Budget", "broken").fields,
        KindFields::Budget { spend: None }
    );
}

#[test]
fn figures_for_another_window_or_none_leave_spend_unknown() {
    let compiled = compiled_spend_objects();
    // April's counters, read in April, are not May's.
    let april = ts("2026-04-30T23:59:59Z");
    let figures = SpendFigures::new(
        april,
        spend_counters(&compiled.config, april),
        vec![state(7, 0), state(7, 0)],
    );
    let stale = SpendFigures {
        at: ts(NOW),
        ..figures
    };
    for figures in [Some(&stale), None] {
        let all = desired_all(&compiled, figures);
        assert_eq!(
            of(&all, "Budget", "b").fields,
            KindFields::Budget { spend: None }
        );
        assert_eq!(
            of(&all, "ApiKey", "app").fields,
            KindFields::ApiKey {
                prefix: Some("sk-sb-abcd…".into()),
                spend: None
            }
        );
    }
}

/// A ready $5 monthly Budget with an 80 % soft limit, as of `at`.
fn budget(spent: i64, reserved: i64, at: &str) -> DesiredStatus {
    let (window_start, resets_at) = window_bounds(BudgetWindow::Monthly, ts(at));
    DesiredStatus {
        ready: true,
        reason: "Compiled".into(),
        message: "1 ApiKey in scope".into(),
        observed_generation: Some(1),
        fields: KindFields::Budget {
            spend: Some(BudgetSpend {
                limit: FIVE_USD,
                spent,
                reserved,
                soft_limit_percent: Some(80),
                action: BudgetAction::Block,
                window: BudgetWindow::Monthly,
                window_start,
                resets_at,
            }),
        },
    }
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn event(warning: bool, reason: &str, note: &str) -> StatusEvent {
    StatusEvent {
        warning,
        reason: reason.into(),
        note: note.into(),
    }
}

#[test]
fn budget_under_its_soft_limit_says_the_numbers_and_announces_only_ready() {
    let change = plan(&Value::Null, &budget(1_000_000_000, 250_000_000, NOW), NOW).unwrap();
    let status = &change.patch["status"];
    assert_eq!(status["spentUSD"], "1");
    assert_eq!(status["remainingUSD"], "3.75", "limit − spent − reserved");
    assert_eq!(status["windowStart"], "2026-05-01T00:00:00Z");
    assert_eq!(status["resetsAt"], "2026-06-01T00:00:00Z");
    assert_eq!(
        condition(status, "SoftLimitReached"),
        &json!({"type": "SoftLimitReached", "status": "False", "reason": "BelowSoftLimit",
                "message": "spent $1 of the $5 limit, below the 80% soft limit ($4)",
                "lastTransitionTime": NOW, "observedGeneration": 1})
    );
    assert_eq!(
        condition(status, "Exceeded"),
        &json!({"type": "Exceeded", "status": "False", "reason": "WithinLimit",
                "message": "spent $1 of the $5 limit in the monthly window from 2026-05-01T00:00:00Z; $3.75 left",
                "lastTransitionTime": NOW, "observedGeneration": 1})
    );
    // Conditions first seen False are not news; Ready is.
    assert_eq!(
        change.events,
        [event(false, "Ready", "Compiled: 1 ApiKey in scope")]
    );
}

#[test]
fn budget_reaching_its_soft_limit_exactly_warns_once_and_stamps_only_that_condition() {
    let current = written(&budget(1_000_000_000, 0, NOW), EARLIER);
    // Exactly 80 % of $5.
    let change = plan(&current, &budget(4_000_000_000, 0, NOW), NOW).unwrap();
    let status = &change.patch["status"];
    let soft = condition(status, "SoftLimitReached");
    assert_eq!(soft["status"], "True");
    assert_eq!(soft["reason"], "SoftLimitReached");
    assert_eq!(soft["lastTransitionTime"], NOW);
    assert_eq!(condition(status, "Exceeded")["status"], "False");
    assert_eq!(condition(status, "Exceeded")["lastTransitionTime"], EARLIER);
    assert_eq!(condition(status, "Ready")["lastTransitionTime"], EARLIER);
    assert_eq!(
        change.events,
        [event(
            true,
            "SoftLimitReached",
            "spent $4 of the $5 limit, at or above the 80% soft limit ($4)"
        )]
    );
    // One nano-dollar less is below it.
    let below = plan(&current, &budget(3_999_999_999, 0, NOW), NOW).unwrap();
    assert_eq!(
        condition(&below.patch["status"], "SoftLimitReached")["status"],
        "False"
    );
    assert_eq!(below.events, []);
}

#[test]
fn budget_spent_to_its_limit_is_exceeded_with_remaining_floored_at_zero() {
    let current = written(&budget(4_500_000_000, 0, NOW), EARLIER);
    let change = plan(&current, &budget(FIVE_USD, 300, NOW), NOW).unwrap();
    let status = &change.patch["status"];
    assert_eq!(status["spentUSD"], "5");
    assert_eq!(status["remainingUSD"], "0");
    let exceeded = condition(status, "Exceeded");
    assert_eq!(exceeded["status"], "True");
    assert_eq!(exceeded["reason"], "LimitReached");
    assert_eq!(exceeded["lastTransitionTime"], NOW);
    let message = "spent $5 of the $5 limit in the monthly window from 2026-05-01T00:00:00Z; \
                   requests in scope are refused until 2026-06-01T00:00:00Z";
    assert_eq!(exceeded["message"], message);
    // Already past the soft limit: no second warning about it.
    assert_eq!(
        condition(status, "SoftLimitReached")["lastTransitionTime"],
        EARLIER
    );
    assert_eq!(change.events, [event(true, "LimitReached", message)]);
    // One nano-dollar short of the limit is not exceeded.
    let short = plan(&current, &budget(FIVE_USD - 1, 0, NOW), NOW).unwrap();
    assert_eq!(
        condition(&short.patch["status"], "Exceeded")["status"],
        "False"
    );
}

#[test]
fn a_new_window_clears_both_conditions_with_normal_events() {
    let current = written(&budget(FIVE_USD, 0, NOW), NOW);
    assert_eq!(condition(&current, "Exceeded")["status"], "True");
    let june = "2026-06-01T00:00:05Z";
    let change = plan(&current, &budget(0, 0, june), june).unwrap();
    let status = &change.patch["status"];
    assert_eq!(status["spentUSD"], "0");
    assert_eq!(status["remainingUSD"], "5");
    assert_eq!(status["windowStart"], "2026-06-01T00:00:00Z");
    assert_eq!(status["resetsAt"], "2026-07-01T00:00:00Z");
    for t in ["SoftLimitReached", "Exceeded"] {
        assert_eq!(condition(status, t)["status"], "False");
        assert_eq!(condition(status, t)["lastTransitionTime"], june);
    }
    assert_eq!(
        change.events,
        [
            event(
                false,
                "BelowSoftLimit",
                "spent $0 of the $5 limit, below the 80% soft limit ($4)"
            ),
            event(
                false,
                "WithinLimit",
                "spent $0 of the $5 limit in the monthly window from 2026-06-01T00:00:00Z; $5 left"
            ),
        ]
    );
}

#[test]
fn unchanged_spend_plans_nothing_and_other_conditions_stay() {
    let mut current = written(&budget(4_200_000_000, 0, NOW), EARLIER);
    let foreign = json!({"type": "Audited", "status": "True", "reason": "x", "message": "",
                         "lastTransitionTime": EARLIER});
    current["conditions"]
        .as_array_mut()
        .unwrap()
        .push(foreign.clone());
    // The same figures read again: nothing to write.
    assert_eq!(plan(&current, &budget(4_200_000_000, 0, NOW), NOW), None);
    // New spend rewrites the figures and the messages, keeps the transition times, no Event.
    let change = plan(&current, &budget(4_300_000_000, 0, NOW), NOW).unwrap();
    let status = &change.patch["status"];
    assert_eq!(status["spentUSD"], "4.3");
    assert_eq!(change.events, []);
    for t in ["Ready", "SoftLimitReached", "Exceeded"] {
        assert_eq!(condition(status, t)["lastTransitionTime"], EARLIER);
    }
    assert_eq!(condition(status, "Audited"), &foreign);
}

#[test]
fn unknown_spend_leaves_the_spend_fields_and_conditions_as_they_are() {
    let current = written(&budget(FIVE_USD, 0, EARLIER), EARLIER);
    let mut unknown = budget(0, 0, NOW);
    unknown.fields = KindFields::Budget { spend: None };
    assert_eq!(plan(&current, &unknown, NOW), None);
    // A spec change still updates Ready, and only Ready.
    unknown.observed_generation = Some(2);
    let change = plan(&current, &unknown, NOW).unwrap();
    let status = change.patch["status"].as_object().unwrap();
    for field in ["spentUSD", "remainingUSD", "windowStart", "resetsAt"] {
        assert!(!status.contains_key(field), "{field} in {status:?}");
    }
    let exceeded = condition(&change.patch["status"], "Exceeded");
    assert_eq!(exceeded, condition(&current, "Exceeded"));
    assert_eq!(
        condition(&change.patch["status"], "Ready")["observedGeneration"],
        2
    );
    assert_eq!(change.events, []);
}

#[test]
fn soft_limit_unset_drops_the_condition_and_total_windows_never_reset() {
    let current = written(&budget(1, 0, NOW), EARLIER);
    let mut total = budget(FIVE_USD + 1, 0, NOW);
    let KindFields::Budget { spend: Some(s) } = &mut total.fields else {
        unreachable!()
    };
    s.soft_limit_percent = None;
    s.window = BudgetWindow::Total;
    (s.window_start, s.resets_at) = window_bounds(BudgetWindow::Total, ts(NOW));
    let change = plan(&current, &total, NOW).unwrap();
    let status = &change.patch["status"];
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready", "Exceeded"]);
    assert_eq!(status["windowStart"], Value::Null);
    assert_eq!(status["resetsAt"], Value::Null);
    assert_eq!(
        condition(status, "Exceeded")["message"],
        "spent $5.000000001 of the $5 limit in total; requests in scope are refused (a total \
         budget never resets)"
    );
    // What was written reads back as the same: nothing more to write.
    let mut after = current.clone();
    merge(&mut after, status);
    assert_eq!(plan(&after, &total, NOW), None);
}

#[test]
fn alert_only_budget_says_requests_are_still_served() {
    let mut d = budget(FIVE_USD, 0, NOW);
    let KindFields::Budget { spend: Some(s) } = &mut d.fields else {
        unreachable!()
    };
    s.action = BudgetAction::AlertOnly;
    let change = plan(&Value::Null, &d, NOW).unwrap();
    assert_eq!(
        condition(&change.patch["status"], "Exceeded")["message"],
        "spent $5 of the $5 limit in the monthly window from 2026-05-01T00:00:00Z; requests are \
         still served (action alertOnly)"
    );
}

#[test]
fn api_key_spend_is_written_when_known_and_left_alone_when_not() {
    let key = |spend: Option<i64>| {
        let mut d = desired_ready(1);
        d.fields = KindFields::ApiKey {
            prefix: Some("sk-sb-abcd…".into()),
            spend,
        };
        d
    };
    let current = written(&key(Some(1_234_567)), EARLIER);
    assert_eq!(current["spendUSD"], "0.001234567");
    assert_eq!(plan(&current, &key(Some(1_234_567)), NOW), None);
    assert_eq!(plan(&current, &key(None), NOW), None);
    let change = plan(&current, &key(Some(2_000_000_000)), NOW).unwrap();
    assert_eq!(change.patch["status"]["spendUSD"], "2");
    assert_eq!(change.events, []);
}

/// Applies a merge patch's status to `current` as the API server would.
fn merge(current: &mut Value, patch: &Value) {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            current.as_object_mut().unwrap().remove(k);
        } else {
            current[k] = v.clone();
        }
    }
}

#[test]
fn printer_columns_read_the_spend_fields_plan_writes() {
    use kube::CustomResourceExt;
    use switchboard_api::resources::{ApiKey, Budget};

    /// `.status.X` paths of the printer columns, by column name.
    fn status_columns(
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) -> BTreeMap<String, String> {
        crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .filter_map(|c| {
                let field = c.json_path.strip_prefix(".status.")?;
                (!field.contains('[')).then(|| (c.name.clone(), field.to_string()))
            })
            .collect()
    }

    let budget_status =
        plan(&Value::Null, &budget(1, 0, NOW), NOW).unwrap().patch["status"].clone();
    let columns = status_columns(&Budget::crd());
    assert_eq!(columns["Spent"], "spentUSD");
    assert_eq!(columns["Resets"], "resetsAt");
    for field in columns.values() {
        assert!(
            budget_status[field].is_string(),
            "{field} in {budget_status}"
        );
    }
    let mut key = desired_ready(1);
    key.fields = KindFields::ApiKey {
        prefix: Some("sk-sb-abcd…".into()),
        spend: Some(1),
    };
    let key_status = written(&key, NOW);
    let columns = status_columns(&ApiKey::crd());
    assert_eq!(columns["Spend"], "spendUSD");
    for field in columns.values() {
        assert!(key_status[field].is_string(), "{field} in {key_status}");
    }
}
