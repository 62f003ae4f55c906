//! Token usage and its exact price. Pure. [`reported`] reads the usage an upstream reports,
//! checks it against what the request could have used, and says what to bill.
//!
//! Money here is whole nano-dollars ([`switchboard_api::money`]): a price is applied exactly
//! (decimal), then the total is rounded *up* to the nano-dollar, so what a client is told is
//! exactly what the ledger records and nothing rounds to zero. Nothing here can overflow or
//! panic: a cost the ledger cannot hold is an error ([`Unpriceable`]).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

pub mod reported;

use rust_decimal::{Decimal, RoundingStrategy, prelude::ToPrimitive};
use switchboard_api::{
    money::{MAX_NANOS, NANOS_PER_USD, from_nanos},
    snapshot::PriceTable,
};

/// Normalised token usage of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// Prompt plus completion tokens (saturating).
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// OpenAI's `usage` object for these numbers (without `cost`).
    pub fn to_openai_json(&self) -> String {
        format!(
            r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{},"cache_write_tokens":{}}},"completion_tokens_details":{{"reasoning_tokens":{}}}}}"#,
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens(),
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens
        )
    }
}

/// A cost the ledger cannot hold (above [`MAX_NANOS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cost exceeds ${}, the most the spend ledger counts",
    switchboard_api::money::max_usd()
)]
pub struct Unpriceable;

/// The cost of `usage` at `prices` in nano-dollars: uncached input, cached input, cache writes,
/// plain output and reasoning output each at their own price, plus the per-request price —
/// computed exactly (a price per million tokens is `price × 1000` nano-dollars per token, so no
/// tiny price underflows), then rounded *up* to the nano-dollar. Inconsistent details (more
/// cached than prompt tokens) are clamped, never subtracted below zero.
pub fn cost_nanos(prices: &PriceTable, usage: &Usage) -> Result<i64, Unpriceable> {
    let cache_read = usage.cached_tokens.min(usage.prompt_tokens);
    let uncached = usage.prompt_tokens.saturating_sub(cache_read);
    let cache_write = usage.cache_write_tokens.min(uncached);
    let plain_input = uncached.saturating_sub(cache_write);
    let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
    let plain_output = usage.completion_tokens.saturating_sub(reasoning);
    let nanos_per_token_per_million = Decimal::from(1_000u32);
    let mut total = prices
        .per_request
        .max(Decimal::ZERO)
        .checked_mul(Decimal::from(NANOS_PER_USD))
        .ok_or(Unpriceable)?;
    for (tokens, per_million) in [
        (plain_input, prices.input_per_million),
        (cache_read, prices.cached_input_per_million),
        (cache_write, prices.cache_write_per_million),
        (plain_output, prices.output_per_million),
        (reasoning, prices.reasoning_per_million),
    ] {
        if tokens == 0 || per_million <= Decimal::ZERO {
            continue;
        }
        let part = Decimal::from(tokens)
            .checked_mul(per_million)
            .and_then(|p| p.checked_mul(nanos_per_token_per_million))
            .ok_or(Unpriceable)?;
        total = total.checked_add(part).ok_or(Unpriceable)?;
    }
    total
        .round_dp_with_strategy(0, RoundingStrategy::ToPositiveInfinity)
        .to_i64()
        .filter(|n| *n <= MAX_NANOS)
        .ok_or(Unpriceable)
}

/// [`cost_nanos`] in USD.
pub fn cost(prices: &PriceTable, usage: &Usage) -> Result<Decimal, Unpriceable> {
    cost_nanos(prices, usage).map(from_nanos)
}

/// A rough token count for text: a quarter of its characters, at least 1 for non-empty text. Used
/// where an upstream reports no usage.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests;
