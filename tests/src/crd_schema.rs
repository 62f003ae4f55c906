//! A CustomResourceDefinition's structural schema as the API server uses it: [`prune`] drops the
//! fields a CRD version does not declare (what happens to an object written under an older CRD),
//! and [`strict_json_schema`] turns the schema into a JSON Schema that rejects them, as
//! `kubectl apply`'s default strict field validation does. CEL rules are left to `kube-cel`.

use serde_json::{Map, Value, json};

/// The `openAPIV3Schema` of `version` in a CRD object, if it serves that version.
pub fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)?
        .get("schema")?
        .get("openAPIV3Schema")
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Removes from `object` (a whole custom resource) every field `schema` does not declare;
/// `apiVersion`, `kind` and `metadata` always stay.
pub fn prune(schema: &Value, object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for (key, value) in map.iter_mut() {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
            && let Some(s) = schema["properties"].get(key)
        {
            prune_value(s, value);
        }
    }
    if !preserves_unknown(schema) {
        map.retain(|k, _| {
            matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                || schema["properties"].get(k).is_some()
        });
    }
}

fn prune_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                if !preserves_unknown(schema) {
                    map.retain(|k, _| props.contains_key(k));
                }
                for (k, v) in map.iter_mut() {
                    if let Some(s) = props.get(k) {
                        prune_value(s, v);
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for v in map.values_mut() {
                    prune_value(s, v);
                }
            } else if !preserves_unknown(schema) && schema["type"] == "object" {
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    prune_value(s, v);
                }
            }
        }
        _ => {}
    }
}

/// A JSON Schema (2020-12) for whole objects of this CRD version: the structural schema with
/// unknown fields forbidden where the CRD does not preserve them, `nullable` and
/// `x-kubernetes-int-or-string` spelled out, CEL rules removed, and `apiVersion`, `kind` and
/// `metadata` (with a name) declared as the API server adds them.
pub fn strict_json_schema(schema: &Value) -> Value {
    let mut out = convert(schema);
    if let Some(props) = out["properties"].as_object_mut() {
        props.insert("apiVersion".into(), json!({"type": "string"}));
        props.insert("kind".into(), json!({"type": "string"}));
        props.insert(
            "metadata".into(),
            json!({"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string", "minLength": 1}}}),
        );
    }
    out["required"] = json!(["apiVersion", "kind", "metadata"]);
    out
}

fn convert(schema: &Value) -> Value {
    let Some(node) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in node {
        match k.as_str() {
            "x-kubernetes-validations" | "nullable" | "x-kubernetes-int-or-string" => {}
            "properties" => {
                let props = v
                    .as_object()
                    .map(|p| p.iter().map(|(n, s)| (n.clone(), convert(s))).collect())
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(k.clone(), convert(v));
            }
            "allOf" | "anyOf" | "oneOf" => {
                let list = v.as_array().into_iter().flatten().map(convert).collect();
                out.insert(k.clone(), Value::Array(list));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if node.contains_key("properties")
        && !preserves_unknown(schema)
        && !node.contains_key("additionalProperties")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if schema["x-kubernetes-int-or-string"] == true {
        out.remove("type");
        out.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if schema["nullable"] == true {
        let inner = Value::Object(out);
        return json!({"anyOf": [{"type": "null"}, inner]});
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["model"],
                    "properties": {
                        "model": {"type": "string"},
                        "limits": {"type": "object", "additionalProperties": {
                            "type": "object", "properties": {"max": {"type": "integer"}}}},
                        "targets": {"type": "array", "items": {
                            "type": "object", "properties": {"provider": {"type": "string"}}}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true},
                        "note": {"type": "string", "nullable": true}
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prune_drops_undeclared_fields_at_every_depth() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"l": "v"}},
            "spec": {"model": "m", "cache": {"ttl": 5},
                     "limits": {"a": {"max": 1, "min": 0}},
                     "targets": [{"provider": "p", "weight": 2}],
                     "extra": {"anything": {"goes": true}}},
            "status": {"ready": true, "phase": "x"},
            "unknownTop": 1
        });
        prune(&schema(), &mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"l": "v"}},
                "spec": {"model": "m", "limits": {"a": {"max": 1}},
                         "targets": [{"provider": "p"}],
                         "extra": {"anything": {"goes": true}}},
                "status": {"ready": true}
            })
        );
    }

    #[test]
    fn the_strict_schema_rejects_unknown_fields_and_wrong_types() {
        let validator =
            jsonschema::draft202012::new(&strict_json_schema(&schema())).expect("valid schema");
        let ok = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"},
                        "spec": {"model": "m", "port": 80, "note": null,
                                 "extra": {"free": 1}, "limits": {"a": {"max": 2}}}});
        assert!(
            validator.is_valid(&ok),
            "{:?}",
            validator
                .iter_errors(&ok)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        for bad in [
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"model": "m", "cache": {}}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"model": 5}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"model": "m", "port": true}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"model": "m", "limits": {"a": {"maxx": 1}}}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {}, "spec": {"model": "m"}}),
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"model": "m"}, "extra": 1}),
        ] {
            assert!(!validator.is_valid(&bad), "accepted {bad}");
        }
    }
}
