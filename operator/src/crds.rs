//! Keeps the cluster's Switchboard CRDs at this release's schema (`--apply-crds`).
//!
//! Helm installs a chart's `crds/` once and never upgrades them, so after `helm upgrade` the new
//! release's CRD fields would be missing and the API server would prune them from every object
//! applied later. With the flag, the operator applies its own CRDs at start by server-side apply
//! (field manager [`FIELD_MANAGER`], forced: it owns them), before it watches anything. Objects are
//! untouched: a CRD is patched, never deleted and re-created.
//!
//! Each applied CRD carries [`VERSION_ANNOTATION`] with the operator's version, and an operator
//! never replaces a CRD applied by a newer one ([`decide`]): two releases of the chart in one
//! cluster (one per namespace with `watchNamespace`) cannot downgrade each other's schema.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};

/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "switchboard-operator";
/// Annotation recording which operator version applied a CRD.
pub const VERSION_ANNOTATION: &str = "switchboard.dev/applied-by-version";

/// What to do with one CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Apply ours: the CRD is missing, unversioned (installed from `crds/` by Helm or kubectl),
    /// or applied by this version or an older one.
    Apply,
    /// Leave it: a newer operator applied it.
    KeepNewer {
        /// The version that applied it.
        installed: String,
    },
}

/// Decides from the version recorded on the installed CRD (`None`: missing or unannotated).
pub fn decide(installed: Option<&str>, ours: &str) -> Decision {
    match installed {
        Some(v) if newer(v, ours) => Decision::KeepNewer {
            installed: v.to_string(),
        },
        _ => Decision::Apply,
    }
}

/// Whether semantic version `a` is newer than `b` (`MAJOR.MINOR.PATCH[-PRE]`; a pre-release is
/// older than its release; pre-release tags compare as text). An unparsable `a` is not newer.
fn newer(a: &str, b: &str) -> bool {
    fn parse(v: &str) -> Option<([u64; 3], Option<&str>)> {
        let (core, pre) = match v.trim().trim_start_matches('v').split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (v.trim().trim_start_matches('v'), None),
        };
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let triple = [parts.next()??, parts.next()??, parts.next()??];
        parts.next().is_none().then_some((triple, pre))
    }
    let (Some((a_core, a_pre)), Some((b_core, b_pre))) = (parse(a), parse(b)) else {
        return false;
    };
    match a_core.cmp(&b_core) {
        std::cmp::Ordering::Equal => match (a_pre, b_pre) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a > b,
            _ => false,
        },
        order => order.is_gt(),
    }
}

/// This release's CRDs (the ones `make gen` writes to `crds/`) annotated with `version`.
pub fn desired(version: &str) -> Vec<CustomResourceDefinition> {
    switchboard_api::crdgen::crds()
        .into_iter()
        .map(|mut crd| {
            crd.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(VERSION_ANNOTATION.into(), version.into());
            crd
        })
        .collect()
}

/// What [`apply`] did with one CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The CRD's name (`providers.switchboard.dev`).
    pub name: String,
    /// The decision taken.
    pub decision: Decision,
}

/// Applies this release's CRDs (see the module docs). Needs `get`, `create` and `patch` on the
/// four `customresourcedefinitions` by name; fails on the first error, so a missing grant or an
/// API server that refuses the schema stops the operator with the reason instead of letting it
/// run against stale CRDs.
pub async fn apply(client: Client, version: &str) -> anyhow::Result<Vec<Applied>> {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut out = Vec::new();
    for crd in desired(version) {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let installed = api
            .get_opt(&name)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read CRD {name}: {e}"))?;
        let installed_version = installed.as_ref().and_then(|c| {
            c.metadata
                .annotations
                .as_ref()?
                .get(VERSION_ANNOTATION)
                .cloned()
        });
        let decision = decide(installed_version.as_deref(), version);
        match &decision {
            Decision::Apply => {
                api.patch(&name, &params, &Patch::Apply(&crd))
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot apply CRD {name}: {e}"))?;
                tracing::info!(crd = %name, version, "CRD applied");
            }
            Decision::KeepNewer { installed } => {
                tracing::warn!(crd = %name, installed, ours = version,
                    "CRD left as is: applied by a newer operator");
            }
        }
        out.push(Applied { name, decision });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_replaces_a_crd_from_a_newer_operator() {
        let keep = |v: &str| Decision::KeepNewer {
            installed: v.into(),
        };
        for (installed, ours, want) in [
            (None, "0.2.0", Decision::Apply),
            (Some("0.1.0"), "0.2.0", Decision::Apply),
            (Some("0.2.0"), "0.2.0", Decision::Apply),
            (Some("0.2.0-rc1"), "0.2.0", Decision::Apply),
            (Some("0.1.9"), "0.1.10", Decision::Apply),
            (Some("0.3.0"), "0.2.0", keep("0.3.0")),
            (Some("1.0.0"), "0.99.99", keep("1.0.0")),
            (Some("0.1.10"), "0.1.9", keep("0.1.10")),
            (Some("0.2.0"), "0.2.0-rc1", keep("0.2.0")),
            (Some("0.2.0-rc2"), "0.2.0-rc1", keep("0.2.0-rc2")),
            (Some("v0.3.0"), "0.2.0", keep("v0.3.0")),
            // Not a version we wrote: ours wins.
            (Some("garbage"), "0.2.0", Decision::Apply),
            (Some("1.2"), "0.2.0", Decision::Apply),
        ] {
            assert_eq!(decide(installed, ours), want, "{installed:?} vs {ours}");
        }
    }

    #[test]
    fn desired_crds_are_the_generated_ones_annotated() {
        let crds = desired("1.2.3");
        let generated = switchboard_api::crdgen::crds();
        assert_eq!(crds.len(), generated.len());
        for (ours, plain) in crds.iter().zip(&generated) {
            assert_eq!(ours.spec, plain.spec);
            assert_eq!(
                ours.metadata.annotations.as_ref().unwrap()[VERSION_ANNOTATION],
                "1.2.3"
            );
        }
    }
}
