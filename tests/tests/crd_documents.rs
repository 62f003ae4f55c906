//! Every custom resource a user may copy — each object in `examples/*.yaml` and in every `yaml`
//! code block of `docs/*.md` and the README — is what the API server would accept: valid against
//! the generated CRD schema of its kind with unknown fields rejected (as `kubectl apply`'s strict
//! field validation does), and passing the CRD's CEL rules (kube-cel, as in
//! `api/tests/crd_cel.rs`, where a table test shows `compile()` agrees with the same rules).
//! (`examples.rs` checks that the examples also compile Ready.)

use std::{collections::BTreeMap, fs, path::Path};

use serde_json::Value;
use switchboard_api::crdgen::crds;
use switchboard_e2e::{chart::repo, crd_schema::strict_json_schema};

/// The `openAPIV3Schema` of each kind, by kind.
fn schemas() -> BTreeMap<String, Value> {
    crds()
        .into_iter()
        .map(|crd| {
            let v = serde_json::to_value(&crd).unwrap();
            let schema = v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
            (crd.spec.names.kind, schema)
        })
        .collect()
}

/// The text of every ```yaml block of a Markdown file, with its first line number.
fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => {
                current = Some((i + 2, String::new()))
            }
            Some(_) if line.trim_start().starts_with("```") => out.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

/// (where, object) of every Switchboard object in `text`; a document that does not parse is an
/// error only when it names a Switchboard apiVersion.
fn switchboard_objects(
    text: &str,
    place: &str,
    problems: &mut Vec<String>,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match <Value as serde::Deserialize>::deserialize(doc) {
            Ok(v)
                if v["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("switchboard.dev/")) =>
            {
                out.push((format!("{place}, document {}", i + 1), v));
            }
            Ok(_) => {}
            Err(e) if text.contains("apiVersion: switchboard.dev/") => {
                problems.push(format!("{place}: not YAML: {e}"));
            }
            Err(_) => {}
        }
    }
    out
}

#[test]
fn every_example_and_documented_resource_is_valid_for_the_crds() {
    let repo = repo();
    let schemas = schemas();
    let validators: BTreeMap<&String, jsonschema::Validator> = schemas
        .iter()
        .map(|(kind, s)| {
            (
                kind,
                jsonschema::draft202012::new(&strict_json_schema(s)).unwrap(),
            )
        })
        .collect();
    let mut problems = Vec::new();
    let mut objects = Vec::new();

    let mut examples: Vec<_> = fs::read_dir(repo.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    for path in &examples {
        let place = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        objects.extend(switchboard_objects(
            &fs::read_to_string(path).unwrap(),
            &place,
            &mut problems,
        ));
    }
    let from_examples = objects.len();

    let mut markdown: Vec<_> = fs::read_dir(repo.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    markdown.sort();
    markdown.push(repo.join("README.md"));
    for path in &markdown {
        let name = path
            .strip_prefix(&repo)
            .unwrap_or(Path::new("?"))
            .display()
            .to_string();
        for (line, block) in yaml_blocks(&fs::read_to_string(path).unwrap()) {
            objects.extend(switchboard_objects(
                &block,
                &format!("{name}:{line}"),
                &mut problems,
            ));
        }
    }
    let from_docs = objects.len() - from_examples;

    for (place, object) in &objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(validator) = validators.get(&kind.to_string()) else {
            problems.push(format!("{place}: no CRD for kind {kind:?}"));
            continue;
        };
        for e in validator.iter_errors(object) {
            problems.push(format!(
                "{place}: {kind} {}: {} at {}",
                object["metadata"]["name"],
                e,
                e.instance_path()
            ));
        }
        if let Err(errors) = kube_cel::Validator::new().validate(&schemas[kind], object, None) {
            for e in errors.into_vec() {
                problems.push(format!(
                    "{place}: {kind} {}: CEL: {}",
                    object["metadata"]["name"], e.message
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        from_examples >= 30,
        "Switchboard objects in examples/: {from_examples}"
    );
    assert!(
        from_docs >= 5,
        "Switchboard objects in the docs: {from_docs}"
    );
    eprintln!(
        "{from_examples} objects from examples/ and {from_docs} from the docs are valid for the CRDs"
    );
}

#[test]
fn the_strict_schemas_reject_what_the_api_server_would() {
    let schemas = schemas();
    let validator = jsonschema::draft202012::new(&strict_json_schema(&schemas["ApiKey"])).unwrap();
    let key = |spec: &str| -> Value {
        serde_yaml::from_str(&format!(
            "apiVersion: switchboard.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: k}}\nspec: {spec}\n"
        ))
        .unwrap()
    };
    assert!(validator.is_valid(&key("{team: ml, allowedModels: [\"openai/*\"]}")));
    for bad in [
        "{teem: ml}",
        "{team: 5}",
        "{allowedModels: openai}",
        "{rateLimits: {requestsPerMinit: 5}}",
        "{secretRef: {name: s, key: k, extra: 1}}",
    ] {
        assert!(!validator.is_valid(&key(bad)), "accepted {bad}");
    }
}
