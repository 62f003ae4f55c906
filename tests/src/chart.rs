//! The Helm chart (`charts/switchboard`) for tests: where it is, its files and default values, its
//! `ci/` values files, and renderings by a real `helm` ([`Tool::Helm`], which `make test` provides).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

use crate::tools::{Tool, optional};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// `charts/switchboard`.
pub fn chart_dir() -> PathBuf {
    repo().join("charts/switchboard")
}

/// Every `ci/*.yaml` values file of the chart at `chart`, sorted.
pub fn ci_values_files(chart: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart.join("ci"))
        .expect("the chart has a ci/ directory")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every `---`-separated YAML document of `text` as JSON (empty documents dropped).
pub fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(i, doc)| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{what}, document {}: {e}", i + 1))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// A `helm` binary.
pub struct Helm {
    path: PathBuf,
}

impl Helm {
    /// The provided `helm`; `None` (after a SKIPPED line) without one outside CI, a failure in CI.
    pub fn find(test: &str) -> Option<Helm> {
        optional(Tool::Helm, test).map(|path| Helm { path })
    }

    /// Runs `helm ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.path)
            .args(args)
            .env(
                "HELM_CACHE_HOME",
                std::env::temp_dir().join("switchboard-helm-cache"),
            )
            .env(
                "HELM_CONFIG_HOME",
                std::env::temp_dir().join("switchboard-helm-config"),
            )
            .env(
                "HELM_DATA_HOME",
                std::env::temp_dir().join("switchboard-helm-data"),
            )
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.path.display()))
    }

    /// `helm version --short`.
    pub fn version(&self) -> String {
        String::from_utf8_lossy(&self.run(&["version", "--short"]).stdout)
            .trim()
            .to_string()
    }

    /// `helm template sb CHART --namespace switchboard-system --include-crds` with the values
    /// files and further arguments (`--set`, `--kube-version`, ...): every rendered document, or
    /// helm's error output.
    pub fn template(
        &self,
        chart: &Path,
        values: &[&Path],
        extra: &[&str],
    ) -> Result<Vec<Value>, String> {
        let chart = chart.to_str().expect("UTF-8 path");
        let mut args = vec![
            "template",
            "sb",
            chart,
            "--namespace",
            "switchboard-system",
            "--include-crds",
        ];
        for v in values {
            args.extend(["--values", v.to_str().expect("UTF-8 path")]);
        }
        args.extend(extra);
        let out = self.run(&args);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let what = format!("helm template {values:?} {extra:?}");
        Ok(yaml_documents(&String::from_utf8_lossy(&out.stdout), &what))
    }
}

/// The text of `path`; panics naming the file when it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One YAML document as JSON; panics naming `what` when it does not parse.
pub fn yaml(text: &str, what: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The chart's `values.yaml` as JSON.
pub fn default_values() -> Value {
    yaml(&read(&chart_dir().join("values.yaml")), "values.yaml")
}

/// Every file under `dir`, recursively, except under `skip`.
pub fn files_under(dir: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
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
