//! The Helm chart (`charts/switchboard`), checked without a cluster.
//!
//! - `values.schema.json` accepts the defaults and every `ci/*.yaml` values file (merged over the
//!   defaults, as Helm validates them) and rejects a table of bad values with the expected error;
//! - every file of the chart that is not a template parses (YAML or JSON), and `crds/` is the
//!   generated CRDs byte for byte;
//! - what the project's own sources decide is what the chart says: the operator's RBAC rules are
//!   exactly the API calls in `operator/src`, probes hit routes the binaries serve, ports and
//!   flags are the binaries' own, alerts and the dashboard name metrics that exist, the
//!   Dockerfiles run the binaries as the user the chart expects;
//! - with the `helm` `make test` provides (`SWITCHBOARD_TEST_HELM`, else PATH): `helm lint --strict`
//!   and `helm template` with the default and every ci values file, every rendered document parses,
//!   and the rendered RBAC, probes and ports are checked again. Without helm that test prints
//!   SKIPPED and passes, except under CI, where it fails. (`helm_render.rs` validates every
//!   rendering against the Kubernetes schemas.)

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use switchboard_e2e::chart::{Helm, chart_dir, ci_values_files, repo, yaml_documents};

fn chart() -> PathBuf {
    chart_dir()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One YAML document as JSON.
fn yaml(text: &str, what: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn default_values() -> Value {
    yaml(&read(&chart().join("values.yaml")), "values.yaml")
}

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
    let schema: Value = serde_json::from_str(&read(&chart().join("values.schema.json")))
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

    let files = ci_values_files(&chart());
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
// Files of the chart

/// Every file under `dir`, recursively, except under `skip`.
fn files_under(dir: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("readable entry").path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            out.extend(files_under(&path, skip));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_of_the_chart_that_is_not_a_template_parses() {
    let chart = chart();
    let mut parsed = Vec::new();
    for path in files_under(&chart, &chart.join("templates")) {
        let name = path
            .strip_prefix(&chart)
            .expect("inside the chart")
            .display()
            .to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                let docs = yaml_documents(&read(&path), &name);
                assert!(!docs.is_empty(), "{name} holds no YAML document");
                parsed.push(name);
            }
            Some("json") => {
                serde_json::from_str::<Value>(&read(&path))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                parsed.push(name);
            }
            _ => {}
        }
    }
    for expected in [
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "files/operator-rbac.yaml",
        "files/dashboard.json",
    ] {
        assert!(
            parsed.iter().any(|p| p == expected),
            "{expected} missing from {parsed:?}"
        );
    }

    let meta = yaml(&read(&chart.join("Chart.yaml")), "Chart.yaml");
    assert_eq!(meta["apiVersion"], "v2", "a Helm 3 chart");
    assert_eq!(meta["name"], "switchboard");
    assert_eq!(meta["type"], "application");
    let workspace = read(&repo().join("Cargo.toml"));
    let version = workspace
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("version = ")))
        .expect("workspace version")
        .trim_matches('"');
    assert_eq!(
        meta["appVersion"], version,
        "the chart's appVersion (the default image tag) is the workspace version"
    );
}

#[test]
fn the_chart_crds_are_the_generated_crds() {
    let names = |dir: &Path| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let generated = repo().join("crds");
    let packaged = chart().join("crds");
    assert_eq!(
        names(&generated),
        names(&packaged),
        "charts/switchboard/crds/ differs from crds/: run `make chart-crds`"
    );
    for name in names(&generated) {
        assert!(
            read(&generated.join(&name)) == read(&packaged.join(&name)),
            "charts/switchboard/crds/{name} differs from crds/{name}: run `make chart-crds`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC: exactly the operator's API calls

/// Where a rule applies: `watched` (a ClusterRole, or a Role in `operator.watchNamespace`),
/// `release` (a Role in the release namespace, for the snapshot Secret and the Lease) or `crds`
/// (a ClusterRole over the four CRDs, only with `operator.applyCRDs`).
type Grant = (&'static str, &'static str, &'static str, &'static str, bool);

/// (scope, apiGroup, resource, verb, restricted to the named object), derived from the calls in
/// operator/src listed in `EVIDENCE`.
const EXPECTED_GRANTS: &[Grant] = &[
    // controller.rs: reflectors (watcher = list + watch) over the four kinds and Secrets.
    ("watched", "switchboard.dev", "providers", "list", false),
    ("watched", "switchboard.dev", "providers", "watch", false),
    ("watched", "switchboard.dev", "modelroutes", "list", false),
    ("watched", "switchboard.dev", "modelroutes", "watch", false),
    ("watched", "switchboard.dev", "apikeys", "list", false),
    ("watched", "switchboard.dev", "apikeys", "watch", false),
    ("watched", "switchboard.dev", "budgets", "list", false),
    ("watched", "switchboard.dev", "budgets", "watch", false),
    ("watched", "", "secrets", "list", false),
    ("watched", "", "secrets", "watch", false),
    // writer.rs: patch_status (merge patch of the status subresource).
    (
        "watched",
        "switchboard.dev",
        "providers/status",
        "patch",
        false,
    ),
    (
        "watched",
        "switchboard.dev",
        "modelroutes/status",
        "patch",
        false,
    ),
    (
        "watched",
        "switchboard.dev",
        "apikeys/status",
        "patch",
        false,
    ),
    (
        "watched",
        "switchboard.dev",
        "budgets/status",
        "patch",
        false,
    ),
    // writer.rs: create_key_secret.
    ("watched", "", "secrets", "create", false),
    // writer.rs: Recorder::publish creates an Event, or patches it to count a repeat.
    ("watched", "events.k8s.io", "events", "create", false),
    ("watched", "events.k8s.io", "events", "patch", false),
    // controller.rs read_snapshot_secret (get_opt), watch_snapshot_secret (watcher with a
    // metadata.name field selector, which resourceNames authorise); store.rs through writer.rs
    // write_secret / write_manifest (merge patch, else create) of the manifest and its shards.
    ("release", "", "secrets", "get", true),
    ("release", "", "secrets", "list", true),
    ("release", "", "secrets", "watch", true),
    ("release", "", "secrets", "patch", true),
    ("release", "", "secrets", "create", false),
    // leader.rs: get_opt, create, replace (compare-and-swap renew and release).
    ("release", "coordination.k8s.io", "leases", "get", true),
    ("release", "coordination.k8s.io", "leases", "update", true),
    ("release", "coordination.k8s.io", "leases", "create", false),
    // crds.rs (with `operator.applyCRDs`): get_opt, then a server-side apply patch, which the API
    // server authorises as create when the CRD does not exist yet.
    (
        "crds",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "get",
        true,
    ),
    (
        "crds",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "create",
        true,
    ),
    (
        "crds",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "patch",
        true,
    ),
];

/// The calls behind `EXPECTED_GRANTS`: (file in operator/src, text that must be there).
const EVIDENCE: &[(&str, &str)] = &[
    ("watches.rs", "watcher(api, watcher::Config::default())"),
    ("controller.rs", "get_opt(name)"),
    ("controller.rs", "metadata.name={name}"),
    ("writer.rs", "patch_status("),
    ("writer.rs", "api.create(&params, &secret)"),
    ("writer.rs", "api.create(&params, secret)"),
    (
        "writer.rs",
        "api.patch(name, &params, &Patch::Merge(patch))",
    ),
    ("writer.rs", "recorder.publish("),
    ("leader.rs", "get_opt(&s.name)"),
    ("leader.rs", ".create(&PostParams::default(), &lease)"),
    (
        "leader.rs",
        ".replace(&s.name, &PostParams::default(), &lease)",
    ),
    ("crds.rs", ".get_opt(&name)"),
    ("crds.rs", ".patch(&name, &params, &Patch::Apply(&crd))"),
];

/// Calls that would need a verb the chart does not grant.
const NOT_GRANTED: &[&str] = &[
    ".delete(",
    ".delete_collection(",
    ".replace_status(",
    ".patch_metadata(",
    ".patch_scale(",
    ".replace_scale(",
    ".create_subresource(",
    ".patch_subresource(",
    ".evict(",
];

/// The operator's own (non-test) sources.
fn operator_sources() -> Vec<(String, String)> {
    let dir = repo().join("operator/src");
    files_under(&dir, &dir.join("bin"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.ends_with("_tests.rs") && name != "fixtures.rs"
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect()
}

/// Expands RBAC rules into (apiGroup, resource, verb, named) grants.
fn grants(rules: &Value, what: &str) -> BTreeSet<(String, String, String, bool)> {
    let list = |rule: &Value, key: &str| -> Vec<String> {
        rule[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().expect("RBAC lists hold strings").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in rules
        .as_array()
        .unwrap_or_else(|| panic!("{what}: a list of rules"))
    {
        let named = !list(rule, "resourceNames").is_empty();
        for group in list(rule, "apiGroups") {
            for resource in list(rule, "resources") {
                for verb in list(rule, "verbs") {
                    assert!(verb != "*", "{what}: a wildcard verb");
                    out.insert((group.clone(), resource.clone(), verb, named));
                }
            }
        }
    }
    out
}

fn expected_grants(scope: &str) -> BTreeSet<(String, String, String, bool)> {
    EXPECTED_GRANTS
        .iter()
        .filter(|g| g.0 == scope)
        .map(|&(_, group, resource, verb, named)| {
            (
                group.to_string(),
                resource.to_string(),
                verb.to_string(),
                named,
            )
        })
        .collect()
}

#[test]
fn operator_rbac_grants_exactly_the_calls_the_operator_makes() {
    let sources = operator_sources();
    let source = |file: &str| -> &str {
        sources
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("operator/src/{file} not found"))
    };
    for (file, call) in EVIDENCE {
        assert!(
            source(file).contains(call),
            "operator/src/{file} no longer contains `{call}`: the API calls changed, so update \
             EXPECTED_GRANTS here and charts/switchboard/files/operator-rbac.yaml together"
        );
    }
    for (file, text) in &sources {
        for call in NOT_GRANTED {
            assert!(
                !text.contains(call),
                "operator/src/{file} calls `{call}`, which the chart's RBAC does not grant"
            );
        }
        // Every typed Api the operator builds is over a kind the rules cover.
        for (i, _) in text.match_indices("Api<") {
            let kind: String = text[i + 4..]
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            assert!(
                ["K", "Secret", "Lease", "CustomResourceDefinition"].contains(&kind.as_str()),
                "operator/src/{file}: Api<{kind}> is not covered by the chart's RBAC"
            );
        }
    }

    let rules = yaml(
        &read(&chart().join("files/operator-rbac.yaml")),
        "files/operator-rbac.yaml",
    );
    for scope in ["watched", "release", "crds"] {
        let granted = grants(&rules[scope], scope);
        let expected = expected_grants(scope);
        assert_eq!(
            granted,
            expected,
            "files/operator-rbac.yaml `{scope}`: granted but not used {:?}; used but not granted {:?}",
            granted.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&granted).collect::<Vec<_>>()
        );
    }

    // The CRDs the operator may apply are exactly the generated ones.
    let names: BTreeSet<String> = rules["crds"][0]["resourceNames"]
        .as_array()
        .expect("crds rule names its CRDs")
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let generated: BTreeSet<String> = fs::read_dir(repo().join("crds"))
        .expect("crds/")
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".yaml").to_string()
        })
        .collect();
    assert_eq!(
        names, generated,
        "files/operator-rbac.yaml `crds` resourceNames"
    );

    // The templates render those rules and no others; the router gets none.
    let templates = chart().join("templates");
    let rbac = read(&templates.join("operator-rbac.yaml"));
    assert!(rbac.contains(r#".Files.Get "files/operator-rbac.yaml""#));
    for line in rbac
        .lines()
        .filter(|l| l.trim_start().starts_with("rules:"))
    {
        assert_eq!(line, "rules:", "rules come only from the file: {line}");
    }
    assert_eq!(
        rbac.matches("toYaml $rules.watched").count()
            + rbac.matches("toYaml $rules.release").count()
            + rbac.matches("toYaml $rules.crds").count(),
        rbac.matches("rules:").count(),
        "every rules: block of operator-rbac.yaml is the file's"
    );
    for path in files_under(&templates, Path::new("")) {
        if path.file_name().is_some_and(|n| n == "operator-rbac.yaml") {
            continue;
        }
        let text = read(&path);
        for kind in ["kind: Role", "kind: ClusterRole"] {
            assert!(
                !text.contains(kind),
                "{} defines RBAC outside operator-rbac.yaml",
                path.display()
            );
        }
    }
    let router = read(&templates.join("router-deployment.yaml"));
    assert!(router.contains("automountServiceAccountToken: false"));
}

// ---------------------------------------------------------------------------------------------
// Probes, ports and flags: the binaries' own

struct Binary {
    component: &'static str,
    cli: &'static str,
    admin_routes: &'static str,
    listen_env: &'static str,
    admin_listen_env: &'static str,
    deployment: &'static str,
}

const BINARIES: &[Binary] = &[
    Binary {
        component: "router",
        cli: "router/src/cli.rs",
        admin_routes: "router/src/app.rs",
        listen_env: "SWITCHBOARD_LISTEN",
        admin_listen_env: "SWITCHBOARD_ADMIN_LISTEN",
        deployment: "router-deployment.yaml",
    },
    Binary {
        component: "operator",
        cli: "operator/src/cli.rs",
        admin_routes: "operator/src/push.rs",
        listen_env: "SWITCHBOARD_OPERATOR_LISTEN",
        admin_listen_env: "SWITCHBOARD_OPERATOR_ADMIN_LISTEN",
        deployment: "operator-deployment.yaml",
    },
];

/// The port of the `default_value` of the flag read from `env` in a clap `Cli`.
fn default_port(cli: &str, env: &str) -> u64 {
    let at = cli
        .find(&format!("env = \"{env}\""))
        .unwrap_or_else(|| panic!("no flag with env {env}"));
    let rest = &cli[at..];
    let value = rest
        .split("default_value = \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no default_value for {env}"));
    assert!(
        rest.find("default_value").unwrap() < rest.find("pub ").unwrap(),
        "the default of {env} belongs to another flag"
    );
    value
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{env} default {value:?} has no port"))
}

/// The `--flag`s a Deployment template passes to its container.
fn template_flags(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split(['=', ' ']).next().expect("a flag name").to_string())
        .collect()
}

#[test]
fn probes_ports_and_flags_are_the_binaries_own() {
    let values = default_values();
    for b in BINARIES {
        let v = &values[b.component];
        let cli = read(&repo().join(b.cli));
        let routes = read(&repo().join(b.admin_routes));
        let template = read(&chart().join("templates").join(b.deployment));

        // Probes: real admin routes, on the admin port; liveness never waits for config.
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &v[probe]["httpGet"];
            assert_eq!(get["path"], path, "{} {probe}", b.component);
            assert_eq!(
                get["port"], "admin",
                "{} {probe} on the admin port",
                b.component
            );
            assert!(
                routes.contains(&format!(".route(\"{path}\"")),
                "{} does not serve {path}",
                b.admin_routes
            );
            assert!(template.contains(&format!("{probe}:\n            {{{{- toYaml $")));
        }

        // Ports: the binaries' default port numbers, bound on all interfaces, named http/admin.
        let http = default_port(&cli, b.listen_env);
        let admin = default_port(&cli, b.admin_listen_env);
        assert_eq!(v["ports"]["http"], http, "{} http port", b.component);
        assert_eq!(v["ports"]["admin"], admin, "{} admin port", b.component);
        let short = if b.component == "router" { "$r" } else { "$o" };
        for (flag, name) in [("listen", "http"), ("admin-listen", "admin")] {
            assert!(
                template.contains(&format!(
                    "- --{flag}=0.0.0.0:{{{{ {short}.ports.{name} }}}}"
                )),
                "{} passes --{flag} from ports.{name}",
                b.deployment
            );
            assert!(
                template.contains(&format!(
                    "- name: {name}\n              containerPort: {{{{ {short}.ports.{name} }}}}"
                )),
                "{} names containerPort ports.{name} `{name}`",
                b.deployment
            );
        }

        // Every flag the template passes exists in the binary's Cli (a field of its name, or one
        // named apart with `long = "<flag>"`).
        for flag in template_flags(&template) {
            let field = flag.replace('-', "_");
            assert!(
                cli.contains(&format!("pub {field}:"))
                    || cli.contains(&format!("long = \"{flag}\"")),
                "{} passes --{flag}, which {} does not define",
                b.deployment,
                b.cli
            );
        }
    }

    // The router finds the operator's config stream on its Service's http port, and the
    // snapshot files where the manifest Secret (key MANIFEST_KEY) and its shard Secrets
    // (`<name>-<i>`, key `shard-<i>.json.zst`) are mounted.
    let router = read(&chart().join("templates/router-deployment.yaml"));
    let service = read(&chart().join("templates/operator-service.yaml"));
    assert!(router.contains(
        "--operator-url=http://{{ include \"switchboard.operatorName\" . }}.{{ .Release.Namespace }}.svc:{{ .Values.operator.ports.http }}"
    ));
    assert!(service.contains("- name: http\n      port: {{ .Values.operator.ports.http }}"));
    let shards = read(&repo().join("api/src/snapshot/shards.rs"));
    assert!(shards.contains("pub const MANIFEST_KEY: &str = \"manifest.json\";"));
    assert!(shards.contains("format!(\"shard-{index}.json.zst\")"));
    let publish = read(&repo().join("operator/src/publish.rs"));
    assert!(publish.contains("format!(\"{name}-{index}\")"));
    assert!(router.contains("--snapshot-file=/etc/switchboard/snapshot/manifest.json"));
    assert!(router.contains("mountPath: /etc/switchboard/snapshot"));
    assert!(router.contains("- key: manifest.json\n                      path: manifest.json"));
    assert!(router.contains("name: {{ include \"switchboard.snapshotSecretName\" $ }}-{{ $i }}"));
    assert!(router.contains(
        "- key: shard-{{ $i }}.json.zst\n                      path: shard-{{ $i }}.json.zst"
    ));
    assert!(
        router.contains("optional: true"),
        "the snapshot Secret may not exist yet"
    );
    for template in ["router-deployment.yaml", "operator-deployment.yaml"] {
        let text = read(&chart().join("templates").join(template));
        assert!(text.contains("-token-file=/var/run/switchboard/token/token"));
        assert!(text.contains("mountPath: /var/run/switchboard/token"));
        assert!(text.contains("                path: token"));
    }
}

#[test]
fn pods_run_locked_down() {
    let values = default_values();
    for component in ["operator", "router", "redis"] {
        let v = &values[component];
        assert_eq!(v["podSecurityContext"]["runAsNonRoot"], true, "{component}");
        assert_eq!(
            v["podSecurityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{component}"
        );
        let c = &v["securityContext"];
        assert_eq!(c["runAsNonRoot"], true, "{component}");
        assert_eq!(c["allowPrivilegeEscalation"], false, "{component}");
        assert_eq!(c["readOnlyRootFilesystem"], true, "{component}");
        assert_eq!(c["capabilities"]["drop"], json!(["ALL"]), "{component}");
        assert_eq!(c["seccompProfile"]["type"], "RuntimeDefault", "{component}");
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts and the dashboard

/// Metric names registered in a metrics.rs (`"switchboard_..."` string literals).
fn registered_metrics() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in [
        "router/src/observability/metrics.rs",
        "operator/src/metrics.rs",
    ] {
        let text = read(&repo().join(file));
        for part in text.split("\"switchboard_").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if part[name.len()..].starts_with('"') {
                out.insert(format!("switchboard_{name}"));
            }
        }
    }
    out
}

/// Metric names used in PromQL text, with histogram suffixes removed where the base exists.
fn used_metrics(text: &str, registered: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("switchboard_") {
        if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| registered.contains(*b))
            .unwrap_or(&name);
        out.insert(base.to_string());
    }
    out
}

#[test]
fn alerts_and_the_dashboard_use_metrics_the_binaries_export() {
    let registered = registered_metrics();
    assert!(registered.contains("switchboard_requests_total"));
    assert!(registered.contains("switchboard_operator_leader"));

    let rules = read(&chart().join("templates/prometheusrule.yaml"));
    let dashboard = read(&chart().join("files/dashboard.json"));
    for (what, text) in [
        ("prometheusrule.yaml", &rules),
        ("dashboard.json", &dashboard),
    ] {
        let used = used_metrics(text, &registered);
        let unknown: Vec<_> = used.difference(&registered).collect();
        assert!(
            unknown.is_empty(),
            "{what} uses metrics nobody exports: {unknown:?}"
        );
    }
    for needed in [
        "switchboard_budget_used_ratio",
        "switchboard_budget_soft_limit_ratio",
        "switchboard_upstream_attempts_total",
        "switchboard_request_duration_seconds_bucket",
        "switchboard_config_version",
        "switchboard_config_refused_total",
        "switchboard_operator_snapshot_version",
    ] {
        assert!(rules.contains(needed), "no alert on {needed}");
    }

    let dashboard: Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        if p["type"] != "row" {
            assert!(!p["targets"].as_array().expect("targets").is_empty());
        }
    }
    let configmap = read(&chart().join("templates/grafana-dashboard.yaml"));
    assert!(configmap.contains(r#".Files.Get "files/dashboard.json""#));
    assert_eq!(
        default_values()["metrics"]["dashboard"]["label"],
        "grafana_dashboard"
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles

#[test]
fn the_dockerfiles_build_the_binaries_the_chart_runs_as_its_user() {
    let values = default_values();
    for component in ["router", "operator"] {
        let binary = format!("switchboard-{component}");
        let path = repo().join(format!("docker/{component}.Dockerfile"));
        let text = read(&path);
        let cargo = read(&repo().join(format!("{component}/Cargo.toml")));
        assert!(cargo.contains(&format!("name = \"{binary}\"")));
        assert!(
            text.contains(&format!("--bin {binary}")),
            "{} builds {binary}",
            path.display()
        );
        assert!(
            text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]")),
            "{} runs {binary}",
            path.display()
        );
        let user = &values[component]["podSecurityContext"]["runAsUser"];
        assert!(
            text.contains(&format!("USER {user}:{user}")),
            "{} runs as the chart's runAsUser {user}",
            path.display()
        );
        assert!(
            text.matches("FROM ").count() >= 2,
            "{} is multi-stage",
            path.display()
        );
        let ports = &values[component]["ports"];
        assert!(
            text.contains(&format!("EXPOSE {} {}", ports["http"], ports["admin"])),
            "{} exposes the chart's ports",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// With helm: lint, render, parse, check the rendered objects

/// Renders the chart with `values_file` (None: defaults), each document with a kind and a name.
fn helm_template(helm: &Helm, values_file: Option<&Path>) -> Vec<Value> {
    let what = format!("helm template {values_file:?}");
    let docs = helm
        .template(&chart(), values_file.as_slice(), &[])
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    for d in &docs {
        assert!(
            d["apiVersion"].is_string()
                && d["kind"].is_string()
                && d["metadata"]["name"].is_string(),
            "{what}: a document without apiVersion, kind or name: {d}"
        );
    }
    docs
}

#[test]
fn helm_lints_and_renders_the_chart_with_default_and_ci_values() {
    let Some(helm) = Helm::find(
        "helm lint/template (the schema, file, RBAC, probe, port and metric checks ran without it)",
    ) else {
        return;
    };
    eprintln!("helm {}", helm.version());
    let chart = chart();
    let chart_str = chart.to_str().expect("UTF-8 path");

    let mut runs: Vec<Option<PathBuf>> = vec![None];
    runs.extend(ci_values_files(&chart).into_iter().map(Some));
    for values_file in &runs {
        let mut args = vec!["lint", "--strict", chart_str];
        let file;
        if let Some(f) = values_file {
            file = f.to_str().expect("UTF-8 path").to_string();
            args.extend(["--values", &file]);
        }
        let out = helm.run(&args);
        assert!(
            out.status.success(),
            "helm lint {values_file:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let docs = helm_template(&helm, values_file.as_deref());
        let by_kind =
            |kind: &str| -> Vec<&Value> { docs.iter().filter(|d| d["kind"] == kind).collect() };
        assert_eq!(by_kind("CustomResourceDefinition").len(), 4);

        // Rendered RBAC: exactly the expected grants.
        let roles: BTreeMap<String, &Value> = by_kind("ClusterRole")
            .into_iter()
            .chain(by_kind("Role"))
            .map(|r| (r["metadata"]["name"].as_str().unwrap().to_string(), r))
            .collect();
        let scope = |name: &str| {
            if name.ends_with("-leader") {
                "release"
            } else if name.contains("-crds-") {
                "crds"
            } else {
                "watched"
            }
        };
        for want in ["release", "watched"] {
            let of_scope: Vec<_> = roles.iter().filter(|(n, _)| scope(n) == want).collect();
            assert_eq!(of_scope.len(), 1, "{values_file:?}: one role for {want}");
            assert_eq!(
                grants(&of_scope[0].1["rules"], of_scope[0].0),
                expected_grants(want)
            );
        }
        let operator = by_kind("Deployment")
            .into_iter()
            .find(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-operator")
            })
            .expect("operator Deployment");
        let applies_crds = operator["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--apply-crds"));
        let crd_roles: Vec<_> = roles.iter().filter(|(n, _)| scope(n) == "crds").collect();
        assert_eq!(
            crd_roles.len(),
            usize::from(applies_crds),
            "{values_file:?}: the CRD ClusterRole exactly when the operator runs --apply-crds"
        );
        for (name, role) in crd_roles {
            assert_eq!(role["kind"], "ClusterRole");
            assert_eq!(grants(&role["rules"], name), expected_grants("crds"));
        }

        // Rendered Deployments: probes on the admin port, ports named http and admin.
        for d in by_kind("Deployment") {
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            let names: Vec<_> = c["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].clone())
                .collect();
            assert_eq!(names, vec![json!("http"), json!("admin")]);
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        }
        let router = by_kind("Deployment")
            .into_iter()
            .find(|d| d["metadata"]["name"].as_str().unwrap().ends_with("-router"))
            .expect("router Deployment");
        let several = by_kind("HorizontalPodAutoscaler")
            .first()
            .map(|h| h["spec"]["maxReplicas"].as_u64().unwrap() > 1)
            .unwrap_or_else(|| router["spec"]["replicas"].as_u64().unwrap() > 1);
        let has_redis = router["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|e| e["name"] == "SWITCHBOARD_REDIS_URL"));
        assert!(
            !several || has_redis,
            "{values_file:?}: several routers without Redis"
        );

        // The console: its Service in front of the routers' admin port, and the Ingress (when
        // enabled) to that Service's `console` port.
        let console = by_kind("Service")
            .into_iter()
            .find(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .ends_with("-console")
            })
            .unwrap_or_else(|| panic!("{values_file:?}: no console Service"));
        assert_eq!(
            console["spec"]["selector"], router["spec"]["selector"]["matchLabels"],
            "{values_file:?}: the console Service selects the router pods"
        );
        assert_eq!(console["spec"]["ports"][0]["targetPort"], "admin");
        assert_eq!(console["spec"]["ports"][0]["name"], "console");
        for ingress in by_kind("Ingress") {
            let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
            assert_eq!(backend["name"], console["metadata"]["name"]);
            assert_eq!(backend["port"]["name"], "console");
            assert!(
                ingress["spec"]["rules"][0]["host"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty())
            );
        }
        let file_name = values_file
            .as_deref()
            .and_then(|f| f.file_name())
            .and_then(|f| f.to_str());
        if file_name == Some("full-values.yaml") {
            assert_eq!(
                by_kind("Ingress").len(),
                1,
                "full values enable the console Ingress"
            );
        }
    }

    // An enabled console Ingress without a host does not render.
    let out = helm.run(&[
        "template",
        "sb",
        chart_str,
        "--set",
        "console.ingress.enabled=true",
    ]);
    assert!(
        !out.status.success(),
        "a console Ingress without a host rendered"
    );

    // Several routers without Redis do not render: the schema refuses them (and, were the schema
    // skipped, the templates' own check says why).
    let out = helm.run(&[
        "template",
        "sb",
        chart_str,
        "--set",
        "router.replicas=3,router.autoscaling.enabled=false,redis.enabled=false",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "several routers without Redis rendered"
    );
    assert!(
        stderr.contains("schema") || stderr.contains("needs the shared Redis ledger"),
        "{stderr}"
    );
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
