//! Table tests for the CEL rules (`x-kubernetes-validations`) of the generated CRDs.
//!
//! The rules are read from `crdgen::crds()` — the same CRDs `make gen` writes to `crds/` — and
//! evaluated with kube-cel, the client-side port of the apiserver's CRD validation, so these tests
//! see what `kubectl apply` would. Every case names exactly the rules it breaks (by message), and
//! every rule has at least one case that breaks it.
//!
//! `compile()` stays the source of truth: each case also goes through it, and must be rejected with
//! the listed reason exactly when the CEL rules reject it, so the two cannot drift apart.

use std::{collections::BTreeMap, fs, path::Path};

use kube_cel::{Validator, cel::Program, compile_schema, estimate_rule_cost};
use serde_json::Value;
use switchboard_api::{ObjectRef, compile, crdgen::crds, parse_manifests};

// ---------------------------------------------------------------------------------------------
// The rules, as generated

/// One `x-kubernetes-validations` entry of a CRD, with where it sits.
#[derive(Debug)]
struct CrdRule {
    kind: String,
    /// Path of the schema node the rule is attached to, e.g. `spec.models`.
    path: String,
    rule: String,
    message: String,
    /// The schema node, for cost analysis.
    node: Value,
}

/// The `openAPIV3Schema` of each kind's (only) version.
fn schemas() -> BTreeMap<String, Value> {
    crds()
        .into_iter()
        .map(|crd| {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("derived CRDs have a schema");
            (
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).expect("schemas serialize"),
            )
        })
        .collect()
}

fn rules() -> Vec<CrdRule> {
    fn walk(kind: &str, path: &str, node: &Value, out: &mut Vec<CrdRule>) {
        for r in node["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push(CrdRule {
                kind: kind.into(),
                path: path.into(),
                rule: r["rule"].as_str().expect("rule is a string").into(),
                message: r["message"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{kind} {path}: rule {} has no message", r["rule"]))
                    .into(),
                node: node.clone(),
            });
        }
        for (name, child) in node["properties"].as_object().into_iter().flatten() {
            let path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            walk(kind, &path, child, out);
        }
        if node["items"].is_object() {
            walk(kind, &format!("{path}[]"), &node["items"], out);
        }
        if node["additionalProperties"].is_object() {
            walk(
                kind,
                &format!("{path}{{}}"),
                &node["additionalProperties"],
                out,
            );
        }
    }
    let mut out = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, "", &schema, &mut out);
    }
    out
}

#[test]
fn every_rule_parses_and_stays_within_the_cost_budget() {
    let rules = rules();
    assert!(
        rules.len() >= 20,
        "expected the CEL rules in the CRDs, found {rules:#?}"
    );
    let mut problems = Vec::new();
    for r in &rules {
        if let Err(e) = Program::compile(&r.rule) {
            problems.push(format!(
                "{} {}: {:?} does not parse: {e}",
                r.kind, r.path, r.rule
            ));
            continue;
        }
        // kube-cel's estimate is coarser than the apiserver's, but flags the usual mistake: a
        // comprehension over a list or string without maxItems/maxLength. (Its scope check is not
        // used: it mistakes comprehension variables for unknown globals.)
        let compiled = compile_schema(&r.node);
        for w in estimate_rule_cost(&r.rule, &compiled) {
            problems.push(format!(
                "{} {}: {:?}: {}",
                r.kind, r.path, r.rule, w.message
            ));
        }
    }
    for (kind, schema) in schemas() {
        for e in compile_schema(&schema).compilation_errors() {
            problems.push(format!("{kind}: {e}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_message_belongs_to_one_rule_of_its_kind() {
    let rules = rules();
    for r in &rules {
        let same: Vec<_> = rules
            .iter()
            .filter(|o| o.kind == r.kind && o.message == r.message)
            .collect();
        assert_eq!(
            same.len(),
            1,
            "{} message {:?} is not unique: {same:#?}",
            r.kind,
            r.message
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The table (cases.rs)

#[path = "crd_cel/cases.rs"]
mod cases;

use cases::{CASES, Case};

/// What the cases refer to: a Secret with an upstream key and a client key, and a Provider `ctx`
/// offering `m1` and `m2`.
const CONTEXT: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: default}
stringData: {apiKey: sk-upstream-0123456789, key: sk-sb-client-0123456789}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: ctx, namespace: default}
spec: {type: mock, models: [{name: m1}, {name: m2}]}
"#;

fn case_yaml(c: &Case) -> String {
    format!(
        "apiVersion: switchboard.dev/v1alpha1\nkind: {}\nmetadata: {{name: case, namespace: default}}\nspec: {}\n",
        c.kind, c.spec
    )
}

/// The messages of the rules `object` breaks, in the order the validator reports them.
fn cel_failures(schemas: &BTreeMap<String, Value>, kind: &str, object: &Value) -> Vec<String> {
    match Validator::new().validate(&schemas[kind], object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn cel_rules_reject_exactly_the_broken_cases() {
    let schemas = schemas();
    let mut problems = Vec::new();
    for c in CASES {
        let object: Value = serde_yaml::from_str(&case_yaml(c))
            .unwrap_or_else(|e| panic!("case {:?}: bad YAML: {e}", c.name));
        let mut got = cel_failures(&schemas, c.kind, &object);
        let mut want: Vec<String> = c.fails.iter().map(|m| m.to_string()).collect();
        got.sort();
        want.sort();
        if got != want {
            problems.push(format!(
                "{} {:?}: CEL rejected with {got:?}, expected {want:?}",
                c.kind, c.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn compile_rejects_what_cel_rejects_and_accepts_what_it_accepts() {
    let mut problems = Vec::new();
    for c in CASES {
        let yaml = format!("{CONTEXT}---\n{}", case_yaml(c));
        let objects = parse_manifests(&yaml, "default")
            .unwrap_or_else(|e| panic!("case {:?}: {e}", c.name))
            .objects;
        let compiled = compile(&objects);
        let r = ObjectRef {
            kind: c.kind,
            namespace: "default".into(),
            name: "case".into(),
        };
        let outcome = &compiled.results[&r].outcome;
        let ctx = ObjectRef {
            kind: "Provider",
            namespace: "default".into(),
            name: "ctx".into(),
        };
        assert!(
            compiled.results[&ctx].outcome.is_ready(),
            "the context Provider compiles"
        );
        match c.reason {
            None if !outcome.is_ready() => problems.push(format!(
                "{} {:?}: CEL accepts it but compile rejects it: {} {}",
                c.kind,
                c.name,
                outcome.reason(),
                outcome.message()
            )),
            Some(_) if outcome.is_ready() => problems.push(format!(
                "{} {:?}: CEL rejects it ({:?}) but compile accepts it",
                c.kind, c.name, c.fails
            )),
            Some(reason) if outcome.reason() != reason => problems.push(format!(
                "{} {:?}: compile rejects it with {} ({}), expected {reason}",
                c.kind,
                c.name,
                outcome.reason(),
                outcome.message()
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_has_a_case_that_breaks_it() {
    let untested: Vec<_> = rules()
        .into_iter()
        .filter(|r| {
            !CASES
                .iter()
                .any(|c| c.kind == r.kind && c.fails.contains(&r.message.as_str()))
        })
        .map(|r| format!("{} {}: {:?} ({})", r.kind, r.path, r.message, r.rule))
        .collect();
    assert!(
        untested.is_empty(),
        "rules without a failing case:\n{}",
        untested.join("\n")
    );
}

#[test]
fn the_examples_pass_the_cel_rules() {
    let schemas = schemas();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = fs::read_to_string(&path).expect("readable example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object: Value = serde::Deserialize::deserialize(doc).expect("example is YAML");
            let Some(kind) = object["kind"].as_str().filter(|k| schemas.contains_key(*k)) else {
                continue;
            };
            let failures = cel_failures(&schemas, kind, &object);
            assert!(
                failures.is_empty(),
                "{}: {kind} {}: {failures:?}",
                path.display(),
                object["metadata"]["name"]
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected Switchboard objects in examples/, found {checked}"
    );
}
