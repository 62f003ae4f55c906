//! Editing a JSON object without re-serialising what we do not touch: every field we pass on
//! keeps the upstream's exact bytes. Pure.

use std::fmt;

use rust_decimal::Decimal;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{MapAccess, Visitor},
    ser::SerializeMap,
};
use serde_json::value::RawValue;

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

    #[test]
    fn cost_is_written_as_an_exact_decimal_and_replaces_upstream_cost() {
        let usage = RawValue::from_string(r#"{"prompt_tokens":3,"cost":9.9}"#.into()).unwrap();
        let out = usage_with_cost(Some(&usage), Decimal::from_str("0.00000001").unwrap());
        assert_eq!(out, r#"{"prompt_tokens":3,"cost":0.00000001}"#);
        assert_eq!(usage_with_cost(None, Decimal::ZERO), r#"{"cost":0}"#);
    }
}
