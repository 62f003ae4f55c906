//! The most a request can use, from the request alone: the one description every endpoint gives
//! of its request (chat, messages through chat, embeddings; Responses and completions alike), from
//! which the worst case reserved, the checks on reported usage and the bill of an unusable report
//! all derive. Pure.
//!
//! - Prompt tokens: at most the byte length of what becomes the prompt (`messages`, `tools`,
//!   `functions`, `response_format`; no tokenizer yields more tokens than bytes of text), capped
//!   at the model's context length. A request carrying images, audio, video or files, whose
//!   tokens its bytes do not bound, is bounded by the context length alone (when the model has
//!   one).
//! - Output tokens per choice: `max_completion_tokens` / `max_tokens`, else the model's
//!   `maxOutputTokens`, else 4096 — or, when reasoning is asked for with a thinking budget at
//!   least that large, the budget plus the answer's share, which is what the Anthropic and Bedrock
//!   adapters then send upstream as `max_tokens` ([`output_budget`]; every other adapter, and a
//!   native Anthropic request, counts thinking within the limit). Times `n` (or `best_of`)
//!   choices.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use switchboard_api::snapshot::ModelConfig;

use crate::{
    error::ApiError,
    json::{RawObject, field},
    pricing::{Usage, reported::UsageBounds},
    providers::{
        anthropic::translate::output_budget,
        openai_wire::{ChatRequest, ReasoningRequest},
    },
};

/// Output tokens assumed when neither the request nor the model bounds them.
pub const DEFAULT_MAX_OUTPUT: u64 = 4096;

/// Fields of a chat request whose bytes become prompt tokens.
const PROMPT_FIELDS: [&str; 4] = ["messages", "tools", "functions", "response_format"];

/// Content part types whose tokens their bytes do not bound.
const MEDIA_MARKERS: [&str; 5] = [
    "\"image_url\"",
    "\"input_audio\"",
    "\"video_url\"",
    "\"file\"",
    "\"image\"",
];

/// What a request asks for, as far as money is concerned.
#[derive(Clone, Debug)]
pub struct RequestBounds {
    /// Byte length of what becomes the prompt.
    pub prompt_bytes: u64,
    /// Whether the prompt carries media (images, audio, video, files).
    pub media: bool,
    /// The request's output limit per choice, if it set one.
    pub max_tokens: Option<u64>,
    /// Reasoning asked for (`reasoning`, `reasoning_effort`), as the adapters read it.
    pub reasoning: Option<ReasoningRequest>,
    /// OpenAI's `reasoning_effort`.
    pub reasoning_effort: Option<String>,
    /// Choices asked for (`n`, or `best_of` when larger); at least 1.
    pub choices: u64,
}

impl Default for RequestBounds {
    fn default() -> Self {
        RequestBounds {
            prompt_bytes: 0,
            media: false,
            max_tokens: None,
            reasoning: None,
            reasoning_effort: None,
            choices: 1,
        }
    }
}

/// A worst case no price can be put on (the ledger holds at most $9,007,199.254740991).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unbounded;

impl From<Unbounded> for ApiError {
    fn from(_: Unbounded) -> ApiError {
        ApiError::bad_param(
            "max_tokens",
            format!(
                "`max_tokens` (times `n`) is too large: this request's worst case exceeds ${}, \
                 the most the spend ledger counts. Ask for fewer max_tokens.",
                switchboard_api::money::max_usd()
            ),
        )
    }
}

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl RequestBounds {
    /// The bounds of an OpenAI chat request (400 naming the field when one has the wrong type or
    /// `n` is not a positive integer).
    pub fn from_chat(body: &RawObject) -> Result<RequestBounds, ApiError> {
        let mut max_tokens = None;
        for name in ["max_tokens", "max_completion_tokens"] {
            max_tokens = field::<u64>(body, name, "a non-negative integer")?.or(max_tokens);
        }
        let mut choices = 1;
        for name in ["n", "best_of"] {
            if let Some(n) = field::<u64>(body, name, "a positive integer")? {
                if n == 0 {
                    return Err(ApiError::bad_param(
                        name,
                        format!("`{name}` must be a positive integer"),
                    ));
                }
                choices = choices.max(n);
            }
        }
        // Reasoning knobs of any shape the adapters accept; a wrong shape is theirs to refuse.
        let reasoning = field::<ReasoningRequest>(body, "reasoning", "an object")
            .ok()
            .flatten();
        let reasoning_effort = field::<String>(body, "reasoning_effort", "a string")
            .ok()
            .flatten();
        let prompt = PROMPT_FIELDS.iter().filter_map(|f| body.get(f));
        let media = body
            .get("messages")
            .is_some_and(|m| MEDIA_MARKERS.iter().any(|k| m.get().contains(k)));
        Ok(RequestBounds {
            prompt_bytes: prompt.fold(0u64, |sum, v| sum.saturating_add(len(v.get().len()))),
            media,
            max_tokens,
            reasoning,
            reasoning_effort,
            choices,
        })
    }

    /// The bounds of an embeddings request of `input_bytes`: no output.
    pub fn embeddings(input_bytes: u64) -> RequestBounds {
        RequestBounds {
            prompt_bytes: input_bytes,
            max_tokens: Some(0),
            ..RequestBounds::default()
        }
    }

    /// Most prompt tokens the request reserves for on `model`.
    pub fn prompt_tokens(&self, model: &ModelConfig) -> u64 {
        let context = model.context_length.map(u64::from);
        match (self.media, context) {
            (true, Some(c)) => c,
            (_, c) => c.map_or(self.prompt_bytes, |c| self.prompt_bytes.min(c)),
        }
    }

    /// The output limit of a choice that sets none on `model`: its `maxOutputTokens`, else 4096.
    pub fn default_output(&self, model: &ModelConfig) -> u64 {
        model
            .max_output_tokens
            .map_or(DEFAULT_MAX_OUTPUT, u64::from)
    }

    /// Most output tokens of one choice on `model`: the output limit, or what an adapter raises
    /// it to to fit a thinking budget ([`output_budget`], the adapters' own function).
    pub fn output_per_choice(&self, model: &ModelConfig) -> u64 {
        let req = ChatRequest {
            max_tokens: self.max_tokens,
            reasoning: self.reasoning.clone(),
            reasoning_effort: self.reasoning_effort.clone(),
            ..ChatRequest::default()
        };
        let base = self
            .max_tokens
            .unwrap_or_else(|| self.default_output(model));
        output_budget(&req, model.max_output_tokens).0.max(base)
    }

    /// Most completion tokens on `model`, all choices; `None` past `u64`.
    pub fn completion_tokens(&self, model: &ModelConfig) -> Option<u64> {
        self.output_per_choice(model).checked_mul(self.choices)
    }

    /// The worst-case usage on `model`: every bound reached, at the dearest split (cache writes
    /// when they cost more than input, reasoning when it costs more than output).
    pub fn worst_usage(&self, model: &ModelConfig) -> Result<Usage, Unbounded> {
        let prompt = self.prompt_tokens(model);
        let completion = self.completion_tokens(model).ok_or(Unbounded)?;
        let p = &model.pricing;
        Ok(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: 0,
            cache_write_tokens: if p.cache_write_per_million > p.input_per_million {
                prompt
            } else {
                0
            },
            reasoning_tokens: if p.reasoning_per_million > p.output_per_million {
                completion
            } else {
                0
            },
        })
    }

    /// What usage reported for this request on `model` may be, with `reserved_nanos` reserved:
    /// prompt tokens up to the context length plus a tenth (the configured length may be a
    /// little off), completion tokens up to every choice's bound.
    pub fn usage_bounds(&self, model: &ModelConfig, reserved_nanos: i64) -> UsageBounds {
        UsageBounds {
            prompt: model
                .context_length
                .map(|c| u64::from(c).saturating_add(u64::from(c / 10))),
            completion: self.completion_tokens(model).unwrap_or(u64::MAX),
            cap_nanos: reserved_nanos.max(0),
            worst: self.worst_usage(model).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use switchboard_api::snapshot::PriceTable;

    use super::*;

    fn body(json: &str) -> RawObject {
        RawObject::parse(json.as_bytes()).unwrap()
    }

    fn model(max_out: Option<u32>, ctx: Option<u32>) -> ModelConfig {
        ModelConfig {
            pricing: PriceTable {
                input_per_million: Decimal::from_str("1").unwrap(),
                output_per_million: Decimal::from_str("2").unwrap(),
                ..PriceTable::default()
            },
            context_length: ctx,
            max_output_tokens: max_out,
            capabilities: Default::default(),
        }
    }

    #[test]
    fn n_and_best_of_multiply_the_output_bound() {
        let b = RequestBounds::from_chat(&body(
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":100,"n":100}"#,
        ))
        .unwrap();
        assert_eq!(b.choices, 100);
        assert_eq!(b.completion_tokens(&model(None, None)), Some(10_000));
        let b = RequestBounds::from_chat(&body(r#"{"messages":[],"n":2,"best_of":5}"#)).unwrap();
        assert_eq!(b.choices, 5);
        for bad in [
            r#"{"n":0}"#,
            r#"{"n":-1}"#,
            r#"{"n":"2"}"#,
            r#"{"best_of":1.5}"#,
        ] {
            let e = RequestBounds::from_chat(&body(bad)).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
    }

    #[test]
    fn the_prompt_is_bounded_by_its_bytes_or_by_the_context_when_it_carries_media() {
        let text = r#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}"#;
        let b = RequestBounds::from_chat(&body(text)).unwrap();
        assert_eq!(b.prompt_bytes, 32 + 21, "messages and tools");
        assert_eq!(b.prompt_tokens(&model(None, Some(40))), 40);
        assert_eq!(b.prompt_tokens(&model(None, None)), 53);
        let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#;
        let b = RequestBounds::from_chat(&body(image)).unwrap();
        assert!(b.media);
        assert_eq!(b.prompt_tokens(&model(None, Some(128_000))), 128_000);
    }

    #[test]
    fn a_thinking_budget_is_output_the_upstream_may_produce() {
        let b = RequestBounds::from_chat(&body(
            r#"{"messages":[],"max_tokens":10,"reasoning":{"max_tokens":5000}}"#,
        ))
        .unwrap();
        assert_eq!(b.output_per_choice(&model(None, None)), 5010);
        let b = RequestBounds::from_chat(&body(
            r#"{"messages":[],"max_tokens":5,"reasoning_effort":"high"}"#,
        ))
        .unwrap();
        assert_eq!(b.output_per_choice(&model(None, None)), 5 + 1024);
        let huge = RequestBounds::from_chat(&body(
            r#"{"messages":[],"max_tokens":18446744073709551615,"reasoning":{"max_tokens":18446744073709551615},"n":3}"#,
        ))
        .unwrap();
        assert_eq!(huge.output_per_choice(&model(None, None)), u64::MAX);
        assert_eq!(huge.worst_usage(&model(None, None)), Err(Unbounded));
    }

    #[test]
    fn usage_bounds_allow_a_tenth_over_the_context_length() {
        let b =
            RequestBounds::from_chat(&body(r#"{"messages":[],"max_tokens":10,"n":2}"#)).unwrap();
        let u = b.usage_bounds(&model(None, Some(1000)), 77);
        assert_eq!((u.prompt, u.completion, u.cap_nanos), (Some(1100), 20, 77));
        assert_eq!(u.worst.completion_tokens, 20);
    }
}
