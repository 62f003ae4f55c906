//! Watches of the five kinds, as one stream of changes: each object added or modified, each
//! deleted, and when a kind has listed everything once. A re-list after a broken watch (the
//! watcher's `Init` … `InitDone`) is turned into changes too: what it lists is applied, and what
//! was known but is not listed any more is deleted — the controller never sees whole lists, only
//! what changed.

use std::{collections::HashSet, fmt::Debug};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use switchboard_api::{
    Object, ObjectRef,
    resources::{ApiKey, Budget, ModelRoute, Provider},
};
use tokio::sync::mpsc;

/// One change seen by a watch.
#[derive(Debug)]
pub enum Change {
    /// An object was added or modified (or listed).
    Apply(Box<Object>),
    /// An object was deleted.
    Delete(ObjectRef),
    /// The kind has listed everything once (sent after each complete list).
    Listed(&'static str),
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn reference(kind: &'static str, namespace: Option<String>, name: String) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: namespace.unwrap_or_else(|| "default".into()),
        name,
    }
}

/// Watches one kind, sending its changes to `tx` until the receiver is gone.
async fn watch_kind<K>(api: Api<K>, kind: &'static str, tx: mpsc::Sender<Change>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    Object: From<K>,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures_util::pin_mut!(stream);
    // What the last complete list and the watch since showed, to find what a re-list drops.
    let mut known: HashSet<ObjectRef> = HashSet::new();
    let mut listing: HashSet<ObjectRef> = HashSet::new();
    while let Some(event) = stream.next().await {
        let changes = match event {
            Err(e) => {
                tracing::warn!(kind, "watch failed (retrying): {e}");
                continue;
            }
            Ok(watcher::Event::Init) => {
                listing.clear();
                Vec::new()
            }
            Ok(watcher::Event::InitApply(o)) => {
                listing.insert(reference(kind, o.namespace(), o.name_any()));
                vec![Change::Apply(Box::new(o.into()))]
            }
            Ok(watcher::Event::InitDone) => {
                let mut out: Vec<Change> = known
                    .difference(&listing)
                    .cloned()
                    .map(Change::Delete)
                    .collect();
                known = std::mem::take(&mut listing);
                out.push(Change::Listed(kind));
                out
            }
            Ok(watcher::Event::Apply(o)) => {
                known.insert(reference(kind, o.namespace(), o.name_any()));
                vec![Change::Apply(Box::new(o.into()))]
            }
            Ok(watcher::Event::Delete(o)) => {
                let r = reference(kind, o.namespace(), o.name_any());
                known.remove(&r);
                vec![Change::Delete(r)]
            }
        };
        for change in changes {
            if tx.send(change).await.is_err() {
                return;
            }
        }
    }
}

/// Starts watches of the five kinds (in `namespace`, or all), sending their changes to `tx`.
pub fn start(
    client: &Client,
    namespace: Option<&str>,
    tx: mpsc::Sender<Change>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(watch_kind::<Provider>(
            api(client, namespace),
            "Provider",
            tx.clone(),
        )),
        tokio::spawn(watch_kind::<ModelRoute>(
            api(client, namespace),
            "ModelRoute",
            tx.clone(),
        )),
        tokio::spawn(watch_kind::<ApiKey>(
            api(client, namespace),
            "ApiKey",
            tx.clone(),
        )),
        tokio::spawn(watch_kind::<Budget>(
            api(client, namespace),
            "Budget",
            tx.clone(),
        )),
        tokio::spawn(watch_kind::<Secret>(api(client, namespace), "Secret", tx)),
    ]
}

/// The kinds [`start`] watches.
pub const KINDS: [&str; 5] = ["Provider", "ModelRoute", "ApiKey", "Budget", "Secret"];
