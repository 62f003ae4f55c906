//! What a request's cache key is made of, and whether a request may use the cache at all. Pure.
//!
//! The key is a SHA-256 over the scope, the endpoint and the normalized request: every body field
//! except those that cannot change the answer ([`IGNORED`]), each value re-serialised with its
//! object keys sorted, message content given as text parts written as the plain string they
//! mean. Two requests that differ only in field order, whitespace or delivery (`stream`) share a
//! key; any other difference (a sampling parameter, a tool, a response format, `provider`
//! preferences) gives another.

use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_api::snapshot::{ApiKeyConfig, CachePolicy, CacheScope};

use crate::json::RawObject;

/// Body fields left out of the key: how the answer is delivered or attributed, not what it is.
pub const IGNORED: [&str; 10] = [
    "stream",
    "stream_options",
    "user",
    "session_id",
    "metadata",
    "store",
    "cache",
    "prompt_cache_key",
    "safety_identifier",
    "usage",
];

/// What the client asked of the cache: `Cache-Control: no-cache` (do not serve from the cache,
/// store the fresh answer), `no-store` (neither), or `"cache": false` in the body (neither).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// Do not serve a cached answer.
    pub no_cache: bool,
    /// Do not store the answer.
    pub no_store: bool,
}

impl Directives {
    /// The directives of a request's `Cache-Control` header(s).
    pub fn from_headers(headers: &http::HeaderMap) -> Directives {
        let mut d = Directives::default();
        for value in headers.get_all(http::header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',').map(|p| p.trim().to_ascii_lowercase()) {
                match directive.as_str() {
                    "no-cache" => d.no_cache = true,
                    "no-store" => {
                        d.no_cache = true;
                        d.no_store = true;
                    }
                    _ => {}
                }
            }
        }
        d
    }

    /// These directives with the body's `"cache": false`, if it says so.
    pub fn with_body(mut self, body: &RawObject) -> Directives {
        if body.get("cache").is_some_and(|v| v.get() == "false") {
            self.no_cache = true;
            self.no_store = true;
        }
        self
    }
}

/// Why a request does not use the cache although its route caches (`X-Switchboard-Cache: bypass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bypass {
    /// The client said `no-cache` (the fresh answer is still stored unless `no_store`).
    Client { store: bool },
    /// `temperature` above 0 on a route that caches only deterministic requests.
    Sampled,
    /// A tool-loop turn on a route that skips them.
    ToolTurn,
}

impl Bypass {
    /// Whether the answer may still be stored.
    pub fn stores(self) -> bool {
        matches!(self, Bypass::Client { store: true })
    }
}

/// Whether a request whose route caches under `policy` may use the cache: `Err` says why not.
pub fn admit(policy: &CachePolicy, body: &RawObject, d: Directives) -> Result<(), Bypass> {
    if d.no_cache {
        return Err(Bypass::Client { store: !d.no_store });
    }
    if !policy.sampled
        && body
            .get("temperature")
            .and_then(|t| serde_json::from_str::<f64>(t.get()).ok())
            .is_some_and(|t| t > 0.0)
    {
        return Err(Bypass::Sampled);
    }
    if policy.skip_tool_turns && last_role(body).as_deref() == Some("tool") {
        return Err(Bypass::ToolTurn);
    }
    Ok(())
}

fn last_role(body: &RawObject) -> Option<String> {
    let messages: Vec<Value> = serde_json::from_str(body.get("messages")?.get()).ok()?;
    messages.last()?.get("role")?.as_str().map(str::to_string)
}

/// The scope a caller's entries live in under `scope`: `key:<ns/name>`, `team:<team>` (a key
/// without a team is its own scope), `ns:<namespace>` or `shared`.
pub fn scope_of(scope: CacheScope, key: &ApiKeyConfig) -> String {
    match (scope, &key.team) {
        (CacheScope::Shared, _) => "shared".into(),
        (CacheScope::Namespace, _) => format!("ns:{}", key.namespace),
        (CacheScope::Team, Some(team)) => format!("team:{team}"),
        (CacheScope::Team, None) | (CacheScope::Key, _) => format!("key:{}", key.id()),
    }
}

/// The exact key of `body` for `endpoint` within `scope`: hex SHA-256. `None` when the body does
/// not parse as JSON values (it is then no request the cache can answer).
pub fn exact_key(scope: &str, endpoint: &str, body: &RawObject) -> Option<String> {
    let canonical = canonical_request(body, None)?;
    Some(digest(&["exact", scope, endpoint, &canonical]))
}

/// What a semantic lookup compares: the partition (everything but the last user turn, hashed:
/// it must match exactly) and the text of the last user turn (embedded). `None` when the last
/// message is not a user turn with text.
pub fn semantic_parts(scope: &str, endpoint: &str, body: &RawObject) -> Option<(String, String)> {
    let messages: Vec<Value> = serde_json::from_str(body.get("messages")?.get()).ok()?;
    let (last, before) = messages.split_last()?;
    if last.get("role")?.as_str()? != "user" {
        return None;
    }
    let text = text_of(last.get("content")?)?;
    if text.trim().is_empty() {
        return None;
    }
    let canonical = canonical_request(body, Some(before))?;
    Some((digest(&["semantic", scope, endpoint, &canonical]), text))
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The body's fields but [`IGNORED`], sorted, canonical; `messages` replaced by `messages` when
/// given.
fn canonical_request(body: &RawObject, messages: Option<&[Value]>) -> Option<String> {
    let mut fields: Vec<(&str, Value)> = Vec::with_capacity(body.0.len());
    for (name, raw) in &body.0 {
        if IGNORED.contains(&name.as_str()) {
            continue;
        }
        let mut value = match (name.as_str(), messages) {
            ("messages", Some(m)) => Value::Array(m.to_vec()),
            _ => serde_json::from_str(raw.get()).ok()?,
        };
        if name == "messages" {
            normalize_messages(&mut value);
        }
        fields.push((name, value));
    }
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(256);
    out.push('{');
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_canonical(&Value::String((*name).to_string()), &mut out);
        out.push(':');
        write_canonical(value, &mut out);
    }
    out.push('}');
    Some(out)
}

/// Content given as text parts only is the string they make.
fn normalize_messages(messages: &mut Value) {
    let Some(list) = messages.as_array_mut() else {
        return;
    };
    for m in list {
        if let Some(content) = m.get_mut("content")
            && content.is_array()
            && let Some(text) = text_of(content)
        {
            *content = Value::String(text);
        }
    }
}

/// A message content's text: a string, or text parts only (joined).
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(
                |p| match (p.get("type")?.as_str()?, p.get("text")?.as_str()) {
                    ("text", Some(t)) => Some(t),
                    _ => None,
                },
            )
            .collect::<Option<Vec<&str>>>()
            .map(|t| t.concat()),
        _ => None,
    }
}

/// JSON with object keys sorted at every depth.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
