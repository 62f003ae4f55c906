//! A small in-memory Kubernetes API server over HTTP, enough for the operator's full loop:
//! list and watch (JSON lines from a `resourceVersion`, `fieldSelector=metadata.name=`), get,
//! create, replace (with `resourceVersion` compare-and-swap), JSON merge patch (also used for
//! strategic-merge and apply patches, which is what they amount to for the objects here), delete
//! with owner-reference garbage collection, and the `status` subresource kept apart from the main
//! resource for `switchboard.dev` kinds (as CRDs with `subresources.status` behave). Works for any
//! path shaped like `/api/v1/...` or `/apis/GROUP/VERSION/...`, so Secrets, Events and Leases
//! need nothing special.
//!
//! CustomResourceDefinitions stored here take effect as in a cluster: objects of their kinds are
//! pruned to the CRD version's schema on every write ([`crate::crd_schema::prune`]), and a
//! server-side apply patch (`application/apply-patch+yaml`) creates a missing object.
//!
//! The API server's size limits hold too: a request body over [`MAX_REQUEST_BYTES`] is refused
//! with 413, a Secret whose data exceeds [`MAX_SECRET_DATA_BYTES`] with 422 and any object over
//! etcd's [`MAX_OBJECT_BYTES`] with 413; every refusal is kept ([`MockKubeApi::refused`]), so a
//! test sees an oversized write even when the client only logs it. Lists are paged (`limit` and
//! `continue`, as the watcher asks for 500 at a time), and a watch that falls behind is closed
//! (the client re-watches from its last version) rather than silently skipping events.
//!
//! Like an API server, it can serve its ServiceAccount token issuer's discovery document
//! (`/.well-known/openid-configuration`) and key set (`/openid/v1/jwks`), once given them with
//! [`MockKubeApi::serve_issuer`].
//!
//! Not implemented (the operator does not use them): label selectors, JSON patch, namespaces as
//! objects, admission/validation, field managers.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    ops::Bound,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// (collection, namespace, name); collection is e.g. `api/v1/secrets`.
type Key = (String, String, String);

#[derive(Clone, Debug)]
struct WatchEvent {
    rv: u64,
    kind: &'static str,
    collection: String,
    namespace: String,
    name: String,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<WatchEvent>,
    requests: Vec<String>,
    /// The ServiceAccount issuer URL and its key set, when served.
    issuer: Option<(String, Value)>,
    /// `METHOD path: reason` of every request refused for its size.
    refused: Vec<String>,
}

#[path = "kube_api_issuer.rs"]
mod issuer;
#[path = "kube_api_wire.rs"]
mod wire;

pub use wire::merge_patch;
use wire::{Target, fold_string_data, has_status_subresource, parse_path, query_map, spec_part};

/// The API server's limit on a request body (`--max-request-bytes` for JSON: 3 MiB).
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;
/// The API server's limit on a Secret's (or ConfigMap's) data, decoded: 1 MiB.
pub const MAX_SECRET_DATA_BYTES: usize = 1024 * 1024;
/// etcd's limit on one stored object (`--max-request-bytes` of etcd: 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<WatchEvent>,
}

/// A running mock API server.
pub struct MockKubeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockKubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockKubeApi {
    /// Starts the server on a free local port.
    pub async fn start() -> MockKubeApi {
        let (events, _) = broadcast::channel(4096);
        let shared = Shared {
            inner: Arc::default(),
            events,
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        MockKubeApi { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The stored object, if any (`collection` like `api/v1/secrets`).
    pub fn get(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.shared.inner.lock().unwrap();
        inner
            .objects
            .get(&(collection.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Every stored object of a collection.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let inner = self.shared.inner.lock().unwrap();
        inner
            .objects
            .iter()
            .filter(|((c, _, _), _)| c == collection)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Serves the ServiceAccount token issuer `issuer` with key set `jwks` from now on, as an API
    /// server does at `/.well-known/openid-configuration` and `/openid/v1/jwks`.
    pub fn serve_issuer(&self, issuer: &str, jwks: Value) {
        self.shared.inner.lock().unwrap().issuer = Some((issuer.into(), jwks));
    }

    /// `METHOD path?query` of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// `METHOD path: reason` of every request refused for its size, in order.
    pub fn refused(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().refused.clone()
    }

    /// Stores objects as if they had been created through the API (uid, generation, creation
    /// time, resourceVersion, `stringData` folded into `data`), without a request each: for
    /// tests that start from a large cluster. Each object's `apiVersion` and `kind` must be the
    /// collection's; watchers see them as `ADDED`.
    pub fn seed(&self, collection: &str, objects: impl IntoIterator<Item = Value>) {
        let mut inner = self.shared.inner.lock().unwrap();
        for mut obj in objects {
            let namespace = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            inner.uid += 1;
            let meta = &mut obj["metadata"];
            meta["namespace"] = namespace.clone().into();
            meta["uid"] = format!("00000000-0000-0000-0000-{:012}", inner.uid).into();
            meta["generation"] = 1.into();
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
            fold_string_data(&mut obj);
            inner.store(
                &self.shared,
                "ADDED",
                (collection.to_string(), namespace, name),
                obj,
            );
        }
    }
}

/// Why `obj` (stored in `collection`) is too large for the API server, if it is.
fn too_large(collection: &str, obj: &Value) -> Option<(StatusCode, String)> {
    if collection == "api/v1/secrets" || collection == "api/v1/configmaps" {
        let data: usize = obj["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| {
                let s = v.as_str().unwrap_or_default();
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_or(s.len(), |b| b.len())
            })
            .sum();
        if data > MAX_SECRET_DATA_BYTES {
            return Some((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "data: Too long: must have at most {MAX_SECRET_DATA_BYTES} bytes (has {data})"
                ),
            ));
        }
    }
    let size = serde_json::to_vec(obj).map_or(0, |v| v.len());
    (size > MAX_OBJECT_BYTES).then(|| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("etcdserver: request is too large ({size} bytes)"),
        )
    })
}

/// Refuses an oversized write, recording it.
fn refuse(inner: &mut Inner, what: String, code: StatusCode, message: String) -> Response {
    inner.refused.push(format!("{what}: {message}"));
    let reason = if code == StatusCode::PAYLOAD_TOO_LARGE {
        "RequestEntityTooLarge"
    } else {
        "Invalid"
    };
    status_error(code, reason, message)
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        axum::Json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "reason": reason, "message": message, "code": code.as_u16()}),
        ),
    )
        .into_response()
}

fn not_found(key: &Key) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} {}/{} not found", key.0, key.1, key.2),
    )
}

impl Inner {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, shared: &Shared, kind: &'static str, key: &Key, object: Value) {
        let event = WatchEvent {
            rv: self.rv,
            kind,
            collection: key.0.clone(),
            namespace: key.1.clone(),
            name: key.2.clone(),
            object,
        };
        self.log.push(event.clone());
        let _ = shared.events.send(event);
    }

    fn store(&mut self, shared: &Shared, kind: &'static str, key: Key, mut obj: Value) -> Value {
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        self.objects.insert(key.clone(), obj.clone());
        self.record(shared, kind, &key, obj.clone());
        obj
    }

    fn delete(&mut self, shared: &Shared, key: &Key) -> Option<Value> {
        let obj = self.objects.remove(key)?;
        self.bump();
        self.record(shared, "DELETED", key, obj.clone());
        // Garbage collection: objects owned by the deleted one go too.
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in owned {
            self.delete(shared, &k);
        }
        Some(obj)
    }
}

async fn handle(State(shared): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await;
    shared.inner.lock().unwrap().requests.push(format!(
        "{method} {}",
        uri.path_and_query().map_or("", |p| p.as_str())
    ));
    if let Some(resp) = issuer::document(&shared, uri.path()) {
        return resp;
    }
    let Ok(body) = body else {
        let mut inner = shared.inner.lock().unwrap();
        let message = format!("Request entity too large: limit is {MAX_REQUEST_BYTES}");
        return refuse(
            &mut inner,
            format!("{method} {}", uri.path()),
            StatusCode::PAYLOAD_TOO_LARGE,
            message,
        );
    };
    let Some(target) = parse_path(uri.path()) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", uri.path()),
        );
    };
    let query = query_map(uri.query());
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", e.to_string());
            }
        }
    };
    match (method, &target.name) {
        (Method::GET, None)
            if matches!(query.get("watch").map(String::as_str), Some("1" | "true")) =>
        {
            watch(shared, target, query)
        }
        (Method::GET, None) => list(&shared, &target, &query),
        (Method::GET, Some(name)) => {
            let key = (
                target.collection.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            match shared.inner.lock().unwrap().objects.get(&key) {
                Some(o) => axum::Json(o.clone()).into_response(),
                None => not_found(&key),
            }
        }
        (Method::POST, None) => create(&shared, &target, body),
        (Method::PUT, Some(name)) => update(&shared, &target, name, |_| body.clone(), true),
        (Method::PATCH, Some(name))
            if content_type.starts_with(APPLY_PATCH)
                && !shared.inner.lock().unwrap().objects.contains_key(&(
                    target.collection.clone(),
                    target.namespace.clone().unwrap_or_default(),
                    name.clone(),
                )) =>
        {
            // Server-side apply of an object that does not exist creates it.
            create(&shared, &target, body)
        }
        (Method::PATCH, Some(name)) => update(
            &shared,
            &target,
            name,
            |current| {
                let mut next = current.clone();
                merge_patch(&mut next, &body);
                next
            },
            false,
        ),
        (Method::DELETE, Some(name)) => {
            let key = (
                target.collection.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            let mut inner = shared.inner.lock().unwrap();
            match inner.delete(&shared, &key) {
                Some(o) => axum::Json(o).into_response(),
                None => not_found(&key),
            }
        }
        _ => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "not supported".into(),
        ),
    }
}

fn list(shared: &Shared, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let inner = shared.inner.lock().unwrap();
    let name_filter = field_name(query);
    // `continue` is the resourceVersion of the first page and the last key it returned.
    let resume: Option<(String, Key)> = query
        .get("continue")
        .filter(|c| !c.is_empty())
        .and_then(|c| serde_json::from_str(c).ok());
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut items = Vec::new();
    let mut more = None;
    // The collection's objects, from where the last page ended.
    let start = match &resume {
        Some((_, after)) => Bound::Excluded(after.clone()),
        None => Bound::Included((target.collection.clone(), String::new(), String::new())),
    };
    let in_collection = inner
        .objects
        .range((start, Bound::Unbounded))
        .take_while(|((c, _, _), _)| *c == target.collection);
    for (key, o) in in_collection.filter(|((_, ns, name), _)| {
        target.namespace.as_ref().is_none_or(|t| t == ns)
            && name_filter.as_ref().is_none_or(|n| n == name)
    }) {
        if limit.is_some_and(|l| items.len() == l) {
            more = Some(key.clone());
            break;
        }
        items.push((key, o));
    }
    let rv = resume.map_or_else(|| inner.rv.to_string(), |(rv, _)| rv);
    let next = more.and(items.last()).map(|(key, _)| {
        serde_json::to_string(&(rv.clone(), (*key).clone())).expect("keys serialize")
    });
    let items: Vec<&Value> = items.into_iter().map(|(_, o)| o).collect();
    let body = serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": rv, "continue": next},
        "items": items,
    }))
    .expect("lists serialize");
    drop(inner);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn field_name(query: &BTreeMap<String, String>) -> Option<String> {
    query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_string)
}

fn watch(shared: Shared, target: Target, query: BTreeMap<String, String>) -> Response {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let name_filter = field_name(&query);
    let matches = move |e: &WatchEvent| {
        e.collection == target.collection
            && target.namespace.as_ref().is_none_or(|t| *t == e.namespace)
            && name_filter.as_ref().is_none_or(|n| *n == e.name)
    };
    // Subscribe before reading the log so nothing falls between the two.
    let live = shared.events.subscribe();
    let backlog: Vec<WatchEvent> = {
        let inner = shared.inner.lock().unwrap();
        inner
            .log
            .iter()
            .filter(|e| e.rv > from && matches(e))
            .cloned()
            .collect()
    };
    let last = backlog.last().map_or(from, |e| e.rv);
    let live = tokio_stream_from(live).filter(move |e| {
        let keep = e.rv > last && matches(e);
        async move { keep }
    });
    let line = |e: WatchEvent| {
        let mut s = serde_json::to_vec(&json!({"type": e.kind, "object": e.object})).unwrap();
        s.push(b'\n');
        Ok::<_, std::io::Error>(Bytes::from(s))
    };
    let stream = futures_util::stream::iter(backlog)
        .chain(live)
        .map(line)
        .take_until(tokio::time::sleep(timeout));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn tokio_stream_from(
    rx: broadcast::Receiver<WatchEvent>,
) -> impl futures_util::Stream<Item = WatchEvent> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        // Fallen behind (`Lagged`): end the watch, so the client re-watches from the last version
        // it saw (the log still has everything), as after a real watch timeout.
        rx.recv().await.ok().map(|e| (e, rx))
    })
}

fn create(shared: &Shared, target: &Target, mut obj: Value) -> Response {
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name is required".into(),
        );
    };
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = (target.collection.clone(), namespace.clone(), name);
    let mut inner = shared.inner.lock().unwrap();
    if inner.objects.contains_key(&key) {
        return status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} {}/{} already exists", key.0, key.1, key.2),
        );
    }
    inner.uid += 1;
    let uid = format!("00000000-0000-0000-0000-{:012}", inner.uid);
    let meta = &mut obj["metadata"];
    if !namespace.is_empty() {
        meta["namespace"] = namespace.into();
    }
    meta["uid"] = uid.into();
    meta["generation"] = 1.into();
    meta["creationTimestamp"] = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
        .into();
    if let Some(o) = meta.as_object_mut() {
        o.remove("resourceVersion");
    }
    if has_status_subresource(&key.0)
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    fold_string_data(&mut obj);
    prune_by_crd(&inner, &key.0, &mut obj);
    if let Some((code, message)) = too_large(&key.0, &obj) {
        let what = format!("POST {}/{}/{}", key.0, key.1, key.2);
        return refuse(&mut inner, what, code, message);
    }
    let stored = inner.store(shared, "ADDED", key, obj);
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

fn update(
    shared: &Shared,
    target: &Target,
    name: &str,
    next: impl FnOnce(&Value) -> Value,
    check_rv: bool,
) -> Response {
    let key = (
        target.collection.clone(),
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    );
    let mut inner = shared.inner.lock().unwrap();
    let Some(current) = inner.objects.get(&key).cloned() else {
        return not_found(&key);
    };
    let mut proposed = next(&current);
    if check_rv
        && let Some(rv) = proposed["metadata"]["resourceVersion"].as_str()
        && rv
            != current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
    {
        return status_error(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "the object {name} has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    let mut result = current.clone();
    if target.status {
        // The status subresource changes status and nothing else.
        result["status"] = proposed.get("status").cloned().unwrap_or(Value::Null);
        if result["status"].is_null()
            && let Some(o) = result.as_object_mut()
        {
            o.remove("status");
        }
    } else {
        fold_string_data(&mut proposed);
        // Identity and server-set fields stay; the rest is the proposal.
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "namespace",
            "name",
        ] {
            proposed["metadata"][field] = current["metadata"][field].clone();
        }
        if has_status_subresource(&key.0) {
            match current.get("status") {
                Some(s) => proposed["status"] = s.clone(),
                None => {
                    if let Some(o) = proposed.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if spec_part(&proposed) != spec_part(&current) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            proposed["metadata"]["generation"] = generation.into();
        }
        result = proposed;
    }
    prune_by_crd(&inner, &key.0, &mut result);
    if result == current {
        return axum::Json(current).into_response();
    }
    if let Some((code, message)) = too_large(&key.0, &result) {
        let what = format!("update {}/{}/{}", key.0, key.1, key.2);
        return refuse(&mut inner, what, code, message);
    }
    let stored = inner.store(shared, "MODIFIED", key, result);
    axum::Json(stored).into_response()
}

/// `Content-Type` of a server-side apply patch.
const APPLY_PATCH: &str = "application/apply-patch";

/// Collection of CustomResourceDefinitions.
const CRDS: &str = "apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Prunes a custom resource to the schema of its CRD version, as the API server does, when that
/// CRD is stored here (`apis/GROUP/VERSION/PLURAL` → CRD `PLURAL.GROUP`). Without one, nothing
/// changes: tests that never store CRDs see objects as written.
fn prune_by_crd(inner: &Inner, collection: &str, object: &mut Value) {
    let ["apis", group, version, plural] = collection.split('/').collect::<Vec<_>>()[..] else {
        return;
    };
    let crd_key = (CRDS.to_string(), String::new(), format!("{plural}.{group}"));
    if let Some(schema) = inner
        .objects
        .get(&crd_key)
        .and_then(|crd| crate::crd_schema::version_schema(crd, version))
    {
        crate::crd_schema::prune(schema, object);
    }
}

#[cfg(test)]
#[path = "kube_api_tests.rs"]
mod tests;
