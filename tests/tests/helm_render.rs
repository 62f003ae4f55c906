//! Every rendering of the chart by a real `helm` is valid Kubernetes, for the oldest and the
//! newest Kubernetes the chart supports.
//!
//! Renderings: the defaults, each `ci/*.yaml` (`full-values.yaml` has every optional part on),
//! `operator.watchNamespace` set, and `operator.applyCRDs` off. Each rendered object is validated
//! with kubernetes-validate (PyPI, pinned in tests/tools/requirements.txt) against the OpenAPI
//! schemas of the chart's minimum `kubeVersion` and of the newest version it ships, strictly
//! (an unknown field is an error); Switchboard's own kinds (the `helm test` ApiKey) against the
//! generated CRD schemas and their CEL rules. The prometheus-operator kinds (ServiceMonitor,
//! PrometheusRule) are named as unchecked: no registry package carries their CRD schemas in a
//! form that checks unknown fields.
//!
//! A values file may need a newer Kubernetes than the chart's minimum (`# kubernetes-min: 1.30`
//! as a line of its own, with the reason); it is then validated from that version, and the test
//! proves the line is needed by the failure against the chart's minimum.
//!
//! And the validation can fail: a copy of the chart with a bad field injected into a template
//! renders, lints, and is rejected here with the field named.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde_json::Value;
use switchboard_api::{compile, crdgen::crds, parse_manifests};
use switchboard_e2e::{
    chart::{Helm, chart_dir, ci_values_files, repo},
    crd_schema::strict_json_schema,
    tools::{Tool, optional},
};
use tokio::io::AsyncWriteExt;

/// Kinds no schema is available for (apiVersion, kind).
const UNCHECKED: &[(&str, &str)] = &[
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
];

/// What kubernetes-validate said about one object for one version.
#[derive(Debug)]
struct Verdict {
    api_version: String,
    kind: String,
    name: String,
    version: String,
    status: String,
    detail: String,
}

/// Validates `docs` with tests/tools/validate_manifests.py for each of `versions`.
async fn kubernetes_validate(
    python: &Path,
    docs: &[Value],
    versions: &[String],
) -> (Vec<String>, Vec<Verdict>) {
    // As JSON (which YAML readers accept): exactly the values helm rendered, where a YAML 1.1
    // reader would turn a re-serialized `yes` into a boolean.
    let yaml: String = docs.iter().map(|d| format!("---\n{d}\n")).collect();
    let mut child = tokio::process::Command::new(python)
        .arg(repo().join("tests/tools/validate_manifests.py"))
        .args(versions)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("SWITCHBOARD_TEST_PYTHON runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(yaml.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "validate_manifests.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let available = report["available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let verdicts = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Verdict {
            api_version: r["apiVersion"].as_str().unwrap_or_default().into(),
            kind: r["kind"].as_str().unwrap_or_default().into(),
            name: r["name"].as_str().unwrap_or_default().into(),
            version: r["version"].as_str().unwrap_or_default().into(),
            status: r["status"].as_str().unwrap_or_default().into(),
            detail: format!(
                "{}: {}",
                r["path"].as_str().unwrap_or_default(),
                r["message"].as_str().unwrap_or_default()
            ),
        })
        .collect();
    (available, verdicts)
}

/// `MAJOR.MINOR.0` of the chart's `kubeVersion: ">=MAJOR.MINOR..."`.
fn chart_min_version() -> String {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let constraint = chart["kubeVersion"]
        .as_str()
        .expect("Chart.yaml kubeVersion");
    let min = constraint
        .trim()
        .strip_prefix(">=")
        .unwrap_or_else(|| panic!("kubeVersion {constraint:?} is not `>=X.Y...`"));
    let mut parts = min.split(['.', '-']);
    format!("{}.{}.0", parts.next().unwrap(), parts.next().unwrap())
}

/// `# kubernetes-min: X.Y` in a values file.
fn declared_min(values: &Path) -> Option<String> {
    std::fs::read_to_string(values)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# kubernetes-min: "))
        .map(|v| format!("{}.0", v.split_whitespace().next().unwrap()))
}

/// Strict CRD schema and CEL problems of the Switchboard objects in `docs`, and whether
/// `compile()` makes each Ready (with the Secrets rendered beside them).
fn switchboard_objects_problems(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let schemas: Vec<(String, Value)> = crds()
        .into_iter()
        .map(|crd| {
            let v = serde_json::to_value(&crd).unwrap();
            let schema = v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
            (crd.spec.names.kind, schema)
        })
        .collect();
    let ours: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("switchboard.dev/"))
        })
        .collect();
    for d in &ours {
        let kind = d["kind"].as_str().unwrap();
        let (_, schema) = schemas
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
        let validator = jsonschema::draft202012::new(&strict_json_schema(schema)).unwrap();
        problems.extend(
            validator
                .iter_errors(d)
                .map(|e| format!("{kind} {}: {e}", d["metadata"]["name"])),
        );
        if let Err(errors) = kube_cel::Validator::new().validate(schema, d, None) {
            problems.extend(
                errors
                    .into_vec()
                    .into_iter()
                    .map(|e| format!("{kind} {}: CEL: {}", d["metadata"]["name"], e.message)),
            );
        }
    }
    if !ours.is_empty() {
        let yaml: String = docs
            .iter()
            .filter(|d| d["kind"] == "Secret" || ours.contains(d))
            .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
            .collect();
        let objects = parse_manifests(&yaml, "default").unwrap().objects;
        for (object, result) in compile(&objects).results {
            if !result.outcome.is_ready() {
                problems.push(format!(
                    "{object} does not compile Ready: {} {}",
                    result.outcome.reason(),
                    result.outcome.message()
                ));
            }
        }
    }
    problems
}

struct Rendering {
    what: String,
    values: Option<PathBuf>,
    /// `--set` assignments.
    set: Vec<&'static str>,
}

fn renderings(chart: &Path) -> Vec<Rendering> {
    let mut out = vec![Rendering {
        what: "defaults".into(),
        values: None,
        set: vec![],
    }];
    for f in ci_values_files(chart) {
        out.push(Rendering {
            what: format!("ci/{}", f.file_name().unwrap().to_string_lossy()),
            values: Some(f),
            set: vec![],
        });
    }
    out.push(Rendering {
        what: "operator.watchNamespace set".into(),
        values: None,
        set: vec!["operator.watchNamespace=team-a"],
    });
    out.push(Rendering {
        what: "operator.applyCRDs off".into(),
        values: None,
        set: vec!["operator.applyCRDs=false"],
    });
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rendering_is_valid_for_the_oldest_and_newest_supported_kubernetes() {
    let test = "Kubernetes schema validation of the chart's renderings";
    let (Some(helm), Some(python)) = (Helm::find(test), optional(Tool::Python, test)) else {
        return;
    };
    let min = chart_min_version();
    let chart = chart_dir();
    let mut failures = Vec::new();
    let mut unchecked = BTreeSet::new();
    let mut kinds_checked = BTreeSet::new();
    // The versions kubernetes-validate ships; the newest is the newest Kubernetes the chart's
    // open-ended `kubeVersion` can be checked against.
    let (available, _) = kubernetes_validate(&python, &[], &[]).await;
    assert!(
        available.contains(&min),
        "kubernetes-validate has no schemas for the chart's minimum {min}: {available:?}"
    );
    let newest = available.last().unwrap().clone();
    // Rendered for a version below the minimum, the chart refuses (its kubeVersion is honest).
    let below = format!(
        "1.{}.0",
        min.split('.').nth(1).unwrap().parse::<u32>().unwrap() - 1
    );
    let refused = helm.template(&chart, &[], &["--kube-version", &below]);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("kubeVersion")),
        "rendered for Kubernetes {below}: {refused:?}"
    );

    for r in renderings(&chart) {
        let declared = r.values.as_deref().and_then(declared_min);
        let oldest = declared.clone().unwrap_or_else(|| min.clone());
        let mut docs = Vec::new();
        for version in [&oldest, &newest] {
            let render = |version: &str| {
                let mut args = vec!["--kube-version", version];
                for s in &r.set {
                    args.extend(["--set", s]);
                }
                helm.template(&chart, r.values.as_deref().as_slice(), &args)
                    .unwrap_or_else(|e| panic!("helm template ({}, {version}): {e}", r.what))
            };
            docs = render(version);
            let (_, verdicts) =
                kubernetes_validate(&python, &docs, std::slice::from_ref(version)).await;
            assert_eq!(verdicts.len(), docs.len(), "{}", r.what);
            for v in &verdicts {
                let ours = v.api_version.starts_with("switchboard.dev/");
                let unchecked_kind = UNCHECKED.contains(&(v.api_version.as_str(), v.kind.as_str()));
                match v.status.as_str() {
                    "ok" => {
                        kinds_checked.insert(format!("{} {}", v.api_version, v.kind));
                    }
                    "no-schema" if ours => {}
                    "no-schema" if unchecked_kind => {
                        unchecked.insert(format!("{} {}", v.api_version, v.kind));
                    }
                    _ => failures.push(format!(
                        "{}: {} {} against {}: {} {}",
                        r.what, v.kind, v.name, v.version, v.status, v.detail
                    )),
                }
            }
            if let Some(declared) = declared.as_ref().filter(|_| version == &oldest) {
                // The declared minimum is needed: the chart's own minimum rejects this rendering.
                let docs = render(&min);
                let (_, at_min) =
                    kubernetes_validate(&python, &docs, std::slice::from_ref(&min)).await;
                assert!(
                    at_min.iter().any(|v| v.status == "invalid"),
                    "{}: declares `kubernetes-min: {declared}` but validates against {min}: \
                     drop the line",
                    r.what
                );
            }
        }
        failures.extend(
            switchboard_objects_problems(&docs)
                .into_iter()
                .map(|p| format!("{}: {p}", r.what)),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for kind in [
        "apps/v1 Deployment",
        "apps/v1 StatefulSet",
        "autoscaling/v2 HorizontalPodAutoscaler",
        "policy/v1 PodDisruptionBudget",
        "networking.k8s.io/v1 NetworkPolicy",
        "rbac.authorization.k8s.io/v1 ClusterRole",
        "apiextensions.k8s.io/v1 CustomResourceDefinition",
        "v1 Pod",
        "v1 ConfigMap",
    ] {
        assert!(
            kinds_checked.contains(kind),
            "{kind} never validated: {kinds_checked:?}"
        );
    }
    eprintln!(
        "helm {}: every rendering valid against Kubernetes {min} and {newest} (strict); \
         unchecked (no schema): {unchecked:?}",
        helm.version()
    );
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_that_renders_an_invalid_object_fails_validation() {
    let test = "the chart validation's own failure check";
    let (Some(helm), Some(python)) = (Helm::find(test), optional(Tool::Python, test)) else {
        return;
    };
    let min = chart_min_version();
    // (template, text to find, text to put before it, kind, expected path, message fragment)
    let injections = [
        (
            "router-deployment.yaml",
            "          imagePullPolicy:",
            "          imagePullPolicyy: Always\n",
            "Deployment",
            "spec.template.spec.containers.0",
            "'imagePullPolicyy' was unexpected",
        ),
        (
            "router-service.yaml",
            "  selector:",
            "  sessionAffinity: 7\n",
            "Service",
            "spec.sessionAffinity",
            "is not of type 'string'",
        ),
    ];
    for (template, anchor, bad, kind, path, fragment) in injections {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-chart-{}-{}",
            std::process::id(),
            template
        ));
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(&chart_dir(), &dir);
        let file = dir.join("templates").join(template);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text.matches(anchor).count(),
            1,
            "{template}: anchor {anchor:?}"
        );
        std::fs::write(&file, text.replace(anchor, &format!("{bad}{anchor}"))).unwrap();

        let docs = helm
            .template(&dir, &[], &[])
            .expect("the broken copy still renders");
        let (_, verdicts) = kubernetes_validate(&python, &docs, std::slice::from_ref(&min)).await;
        let _ = std::fs::remove_dir_all(&dir);
        let invalid: Vec<&Verdict> = verdicts.iter().filter(|v| v.status == "invalid").collect();
        assert_eq!(
            invalid.len(),
            1,
            "{template}: exactly the broken object is rejected: {verdicts:#?}"
        );
        assert_eq!(invalid[0].kind, kind);
        assert!(
            invalid[0].detail.starts_with(&format!("{path}:"))
                && invalid[0].detail.contains(fragment),
            "{template}: {}",
            invalid[0].detail
        );
    }
}

#[test]
fn full_values_turns_every_optional_part_on() {
    fn enabled_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = v {
            for (k, child) in map {
                let path = format!("{prefix}{k}");
                if k == "enabled" && child.is_boolean() {
                    out.push(path);
                } else {
                    enabled_paths(child, &format!("{path}."), out);
                }
            }
        }
    }
    let read = |p: PathBuf| -> Value {
        serde_yaml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let defaults = read(chart_dir().join("values.yaml"));
    let full = read(chart_dir().join("ci/full-values.yaml"));
    let mut paths = Vec::new();
    enabled_paths(&defaults, "", &mut paths);
    assert!(paths.len() >= 8, "{paths:?}");
    let off: Vec<_> = paths
        .iter()
        .filter(|p| {
            let get = |root: &Value| {
                p.split('.')
                    .try_fold(root.clone(), |v, k| v.get(k).cloned())
            };
            get(&full).or_else(|| get(&defaults)) != Some(Value::Bool(true))
        })
        .collect();
    assert!(off.is_empty(), "ci/full-values.yaml leaves off: {off:?}");
    let full_text = std::fs::read_to_string(chart_dir().join("ci/full-values.yaml")).unwrap();
    assert!(
        full_text.contains("watchNamespace:"),
        "full values set operator.watchNamespace"
    );
}
