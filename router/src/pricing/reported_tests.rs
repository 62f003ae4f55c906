use std::str::FromStr;

use proptest::prelude::*;
use serde_json::json;
use switchboard_api::money::MAX_NANOS;

use super::*;

fn prices() -> PriceTable {
    PriceTable {
        input_per_million: Decimal::from(1),
        output_per_million: Decimal::from(2),
        cached_input_per_million: Decimal::from(1),
        cache_write_per_million: Decimal::from(1),
        reasoning_per_million: Decimal::from(2),
        ..PriceTable::default()
    }
}

/// A request reserved at 100 prompt + 3 × 10 completion tokens: 100 + 60 = 160 micro-dollars.
fn bounds() -> UsageBounds {
    UsageBounds {
        prompt: Some(1_100),
        completion: 30,
        cap_nanos: 160_000,
        worst: Usage {
            prompt_tokens: 100,
            completion_tokens: 30,
            ..Usage::default()
        },
    }
}

fn read(v: Value) -> Result<Usage, Anomaly> {
    read_openai(Some(&v), Expect::Chat)
}

fn kind(v: Value) -> AnomalyKind {
    read(v).unwrap_err().kind
}

#[test]
fn reads_openai_usage_with_details() {
    let u = read(json!({
        "prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2}
    }))
    .unwrap();
    assert_eq!(
        u,
        Usage {
            prompt_tokens: 10,
            completion_tokens: 7,
            cached_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 2
        }
    );
    assert_eq!(
        read(json!({"prompt_tokens": 3.0, "completion_tokens": 1}))
            .unwrap()
            .prompt_tokens,
        3,
        "an integral float is a count"
    );
}

#[test]
fn every_kind_of_unusable_count_is_named() {
    let with = |v: Value| json!({"prompt_tokens": 1, "completion_tokens": v});
    assert_eq!(kind(with(json!(-5))), AnomalyKind::Negative);
    assert_eq!(kind(with(json!(-1.5))), AnomalyKind::Negative);
    assert_eq!(kind(with(json!(1.5))), AnomalyKind::Fractional);
    assert_eq!(kind(with(json!("5"))), AnomalyKind::NotANumber);
    assert_eq!(kind(with(json!({}))), AnomalyKind::NotANumber);
    assert_eq!(kind(with(json!(true))), AnomalyKind::NotANumber);
    assert_eq!(kind(with(json!(1e30))), AnomalyKind::TooLarge);
    let past_u64: Value = serde_json::from_str("18446744073709551616").unwrap();
    assert_eq!(kind(with(past_u64)), AnomalyKind::TooLarge);
    // u64::MAX itself is a count; the bounds catch it.
    assert_eq!(
        read(with(json!(u64::MAX))).unwrap().completion_tokens,
        u64::MAX
    );
    assert_eq!(
        read(json!({"prompt_tokens": 1, "completion_tokens": 1,
                    "completion_tokens_details": {"reasoning_tokens": "x"}}))
        .unwrap_err(),
        Anomaly {
            field: "completion_tokens_details.reasoning_tokens",
            kind: AnomalyKind::NotANumber
        }
    );
}

/// #16.5: string or `{}` usage cost 0 before; now it is missing usage, billed at the worst case.
#[test]
fn missing_usage_is_an_anomaly() {
    assert_eq!(
        read_openai(None, Expect::Chat).unwrap_err(),
        anomaly("usage", AnomalyKind::Missing)
    );
    for v in [json!(null), json!("5"), json!([]), json!({})] {
        assert_eq!(kind(v.clone()), AnomalyKind::Missing, "{v}");
    }
    assert_eq!(
        read(json!({"prompt_tokens": 5})).unwrap_err(),
        anomaly("completion_tokens", AnomalyKind::Missing)
    );
    assert_eq!(
        read_openai(Some(&json!({"prompt_tokens": 5})), Expect::Embeddings)
            .unwrap()
            .prompt_tokens,
        5
    );
    let b = bill(read(json!({})), &prices(), &bounds());
    assert_eq!(b.usage, bounds().worst);
    assert_eq!(b.nanos, 160_000);
}

#[test]
fn usage_within_bounds_is_billed_as_reported() {
    let b = bill(
        read(json!({"prompt_tokens": 90, "completion_tokens": 30})),
        &prices(),
        &bounds(),
    );
    assert_eq!(b.anomaly, None);
    assert_eq!(b.nanos, 150_000);
    assert_eq!(b.usage.completion_tokens, 30);
}

/// #16.3: `max_tokens: 5`, upstream reports 1M tokens: $11 was charged; now the worst case.
#[test]
fn usage_above_the_bounds_is_billed_at_the_worst_case_never_above_the_reservation() {
    let b = bill(
        read(json!({"prompt_tokens": 90, "completion_tokens": 1_000_000})),
        &prices(),
        &bounds(),
    );
    assert_eq!(
        b.anomaly,
        Some(anomaly("completion_tokens", AnomalyKind::TooLarge))
    );
    assert_eq!((b.usage, b.nanos), (bounds().worst, 160_000));
    // Prompt past the context length.
    let b = bill(
        read(json!({"prompt_tokens": 5_000, "completion_tokens": 1})),
        &prices(),
        &bounds(),
    );
    assert_eq!(b.anomaly.unwrap().field, "prompt_tokens");
    // Plausible counts that still cost more than the reservation (the prompt had images).
    let b = bill(
        read(json!({"prompt_tokens": 1_000, "completion_tokens": 30})),
        &prices(),
        &bounds(),
    );
    assert_eq!(b.anomaly.unwrap().kind, AnomalyKind::AboveReservation);
    assert_eq!(b.nanos, 160_000);
    // #16.1: u64::MAX tokens of each kind told the client $202,914,184,810,805.
    let b = bill(
        read(json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX})),
        &prices(),
        &UsageBounds {
            prompt: None,
            completion: u64::MAX,
            ..bounds()
        },
    );
    assert_eq!(b.anomaly.unwrap().kind, AnomalyKind::TooLarge);
    assert_eq!(b.nanos, 160_000);
    // A worst case that is itself beyond the reservation (a cheaper candidate reserved) is capped.
    let b = bill(
        read(json!({"prompt_tokens": -1, "completion_tokens": 1})),
        &prices(),
        &UsageBounds {
            cap_nanos: 7,
            ..bounds()
        },
    );
    assert_eq!(b.nanos, 7);
}

#[test]
fn inconsistent_details_are_anomalies() {
    let b = bill(
        read(json!({"prompt_tokens": 5, "completion_tokens": 1,
                    "prompt_tokens_details": {"cached_tokens": 6}})),
        &prices(),
        &bounds(),
    );
    assert_eq!(b.anomaly.unwrap().kind, AnomalyKind::Inconsistent);
}

#[test]
fn an_estimate_is_kept_within_the_bounds_and_the_reservation() {
    let b = bill_estimate(
        Usage {
            prompt_tokens: 50,
            completion_tokens: 10,
            ..Usage::default()
        },
        &prices(),
        &bounds(),
    );
    assert_eq!((b.nanos, b.anomaly), (70_000, None));
    let b = bill_estimate(
        Usage {
            prompt_tokens: 100,
            completion_tokens: 10_000,
            ..Usage::default()
        },
        &prices(),
        &bounds(),
    );
    assert_eq!(b.usage.completion_tokens, 30);
    assert_eq!(b.nanos, 160_000);
}

#[test]
fn the_client_is_told_what_was_billed_and_why() {
    let raw =
        RawValue::from_string(r#"{"prompt_tokens":"5","completion_tokens":1}"#.into()).unwrap();
    let b = bill(
        read(serde_json::from_str(raw.get()).unwrap()),
        &prices(),
        &bounds(),
    );
    let told: Value = serde_json::from_str(&usage_json(&b, Some(&raw))).unwrap();
    assert_eq!(
        told,
        json!({
            "prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
            "cost": 0.00016,
            "clamped": {"reason": "prompt_tokens not_a_number",
                        "reported": {"prompt_tokens": "5", "completion_tokens": 1}}
        })
    );
    let fine =
        RawValue::from_string(r#"{"prompt_tokens":90,"completion_tokens":30}"#.into()).unwrap();
    let b = bill(
        read(serde_json::from_str(fine.get()).unwrap()),
        &prices(),
        &bounds(),
    );
    assert_eq!(
        usage_json(&b, Some(&fine)),
        // The upstream's object, with every count Switchboard promises added.
        r#"{"prompt_tokens":90,"completion_tokens":30,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":0},"cost":0.00015}"#
    );
    assert_eq!(Decimal::from_str("0.00015").unwrap(), b.usd());
}

#[test]
fn vendor_counts_keep_what_the_vendor_sent() {
    let c: TokenCount = serde_json::from_value(json!("5")).unwrap();
    assert_eq!(c, TokenCount::Invalid(json!("5")));
    assert_eq!(
        c.plus(&TokenCount::Count(2)),
        TokenCount::Invalid(json!("5"))
    );
    assert_eq!(
        TokenCount::Count(u64::MAX).plus(&TokenCount::Count(1)),
        TokenCount::Count(u64::MAX)
    );
    assert_eq!(serde_json::to_value(&c).unwrap(), json!("5"));
    assert_eq!(
        serde_json::from_value::<TokenCount>(json!(null)).unwrap(),
        TokenCount::Count(0)
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        (0u64..100_000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("prompt_tokens".to_string()),
                        Just("completion_tokens".to_string()),
                        Just("prompt_tokens_details".to_string()),
                        Just("completion_tokens_details".to_string()),
                        Just("cached_tokens".to_string()),
                        Just("cache_write_tokens".to_string()),
                        Just("reasoning_tokens".to_string()),
                        "[a-z]{1,3}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever an upstream reports: no panic, a bill within the reservation, and, when the
    /// report is used as is, exactly its price.
    #[test]
    fn any_report_is_billed_within_the_reservation(usage in json_value(), cap in 0i64..=MAX_NANOS) {
        let bounds = UsageBounds { cap_nanos: cap, ..bounds() };
        let b = bill(read_openai(Some(&usage), Expect::Chat), &prices(), &bounds);
        prop_assert!(b.nanos >= 0 && b.nanos <= cap);
        match b.anomaly {
            None => prop_assert_eq!(Ok(b.nanos), cost_nanos(&prices(), &b.usage)),
            Some(_) => prop_assert_eq!(b.usage, bounds.worst),
        }
        let told: Value = serde_json::from_str(&usage_json(&b, None)).unwrap();
        prop_assert!(told.get("cost").is_some());
    }
}
