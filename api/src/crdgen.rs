//! The CRD manifests, generated from the Rust types. `make gen` writes them to `crds/`; a test
//! fails when the committed files drift from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::resources::{ApiKey, Budget, ModelRoute, Provider};

/// Every Switchboard CRD.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Provider::crd(),
        ModelRoute::crd(),
        ApiKey::crd(),
        Budget::crd(),
    ]
}

/// `(file name, YAML)` for each CRD, as committed under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_yaml::to_string(&crd).expect("CRDs always serialize");
            (format!("{name}.yaml"), yaml)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, fs, path::Path};

    use super::*;

    #[test]
    fn committed_crds_match_the_rust_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let generated = crd_files();
        for (file, yaml) in &generated {
            let path = dir.join(file);
            let committed = fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}); run `make gen` (or `cargo run -p \
                     switchboard-operator --bin crdgen -- crds`) and commit the result",
                    path.display()
                )
            });
            assert!(
                committed == *yaml,
                "{} differs from the CRD generated from the Rust types; run `make gen` and commit \
                 the result",
                path.display()
            );
        }

        let expected: BTreeSet<&str> = generated.iter().map(|(f, _)| f.as_str()).collect();
        for entry in fs::read_dir(&dir).expect("crds/ exists") {
            let name = entry.expect("readable crds/ entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                assert!(
                    expected.contains(name.as_ref()),
                    "crds/{name} is not generated from any Rust type; delete it or run `make gen`"
                );
            }
        }
    }
}
