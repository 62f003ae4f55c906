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
