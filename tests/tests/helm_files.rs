//! The Helm chart's files, checked without a cluster: every file that is not a template parses
//! (YAML or JSON) and `crds/` is the generated CRDs byte for byte; alerts and
//! the dashboard name metrics the binaries export; the Dockerfiles run the binaries as the user
//! the chart expects.

use std::{collections::BTreeSet, fs, path::Path};

use serde_json::Value;
use switchboard_e2e::chart::{
    chart_dir, default_values, files_under, read, repo, yaml, yaml_documents,
};

// ---------------------------------------------------------------------------------------------
// Files of the chart

#[test]
fn every_file_of_the_chart_that_is_not_a_template_parses() {
    let chart = chart_dir();
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
    let packaged = chart_dir().join("crds");
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

    let rules = read(&chart_dir().join("templates/prometheusrule.yaml"));
    let dashboard = read(&chart_dir().join("files/dashboard.json"));
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
    let configmap = read(&chart_dir().join("templates/grafana-dashboard.yaml"));
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
