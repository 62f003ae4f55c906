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
    normalised_borrowed(usage, counts, cost)
        .unwrap_or_else(|| normalised_owned(usage, counts, cost))
}

/// A field's value while [`normalised_borrowed`] edits: the upstream's bytes or a new value.
enum Edited<'a> {
    Raw(&'a str),
    New(String),
}

impl Edited<'_> {
    fn get(&self) -> &str {
        match self {
            Edited::Raw(s) => s,
            Edited::New(s) => s,
        }
    }
}

/// An object's fields borrowed from its JSON (keys without escapes, which is every key an
/// upstream writes in `usage`); `None` for a value that is not such an object.
fn borrowed_fields(json: &str) -> Option<Vec<(&str, Edited<'_>)>> {
    struct Fields<'a>(Vec<(&'a str, Edited<'a>)>);
    impl<'de> Deserialize<'de> for Fields<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields<'de>, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Fields<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                    let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                    while let Some((k, v)) = map.next_entry::<&'de str, &'de RawValue>()? {
                        fields.push((k, Edited::Raw(v.get())));
                    }
                    Ok(Fields(fields))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Fields<'_>>(json).ok().map(|f| f.0)
}

/// Sets `key` to `value` in `fields`: the first field of that name in place, else appended.
fn set_field<'a>(fields: &mut Vec<(&'a str, Edited<'a>)>, key: &'a str, value: String) {
    match fields.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = Edited::New(value),
        None => fields.push((key, Edited::New(value))),
    }
}

/// Compact JSON of `fields` (keys are escape-free: borrowed unescaped, or our own names), with
/// `last` appended when given.
fn write_fields(fields: &[(&str, Edited<'_>)], last: Option<(&str, &str)>) -> String {
    let size: usize = fields
        .iter()
        .map(|(k, v)| k.len() + v.get().len() + 4)
        .sum();
    let mut out = String::with_capacity(size + 32);
    out.push('{');
    for (k, v) in fields.iter().map(|(k, v)| (*k, v.get())).chain(last) {
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(v);
    }
    out.push('}');
    out
}

/// [`usage_normalised`] on borrowed fields: the same result without copying or re-serialising
/// the upstream's values. `None` when a key has escapes (or a details object cannot be read
/// borrowed), for [`normalised_owned`] to handle.
fn normalised_borrowed(
    usage: Option<&RawValue>,
    counts: &[UsageCount<'_>],
    cost: Decimal,
) -> Option<String> {
    // Anything but an object counts as no usage, as `RawObject::parse` has it.
    let mut obj = match usage.map(RawValue::get) {
        Some(u) if u.trim_start().starts_with('{') => borrowed_fields(u)?,
        _ => Vec::new(),
    };
    let absent = |v: Option<&str>| v.is_none_or(|v| v == "null");
    for &(key, sub, n) in counts {
        let current = obj.iter().find(|(k, _)| *k == key).map(|(_, v)| v.get());
        match sub {
            None if absent(current) => set_field(&mut obj, key, n.to_string()),
            None => {}
            Some(sub) => {
                let held = current.map(str::to_string);
                let mut details = match held.as_deref() {
                    Some(d) if d.trim_start().starts_with('{') => borrowed_fields(d)?,
                    _ => Vec::new(),
                };
                let present = details
                    .iter()
                    .find(|(k, _)| *k == sub)
                    .map(|(_, v)| v.get());
                if absent(present) {
                    set_field(&mut details, sub, n.to_string());
                    let json = write_fields(&details, None);
                    set_field(&mut obj, key, json);
                }
            }
        }
    }
    obj.retain(|(k, _)| *k != "cost");
    Some(write_fields(
        &obj,
        Some(("cost", &cost.normalize().to_string())),
    ))
}

/// [`usage_normalised`] through an owned [`RawObject`]: keys with escapes are unescaped and
/// written again.
fn normalised_owned(usage: Option<&RawValue>, counts: &[UsageCount<'_>], cost: Decimal) -> String {
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
    fn normalised_usage_is_the_same_borrowed_or_owned() {
        let counts = [
            ("prompt_tokens", None, 9),
            ("completion_tokens", None, 2),
            ("total_tokens", None, 11),
            ("prompt_tokens_details", Some("cached_tokens"), 1),
            ("prompt_tokens_details", Some("cache_write_tokens"), 0),
            ("completion_tokens_details", Some("reasoning_tokens"), 0),
        ];
        let cost = Decimal::from_str("0.0000423").unwrap();
        for usage in [
            r#"{"prompt_tokens":250,"completion_tokens":8,"total_tokens":258}"#,
            r#"{ "prompt_tokens" : 3, "cost": 9.9, "total_tokens": null, "cost": 1 }"#,
            r#"{"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null,"x":[1, 2]}}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":4,"cached_tokens":5},"prompt_tokens_details":{}}"#,
            r#"{"prompt_tokens_details":7,"completion_tokens":1.50}"#,
            r#"{"pr\u006fmpt_tokens":1,"completion_tokens_details":{"reas\u006fning_tokens":3}}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#"null"#,
            r#"12"#,
        ] {
            let raw = RawValue::from_string(usage.into()).unwrap();
            assert_eq!(
                usage_normalised(Some(&raw), &counts, cost),
                normalised_owned(Some(&raw), &counts, cost),
                "{usage}"
            );
        }
        assert_eq!(
            normalised_borrowed(None, &counts, cost).unwrap(),
            normalised_owned(None, &counts, cost)
        );
        let raw = RawValue::from_string(r#"{"prompt_tokens":250}"#.into()).unwrap();
        assert!(normalised_borrowed(Some(&raw), &counts, cost).is_some());
    }

    #[test]
    fn cost_is_written_as_an_exact_decimal_and_replaces_upstream_cost() {
        let usage = RawValue::from_string(r#"{"prompt_tokens":3,"cost":9.9}"#.into()).unwrap();
        let out = usage_with_cost(Some(&usage), Decimal::from_str("0.00000001").unwrap());
        assert_eq!(out, r#"{"prompt_tokens":3,"cost":0.00000001}"#);
        assert_eq!(usage_with_cost(None, Decimal::ZERO), r#"{"cost":0}"#);
    }
}
