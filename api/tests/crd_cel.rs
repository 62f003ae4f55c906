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
use switchboard_api::{ObjectRef, compile, compile::reason::*, crdgen::crds, parse_manifests};

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
// The table

/// One object (kind + spec, in YAML flow style), the rules it breaks (by message, in schema
/// order) and the reason `compile()` rejects it with (`None`: valid for both).
struct Case {
    name: &'static str,
    kind: &'static str,
    spec: &'static str,
    fails: &'static [&'static str],
    reason: Option<&'static str>,
}

const fn ok(name: &'static str, kind: &'static str, spec: &'static str) -> Case {
    Case {
        name,
        kind,
        spec,
        fails: &[],
        reason: None,
    }
}

const fn bad(
    name: &'static str,
    kind: &'static str,
    spec: &'static str,
    fails: &'static [&'static str],
    reason: &'static str,
) -> Case {
    Case {
        name,
        kind,
        spec,
        fails,
        reason: Some(reason),
    }
}

const BASE_URL: &str = "baseURL is required for type openaiCompatible, azureOpenAI, vertex or \
                        bedrock (they have no default endpoint)";
const CREDENTIALS_REQUIRED: &str = "credentials are required for type openai, anthropic, gemini or azureOpenAI (set secretRef or env)";
const CREDENTIALS_ON_MOCK: &str = "credentials are not allowed with type mock";
const CREDENTIALS_ONE_OF: &str = "credentials must set exactly one of secretRef or env";
const MOCK_ONLY: &str = "mock is only valid with type mock";
const AZURE_ONLY: &str = "azure is only valid with type azureOpenAI";
const BEDROCK: &str =
    "bedrock (with its region) is required for type bedrock and only valid with it";
const VERTEX: &str =
    "vertex (with its location) is required for type vertex and only valid with it";
const NO_MODELS_MSG: &str = "models must list at least one model";
const MODELS_UNIQUE: &str = "models must not list the same name twice";
const CONCURRENCY: &str = "maxConcurrentRequests must be at least 1 (leave it unset for no limit)";

const NO_TARGETS_MSG: &str = "targets must list at least one target";
const TARGETS_UNIQUE: &str = "targets must not list the same provider and model twice";
const WEIGHT: &str = "weight must be at least 1 (remove the target to stop sending it traffic)";
const FALLBACK_SELF: &str = "fallbackModels must not contain this route's own model";
const FALLBACK_UNIQUE: &str = "fallbackModels must not list the same name twice";
const ATTEMPTS: &str = "attempts must be at most 5";

const ALLOWED_GLOB: &str = "allowedModels must not contain an empty glob";
const DENIED_GLOB: &str = "deniedModels must not contain an empty glob";
const RPM: &str = "requestsPerMinute must be at least 1 (leave it unset for no limit)";
const TPM: &str = "tokensPerMinute must be at least 1 (leave it unset for no limit)";
const CONCURRENT: &str = "concurrentRequests must be at least 1 (leave it unset for no limit)";
const SUBJECT_ONE_OF: &str = "a subject must set exactly one of serviceAccount or oidc";
const SUBJECTS_UNIQUE: &str = "subjects must not list the same subject twice";
const SA_NAMESPACE: &str = "serviceAccount.namespace must not be empty";
const SA_NAME: &str = "serviceAccount.name must not be empty";
const ISSUER_URL: &str = "oidc.issuer must be an http(s) URL, as tokens carry it in iss";
const ISSUER_ALONE: &str =
    "oidc must set subject or claims (an issuer alone would admit everyone it issues tokens to)";
const EMPTY_SUBJECT: &str = "oidc.subject must not be empty";

const SOFT_LIMIT: &str = "softLimitPercent must be between 1 and 100";
const SCOPE_GLOB: &str = "scope.models must not contain an empty glob";
const FIT_FLOOR: &str = "fitMaxTokens.minTokens must be at least 1";

const CASES: &[Case] = &[
    // Provider
    ok("mock", "Provider", "{type: mock, models: [{name: a}]}"),
    ok(
        "mock with behaviour",
        "Provider",
        "{type: mock, mock: {reply: hi}, models: [{name: a}]}",
    ),
    ok(
        "openai, Secret credentials, default endpoint",
        "Provider",
        "{type: openai, credentials: {secretRef: {name: creds, key: apiKey}}, \
          models: [{name: a}, {name: b}], maxConcurrentRequests: 1}",
    ),
    ok(
        "anthropic, env credentials",
        "Provider",
        "{type: anthropic, credentials: {env: ANTHROPIC_API_KEY}, models: [{name: a}]}",
    ),
    ok(
        "openaiCompatible without credentials",
        "Provider",
        "{type: openaiCompatible, baseURL: 'http://vllm:8000/v1', models: [{name: a}]}",
    ),
    ok(
        "azureOpenAI with baseURL and credentials",
        "Provider",
        "{type: azureOpenAI, baseURL: 'https://x.openai.azure.com/openai', credentials: {env: AZURE_KEY}, models: [{name: a}]}",
    ),
    ok(
        "azureOpenAI with settings",
        "Provider",
        "{type: azureOpenAI, baseURL: 'https://x.openai.azure.com', credentials: {env: AZURE_KEY}, \
          azure: {apiVersion: '2024-10-21'}, models: [{name: a}]}",
    ),
    ok(
        "bedrock with region",
        "Provider",
        "{type: bedrock, baseURL: 'https://bedrock-runtime.us-east-1.amazonaws.com', \
          bedrock: {region: us-east-1}, models: [{name: a}]}",
    ),
    ok(
        "vertex with location",
        "Provider",
        "{type: vertex, baseURL: 'https://us-central1-aiplatform.googleapis.com/v1', \
          vertex: {project: p, location: us-central1}, models: [{name: a}]}",
    ),
    bad(
        "azure settings on openai",
        "Provider",
        "{type: openai, credentials: {env: KEY}, azure: {}, models: [{name: a}]}",
        &[AZURE_ONLY],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "bedrock without region",
        "Provider",
        "{type: bedrock, baseURL: 'https://bedrock-runtime.us-east-1.amazonaws.com', models: [{name: a}]}",
        &[BEDROCK],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "bedrock settings on mock",
        "Provider",
        "{type: mock, bedrock: {region: us-east-1}, models: [{name: a}]}",
        &[BEDROCK],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "vertex without location",
        "Provider",
        "{type: vertex, baseURL: 'https://us-central1-aiplatform.googleapis.com/v1', models: [{name: a}]}",
        &[VERTEX],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "vertex settings on openaiCompatible",
        "Provider",
        "{type: openaiCompatible, baseURL: 'http://vllm:8000/v1', vertex: {location: us-central1}, \
          models: [{name: a}]}",
        &[VERTEX],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "openaiCompatible without baseURL",
        "Provider",
        "{type: openaiCompatible, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "azureOpenAI without baseURL",
        "Provider",
        "{type: azureOpenAI, credentials: {env: AZURE_KEY}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "vertex without baseURL",
        "Provider",
        "{type: vertex, vertex: {location: us-central1}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "bedrock without baseURL",
        "Provider",
        "{type: bedrock, bedrock: {region: us-east-1}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "openai without credentials",
        "Provider",
        "{type: openai, models: [{name: a}]}",
        &[CREDENTIALS_REQUIRED],
        MISSING_CREDENTIALS,
    ),
    bad(
        "gemini without credentials",
        "Provider",
        "{type: gemini, models: [{name: a}]}",
        &[CREDENTIALS_REQUIRED],
        MISSING_CREDENTIALS,
    ),
    bad(
        "mock with credentials",
        "Provider",
        "{type: mock, credentials: {env: KEY}, models: [{name: a}]}",
        &[CREDENTIALS_ON_MOCK],
        INVALID_CREDENTIALS,
    ),
    bad(
        "credentials with secretRef and env",
        "Provider",
        "{type: openai, credentials: {secretRef: {name: creds, key: apiKey}, env: KEY}, models: [{name: a}]}",
        &[CREDENTIALS_ONE_OF],
        INVALID_CREDENTIALS,
    ),
    bad(
        "credentials empty",
        "Provider",
        "{type: openai, credentials: {}, models: [{name: a}]}",
        &[CREDENTIALS_ONE_OF],
        INVALID_CREDENTIALS,
    ),
    bad(
        "mock behaviour on openai",
        "Provider",
        "{type: openai, credentials: {env: KEY}, mock: {reply: hi}, models: [{name: a}]}",
        &[MOCK_ONLY],
        INVALID_MOCK,
    ),
    bad(
        "no models",
        "Provider",
        "{type: mock, models: []}",
        &[NO_MODELS_MSG],
        NO_MODELS,
    ),
    bad(
        "a model name twice",
        "Provider",
        "{type: mock, models: [{name: a}, {name: b}, {name: a}]}",
        &[MODELS_UNIQUE],
        INVALID_MODELS,
    ),
    bad(
        "maxConcurrentRequests 0",
        "Provider",
        "{type: mock, maxConcurrentRequests: 0, models: [{name: a}]}",
        &[CONCURRENCY],
        INVALID_CONCURRENCY_LIMIT,
    ),
    bad(
        "two problems at once",
        "Provider",
        "{type: openaiCompatible, mock: {}, models: []}",
        &[NO_MODELS_MSG, BASE_URL, MOCK_ONLY],
        MISSING_BASE_URL,
    ),
    // ModelRoute (Provider `ctx` offers m1 and m2)
    ok(
        "one target",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}]}",
    ),
    ok(
        "weights, priorities, fallbacks, retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1, weight: 3}, \
          {provider: ctx, model: m2, weight: 1, priority: 1}], \
          fallbackModels: [case/b, case/c], retries: {attempts: 5}}",
    ),
    ok(
        "no retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], retries: {attempts: 0}}",
    ),
    bad(
        "no targets",
        "ModelRoute",
        "{model: case/a, targets: []}",
        &[NO_TARGETS_MSG],
        NO_TARGETS,
    ),
    bad(
        "a target twice",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}, {provider: ctx, model: m2}, \
          {provider: ctx, model: m1, weight: 2}]}",
        &[TARGETS_UNIQUE],
        INVALID_TARGET,
    ),
    bad(
        "weight 0",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1, weight: 0}]}",
        &[WEIGHT],
        INVALID_TARGET,
    ),
    bad(
        "falls back to itself",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], fallbackModels: [case/b, case/a]}",
        &[FALLBACK_SELF],
        INVALID_FALLBACK,
    ),
    bad(
        "a fallback twice",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], fallbackModels: [case/b, case/b]}",
        &[FALLBACK_UNIQUE],
        INVALID_FALLBACK,
    ),
    bad(
        "six retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], retries: {attempts: 6}}",
        &[ATTEMPTS],
        INVALID_RETRIES,
    ),
    // ApiKey (Secret `creds` holds `key`)
    ok(
        "globs and limits",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, allowedModels: ['openai/*', smart], \
          deniedModels: ['openai/o3*'], \
          rateLimits: {requestsPerMinute: 1, tokensPerMinute: 1, concurrentRequests: 1}}",
    ),
    bad(
        "an empty allowed glob",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, allowedModels: ['openai/*', '']}",
        &[ALLOWED_GLOB],
        INVALID_GLOB,
    ),
    bad(
        "an empty denied glob",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, deniedModels: ['']}",
        &[DENIED_GLOB],
        INVALID_GLOB,
    ),
    bad(
        "requestsPerMinute 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {requestsPerMinute: 0}}",
        &[RPM],
        INVALID_RATE_LIMIT,
    ),
    bad(
        "tokensPerMinute 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {tokensPerMinute: 0}}",
        &[TPM],
        INVALID_RATE_LIMIT,
    ),
    bad(
        "concurrentRequests 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {concurrentRequests: 0}}",
        &[CONCURRENT],
        INVALID_RATE_LIMIT,
    ),
    ok(
        "fitMaxTokens",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, fitMaxTokens: {enabled: true, minTokens: 1}}",
    ),
    bad(
        "fitMaxTokens floor 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, fitMaxTokens: {enabled: true, minTokens: 0}}",
        &[FIT_FLOOR],
        INVALID_FIT,
    ),
    ok(
        "a ServiceAccount subject instead of a key",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}]}",
    ),
    ok(
        "OIDC subjects alongside a key",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, subjects: [\
          {oidc: {issuer: 'https://idp.example', subject: alice}}, \
          {oidc: {issuer: 'https://idp.example', claims: {groups: ml, email_verified: 'true'}}}]}",
    ),
    bad(
        "a subject of neither kind",
        "ApiKey",
        "{subjects: [{}]}",
        &[SUBJECT_ONE_OF],
        INVALID_SUBJECT,
    ),
    bad(
        "a subject of both kinds",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}, \
          oidc: {issuer: 'https://idp.example', subject: alice}}]}",
        &[SUBJECT_ONE_OF],
        INVALID_SUBJECT,
    ),
    bad(
        "the same subject twice",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}, \
          {serviceAccount: {namespace: ml, name: trainer}}]}",
        &[SUBJECTS_UNIQUE],
        INVALID_SUBJECT,
    ),
    bad(
        "a ServiceAccount without a name",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: ''}}]}",
        &[SA_NAME],
        INVALID_SUBJECT,
    ),
    bad(
        "a ServiceAccount without a namespace",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: '', name: trainer}}]}",
        &[SA_NAMESPACE],
        INVALID_SUBJECT,
    ),
    bad(
        "an issuer that is not a URL",
        "ApiKey",
        "{subjects: [{oidc: {issuer: idp.example, subject: alice}}]}",
        &[ISSUER_URL],
        INVALID_SUBJECT,
    ),
    bad(
        "an issuer alone",
        "ApiKey",
        "{subjects: [{oidc: {issuer: 'https://idp.example', claims: {}}}]}",
        &[ISSUER_ALONE],
        INVALID_SUBJECT,
    ),
    bad(
        "an empty OIDC subject",
        "ApiKey",
        "{subjects: [{oidc: {issuer: 'https://idp.example', subject: ''}}]}",
        &[EMPTY_SUBJECT],
        INVALID_SUBJECT,
    ),
    // Budget
    ok(
        "fitMaxTokens with the default floor",
        "Budget",
        "{limitUSD: '10', fitMaxTokens: {enabled: true}}",
    ),
    bad(
        "fitMaxTokens floor 0",
        "Budget",
        "{limitUSD: '10', fitMaxTokens: {enabled: true, minTokens: 0}}",
        &[FIT_FLOOR],
        INVALID_FIT,
    ),
    ok(
        "soft limit 1",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 1}",
    ),
    ok(
        "soft limit 100, model scope",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 100, scope: {models: ['openai/*']}}",
    ),
    bad(
        "soft limit 0",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 0}",
        &[SOFT_LIMIT],
        INVALID_SOFT_LIMIT,
    ),
    bad(
        "soft limit 101",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 101}",
        &[SOFT_LIMIT],
        INVALID_SOFT_LIMIT,
    ),
    bad(
        "an empty scope glob",
        "Budget",
        "{limitUSD: '10', scope: {models: ['']}}",
        &[SCOPE_GLOB],
        INVALID_GLOB,
    ),
];

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
