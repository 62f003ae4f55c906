//! Reading Kubernetes manifests (`---`-separated YAML) into typed objects, as `kubectl apply`
//! would see them. Pure: the caller reads the files.

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use crate::resources::{ApiKey, Budget, ModelRoute, Provider};

/// One object Switchboard compiles.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A Provider.
    Provider(Provider),
    /// A ModelRoute.
    ModelRoute(ModelRoute),
    /// An ApiKey.
    ApiKey(ApiKey),
    /// A Budget.
    Budget(Budget),
    /// A `v1/Secret` that Providers and ApiKeys may reference.
    Secret(Secret),
}

macro_rules! object_from {
    ($($kind:ident),*) => {$(
        impl From<$kind> for Object {
            fn from(o: $kind) -> Self {
                Object::$kind(o)
            }
        }
    )*};
}
object_from!(Provider, ModelRoute, ApiKey, Budget, Secret);

/// Kind, namespace and name of an object: what a compile result is reported against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `Provider`, `ModelRoute`, `ApiKey`, `Budget` or `Secret`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl Object {
    /// Kind, namespace and name. Objects without a namespace are in `default`.
    pub fn object_ref(&self) -> ObjectRef {
        let (kind, meta) = match self {
            Object::Provider(o) => ("Provider", &o.metadata),
            Object::ModelRoute(o) => ("ModelRoute", &o.metadata),
            Object::ApiKey(o) => ("ApiKey", &o.metadata),
            Object::Budget(o) => ("Budget", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
        };
        ObjectRef {
            kind,
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

/// A manifest document that is not a valid object, with its position in the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ManifestError {
    /// 1-based index of the `---`-separated document.
    pub index: usize,
    /// What is wrong with it.
    pub message: String,
}

/// What reading one manifest file produced.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Objects Switchboard compiles.
    pub objects: Vec<Object>,
    /// Descriptions of documents of other kinds (Deployments, ...), which are passed over.
    pub ignored: Vec<String>,
}

/// Parses `---`-separated YAML into objects. Documents of other API groups are passed over (listed
/// in `ignored`); a Switchboard or Secret document that does not match its schema is an error, as
/// `kubectl apply` would refuse it. Objects without a namespace get `default_namespace`.
pub fn parse_manifests(yaml: &str, default_namespace: &str) -> Result<Manifests, ManifestError> {
    let mut out = Manifests::default();
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let index = i + 1;
        let err = |message: String| ManifestError { index, message };
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| err(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let value: serde_json::Value = serde_json::to_value(&value)
            .map_err(|e| err(format!("not a JSON-compatible document: {e}")))?;
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let kind = kind.as_str();
        if api_version.is_empty() || kind.is_empty() {
            return Err(err("document has no apiVersion or kind".into()));
        }
        let name = value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            return Err(err(format!("{kind} has no metadata.name")));
        }
        let typed = |value: serde_json::Value| -> Result<Object, ManifestError> {
            let parsed = match kind {
                "Provider" => serde_json::from_value(value).map(Object::Provider),
                "ModelRoute" => serde_json::from_value(value).map(Object::ModelRoute),
                "ApiKey" => serde_json::from_value(value).map(Object::ApiKey),
                "Budget" => serde_json::from_value(value).map(Object::Budget),
                _ => unreachable!("kind checked by caller"),
            };
            parsed.map_err(|e| err(format!("{kind} {name}: {e}")))
        };
        let mut object = if api_version == format!("{}/{}", crate::GROUP, crate::VERSION) {
            match kind {
                "Provider" | "ModelRoute" | "ApiKey" | "Budget" => typed(value)?,
                _ => return Err(err(format!("unknown kind {kind} in {api_version}"))),
            }
        } else if api_version.starts_with(&format!("{}/", crate::GROUP)) {
            return Err(err(format!(
                "{kind} {name}: unsupported version {api_version}; this build serves {}/{}",
                crate::GROUP,
                crate::VERSION
            )));
        } else if api_version == "v1" && kind == "Secret" {
            Object::Secret(
                serde_json::from_value(value).map_err(|e| err(format!("Secret {name}: {e}")))?,
            )
        } else {
            out.ignored.push(format!("{api_version} {kind} {name}"));
            continue;
        };
        let meta = match &mut object {
            Object::Provider(o) => &mut o.metadata,
            Object::ModelRoute(o) => &mut o.metadata,
            Object::ApiKey(o) => &mut o.metadata,
            Object::Budget(o) => &mut o.metadata,
            Object::Secret(o) => &mut o.metadata,
        };
        meta.namespace
            .get_or_insert_with(|| default_namespace.to_string());
        out.objects.push(object);
    }
    Ok(out)
}
