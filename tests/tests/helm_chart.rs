//! The Helm chart (`charts/switchboard`), checked without a cluster.
//!
//! - what the project's own sources decide is what the chart says: the operator's RBAC rules are
//!   exactly the API calls in `operator/src`, probes hit routes the binaries serve, ports and
//!   flags are the binaries' own (values and files: `helm_values.rs`, `helm_files.rs`);
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
use switchboard_e2e::chart::{
    Helm, chart_dir, ci_values_files, default_values, files_under, read, repo, yaml,
};

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
        &read(&chart_dir().join("files/operator-rbac.yaml")),
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
    let templates = chart_dir().join("templates");
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
        let template = read(&chart_dir().join("templates").join(b.deployment));

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
    let router = read(&chart_dir().join("templates/router-deployment.yaml"));
    let service = read(&chart_dir().join("templates/operator-service.yaml"));
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
        let text = read(&chart_dir().join("templates").join(template));
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
// With helm: lint, render, parse, check the rendered objects

/// Renders the chart with `values_file` (None: defaults), each document with a kind and a name.
fn helm_template(helm: &Helm, values_file: Option<&Path>) -> Vec<Value> {
    let what = format!("helm template {values_file:?}");
    let docs = helm
        .template(&chart_dir(), values_file.as_slice(), &[])
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
    let chart = chart_dir();
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
