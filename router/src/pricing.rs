//! Token usage as providers report it, and its exact price. Pure.

use rust_decimal::Decimal;
use serde_json::Value;
use switchboard_api::snapshot::PriceTable;

/// Normalised token usage of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, including cached and cache-write ones.
    pub prompt_tokens: u64,
    /// All output tokens, including reasoning ones.
    pub completion_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object (`prompt_tokens`, `completion_tokens`,
    /// `prompt_tokens_details.cached_tokens`, `prompt_tokens_details.cache_write_tokens`,
    /// `completion_tokens_details.reasoning_tokens`). `None` when it is not an object.
    pub fn from_openai(usage: &Value) -> Option<Usage> {
        let obj = usage.as_object()?;
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        let prompt_details = obj.get("prompt_tokens_details");
        let completion_details = obj.get("completion_tokens_details");
        Some(Usage {
            prompt_tokens: n(obj.get("prompt_tokens")),
            completion_tokens: n(obj.get("completion_tokens")),
            cached_tokens: n(prompt_details.and_then(|d| d.get("cached_tokens"))),
            cache_write_tokens: n(prompt_details.and_then(|d| d.get("cache_write_tokens"))),
            reasoning_tokens: n(completion_details.and_then(|d| d.get("reasoning_tokens"))),
        })
    }

    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// The USD cost of `usage` at `prices`: uncached input, cached input, cache writes, plain output
/// and reasoning output each at their own price, plus the per-request price — computed exactly,
/// then rounded *up* to the nano-dollar (the ledger's unit), so what a client is told it spent is
/// exactly what the ledger records and no charge rounds to zero.
pub fn cost(prices: &PriceTable, usage: &Usage) -> Decimal {
    let million = Decimal::from(1_000_000u32);
    let cache_read = usage.cached_tokens.min(usage.prompt_tokens);
    let cache_write = usage
        .cache_write_tokens
        .min(usage.prompt_tokens - cache_read);
    let plain_input = usage.prompt_tokens - cache_read - cache_write;
    let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
    let plain_output = usage.completion_tokens - reasoning;
    let per_million = Decimal::from(plain_input) * prices.input_per_million
        + Decimal::from(cache_read) * prices.cached_input_per_million
        + Decimal::from(cache_write) * prices.cache_write_per_million
        + Decimal::from(plain_output) * prices.output_per_million
        + Decimal::from(reasoning) * prices.reasoning_per_million;
    (per_million / million + prices.per_request)
        .round_dp_with_strategy(9, rust_decimal::RoundingStrategy::AwayFromZero)
        .normalize()
}

/// A rough token count for text: a quarter of its characters, at least 1 for non-empty text. Used
/// where an upstream reports no usage.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

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
        assert_eq!(cost(&prices(), &usage), d("0.011285"));
    }

    #[test]
    fn a_single_cheap_token_does_not_round_to_zero() {
        let p = PriceTable {
            input_per_million: d("0.01"),
            ..PriceTable::default()
        };
        let usage = Usage {
            prompt_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(cost(&p, &usage), d("0.00000001"));
    }

    #[test]
    fn costs_below_a_nano_dollar_round_up_to_one() {
        let p = PriceTable {
            input_per_million: d("0.0001"),
            ..PriceTable::default()
        };
        let one = Usage {
            prompt_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(cost(&p, &one), d("0.000000001"));
        assert_eq!(
            cost(&PriceTable::default(), &one),
            Decimal::ZERO,
            "free stays free"
        );
    }

    #[test]
    fn reads_openai_usage_with_details() {
        let u = Usage::from_openai(&serde_json::json!({
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
        assert_eq!(cost(&prices(), &usage), d("0.0010215"));
    }
}
