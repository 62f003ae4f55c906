//! Editing a JSON object without re-serialising what we do not touch: every field we pass on
//! keeps the upstream's exact bytes; and decoding the one field we read, with a 400 that names it.
//! Pure.

use std::fmt;

use rust_decimal::Decimal;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{DeserializeOwned, MapAccess, Visitor},
    ser::SerializeMap,
};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A JSON object as an ordered list of fields with raw values.
#[derive(Debug, Default)]
pub struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl RawObject {
    /// Parses an object; the error is serde_json's, with line and column.
    pub fn parse(bytes: &[u8]) -> Result<RawObject, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw value of a field.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// Sets a field to raw JSON text, replacing it in place or appending it.
    pub fn set_raw(&mut self, key: &str, json: String) {
        let value = RawValue::from_string(json).expect("callers pass valid JSON");
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    /// Sets a field to a serialisable value.
    pub fn set<T: Serialize>(&mut self, key: &str, value: &T) {
        self.set_raw(
            key,
            serde_json::to_string(value).expect("plain values serialise"),
        );
    }

    /// Removes a field.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    /// Serialises to compact JSON; untouched values are copied byte for byte.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("raw values serialise")
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawObject, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    fields.push((k, v));
                }
                Ok(RawObject(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A top-level field's raw value, present even when it is `null` (unlike `Option<&RawValue>`,
/// which reads `null` as absent): for [`splice_fields`], which must replace a `null` in place.
#[derive(Debug, Default, Clone, Copy)]
pub struct Present<'a>(pub Option<&'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for Present<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Present<'a>, D::Error> {
        <&'a RawValue>::deserialize(d).map(|v| Present(Some(v)))
    }
}

/// Sets top-level fields of the JSON object `src` without re-serialising it: each edit is the
/// field's current raw value (borrowed from `src`, as a [`Present`] parsed from it), its key and
/// its new raw JSON. A present field's value is replaced where it stands; an absent one is
/// appended before the closing brace. Every other byte, whitespace included, is kept. `src` must
/// be a non-empty JSON object and the borrowed values must come from it.
pub fn splice_fields(src: &[u8], edits: &mut [(Present<'_>, &str, String)]) -> Vec<u8> {
    let base = src.as_ptr() as usize;
    let span = |v: &RawValue| {
        let start = v.get().as_ptr() as usize - base;
        (start, start + v.get().len())
    };
    edits.sort_by_key(|(present, _, _)| present.0.map_or(usize::MAX, |v| span(v).0));
    let close = src
        .iter()
        .rposition(|b| *b == b'}')
        .expect("a JSON object ends with `}`");
    let extra: usize = edits.iter().map(|(_, k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(src.len() + extra);
    let mut at = 0;
    for (present, key, value) in edits.iter() {
        match present.0 {
            Some(v) => {
                let (start, end) = span(v);
                out.extend_from_slice(&src[at..start]);
                out.extend_from_slice(value.as_bytes());
                at = end;
            }
            None => {
                out.extend_from_slice(&src[at..close]);
                at = close;
                out.push(b',');
                serde_json::to_writer(&mut out, key).expect("a string serialises");
                out.push(b':');
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
    out.extend_from_slice(&src[at..]);
    out
}

/// The `usage` object with Switchboard's `cost` (USD, an exact decimal number) set, keeping every
/// other usage field as the upstream wrote it.
pub fn usage_with_cost(usage: Option<&RawValue>, cost: Decimal) -> String {
    let mut obj = usage
        .and_then(|u| serde_json::from_str::<RawObject>(u.get()).ok())
        .unwrap_or_default();
    obj.remove("cost");
    // `Decimal`'s Display never uses an exponent, so this is a valid, exact JSON number.
    obj.set_raw("cost", cost.normalize().to_string());
    String::from_utf8(obj.to_vec()).expect("JSON is UTF-8")
}

/// A usage count [`usage_normalised`] makes sure of: a top-level count (`("total_tokens", None,
/// n)`) or one inside a details object (`("prompt_tokens_details", Some("cached_tokens"), n)`).
pub type UsageCount<'a> = (&'a str, Option<&'a str>, u64);

/// The `usage` object as the upstream wrote it (or none), with every count of `counts` present
/// (a missing one is added with its value, a present one keeps the upstream's bytes) and
/// Switchboard's `cost` set: usage has one shape whichever provider served.
pub fn usage_normalised(
    usage: Option<&RawValue>,
    counts: &[UsageCount<'_>],
    cost: Decimal,
) -> String {
    let mut obj = usage
        .and_then(|u| serde_json::from_str::<RawObject>(u.get()).ok())
        .unwrap_or_default();
    let absent = |v: Option<&RawValue>| v.is_none_or(|v| v.get() == "null");
    for (key, sub, n) in counts {
        match sub {
            None if absent(obj.get(key)) => obj.set(key, n),
            None => {}
            Some(sub) => {
                let mut details = obj
                    .get(key)
                    .and_then(|d| serde_json::from_str::<RawObject>(d.get()).ok())
                    .unwrap_or_default();
                if absent(details.get(sub)) {
                    details.set(sub, n);
                    obj.set_raw(
                        key,
                        String::from_utf8(details.to_vec()).expect("JSON is UTF-8"),
                    );
                }
            }
        }
    }
    obj.remove("cost");
    obj.set_raw("cost", cost.normalize().to_string());
    String::from_utf8(obj.to_vec()).expect("JSON is UTF-8")
}

/// Decodes one field, with a 400 naming the field when it has the wrong type.
pub fn field<T: DeserializeOwned>(
    body: &RawObject,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match body.get(name) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| ApiError::bad_param(name, format!("`{name}` must be {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn untouched_fields_keep_their_exact_bytes() {
        let src = br#"{"id":"x","choices":[{"message":{"content":"h\u00e9 1.50"}}],"n":1.50}"#;
        let mut obj = RawObject::parse(src).unwrap();
        obj.set("provider", &"p");
        let out = String::from_utf8(obj.to_vec()).unwrap();
        assert_eq!(
            out,
            r#"{"id":"x","choices":[{"message":{"content":"h\u00e9 1.50"}}],"n":1.50,"provider":"p"}"#
        );
    }

    #[derive(Deserialize)]
    struct View<'a> {
        #[serde(borrow, default)]
        usage: Present<'a>,
        #[serde(borrow, default)]
        provider: Present<'a>,
    }

    fn splice(src: &str, usage: &str, provider: &str) -> String {
        let view: View<'_> = serde_json::from_str(src).unwrap();
        let mut edits = [
            (view.provider, "provider", provider.to_string()),
            (view.usage, "usage", usage.to_string()),
        ];
        String::from_utf8(splice_fields(src.as_bytes(), &mut edits)).unwrap()
    }

    #[test]
    fn splice_replaces_present_fields_in_place_and_keeps_every_other_byte() {
        let src = "{\"id\": \"x\",\n \"usage\": {\"a\": 1},\n \"provider\" : null, \"n\":1.50 }\n";
        assert_eq!(
            splice(src, r#"{"cost":1}"#, r#""p""#),
            "{\"id\": \"x\",\n \"usage\": {\"cost\":1},\n \"provider\" : \"p\", \"n\":1.50 }\n"
        );
    }

    #[test]
    fn splice_appends_absent_fields_and_replaces_null() {
        assert_eq!(
            splice(r#"{"id":"x","usage":null}"#, r#"{"cost":1}"#, r#""p""#),
            r#"{"id":"x","usage":{"cost":1},"provider":"p"}"#
        );
        assert_eq!(
            splice(r#"{"choices":[{"a":"}"}]}  "#, "2", r#""p""#),
            r#"{"choices":[{"a":"}"}],"provider":"p","usage":2}  "#
        );
    }

    #[test]
    fn normalised_usage_adds_only_what_is_missing() {
        let usage = RawValue::from_string(
            r#"{"prompt_tokens":3,"prompt_tokens_details":{"audio_tokens":0},"total_tokens":5}"#
                .into(),
        )
        .unwrap();
        let counts = [
            ("prompt_tokens", None, 9),
            ("completion_tokens", None, 2),
            ("prompt_tokens_details", Some("audio_tokens"), 7),
            ("prompt_tokens_details", Some("cached_tokens"), 1),
        ];
        assert_eq!(
            usage_normalised(Some(&usage), &counts, Decimal::from_str("0.5").unwrap()),
            r#"{"prompt_tokens":3,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":1},"total_tokens":5,"completion_tokens":2,"cost":0.5}"#
        );
        assert_eq!(
            usage_normalised(None, &counts[..1], Decimal::ZERO),
            r#"{"prompt_tokens":9,"cost":0}"#
        );
    }

    #[test]
    fn cost_is_written_as_an_exact_decimal_and_replaces_upstream_cost() {
        let usage = RawValue::from_string(r#"{"prompt_tokens":3,"cost":9.9}"#.into()).unwrap();
        let out = usage_with_cost(Some(&usage), Decimal::from_str("0.00000001").unwrap());
        assert_eq!(out, r#"{"prompt_tokens":3,"cost":0.00000001}"#);
        assert_eq!(usage_with_cost(None, Decimal::ZERO), r#"{"cost":0}"#);
    }
}
