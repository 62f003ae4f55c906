//! Reading Kubernetes manifests (`---`-separated YAML) into typed objects, as `kubectl apply`
//! would see them. Pure: the caller opens the files.

use std::fmt;

use k8s_openapi::api::core::v1::Secret;

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
        let (kind, namespace, name) = self.ref_parts();
        ObjectRef {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// Kind, namespace and name, borrowed (see [`Object::object_ref`]).
    pub fn ref_parts(&self) -> (&'static str, &str, &str) {
        let (kind, meta) = match self {
            Object::Provider(o) => ("Provider", &o.metadata),
            Object::ModelRoute(o) => ("ModelRoute", &o.metadata),
            Object::ApiKey(o) => ("ApiKey", &o.metadata),
            Object::Budget(o) => ("Budget", &o.metadata),
            Object::Secret(o) => ("Secret", &o.metadata),
        };
        (
            kind,
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or_default(),
        )
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
    let mut objects = Vec::new();
    let ignored = read_manifests(yaml.as_bytes(), default_namespace, |o| objects.push(o))?;
    Ok(Manifests { objects, ignored })
}

/// [`parse_manifests`] on a stream, one document at a time: each object is handed to `each` as
/// soon as its document is read, and the document's text is dropped, so neither the whole text
/// nor a list of every object is held. Returns the passed-over documents (`ignored`).
///
/// Each document is parsed once, straight into its typed object: its top-level `apiVersion` and
/// `kind` lines are read first to know which. A document whose kind cannot be read that way
/// (flow style, other groups) is parsed into a YAML value first.
pub fn read_manifests(
    mut reader: impl std::io::BufRead,
    default_namespace: &str,
    mut each: impl FnMut(Object),
) -> Result<Vec<String>, ManifestError> {
    let mut ignored = Vec::new();
    let mut doc = String::new();
    let mut line = String::new();
    // Documents counted so far; blank text before the first marker is no document.
    let mut index = 0;
    let mut first = true;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|e| ManifestError {
            index: index + 1,
            message: format!("cannot read the manifests: {e}"),
        })?;
        // A document marker at the start of a line cannot occur inside a scalar.
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if read == 0 || marker {
            // Blank text before the first marker counts only when nothing follows it.
            let leading_blank = first && read != 0 && blank(&doc);
            if !leading_blank {
                index += 1;
                if let Some(object) = parse_document(&doc, index, default_namespace, &mut ignored)?
                {
                    each(object);
                }
            }
            first = false;
            doc.clear();
        }
        if read == 0 {
            return Ok(ignored);
        }
        doc.push_str(&line);
    }
}

/// One document (`index`, 1-based) into its object: `None` when it is empty or of another API
/// group (then listed in `ignored`).
fn parse_document(
    doc: &str,
    index: usize,
    default_namespace: &str,
    ignored: &mut Vec<String>,
) -> Result<Option<Object>, ManifestError> {
    let err = |message: String| ManifestError { index, message };
    let known = match (top_level(doc, "apiVersion"), top_level(doc, "kind")) {
        (Some(v), Some(k)) if v == SWITCHBOARD_VERSION || (v == "v1" && k == "Secret") => Some(k),
        _ => None,
    };
    let mut object = match known {
        Some(kind @ ("Provider" | "ModelRoute" | "ApiKey" | "Budget" | "Secret")) => {
            let parsed = match kind {
                "Provider" => serde_yaml::from_str(doc).map(Object::Provider),
                "ModelRoute" => serde_yaml::from_str(doc).map(Object::ModelRoute),
                "ApiKey" => serde_yaml::from_str(doc).map(Object::ApiKey),
                "Budget" => serde_yaml::from_str(doc).map(Object::Budget),
                _ => serde_yaml::from_str(doc).map(Object::Secret),
            };
            let object = parsed.map_err(|e| {
                let name = top_level_name(doc).unwrap_or_default();
                err(format!("{kind} {name}: {e}"))
            })?;
            let (_, _, name) = object.ref_parts();
            if name.is_empty() {
                return Err(err(format!("{kind} has no metadata.name")));
            }
            object
        }
        _ => {
            if blank(doc) {
                return Ok(None);
            }
            let value: serde_yaml::Value =
                serde_yaml::from_str(doc).map_err(|e| err(e.to_string()))?;
            match from_value(value, ignored).map_err(err)? {
                Some(object) => object,
                None => return Ok(None),
            }
        }
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
    Ok(Some(object))
}

/// `apiVersion` of every Switchboard resource.
const SWITCHBOARD_VERSION: &str = "switchboard.dev/v1alpha1";

/// Whether a document holds only whitespace, comments and markers.
fn blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..."
    })
}

/// The plain or quoted scalar of a `key: value` line at the top level of a document.
fn top_level<'a>(doc: &'a str, key: &str) -> Option<&'a str> {
    doc.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = value.split(" #").next()?.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        (!unquoted.is_empty() && !unquoted.contains(['"', '\'', '{', '[', '\\']))
            .then_some(unquoted)
    })
}

/// `metadata.name` as far as a line scan finds it (for error messages only).
fn top_level_name(doc: &str) -> Option<&str> {
    let mut in_metadata = false;
    for line in doc.lines() {
        if !line.starts_with([' ', '\t']) {
            in_metadata = line.starts_with("metadata:");
            if let Some(rest) = line.strip_prefix("metadata:")
                && let Some(at) = rest.find("name:")
            {
                return rest[at + 5..].split([',', '}']).next().map(str::trim);
            }
        } else if in_metadata && let Some(name) = line.trim().strip_prefix("name:") {
            return Some(name.trim());
        }
    }
    None
}

/// A document read into a YAML value first: an object, or `None` when it is empty or of another
/// API group (then listed in `ignored`).
fn from_value(
    value: serde_yaml::Value,
    ignored: &mut Vec<String>,
) -> Result<Option<Object>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let text = |field: &str| value.get(field).and_then(|v| v.as_str()).unwrap_or("");
    let api_version = text("apiVersion").to_string();
    let kind = text("kind").to_string();
    if api_version.is_empty() || kind.is_empty() {
        return Err("document has no apiVersion or kind".into());
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(format!("{kind} has no metadata.name"));
    }
    let typed = |value: serde_yaml::Value| {
        let parsed = match kind.as_str() {
            "Provider" => serde_yaml::from_value(value).map(Object::Provider),
            "ModelRoute" => serde_yaml::from_value(value).map(Object::ModelRoute),
            "ApiKey" => serde_yaml::from_value(value).map(Object::ApiKey),
            "Budget" => serde_yaml::from_value(value).map(Object::Budget),
            _ => serde_yaml::from_value(value).map(Object::Secret),
        };
        parsed.map_err(|e| format!("{kind} {name}: {e}"))
    };
    if api_version == SWITCHBOARD_VERSION {
        match kind.as_str() {
            "Provider" | "ModelRoute" | "ApiKey" | "Budget" => typed(value).map(Some),
            _ => Err(format!("unknown kind {kind} in {api_version}")),
        }
    } else if api_version.starts_with(&format!("{}/", crate::GROUP)) {
        Err(format!(
            "{kind} {name}: unsupported version {api_version}; this build serves {SWITCHBOARD_VERSION}"
        ))
    } else if api_version == "v1" && kind == "Secret" {
        typed(value).map(Some)
    } else {
        ignored.push(format!("{api_version} {kind} {name}"));
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER: &str = "apiVersion: switchboard.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: mock, models: [{name: m}]}\n";

    #[test]
    fn block_flow_and_quoted_documents_parse_alike() {
        let yaml = format!(
            "# leading comment\n---\n{PROVIDER}---\n\
             {{apiVersion: switchboard.dev/v1alpha1, kind: Provider, metadata: {{name: q}}, \
             spec: {{type: mock, models: [{{name: m}}]}}}}\n\
             ---\napiVersion: \"switchboard.dev/v1alpha1\"\nkind: 'Provider' # quoted\n\
             metadata:\n  name: r\n  namespace: other\nspec:\n  type: mock\n  models:\n  - name: m\n\
             ---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\n...\n"
        );
        let m = parse_manifests(&yaml, "ns").unwrap();
        let refs: Vec<String> = m
            .objects
            .iter()
            .map(|o| o.object_ref().to_string())
            .collect();
        assert_eq!(refs, ["Provider ns/p", "Provider ns/q", "Provider other/r"]);
        assert_eq!(m.ignored, ["apps/v1 Deployment app"]);
        let one = parse_manifests(PROVIDER, "ns").unwrap().objects;
        assert_eq!(one[0], m.objects[0]);
    }

    #[test]
    fn errors_name_the_document_and_what_is_wrong() {
        let bad_price = format!(
            "{PROVIDER}---\n{}",
            PROVIDER.replace("name: m", "name: 7, x: 1")
        );
        let e = parse_manifests(&bad_price, "ns").unwrap_err();
        assert_eq!(e.index, 2);
        assert!(e.message.starts_with("Provider p: "), "{e}");

        let nameless = "apiVersion: v1\nkind: Secret\nmetadata: {namespace: a}\n";
        let e = parse_manifests(nameless, "ns").unwrap_err();
        assert_eq!(
            (e.index, e.message.as_str()),
            (1, "Secret has no metadata.name")
        );

        let unknown = "apiVersion: switchboard.dev/v1alpha1\nkind: Gizmo\nmetadata: {name: g}\n";
        let e = parse_manifests(unknown, "ns").unwrap_err();
        assert!(e.message.contains("unknown kind Gizmo"), "{e}");

        let old = "apiVersion: switchboard.dev/v1beta9\nkind: Provider\nmetadata: {name: g}\n";
        let e = parse_manifests(old, "ns").unwrap_err();
        assert!(e.message.contains("unsupported version"), "{e}");

        let e = parse_manifests("just: [text\n", "ns").unwrap_err();
        assert_eq!(e.index, 1);
    }

    #[test]
    fn a_marker_inside_a_block_scalar_is_content() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  note: |\n    ---\n    still the note\n";
        let m = parse_manifests(yaml, "ns").unwrap();
        let Object::Secret(s) = &m.objects[0] else {
            panic!("a Secret")
        };
        assert_eq!(
            s.string_data.as_ref().unwrap()["note"],
            "---\nstill the note\n"
        );
    }
}
