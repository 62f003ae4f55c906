//! Spend: the leader reads the ledger and writes what it holds into Budget and ApiKey status.

use super::*;

use jiff::Timestamp;
use switchboard_api::counters::{budget_counter, key_usage_counter};
use switchboard_api::resources::BudgetWindow;
use switchboard_ledger::{
    BoxFuture, CounterState, Ledger, LedgerError, ReserveRequest, Reserved, Settlement,
    local::LocalLedger,
};

/// A Secret-backed ApiKey `app` and a $0.00001 `total` Budget over it with a 50 % soft limit.
fn spend_objects() -> Vec<Value> {
    let meta = |name: &str| {
        json!({"name": name, "namespace": "team-a", "uid": format!("uid-{name}"),
               "generation": 1, "resourceVersion": "1"})
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("keys"),
               "stringData": {"app": "sk-sb-spend-test-0123456789"}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "ApiKey", "metadata": meta("app"),
               "spec": {"secretRef": {"name": "keys", "key": "app"}}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Budget", "metadata": meta("team"),
               "spec": {"limitUSD": "0.00001", "window": "total", "softLimitPercent": 50,
                        "scope": {"apiKeys": ["app"]}}}),
    ]
}

/// Records `nanos` against the Budget and the key's current month, as a router settling a
/// request does.
async fn spend(ledger: &LocalLedger, id: &str, nanos: i64) {
    let now = Timestamp::now();
    ledger
        .settle(&Settlement {
            id: id.into(),
            counters: vec![
                (
                    budget_counter("team-a/team", BudgetWindow::Total, now),
                    nanos,
                    None,
                ),
                (
                    key_usage_counter("team-a/app", BudgetWindow::Monthly, now),
                    nanos,
                    None,
                ),
            ],
        })
        .await
        .unwrap();
}

/// The status with every `lastTransitionTime` replaced by `T`, which must be a UTC time.
fn without_times(mut status: Value) -> Value {
    for c in status["conditions"].as_array_mut().unwrap() {
        let t = c["lastTransitionTime"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 20, "{t}");
        c["lastTransitionTime"] = "T".into();
    }
    status
}

impl Harness {
    async fn read_spend(&self, ledger: &dyn Ledger) {
        crate::figures::read(
            &self.shared,
            &self.outbox,
            ledger,
            &self.metrics,
            Duration::from_secs(60),
        )
        .await;
    }
}

#[tokio::test]
async fn the_leader_writes_ledger_spend_into_budget_and_api_key_status() {
    let ledger = LocalLedger::in_memory();
    spend(&ledger, "r1", 6_000).await;
    let (mut h, mut api) = harness(true);
    let mut objects = spend_objects();
    for o in &objects {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    // $0.000006 of $0.00001: past the 50 % soft limit, within the limit.
    h.read_spend(&*ledger).await;
    let _stop = h.start_worker();
    let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
    assert_eq!(app["spendUSD"], "0.000006");
    assert_eq!(app["prefix"], "sk-sb-spen…");
    let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
    assert_eq!(
        without_times(team),
        json!({
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Compiled",
                 "message": "covers 1 key", "lastTransitionTime": "T",
                 "observedGeneration": 1},
                {"type": "SoftLimitReached", "status": "True", "reason": "SoftLimitReached",
                 "message": "spent $0.000006 of the $0.00001 limit, at or above the 50% soft limit ($0.000005)",
                 "lastTransitionTime": "T", "observedGeneration": 1},
                {"type": "Exceeded", "status": "False", "reason": "WithinLimit",
                 "message": "spent $0.000006 of the $0.00001 limit in total; $0.000004 left",
                 "lastTransitionTime": "T", "observedGeneration": 1}
            ],
            "observedGeneration": 1,
            "spentUSD": "0.000006",
            "remainingUSD": "0.000004",
            "windowStart": null,
            "resetsAt": null
        })
    );
    expect_event(&mut api, "Normal", "Ready", "app").await;
    expect_event(&mut api, "Normal", "Ready", "team").await;
    expect_event(&mut api, "Warning", "SoftLimitReached", "team").await;
    api.expect_no_more().await;
    for o in &objects {
        h.apply(o);
    }

    // Another $0.000004 reaches the limit: Exceeded with a warning; the key's spend follows;
    // nothing else is announced.
    spend(&ledger, "r2", 4_000).await;
    h.read_spend(&*ledger).await;
    let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
    assert_eq!(app["spendUSD"], "0.00001");
    let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
    assert_eq!(team["spentUSD"], "0.00001");
    assert_eq!(team["remainingUSD"], "0");
    let exceeded = &team["conditions"][2];
    assert_eq!(
        (&exceeded["type"], &exceeded["status"], &exceeded["reason"]),
        (&json!("Exceeded"), &json!("True"), &json!("LimitReached"))
    );
    assert_eq!(
        exceeded["message"],
        "spent $0.00001 of the $0.00001 limit in total; requests in scope are refused \
         (a total budget never resets)"
    );
    expect_event(&mut api, "Warning", "LimitReached", "team").await;
    api.expect_no_more().await;
    for o in &objects {
        h.apply(o);
    }

    // The ledger says the same: nothing is filed, nothing written.
    h.read_spend(&*ledger).await;
    assert_eq!(h.outbox.lengths(), (0, 0, 0, 0));
    api.expect_no_more().await;
    assert_eq!(h.metrics.spend_reads.with_label_values(&["ok"]).get(), 3);
}

/// A ledger that is always unreachable.
struct Unreachable;

impl Ledger for Unreachable {
    fn reserve<'a>(
        &'a self,
        _: &'a ReserveRequest,
    ) -> BoxFuture<'a, Result<Reserved, LedgerError>> {
        Box::pin(async { Err(LedgerError("connection refused".into())) })
    }
    fn settle<'a>(&'a self, _: &'a Settlement) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Err(LedgerError("connection refused".into())) })
    }
    fn read<'a>(
        &'a self,
        _: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<CounterState>, LedgerError>> {
        Box::pin(async { Err(LedgerError("connection refused".into())) })
    }
    fn kind(&self) -> &'static str {
        "unreachable"
    }
}

#[tokio::test]
async fn a_ledger_outage_still_writes_ready_leaves_spend_alone_and_is_counted() {
    let (mut h, mut api) = harness(true);
    let mut objects = spend_objects();
    // What an earlier leader wrote while the ledger answered.
    let before = json!({"spentUSD": "0.00002", "remainingUSD": "0",
                        "conditions": [{"type": "Exceeded", "status": "True", "reason": "LimitReached",
                                        "message": "m", "lastTransitionTime": "2026-05-01T00:00:00Z"}]});
    objects[2]["status"] = before.clone();
    for o in &objects {
        h.apply(o);
    }
    h.controller.round(Priority::Bulk);
    h.read_spend(&Unreachable).await;
    let _stop = h.start_worker();
    let app = expect_patch_of(&mut api, &mut objects, "apikeys", "app").await;
    assert!(app.get("spendUSD").is_none(), "{app}");
    let team = expect_patch_of(&mut api, &mut objects, "budgets", "team").await;
    for field in ["spentUSD", "remainingUSD", "windowStart", "resetsAt"] {
        assert!(team.get(field).is_none(), "{field} in {team}");
    }
    assert_eq!(team["conditions"][0]["type"], "Ready");
    assert_eq!(team["conditions"][1], before["conditions"][0]);
    expect_event(&mut api, "Normal", "Ready", "app").await;
    expect_event(&mut api, "Normal", "Ready", "team").await;
    api.expect_no_more().await;
    assert_eq!(h.metrics.spend_reads.with_label_values(&["error"]).get(), 1);
    assert!(
        h.metrics
            .render()
            .contains(r#"switchboard_operator_spend_reads_total{result="error"} 1"#)
    );
}
