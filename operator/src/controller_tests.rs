use switchboard_api::parse_manifests;

use super::*;

#[test]
fn only_referenced_secrets_are_compiled() {
    let objects = parse_manifests(
        r#"
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: openai, namespace: a}
spec: {type: openai, credentials: {secretRef: {name: openai-key, key: k}}, models: [{name: m}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {name: env, namespace: a}
spec: {type: openai, credentials: {env: OPENAI_API_KEY}, models: [{name: m}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: alice, namespace: b}
spec: {}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {name: bob, namespace: b}
spec: {secretRef: {name: bobs, key: key}}
"#,
        "default",
    )
    .unwrap()
    .objects;
    let providers: Vec<&Provider> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Provider(p) => Some(p),
            _ => None,
        })
        .collect();
    let keys: Vec<&ApiKey> = objects
        .iter()
        .filter_map(|o| match o {
            Object::ApiKey(k) => Some(k),
            _ => None,
        })
        .collect();
    let wanted = referenced_secrets(providers, keys);
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        wanted,
        BTreeSet::from([
            pair("a", "openai-key"),
            pair("b", "switchboard-apikey-alice"),
            pair("b", "bobs"),
        ])
    );
}

/// Collects the spans created in this test binary, with the thread that created them (tests
/// filter by their own thread). Installed once as the global subscriber: a thread-local default
/// races with the callsite-interest cache when tests run in parallel.
mod spans {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex, OnceLock},
        thread::ThreadId,
    };

    use tracing::{
        Subscriber,
        field::{Field, Visit},
        span::{Attributes, Id},
    };
    use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

    /// One recorded span.
    #[derive(Clone, Debug)]
    pub struct Recorded {
        pub fields: BTreeMap<String, String>,
        pub parent: Option<String>,
        pub thread: ThreadId,
    }

    /// The binary-wide collector, installed on first use.
    pub fn collector() -> Collector {
        static GLOBAL: OnceLock<Collector> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                use tracing_subscriber::layer::SubscriberExt;
                let c = Collector::default();
                tracing::subscriber::set_global_default(
                    tracing_subscriber::registry().with(c.clone()),
                )
                .expect("no other global subscriber in this test binary");
                c
            })
            .clone()
    }

    /// Spans created by the calling thread.
    pub fn mine(c: &Collector) -> Vec<Recorded> {
        let me = std::thread::current().id();
        c.0.lock()
            .unwrap()
            .iter()
            .filter(|s| s.thread == me)
            .cloned()
            .collect()
    }

    /// The collecting layer.
    #[derive(Clone, Default)]
    pub struct Collector(pub Arc<Mutex<Vec<Recorded>>>);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let text = format!("{value:?}");
            self.0
                .insert(field.name().to_string(), text.trim_matches('"').to_string());
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            let span = ctx.span(id);
            let parent = span
                .as_ref()
                .and_then(|s| s.parent())
                .and_then(|p| p.extensions().get::<String>().cloned());
            if let Some(span) = span {
                span.extensions_mut()
                    .insert(fields.get("otel.name").cloned().unwrap_or_default());
            }
            self.0.lock().unwrap().push(Recorded {
                fields,
                parent,
                thread: std::thread::current().id(),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reconcile scenarios: the exact API calls one round makes (controller-rs fixtures pattern).

#[path = "controller_scenarios_tests.rs"]
mod scenarios;
