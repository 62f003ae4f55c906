use std::str::FromStr;

use proptest::prelude::*;
use switchboard_api::money::max_usd;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn prices() -> PriceTable {
    PriceTable {
        input_per_million: d("3"),
        output_per_million: d("15"),
        cached_input_per_million: d("0.3"),
        cache_write_per_million: d("3.75"),
        reasoning_per_million: d("20"),
        per_request: d("0.001"),
        per_image: d("0"),
    }
}

fn only(tokens: u64) -> Usage {
    Usage {
        prompt_tokens: tokens,
        ..Usage::default()
    }
}

fn input_at(price: &str) -> PriceTable {
    PriceTable {
        input_per_million: d(price),
        ..PriceTable::default()
    }
}

#[test]
fn each_token_kind_is_priced_at_its_own_rate() {
    let usage = Usage {
        prompt_tokens: 1_000,
        completion_tokens: 500,
        cached_tokens: 200,
        cache_write_tokens: 100,
        reasoning_tokens: 50,
    };
    // 700*3 + 200*0.3 + 100*3.75 + 450*15 + 50*20 = 2100 + 60 + 375 + 6750 + 1000 = 10285
    assert_eq!(cost(&prices(), &usage), Ok(d("0.011285")));
    assert_eq!(cost_nanos(&prices(), &usage), Ok(11_285_000));
}

#[test]
fn a_single_cheap_token_does_not_round_to_zero() {
    assert_eq!(cost(&input_at("0.01"), &only(1)), Ok(d("0.00000001")));
}

#[test]
fn costs_below_a_nano_dollar_round_up_to_one() {
    assert_eq!(cost(&input_at("0.0001"), &only(1)), Ok(d("0.000000001")));
    assert_eq!(
        cost(&PriceTable::default(), &only(1)),
        Ok(Decimal::ZERO),
        "free stays free"
    );
}

/// #16.5: a price of 1e-28 per million made `cost / 1e6` underflow Decimal's 28 decimals to 0.
#[test]
fn the_smallest_price_still_costs_a_nano_dollar() {
    let tiny = input_at("0.0000000000000000000000000001");
    assert_eq!(cost_nanos(&tiny, &only(1)), Ok(1));
    assert_eq!(cost_nanos(&tiny, &only(u64::MAX)), Ok(1));
}

/// #16.2: a 28-digit price, or `1e11` with 2^62 tokens, panicked in Decimal multiplication.
#[test]
fn costs_the_ledger_cannot_hold_are_an_error_not_a_panic() {
    let absurd = PriceTable {
        output_per_million: d("9999999999999999999999999999"),
        ..PriceTable::default()
    };
    let usage = Usage {
        completion_tokens: 5,
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&absurd, &usage), Err(Unpriceable));
    let large = PriceTable {
        output_per_million: d("100000000000"),
        ..PriceTable::default()
    };
    let many = Usage {
        completion_tokens: 1 << 62,
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&large, &many), Err(Unpriceable));
    // The most the ledger holds is still a price.
    let at_max = PriceTable {
        per_request: max_usd(),
        ..PriceTable::default()
    };
    assert_eq!(cost_nanos(&at_max, &Usage::default()), Ok(MAX_NANOS));
    assert_eq!(cost_nanos(&at_max, &only(1)), Ok(MAX_NANOS));
    let above = PriceTable {
        input_per_million: d("1"),
        ..at_max
    };
    assert_eq!(cost_nanos(&above, &only(1)), Err(Unpriceable));
}

#[test]
fn inconsistent_details_never_underflow() {
    let usage = Usage {
        prompt_tokens: 5,
        completion_tokens: 1,
        cached_tokens: 50,
        cache_write_tokens: 50,
        reasoning_tokens: 9,
    };
    assert_eq!(cost(&prices(), &usage), Ok(d("0.0010215")));
}

fn price() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        Just(Decimal::ZERO),
        (0u64..=1_000_000_000, 0u32..=12).prop_map(|(m, s)| Decimal::new(m as i64, s)),
        (1u64..=u64::MAX, 0u32..=28)
            .prop_map(|(m, s)| Decimal::from_i128_with_scale(i128::from(m), s)),
        Just(max_usd()),
        Just(Decimal::MAX),
    ]
}

fn tokens() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=1_000_000,
        Just(0),
        Just(1),
        Just(u64::MAX),
        any::<u64>()
    ]
}

prop_compose! {
    fn price_table()(i in price(), o in price(), c in price(), w in price(), r in price(), q in price()) -> PriceTable {
        PriceTable {
            input_per_million: i,
            output_per_million: o,
            cached_input_per_million: c,
            cache_write_per_million: w,
            reasoning_per_million: r,
            per_request: q,
            per_image: Decimal::ZERO,
        }
    }
}

prop_compose! {
    fn usage()(p in tokens(), c in tokens(), k in tokens(), w in tokens(), r in tokens()) -> Usage {
        Usage { prompt_tokens: p, completion_tokens: c, cached_tokens: k, cache_write_tokens: w, reasoning_tokens: r }
    }
}

proptest! {
    /// Any prices and any token counts: a cost in the ledger's range, or an error; never a
    /// panic, never below the exact price, never more than a nano-dollar above it.
    #[test]
    fn costs_are_exact_rounded_up_and_bounded(prices in price_table(), usage in usage()) {
        if let Ok(n) = cost_nanos(&prices, &usage) {
                prop_assert!((0..=MAX_NANOS).contains(&n));
                // Re-derive the exact sum where it fits a Decimal and compare.
                let exact = exact_usd(&prices, &usage);
                if let Some(exact) = exact {
                    // Both sums may round below 1e-18 on the way; nothing larger is lost.
                    let charged = from_nanos(n);
                    let epsilon = Decimal::new(1, 18);
                    prop_assert!(charged + epsilon >= exact, "{charged} < {exact}");
                    prop_assert!(charged - exact < Decimal::new(1, 9) + epsilon, "{charged} - {exact}");
                }
        }
    }

    /// More tokens never cost less.
    #[test]
    fn costs_are_monotonic_in_tokens(prices in price_table(), usage in usage(), more in 0u64..1_000_000) {
        let bigger = Usage { completion_tokens: usage.completion_tokens.saturating_add(more), ..usage };
        if let (Ok(a), Ok(b)) = (cost_nanos(&prices, &usage), cost_nanos(&prices, &bigger)) {
            prop_assert!(a <= b);
        }
        if cost_nanos(&prices, &usage).is_err() {
            prop_assert!(cost_nanos(&prices, &bigger).is_err());
        }
    }
}

/// The exact USD of `usage`, computed the long way (None when a Decimal cannot hold it).
fn exact_usd(p: &PriceTable, u: &Usage) -> Option<Decimal> {
    let cache_read = u.cached_tokens.min(u.prompt_tokens);
    let cache_write = u.cache_write_tokens.min(u.prompt_tokens - cache_read);
    let plain_input = u.prompt_tokens - cache_read - cache_write;
    let reasoning = u.reasoning_tokens.min(u.completion_tokens);
    let plain_output = u.completion_tokens - reasoning;
    let mut sum = p.per_request;
    for (t, price) in [
        (plain_input, p.input_per_million),
        (cache_read, p.cached_input_per_million),
        (cache_write, p.cache_write_per_million),
        (plain_output, p.output_per_million),
        (reasoning, p.reasoning_per_million),
    ] {
        if t == 0 || price.is_zero() {
            continue;
        }
        sum = sum.checked_add(
            Decimal::from(t)
                .checked_mul(price)?
                .checked_div(Decimal::from(1_000_000))?,
        )?;
    }
    // Only exact when nothing below 1e-28 was lost on the way.
    (sum.scale() < 28).then_some(sum)
}
