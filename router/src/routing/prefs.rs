//! What a request asks of routing: the model chain (`model`, `models`, model suffixes) and the
//! OpenRouter `provider` preferences, merged with the key's own policy. Pure parsing; unknown
//! `provider` fields are a 400.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, value::RawValue};
use switchboard_api::snapshot::{ApiKeyConfig, Capability, DataCollection};

use crate::{
    error::ApiError,
    json::{RawObject, field},
};

/// A model-name suffix that changes routing for that model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `:floor`: cheapest first.
    Floor,
    /// `:nitro`: highest measured throughput first.
    Nitro,
    /// `:free`: only targets that cost nothing.
    Free,
}

/// One requested model: a public model name and the suffix it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelChoice {
    /// The public model name as written, suffix included.
    pub requested: String,
    /// The route name (suffix removed unless a route has the literal name).
    pub route: String,
    /// The suffix, if one applied.
    pub variant: Option<Variant>,
}

/// Explicit ordering asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    /// Cheapest (input + output price per million) first.
    Price,
    /// Highest measured output tokens per second first.
    Throughput,
    /// Lowest measured time to first token first.
    Latency,
}

/// Upper prices in USD per million tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaxPrice {
    /// Most per million input tokens.
    pub prompt: Option<Decimal>,
    /// Most per million output tokens.
    pub completion: Option<Decimal>,
}

/// OpenRouter's `provider` object, validated. Provider names are Provider object names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderPrefs {
    /// Try these providers first, in this order.
    pub order: Vec<String>,
    /// Whether providers beyond `order` (or beyond the first choice) may be tried; default true.
    pub allow_fallbacks: bool,
    /// Only these providers.
    pub only: Vec<String>,
    /// Never these providers.
    pub ignore: Vec<String>,
    /// Explicit ordering.
    pub sort: Option<SortBy>,
    /// Price ceilings.
    pub max_price: MaxPrice,
    /// Only providers that declare they do not train on data.
    pub deny_data_collection: bool,
    /// Only providers that declare zero data retention.
    pub zdr: bool,
    /// Only models whose capabilities cover every feature the request uses.
    pub require_parameters: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefs<'a> {
    #[serde(default)]
    order: Option<Vec<String>>,
    #[serde(default)]
    allow_fallbacks: Option<bool>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default)]
    ignore: Option<Vec<String>>,
    #[serde(default)]
    sort: Option<SortBy>,
    #[serde(default, borrow)]
    max_price: Option<RawMaxPrice<'a>>,
    #[serde(default)]
    data_collection: Option<DataCollectionPref>,
    #[serde(default)]
    zdr: Option<bool>,
    #[serde(default)]
    require_parameters: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaxPrice<'a> {
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    completion: Option<&'a RawValue>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum DataCollectionPref {
    Allow,
    Deny,
}

/// An exact decimal from a JSON number or string (never through floating point).
fn price(raw: &RawValue, field: &str) -> Result<Decimal, ApiError> {
    let text = raw.get().trim_matches('"');
    let value = Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| {
            ApiError::bad_param(
                "provider",
                format!("`provider.max_price.{field}` must be a number of USD per million tokens"),
            )
        })?;
    if value.is_sign_negative() {
        return Err(ApiError::bad_param(
            "provider",
            format!("`provider.max_price.{field}` must not be negative"),
        ));
    }
    Ok(value)
}

impl ProviderPrefs {
    /// Reads `provider` from the request (absent: defaults), then tightens it with the key's
    /// policy (a key's `dataCollection: deny` or `zdr` cannot be loosened by a request).
    pub fn parse(body: &RawObject, key: &ApiKeyConfig) -> Result<ProviderPrefs, ApiError> {
        let mut prefs = ProviderPrefs {
            allow_fallbacks: true,
            ..ProviderPrefs::default()
        };
        if let Some(raw) = body.get("provider").filter(|r| r.get() != "null") {
            let parsed: RawPrefs<'_> = serde_json::from_str(raw.get()).map_err(|e| {
                let detail = e.to_string();
                let detail = detail.split(" at line").next().unwrap_or(&detail);
                ApiError::bad_param(
                    "provider",
                    format!("Invalid `provider` preferences: {detail}"),
                )
            })?;
            prefs.order = parsed.order.unwrap_or_default();
            prefs.allow_fallbacks = parsed.allow_fallbacks.unwrap_or(true);
            prefs.only = parsed.only.unwrap_or_default();
            prefs.ignore = parsed.ignore.unwrap_or_default();
            prefs.sort = parsed.sort;
            if let Some(m) = parsed.max_price {
                prefs.max_price = MaxPrice {
                    prompt: m.prompt.map(|p| price(p, "prompt")).transpose()?,
                    completion: m.completion.map(|p| price(p, "completion")).transpose()?,
                };
            }
            prefs.deny_data_collection = parsed.data_collection == Some(DataCollectionPref::Deny);
            prefs.zdr = parsed.zdr.unwrap_or(false);
            prefs.require_parameters = parsed.require_parameters.unwrap_or(false);
        }
        let policy = &key.provider_policy;
        prefs.deny_data_collection |= policy.data_collection == Some(DataCollection::Deny);
        prefs.zdr |= policy.zdr;
        Ok(prefs)
    }
}

/// Splits a requested model into route name and suffix. A route whose name includes the suffix
/// literally wins over the suffix.
pub fn model_choice(requested: &str, route_exists: impl Fn(&str) -> bool) -> ModelChoice {
    let plain = ModelChoice {
        requested: requested.to_string(),
        route: requested.to_string(),
        variant: None,
    };
    if route_exists(requested) {
        return plain;
    }
    for (suffix, variant) in [
        (":floor", Variant::Floor),
        (":nitro", Variant::Nitro),
        (":free", Variant::Free),
    ] {
        if let Some(base) = requested.strip_suffix(suffix) {
            return ModelChoice {
                requested: requested.to_string(),
                route: base.to_string(),
                variant: Some(variant),
            };
        }
    }
    plain
}

/// The model chain of a request: `model`, then `models`, each name once.
pub fn model_chain(
    body: &RawObject,
    route_exists: impl Fn(&str) -> bool,
) -> Result<Vec<ModelChoice>, ApiError> {
    let model: Option<String> = field(body, "model", "a string")?;
    let models: Option<Vec<String>> = field(body, "models", "an array of strings")?;
    let mut names: Vec<String> = Vec::new();
    for name in model.into_iter().chain(models.unwrap_or_default()) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(ApiError::bad_param("model", "`model` is required"));
    }
    Ok(names
        .iter()
        .map(|n| model_choice(n, &route_exists))
        .collect())
}

/// The capabilities a chat request uses: tools, image input, JSON-schema output, reasoning.
pub fn needed_capabilities(body: &RawObject) -> Vec<Capability> {
    let mut needs = Vec::new();
    let non_empty = |k: &str| {
        body.get(k)
            .is_some_and(|v| !matches!(v.get(), "null" | "[]"))
    };
    if non_empty("tools") || non_empty("functions") {
        needs.push(Capability::Tools);
    }
    if let Some(messages) = body.get("messages")
        && messages.get().contains("image_url")
        && serde_json::from_str::<Vec<Value>>(messages.get()).is_ok_and(|ms| {
            ms.iter().any(|m| {
                m.get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|parts| {
                        parts
                            .iter()
                            .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"))
                    })
            })
        })
    {
        needs.push(Capability::Vision);
    }
    if body
        .get("response_format")
        .and_then(|f| serde_json::from_str::<Value>(f.get()).ok())
        .is_some_and(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
    {
        needs.push(Capability::JsonSchema);
    }
    if non_empty("reasoning") || non_empty("reasoning_effort") {
        needs.push(Capability::Reasoning);
    }
    needs
}

/// The sticky-routing key of a request: `session_id`, else `user`.
pub fn sticky_key(body: &RawObject) -> Option<String> {
    ["session_id", "user"].iter().find_map(|k| {
        body.get(k)
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .filter(|s| !s.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> RawObject {
        RawObject::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn parses_every_provider_field_with_exact_prices() {
        let p = ProviderPrefs::parse(
            &body(
                r#"{"provider":{"order":["a","b"],"allow_fallbacks":false,"only":["a"],"ignore":["c"],
                "sort":"latency","max_price":{"prompt":0.1,"completion":"2.5"},"data_collection":"deny",
                "zdr":true,"require_parameters":true}}"#,
            ),
            &ApiKeyConfig::test(),
        )
        .unwrap();
        assert_eq!(p.order, ["a", "b"]);
        assert!(!p.allow_fallbacks && p.deny_data_collection && p.zdr && p.require_parameters);
        assert_eq!(p.sort, Some(SortBy::Latency));
        assert_eq!(p.max_price.prompt, Some(Decimal::new(1, 1)));
        assert_eq!(p.max_price.completion, Some(Decimal::new(25, 1)));
    }

    #[test]
    fn unknown_or_mistyped_provider_fields_are_400() {
        for bad in [
            r#"{"provider":{"orderr":["a"]}}"#,
            r#"{"provider":{"sort":"fastest"}}"#,
            r#"{"provider":{"max_price":{"prompt":-1}}}"#,
            r#"{"provider":{"max_price":{"tokens":1}}}"#,
            r#"{"provider":{"only":"a"}}"#,
            r#"{"provider":"a"}"#,
        ] {
            let e = ProviderPrefs::parse(&body(bad), &ApiKeyConfig::test()).unwrap_err();
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn the_key_policy_cannot_be_loosened_by_a_request() {
        let mut k = ApiKeyConfig::test();
        k.provider_policy.data_collection = Some(DataCollection::Deny);
        k.provider_policy.zdr = true;
        let p = ProviderPrefs::parse(
            &body(r#"{"provider":{"data_collection":"allow","zdr":false}}"#),
            &k,
        )
        .unwrap();
        assert!(p.deny_data_collection && p.zdr);
    }

    #[test]
    fn suffixes_select_variants_unless_a_route_has_the_literal_name() {
        let routes = ["m", "odd:free"];
        let exists = |n: &str| routes.contains(&n);
        assert_eq!(
            model_choice("m:floor", exists).variant,
            Some(Variant::Floor)
        );
        assert_eq!(model_choice("m:nitro", exists).route, "m");
        assert_eq!(model_choice("odd:free", exists).variant, None);
        assert_eq!(model_choice("m", exists).variant, None);
    }

    #[test]
    fn needed_capabilities_come_from_the_request_body() {
        let b = body(
            r#"{"tools":[{"type":"function"}],"response_format":{"type":"json_schema"},
            "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
        );
        assert_eq!(
            needed_capabilities(&b),
            [
                Capability::Tools,
                Capability::Vision,
                Capability::JsonSchema
            ]
        );
        assert!(needed_capabilities(&body(r#"{"tools":[],"messages":[]}"#)).is_empty());
    }
}
