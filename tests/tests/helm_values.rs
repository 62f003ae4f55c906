//! The Helm chart's values, checked without a cluster: `values.schema.json` accepts the defaults
//! and every `ci/*.yaml` values file (merged over the defaults, as Helm validates them) and rejects
//! a table of bad values with the expected error; docs/install.md documents every value.

use serde_json::Value;
use switchboard_e2e::chart::{chart_dir, ci_values_files, default_values, read, repo, yaml};

/// Helm's coalescing of a user values file over the defaults: maps merge key by key, `null`
/// deletes a key, anything else replaces.
fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                if v.is_null() {
                    base.remove(k);
                } else if let Some(b) = base.get_mut(k).filter(|b| b.is_object() && v.is_object()) {
                    merge(b, v);
                } else {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&read(&chart_dir().join("values.schema.json")))
        .expect("values.schema.json is JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "Helm validates values with draft-07"
    );
    jsonschema::draft7::new(&schema).expect("values.schema.json is a valid draft-07 schema")
}

/// (instance path, message) of every schema error.
fn schema_errors(validator: &jsonschema::Validator, values: &Value) -> Vec<(String, String)> {
    validator
        .iter_errors(values)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// values.schema.json

#[test]
fn the_schema_accepts_the_defaults_and_every_ci_values_file() {
    let validator = validator();
    let defaults = default_values();
    let errors = schema_errors(&validator, &defaults);
    assert!(errors.is_empty(), "values.yaml: {errors:#?}");

    let files = ci_values_files(&chart_dir());
    assert!(
        files.len() >= 4,
        "expected the ci/ values files, found {files:?}"
    );
    for file in files {
        let overlay = yaml(&read(&file), &file.display().to_string());
        let mut values = defaults.clone();
        merge(&mut values, &overlay);
        let errors = schema_errors(&validator, &values);
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

/// (what is wrong, values overlay, instance path of the error, fragment of its message).
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "a misspelt key",
        "router: {replica: 3}",
        "/router",
        "'replica' was unexpected",
    ),
    (
        "an unknown top-level key",
        "routers: {}",
        "",
        "'routers' was unexpected",
    ),
    (
        "zero routers",
        "router: {replicas: 0}",
        "/router/replicas",
        "less than the minimum of 1",
    ),
    (
        "replicas as a string",
        "router: {replicas: \"2\"}",
        "/router/replicas",
        "is not of type \"integer\"",
    ),
    (
        "a console Ingress without a host",
        "console: {ingress: {enabled: true}}",
        "/console/ingress/host",
        "shorter than 1 character",
    ),
    (
        "zero operators",
        "operator: {replicas: 0}",
        "/operator/replicas",
        "less than the minimum of 1",
    ),
    (
        "several routers without Redis",
        "{router: {replicas: 3, autoscaling: {enabled: false}}, redis: {enabled: false}}",
        "/redis",
        "anyOf",
    ),
    (
        "autoscaling without Redis",
        "{router: {replicas: 1, autoscaling: {enabled: true, maxReplicas: 5}}, redis: {enabled: false}}",
        "/redis",
        "anyOf",
    ),
    (
        "the chart's Redis and an external URL at once",
        "redis: {enabled: true, url: \"redis://elsewhere:6379\"}",
        "/redis/url",
        "longer than 0 character",
    ),
    (
        "a Redis URL that is not redis:// or rediss://",
        "redis: {enabled: false, url: \"http://redis:6379\"}",
        "/redis/url",
        "does not match",
    ),
    (
        "an appendfsync Redis does not know",
        "redis: {appendfsync: sometimes}",
        "/redis/appendfsync",
        "is not one of",
    ),
    (
        "a persistence size that is not a quantity",
        "redis: {persistence: {size: lots}}",
        "/redis/persistence/size",
        "does not match",
    ),
    (
        "a pull policy Kubernetes does not know",
        "router: {image: {pullPolicy: Sometimes}}",
        "/router/image/pullPolicy",
        "is not one of",
    ),
    (
        "an image without a repository",
        "operator: {image: {repository: \"\"}}",
        "/operator/image/repository",
        "shorter than 1 character",
    ),
    (
        "a digest that is not sha256",
        "router: {image: {digest: latest}}",
        "/router/image/digest",
        "does not match",
    ),
    (
        "a log format the binaries do not have",
        "router: {logFormat: xml}",
        "/router/logFormat",
        "is not one of",
    ),
    (
        "a duration humantime cannot read",
        "router: {drainTimeout: 30 seconds}",
        "/router/drainTimeout",
        "does not match",
    ),
    (
        "a port out of range",
        "router: {service: {port: 70000}}",
        "/router/service/port",
        "greater than the maximum of 65535",
    ),
    (
        "a Service type that does not exist",
        "router: {service: {type: Ingress}}",
        "/router/service/type",
        "is not one of",
    ),
    (
        "a namespace that is not a DNS label",
        "operator: {watchNamespace: Team_A}",
        "/operator/watchNamespace",
        "does not match",
    ),
    (
        "a Secret name that is not a DNS subdomain",
        "auth: {existingSecret: My Secret}",
        "/auth/existingSecret",
        "does not match",
    ),
    (
        "a feature flag as a string",
        "metrics: {prometheusRule: {enabled: \"yes\"}}",
        "/metrics/prometheusRule/enabled",
        "is not of type \"boolean\"",
    ),
    (
        "an error ratio above 1",
        "metrics: {prometheusRule: {providerErrorRatio: 5}}",
        "/metrics/prometheusRule/providerErrorRatio",
        "greater than the maximum of 1",
    ),
    (
        "a PDB percentage without a number",
        "router: {pdb: {minAvailable: \"%\"}}",
        "/router/pdb/minAvailable",
        "oneOf",
    ),
    (
        "an env entry without a name",
        "router: {env: [{value: x}]}",
        "/router/env/0",
        "\"name\" is a required property",
    ),
    (
        "a probe path that is not absolute",
        "router: {readinessProbe: {httpGet: {path: readyz, port: admin}}}",
        "/router/readinessProbe/httpGet/path",
        "does not match",
    ),
    (
        "topology spread that cannot be satisfied",
        "router: {topologySpread: {whenUnsatisfiable: Never}}",
        "/router/topologySpread/whenUnsatisfiable",
        "is not one of",
    ),
];

#[test]
fn the_schema_rejects_bad_values_with_the_expected_error() {
    let validator = validator();
    let mut failures = Vec::new();
    for (what, overlay, path, fragment) in INVALID {
        let mut values = default_values();
        merge(&mut values, &yaml(overlay, what));
        let errors = schema_errors(&validator, &values);
        let matching = errors
            .iter()
            .any(|(p, m)| p == path && m.contains(fragment));
        let elsewhere: Vec<_> = errors.iter().filter(|(p, _)| p != path).collect();
        if !matching || !elsewhere.is_empty() {
            failures.push(format!(
                "{what} ({overlay}): expected one error at {path:?} containing {fragment:?}, got {errors:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// docs/install.md

/// Dotted paths of every value; Kubernetes objects passed through as written count as one value.
fn value_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    const PASSED_THROUGH: &[&str] = &[
        "resources",
        "livenessProbe",
        "readinessProbe",
        "podSecurityContext",
        "securityContext",
    ];
    let Value::Object(map) = value else { return };
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() && !PASSED_THROUGH.contains(&k.as_str()) => {
                value_paths(v, &path, out)
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn install_md_documents_every_value() {
    let doc = read(&repo().join("docs/install.md"));
    let mut paths = Vec::new();
    value_paths(&default_values(), "", &mut paths);
    assert!(paths.len() > 100, "{paths:?}");
    let missing: Vec<_> = paths
        .iter()
        .filter(|p| !doc.contains(&format!("| `{p}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/install.md has no table row for {missing:?}"
    );
}
