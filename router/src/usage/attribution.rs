//! Who a request is attributed to beyond its key: the end user (`user` in the body, or Anthropic's
//! `metadata.user_id`), tags (`X-Switchboard-Tags: a,b` and `metadata.tags` in the body) and the
//! calling app (`X-Title`, else `HTTP-Referer`, as OpenRouter attributes apps). Pure, and bounded:
//! these are client input that ends up in rollup keys, so each is trimmed, stripped of control
//! characters and cut to a length, and a request carries at most [`MAX_TAGS`] tags.

use http::HeaderMap;

use crate::json::RawObject;

/// Header listing a request's tags, comma-separated.
pub const TAGS_HEADER: &str = "x-switchboard-tags";
/// Most tags kept per request (the rest are ignored).
pub const MAX_TAGS: usize = 16;
/// Longest tag kept, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest app name and end-user id kept, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// The attribution found in a request's headers and body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    /// End user.
    pub user: Option<String>,
    /// Tags, deduplicated, in the order first seen.
    pub tags: Vec<String>,
    /// Calling app.
    pub app: Option<String>,
}

impl Attribution {
    /// Tags and app from the request headers.
    pub fn from_headers(headers: &HeaderMap) -> Attribution {
        let mut a = Attribution::default();
        for value in headers.get_all(TAGS_HEADER) {
            if let Ok(v) = value.to_str() {
                a.add_tags(v.split(','));
            }
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| clean(v, MAX_NAME_CHARS))
        };
        a.app = header("x-title").or_else(|| header("http-referer"));
        a
    }

    /// Adds the end user and tags a JSON request body names: `user` (OpenAI, OpenRouter) or
    /// `metadata.user_id` (Anthropic); `metadata.tags` as an array of strings or one
    /// comma-separated string. Anything of another type is ignored: attribution never fails a
    /// request.
    pub fn add_body(&mut self, body: &RawObject) {
        #[derive(serde::Deserialize)]
        struct Metadata {
            #[serde(default)]
            user_id: Option<serde_json::Value>,
            #[serde(default)]
            tags: Option<serde_json::Value>,
        }
        let user = body
            .get("user")
            .and_then(|u| serde_json::from_str::<String>(u.get()).ok());
        let metadata = body
            .get("metadata")
            .and_then(|m| serde_json::from_str::<Metadata>(m.get()).ok());
        let metadata_user = metadata
            .as_ref()
            .and_then(|m| m.user_id.as_ref())
            .and_then(|u| u.as_str().map(str::to_string));
        if let Some(user) = user.or(metadata_user) {
            self.user = clean(&user, MAX_NAME_CHARS);
        }
        match metadata.and_then(|m| m.tags) {
            Some(serde_json::Value::Array(items)) => {
                self.add_tags(
                    items
                        .iter()
                        .filter_map(|t| t.as_str())
                        .flat_map(|t| t.split(',')),
                );
            }
            Some(serde_json::Value::String(s)) => self.add_tags(s.split(',')),
            _ => {}
        }
    }

    fn add_tags<'a>(&mut self, tags: impl Iterator<Item = &'a str>) {
        for tag in tags {
            if self.tags.len() >= MAX_TAGS {
                return;
            }
            if let Some(tag) = clean(tag, MAX_TAG_CHARS)
                && !self.tags.contains(&tag)
            {
                self.tags.push(tag);
            }
        }
    }
}

/// `value` trimmed, without control characters, cut to `max` characters; `None` when empty.
fn clean(value: &str, max: usize) -> Option<String> {
    let cleaned: String = value
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    let cleaned = cleaned.trim_end().to_string();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn body(json: &str) -> RawObject {
        RawObject::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn tags_come_from_the_header_and_the_body_deduplicated_in_order() {
        let mut a = Attribution::from_headers(&headers(&[
            ("x-switchboard-tags", " prod , batch,,prod"),
            ("x-switchboard-tags", "nightly"),
        ]));
        a.add_body(&body(r#"{"metadata": {"tags": ["batch", "eval,ab"]}}"#));
        assert_eq!(a.tags, ["prod", "batch", "nightly", "eval", "ab"]);
        let mut b = Attribution::default();
        b.add_body(&body(r#"{"metadata": {"tags": "x, y"}}"#));
        assert_eq!(b.tags, ["x", "y"]);
    }

    #[test]
    fn tags_are_bounded_in_number_and_length() {
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let a = Attribution::from_headers(&headers(&[("x-switchboard-tags", &many.join(","))]));
        assert_eq!(a.tags.len(), MAX_TAGS);
        let long = "x".repeat(500);
        let b = Attribution::from_headers(&headers(&[("x-switchboard-tags", &long)]));
        assert_eq!(b.tags[0].chars().count(), MAX_TAG_CHARS);
    }

    #[test]
    fn the_app_is_the_title_else_the_referer() {
        let a = Attribution::from_headers(&headers(&[
            ("http-referer", "https://app.example.com"),
            ("x-title", "Support Bot"),
        ]));
        assert_eq!(a.app.as_deref(), Some("Support Bot"));
        let b = Attribution::from_headers(&headers(&[("http-referer", "https://app.example.com")]));
        assert_eq!(b.app.as_deref(), Some("https://app.example.com"));
        assert_eq!(Attribution::from_headers(&HeaderMap::new()).app, None);
    }

    #[test]
    fn the_user_is_openais_user_or_anthropics_metadata_user_id() {
        let mut a = Attribution::default();
        a.add_body(&body(
            r#"{"user": "  alice ", "metadata": {"user_id": "bob"}}"#,
        ));
        assert_eq!(a.user.as_deref(), Some("alice"));
        let mut b = Attribution::default();
        b.add_body(&body(r#"{"metadata": {"user_id": "bob"}}"#));
        assert_eq!(b.user.as_deref(), Some("bob"));
    }

    #[test]
    fn attribution_of_the_wrong_type_is_ignored() {
        let mut a = Attribution::default();
        a.add_body(&body(
            r#"{"user": 42, "metadata": {"user_id": {"x": 1}, "tags": 7}}"#,
        ));
        assert_eq!(a, Attribution::default());
        let mut b = Attribution::default();
        b.add_body(&body(r#"{"metadata": "not an object"}"#));
        assert_eq!(b, Attribution::default());
        let mut c = Attribution::default();
        c.add_body(&body("{\"user\": \"\\u0000\\u0007 \"}"));
        assert_eq!(c.user, None);
    }
}
