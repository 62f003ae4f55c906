//! The pure compiler: custom resources plus the Secrets they reference in, one [`RouterConfig`]
//! plus a verdict per object out.
//!
//! Rules (each rejection names the field and what is wrong with it):
//! - Objects are processed in (kind, namespace, name) order, so input order never changes the
//!   snapshot or its hash. The same kind/namespace/name given twice rejects both copies.
//! - A rejected object is left out alone; everything that does not depend on it still compiles.
//!   A ModelRoute keeps the targets that resolve and is rejected only when none do.
//! - Two ModelRoutes claiming one public model name: the oldest (`creationTimestamp`, then
//!   namespace/name) wins, the others are rejected with `DuplicateModel`.
//! - Two ApiKeys holding the same key are both rejected (`DuplicateKey`): a key must identify one
//!   ApiKey.
//!
//! Choices the rules above leave open:
//! - Every problem of an object is reported at once: the condition reason is the first problem's,
//!   the message lists them all, separated by `; `.
//! - Secret values are read from `stringData` first, then `data`, and trimmed of surrounding
//!   whitespace (`echo key | base64` adds a newline). An empty or non-UTF-8 value is
//!   `InvalidSecret`; a Secret given twice is `DuplicateSecret`. Messages name Secrets and keys,
//!   never values.
//! - A ModelRoute target that is wrong in itself (empty names, weight 0, listed twice) rejects the
//!   whole route (`InvalidTarget`): that is a typo to fix, not a dependency that is not ready yet.
//!   Only targets whose Provider or model cannot be found, or whose Provider was rejected, are
//!   dropped.
//! - Only ModelRoutes that compile on their own compete for a public model name; a broken route
//!   never takes a name from a working one.
//! - `fallbackModels` may name models no route serves (yet): the route stays `Compiled` and the
//!   message says which are not served; the router skips them. Naming the route's own model is
//!   `InvalidFallback`.
//! - Budgets resolve their scope against ApiKeys that compiled; listed names that did not are
//!   reported (`SomeKeysUnresolved`) without rejecting the Budget.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use rust_decimal::Decimal;

use crate::{
    manifest::{Object, ObjectRef},
    money::UsdAmount,
    resources::{
        ApiKey, Budget, Credentials, MockBehaviour, ModelRoute, Provider, ProviderModel,
        ProviderSpec, ProviderTimeouts, ProviderType, SecretKeyRef,
    },
    snapshot::{
        ApiKeyConfig, AzureConfig, BedrockConfig, BudgetConfig, CredentialSource, MockConfig,
        ModelConfig, PriceTable, ProviderConfig, RateLimits, RetryConfig, RouteConfig,
        RouterConfig, SecretValue, TargetConfig, Timeouts, VertexConfig, hash_api_key, key_prefix,
        validate_glob,
    },
};

/// The result of [`compile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The snapshot, sealed (hash set), with `version` 0 for the publisher to assign.
    pub config: RouterConfig,
    /// One result per Provider, ModelRoute, ApiKey and Budget given (Secrets get none).
    pub results: BTreeMap<ObjectRef, ObjectResult>,
}

/// The verdict on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectResult {
    /// The `metadata.generation` of the object the verdict is about.
    pub generation: Option<i64>,
    /// Accepted or rejected, and why.
    pub outcome: ObjectOutcome,
}

/// Accepted (possibly with a warning) or rejected with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// In the snapshot. `message` notes anything partial (e.g. a target that did not resolve).
    Ready {
        /// Condition reason (`Compiled`, or e.g. `SomeTargetsUnresolved`).
        reason: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Left out of the snapshot.
    Rejected {
        /// CamelCase condition reason, e.g. `SecretNotFound`, `InvalidPrice`, `UnknownProvider`.
        reason: &'static str,
        /// Exactly what is wrong, naming the field.
        message: String,
    },
}

impl ObjectOutcome {
    /// Whether the object is in the snapshot.
    pub fn is_ready(&self) -> bool {
        matches!(self, ObjectOutcome::Ready { .. })
    }

    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ObjectOutcome::Ready { reason, .. } | ObjectOutcome::Rejected { reason, .. } => reason,
        }
    }

    /// The condition message.
    pub fn message(&self) -> &str {
        match self {
            ObjectOutcome::Ready { message, .. } | ObjectOutcome::Rejected { message, .. } => {
                message
            }
        }
    }
}

/// The condition reasons [`compile`] reports, as written to `status.conditions[].reason`.
pub mod reason {
    /// Ready: the object is in the snapshot as written.
    pub const COMPILED: &str = "Compiled";
    /// Ready: a ModelRoute serves with only some of its targets.
    pub const SOME_TARGETS_UNRESOLVED: &str = "SomeTargetsUnresolved";
    /// Ready: a Budget names ApiKeys that are missing or not ready.
    pub const SOME_KEYS_UNRESOLVED: &str = "SomeKeysUnresolved";

    /// The same kind/namespace/name was given more than once.
    pub const DUPLICATE_OBJECT: &str = "DuplicateObject";
    /// A referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A referenced Secret exists but lacks the key.
    pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
    /// A referenced Secret value is empty, not UTF-8, or unusable as a credential.
    pub const INVALID_SECRET: &str = "InvalidSecret";
    /// A referenced Secret was given more than once.
    pub const DUPLICATE_SECRET: &str = "DuplicateSecret";

    /// Provider: `credentials` is malformed or not allowed for the type.
    pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
    /// Provider: the type needs credentials and none are set.
    pub const MISSING_CREDENTIALS: &str = "MissingCredentials";
    /// Provider: the type has no default endpoint and `baseURL` is unset.
    pub const MISSING_BASE_URL: &str = "MissingBaseURL";
    /// Provider: `baseURL` is not a usable http(s) URL.
    pub const INVALID_BASE_URL: &str = "InvalidBaseURL";
    /// Provider: `mock` is set on a non-mock type or holds a bad value.
    pub const INVALID_MOCK: &str = "InvalidMock";
    /// Provider: `azure`, `bedrock` or `vertex` is set on another type, missing where required,
    /// or holds a bad value.
    pub const INVALID_PROVIDER_SETTINGS: &str = "InvalidProviderSettings";
    /// Provider: a header name or value is invalid or reserved.
    pub const INVALID_HEADER: &str = "InvalidHeader";
    /// Provider: `models` is empty.
    pub const NO_MODELS: &str = "NoModels";
    /// Provider: a model entry is invalid (name, limits, duplicates).
    pub const INVALID_MODELS: &str = "InvalidModels";
    /// Provider: a price is not a non-negative decimal string.
    pub const INVALID_PRICE: &str = "InvalidPrice";
    /// Provider: a timeout is not a positive duration.
    pub const INVALID_TIMEOUT: &str = "InvalidTimeout";
    /// Provider: `maxConcurrentRequests` is zero.
    pub const INVALID_CONCURRENCY_LIMIT: &str = "InvalidConcurrencyLimit";

    /// ModelRoute: the public model name is empty or has whitespace.
    pub const INVALID_MODEL: &str = "InvalidModel";
    /// ModelRoute: `targets` is empty.
    pub const NO_TARGETS: &str = "NoTargets";
    /// ModelRoute: a target is invalid in itself.
    pub const INVALID_TARGET: &str = "InvalidTarget";
    /// ModelRoute: a target names a Provider that does not exist.
    pub const UNKNOWN_PROVIDER: &str = "UnknownProvider";
    /// ModelRoute: a target names a Provider that was rejected.
    pub const PROVIDER_NOT_READY: &str = "ProviderNotReady";
    /// ModelRoute: a target names a model its Provider does not offer.
    pub const UNKNOWN_PROVIDER_MODEL: &str = "UnknownProviderModel";
    /// ModelRoute: a fallback model is empty, repeated, or the route itself.
    pub const INVALID_FALLBACK: &str = "InvalidFallback";
    /// ModelRoute: `retries` or `timeout` is out of range or not a duration.
    pub const INVALID_RETRIES: &str = "InvalidRetries";
    /// ModelRoute: an older ModelRoute serves the same public model name.
    pub const DUPLICATE_MODEL: &str = "DuplicateModel";

    /// ApiKey: the key is shorter than 16 characters.
    pub const WEAK_KEY: &str = "WeakKey";
    /// ApiKey: the key contains whitespace or characters clients cannot send.
    pub const INVALID_KEY: &str = "InvalidKey";
    /// ApiKey or Budget: a model glob is invalid.
    pub const INVALID_GLOB: &str = "InvalidGlob";
    /// ApiKey: `expiresAt` is not an RFC 3339 timestamp.
    pub const INVALID_EXPIRY: &str = "InvalidExpiry";
    /// ApiKey: a rate limit is zero.
    pub const INVALID_RATE_LIMIT: &str = "InvalidRateLimit";
    /// ApiKey: another ApiKey holds the same key.
    pub const DUPLICATE_KEY: &str = "DuplicateKey";

    /// Budget: `limitUSD` is not a non-negative decimal string.
    pub const INVALID_LIMIT: &str = "InvalidLimit";
    /// Budget: `softLimitPercent` is outside 1..=100.
    pub const INVALID_SOFT_LIMIT: &str = "InvalidSoftLimit";
    /// Budget or ApiKey: `fitMaxTokens.minTokens` is 0.
    pub const INVALID_FIT: &str = "InvalidFitMaxTokens";
}

/// A `fitMaxTokens` whose floor is 0 (a request fitted to no output at all is refused instead).
fn check_fit(fit: Option<&crate::resources::FitMaxTokens>, issues: &mut Issues) {
    if fit.is_some_and(|f| f.min_tokens == 0) {
        issues.add(
            INVALID_FIT,
            "spec.fitMaxTokens.minTokens: must be at least 1",
        );
    }
}

use reason::*;

/// The key inside a generated ApiKey Secret that holds the key clients send.
pub const GENERATED_KEY_SECRET_KEY: &str = "key";

/// The Secret the operator generates for an ApiKey without `spec.secretRef`:
/// `switchboard-apikey-<name>`, in the ApiKey's namespace, holding the key under
/// [`GENERATED_KEY_SECRET_KEY`].
pub fn generated_key_secret_name(api_key_name: &str) -> String {
    format!("switchboard-apikey-{api_key_name}")
}

/// Shortest key (in characters, after trimming) an ApiKey may hold.
pub const MIN_KEY_CHARS: usize = 16;

/// Headers that carry credentials; a Provider sets them through `credentials` only.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// Headers the router itself sets on every upstream request.
const ROUTER_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

/// Compiles objects into a snapshot and a verdict per object. Pure and deterministic.
pub fn compile(objects: &[Object]) -> Compiled {
    let mut groups: BTreeMap<ObjectRef, Vec<&Object>> = BTreeMap::new();
    for object in objects {
        groups.entry(object.object_ref()).or_default().push(object);
    }

    let mut out = Compiler::default();
    let mut providers = Vec::new();
    let mut routes = Vec::new();
    let mut keys = Vec::new();
    let mut budgets = Vec::new();
    for (r, copies) in groups {
        if let [Object::Secret(_), ..] = copies.as_slice() {
            let secrets = copies
                .iter()
                .filter_map(|o| match o {
                    Object::Secret(s) => Some(s),
                    _ => None,
                })
                .collect();
            out.secrets
                .insert((r.namespace.clone(), r.name.clone()), secrets);
            continue;
        }
        if copies.len() > 1 {
            let message = format!(
                "{r} is given {} times; kind, namespace and name must identify one object, so \
                 every copy is left out",
                copies.len()
            );
            out.reject(r, None, Rejection::new(DUPLICATE_OBJECT, message));
            continue;
        }
        match copies[0] {
            Object::Provider(o) => providers.push((r, o)),
            Object::ModelRoute(o) => routes.push((r, o)),
            Object::ApiKey(o) => keys.push((r, o)),
            Object::Budget(o) => budgets.push((r, o)),
            Object::Secret(_) => unreachable!("Secrets are indexed above"),
        }
    }

    // Dependencies first: routes need providers, budgets need keys.
    for (r, p) in providers {
        out.provider(r, p);
    }
    out.routes(routes);
    out.api_keys(keys);
    for (r, b) in budgets {
        out.budget(r, b);
    }

    Compiled {
        config: out.config.seal(),
        results: out.results,
    }
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping

/// Why an object is left out.
#[derive(Debug)]
struct Rejection {
    reason: &'static str,
    message: String,
}

impl Rejection {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// Every problem found in one object; the first one's reason becomes the condition reason.
#[derive(Default)]
struct Issues(Vec<Rejection>);

impl Issues {
    fn add(&mut self, reason: &'static str, message: impl Into<String>) {
        self.0.push(Rejection::new(reason, message));
    }

    fn finish(self) -> Result<(), Rejection> {
        match self.0.first() {
            None => Ok(()),
            Some(first) => Err(Rejection::new(
                first.reason,
                join(self.0.iter().map(|r| r.message.as_str())),
            )),
        }
    }
}

fn join<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts.into_iter().collect::<Vec<_>>().join("; ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    items
        .into_iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Default)]
struct Compiler<'a> {
    config: RouterConfig,
    results: BTreeMap<ObjectRef, ObjectResult>,
    /// Secrets by (namespace, name); more than one entry means the Secret was given twice.
    secrets: BTreeMap<(String, String), Vec<&'a Secret>>,
    /// ApiKeys that compiled, by (namespace, name), with their resolved team, for Budget scopes.
    ready_keys: BTreeMap<(String, String), (&'a ApiKey, Option<String>)>,
}

impl<'a> Compiler<'a> {
    fn ready(&mut self, r: ObjectRef, generation: Option<i64>, reason: &'static str, msg: String) {
        let outcome = ObjectOutcome::Ready {
            reason,
            message: msg,
        };
        self.results.insert(
            r,
            ObjectResult {
                generation,
                outcome,
            },
        );
    }

    fn reject(&mut self, r: ObjectRef, generation: Option<i64>, rejection: Rejection) {
        let outcome = ObjectOutcome::Rejected {
            reason: rejection.reason,
            message: rejection.message,
        };
        self.results.insert(
            r,
            ObjectResult {
                generation,
                outcome,
            },
        );
    }

    /// Why an object another one depends on is not in the snapshot: `Some(reason)` when it was
    /// rejected, `None` when it was not given at all.
    fn rejected_reason(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Option<&'static str> {
        let r = ObjectRef {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match self.results.get(&r).map(|res| &res.outcome) {
            Some(ObjectOutcome::Rejected { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Secrets

    /// The trimmed value of `namespace/r.name[r.key]`. Errors name the Secret and key, never a
    /// value.
    fn secret_value(&self, namespace: &str, r: &SecretKeyRef) -> Result<String, Rejection> {
        let id = format!("{namespace}/{}", r.name);
        let secret = match self
            .secrets
            .get(&(namespace.to_string(), r.name.clone()))
            .map(Vec::as_slice)
        {
            None | Some([]) => {
                return Err(Rejection::new(
                    SECRET_NOT_FOUND,
                    format!("Secret {id} not found"),
                ));
            }
            Some([one]) => *one,
            Some(many) => {
                return Err(Rejection::new(
                    DUPLICATE_SECRET,
                    format!(
                        "Secret {id} is given {} times, so its value is ambiguous",
                        many.len()
                    ),
                ));
            }
        };
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|s| s.as_bytes());
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.as_slice());
        let Some(bytes) = from_string.or(from_data) else {
            let keys: BTreeSet<&String> = secret
                .string_data
                .iter()
                .flat_map(|d| d.keys())
                .chain(secret.data.iter().flat_map(|d| d.keys()))
                .collect();
            let present = if keys.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("it has {}", quoted_list(keys))
            };
            return Err(Rejection::new(
                SECRET_KEY_NOT_FOUND,
                format!("Secret {id} has no key {:?} ({present})", r.key),
            ));
        };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Rejection::new(
                INVALID_SECRET,
                format!("Secret {id} key {:?} is not UTF-8 text", r.key),
            )
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(Rejection::new(
                INVALID_SECRET,
                format!("Secret {id} key {:?} is empty", r.key),
            ));
        }
        Ok(text.to_string())
    }

    // -----------------------------------------------------------------------------------------
    // Providers

    fn provider(&mut self, r: ObjectRef, p: &Provider) {
        let generation = p.metadata.generation;
        match self.compile_provider(&r, p) {
            Ok(config) => {
                let message = plural(config.models.len(), "model", "models");
                self.config
                    .providers
                    .insert(format!("{}/{}", r.namespace, r.name), config);
                self.ready(r, generation, COMPILED, message);
            }
            Err(rejection) => self.reject(r, generation, rejection),
        }
    }

    fn compile_provider(&self, r: &ObjectRef, p: &Provider) -> Result<ProviderConfig, Rejection> {
        let spec = &p.spec;
        let ty = spec.provider_type;
        let mut issues = Issues::default();

        let base_url = if ty == ProviderType::Mock {
            None
        } else {
            match spec.base_url.as_deref().or(ty.default_base_url()) {
                None => {
                    issues.add(
                        MISSING_BASE_URL,
                        format!(
                            "spec.baseURL: required for type {} (it has no default endpoint)",
                            ty.as_str()
                        ),
                    );
                    None
                }
                Some(url) => match normalize_base_url(url) {
                    Ok(url) => Some(url),
                    Err(e) => {
                        issues.add(INVALID_BASE_URL, format!("spec.baseURL: {e}"));
                        None
                    }
                },
            }
        };
        let credential = self.credential(&r.namespace, ty, spec.credentials.as_ref(), &mut issues);
        let headers = headers(&spec.headers, &mut issues);
        let models = models(&spec.models, &mut issues);
        let timeouts = timeouts(spec.timeouts.as_ref(), &mut issues);
        let mock = mock(ty, spec.mock.as_ref(), &mut issues);
        let (azure, bedrock, vertex) = vendor_settings(spec, &mut issues);
        let max_concurrent_requests = spec.max_concurrent_requests;
        if max_concurrent_requests == Some(0) {
            issues.add(
                INVALID_CONCURRENCY_LIMIT,
                "spec.maxConcurrentRequests: must be at least 1 (leave it unset for no limit)",
            );
        }

        issues.finish()?;
        Ok(ProviderConfig {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            provider_type: ty,
            base_url,
            credential,
            headers,
            models,
            data_policy: spec.data_policy.clone(),
            max_concurrent_requests,
            timeouts,
            mock,
            azure,
            bedrock,
            vertex,
        })
    }

    fn credential(
        &self,
        namespace: &str,
        ty: ProviderType,
        credentials: Option<&Credentials>,
        issues: &mut Issues,
    ) -> Option<CredentialSource> {
        use ProviderType::*;
        let Some(c) = credentials else {
            if matches!(ty, Openai | Anthropic | Gemini | AzureOpenAI) {
                issues.add(
                    MISSING_CREDENTIALS,
                    format!(
                        "spec.credentials: type {} needs an API key; set credentials.secretRef \
                         (a Secret key) or credentials.env (an environment variable of the router)",
                        ty.as_str()
                    ),
                );
            }
            return None;
        };
        if ty == Mock {
            issues.add(
                INVALID_CREDENTIALS,
                "spec.credentials: type mock takes no credentials; remove the field",
            );
            return None;
        }
        match (&c.secret_ref, &c.env) {
            (Some(_), Some(_)) => {
                issues.add(
                    INVALID_CREDENTIALS,
                    "spec.credentials: set exactly one of secretRef or env, not both",
                );
                None
            }
            (None, None) => {
                issues.add(
                    INVALID_CREDENTIALS,
                    "spec.credentials: set exactly one of secretRef or env (it is empty)",
                );
                None
            }
            (None, Some(env)) => {
                if is_env_name(env) {
                    Some(CredentialSource::Env(env.clone()))
                } else {
                    issues.add(
                        INVALID_CREDENTIALS,
                        format!(
                            "spec.credentials.env: {env:?} is not an environment variable name \
                             (letters, digits and `_`, not starting with a digit)"
                        ),
                    );
                    None
                }
            }
            (Some(secret_ref), None) => match self.secret_value(namespace, secret_ref) {
                // The router sends the credential in a header: it must be a valid header value.
                // Vertex (a service-account JSON key) and Bedrock (JSON AWS keys) sign with it
                // instead, so any text will do there.
                Ok(value)
                    if matches!(ty, Vertex | Bedrock)
                        || value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
                {
                    Some(CredentialSource::Value(SecretValue::new(value)))
                }
                Ok(_) => {
                    issues.add(
                        INVALID_SECRET,
                        format!(
                            "spec.credentials.secretRef: Secret {namespace}/{} key {:?} contains \
                             characters that cannot be sent in an HTTP header (control or \
                             non-ASCII characters)",
                            secret_ref.name, secret_ref.key
                        ),
                    );
                    None
                }
                Err(e) => {
                    issues.add(
                        e.reason,
                        format!("spec.credentials.secretRef: {}", e.message),
                    );
                    None
                }
            },
        }
    }

    // -----------------------------------------------------------------------------------------
    // ModelRoutes

    fn routes(&mut self, routes: Vec<(ObjectRef, &'a ModelRoute)>) {
        // Each route on its own: the config and any warning about targets that did not resolve.
        let mut drafts = Vec::new();
        for (r, route) in routes {
            match self.compile_route(&r, route) {
                Ok((config, warning)) => drafts.push(RouteDraft {
                    r,
                    route,
                    config,
                    warning,
                }),
                Err(rejection) => self.reject(r, route.metadata.generation, rejection),
            }
        }

        // One route per public model name: oldest first, then namespace/name. `None` timestamps
        // (manifests that never saw an API server) count as newest.
        drafts.sort_by_cached_key(|d| {
            let created = d.route.metadata.creation_timestamp.clone();
            (created.is_none(), created, d.r.clone())
        });
        let mut winners = Vec::new();
        let mut served_by: BTreeMap<String, String> = BTreeMap::new();
        for d in drafts {
            if let Some(winner) = served_by.get(&d.config.model) {
                let message = format!(
                    "spec.model: {:?} is already served by ModelRoute {winner}; the oldest \
                     ModelRoute claiming a name wins (then the first by namespace/name)",
                    d.config.model
                );
                let generation = d.route.metadata.generation;
                self.reject(d.r, generation, Rejection::new(DUPLICATE_MODEL, message));
                continue;
            }
            let id = format!("{}/{}", d.r.namespace, d.r.name);
            served_by.insert(d.config.model.clone(), id);
            winners.push(d);
        }

        for d in winners {
            let mut notes: Vec<String> = d.warning.iter().cloned().collect();
            if d.warning.is_none() {
                notes.push(plural(d.config.targets.len(), "target", "targets"));
            }
            for fallback in &d.config.fallback_models {
                if !served_by.contains_key(fallback) {
                    notes.push(format!("fallback model {fallback:?} is not served yet"));
                }
            }
            let reason = match d.warning {
                Some(_) => SOME_TARGETS_UNRESOLVED,
                None => COMPILED,
            };
            self.config.routes.insert(d.config.model.clone(), d.config);
            let message = join(notes.iter().map(String::as_str));
            self.ready(d.r, d.route.metadata.generation, reason, message);
        }
    }

    /// The route with the targets that resolve, plus a note about those that did not.
    fn compile_route(
        &self,
        r: &ObjectRef,
        route: &ModelRoute,
    ) -> Result<(RouteConfig, Option<String>), Rejection> {
        let spec = &route.spec;
        let mut issues = Issues::default();

        if spec.model.is_empty() {
            issues.add(INVALID_MODEL, "spec.model: must not be empty");
        } else if spec
            .model
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            issues.add(
                INVALID_MODEL,
                format!(
                    "spec.model: {:?} must not contain whitespace or control characters",
                    spec.model
                ),
            );
        }

        if spec.targets.is_empty() {
            issues.add(NO_TARGETS, "spec.targets: at least one target is required");
        }
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (i, t) in spec.targets.iter().enumerate() {
            if t.provider.is_empty() {
                issues.add(
                    INVALID_TARGET,
                    format!("spec.targets[{i}].provider: must not be empty"),
                );
            }
            if t.model.is_empty() {
                issues.add(
                    INVALID_TARGET,
                    format!("spec.targets[{i}].model: must not be empty"),
                );
            }
            if t.weight == Some(0) {
                issues.add(
                    INVALID_TARGET,
                    format!(
                        "spec.targets[{i}].weight: must be at least 1 (remove the target to stop \
                         sending it traffic)"
                    ),
                );
            }
            if let Some(first) = seen.insert((&t.provider, &t.model), i) {
                issues.add(
                    INVALID_TARGET,
                    format!(
                        "spec.targets[{i}]: provider {:?} model {:?} is already listed at \
                         spec.targets[{first}]",
                        t.provider, t.model
                    ),
                );
            }
        }

        let mut fallbacks_seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, f) in spec.fallback_models.iter().enumerate() {
            if f.is_empty() || f.chars().any(|c| c.is_whitespace() || c.is_control()) {
                issues.add(
                    INVALID_FALLBACK,
                    format!(
                        "spec.fallbackModels[{i}]: {f:?} is not a model name (empty or has \
                         whitespace)"
                    ),
                );
            } else if *f == spec.model {
                issues.add(
                    INVALID_FALLBACK,
                    format!("spec.fallbackModels[{i}]: {f:?} is this route's own model"),
                );
            } else if let Some(first) = fallbacks_seen.insert(f, i) {
                issues.add(
                    INVALID_FALLBACK,
                    format!("spec.fallbackModels[{i}]: {f:?} is already listed at index {first}"),
                );
            }
        }
        let retry = route_retry(spec, &mut issues);
        issues.finish()?;

        let mut targets = Vec::new();
        let mut failures = Vec::new();
        for (i, t) in spec.targets.iter().enumerate() {
            match self.resolve_target(&r.namespace, i, t) {
                Ok(target) => targets.push(target),
                Err(e) => failures.push(e),
            }
        }
        let failure_messages = || join(failures.iter().map(|f| f.message.as_str()));
        if targets.is_empty() {
            return Err(Rejection::new(
                failures[0].reason,
                format!("no target resolves: {}", failure_messages()),
            ));
        }
        let warning = (!failures.is_empty()).then(|| {
            format!(
                "{} of {} targets resolve: {}",
                targets.len(),
                spec.targets.len(),
                failure_messages()
            )
        });
        Ok((
            RouteConfig {
                model: spec.model.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                targets,
                fallback_models: spec.fallback_models.clone(),
                sort: spec.sort,
                retry: retry.0,
                deadline_ms: retry.1,
            },
            warning,
        ))
    }

    fn resolve_target(
        &self,
        namespace: &str,
        i: usize,
        t: &crate::resources::RouteTarget,
    ) -> Result<TargetConfig, Rejection> {
        let id = format!("{namespace}/{}", t.provider);
        let Some(provider) = self.config.providers.get(&id) else {
            let field = format!("spec.targets[{i}].provider");
            return Err(
                match self.rejected_reason("Provider", namespace, &t.provider) {
                    Some(reason) => Rejection::new(
                        PROVIDER_NOT_READY,
                        format!("{field}: Provider {id} is not ready: {reason}"),
                    ),
                    None => Rejection::new(
                        UNKNOWN_PROVIDER,
                        format!("{field}: Provider {id} not found"),
                    ),
                },
            );
        };
        if !provider.models.contains_key(&t.model) {
            return Err(Rejection::new(
                UNKNOWN_PROVIDER_MODEL,
                format!(
                    "spec.targets[{i}].model: Provider {id} does not offer {:?} (it offers {})",
                    t.model,
                    quoted_list(provider.models.keys())
                ),
            ));
        }
        Ok(TargetConfig {
            provider: id,
            model: t.model.clone(),
            weight: t.weight.unwrap_or(1),
            priority: t.priority.unwrap_or(0),
        })
    }

    // -----------------------------------------------------------------------------------------
    // ApiKeys

    fn api_keys(&mut self, keys: Vec<(ObjectRef, &'a ApiKey)>) {
        let mut compiled: Vec<(ObjectRef, &ApiKey, ApiKeyConfig)> = Vec::new();
        for (r, key) in keys {
            match self.compile_api_key(&r, key) {
                Ok(config) => compiled.push((r, key, config)),
                Err(rejection) => self.reject(r, key.metadata.generation, rejection),
            }
        }

        let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (r, _, config) in &compiled {
            holders
                .entry(config.key_hash.clone())
                .or_default()
                .push(format!("{}/{}", r.namespace, r.name));
        }
        for (r, key, config) in compiled {
            let generation = key.metadata.generation;
            let id = config.id();
            let others: Vec<&String> = holders[&config.key_hash]
                .iter()
                .filter(|h| **h != id)
                .collect();
            if !others.is_empty() {
                let others = others
                    .iter()
                    .map(|o| format!("ApiKey {o}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "spec.secretRef: the key is also held by {others}; every ApiKey needs its \
                     own key, so all of them are left out"
                );
                self.reject(r, generation, Rejection::new(DUPLICATE_KEY, message));
                continue;
            }
            let mut notes = vec!["key accepted".to_string()];
            if let Some(team) = &config.team {
                notes.push(format!("team {team}"));
            }
            if config.disabled {
                notes.push("disabled".into());
            }
            self.ready_keys.insert(
                (r.namespace.clone(), r.name.clone()),
                (key, config.team.clone()),
            );
            self.config.api_keys.insert(config.key_hash.clone(), config);
            self.ready(r, generation, COMPILED, notes.join(", "));
        }
    }

    fn compile_api_key(&self, r: &ObjectRef, key: &ApiKey) -> Result<ApiKeyConfig, Rejection> {
        let spec = &key.spec;
        let mut issues = Issues::default();
        let field = "spec.secretRef";

        let generated;
        let secret_ref = match &spec.secret_ref {
            Some(s) => s,
            None => {
                generated = SecretKeyRef {
                    name: generated_key_secret_name(&r.name),
                    key: GENERATED_KEY_SECRET_KEY.to_string(),
                };
                &generated
            }
        };
        let value = match self.secret_value(&r.namespace, secret_ref) {
            Ok(value) => Some(value),
            Err(e) => {
                let message = if spec.secret_ref.is_some() {
                    format!("{field}: {}", e.message)
                } else {
                    format!(
                        "{field} is unset, so the key is read from the generated Secret: {}; the \
                         operator generates it for ApiKeys without spec.secretRef (without the \
                         operator, set spec.secretRef to a Secret holding the key)",
                        e.message
                    )
                };
                issues.add(e.reason, message);
                None
            }
        };
        let value = value.filter(|v| {
            let location = format!(
                "Secret {}/{} key {:?}",
                r.namespace, secret_ref.name, secret_ref.key
            );
            let chars = v.chars().count();
            if v.chars()
                .any(|c| c.is_whitespace() || !c.is_ascii_graphic())
            {
                issues.add(
                    INVALID_KEY,
                    format!(
                        "{field}: the key in {location} contains whitespace, control or non-ASCII \
                         characters, which clients cannot send in a header"
                    ),
                );
                false
            } else if chars < MIN_KEY_CHARS {
                issues.add(
                    WEAK_KEY,
                    format!(
                        "{field}: the key in {location} is {chars} characters long; at least \
                         {MIN_KEY_CHARS} are required"
                    ),
                );
                false
            } else {
                true
            }
        });

        let team = spec
            .team
            .clone()
            .or_else(|| {
                key.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("team").cloned())
            })
            .filter(|t| !t.is_empty());

        globs("spec.allowedModels", &spec.allowed_models, &mut issues);
        globs("spec.deniedModels", &spec.denied_models, &mut issues);

        let expires_at =
            spec.expires_at
                .as_ref()
                .and_then(|s| match s.parse::<jiff::Timestamp>() {
                    Ok(ts) => Some(ts.as_second()),
                    Err(e) => {
                        issues.add(
                            INVALID_EXPIRY,
                            format!(
                                "spec.expiresAt: {s:?} is not an RFC 3339 timestamp such as \
                             \"2027-01-01T00:00:00Z\" ({e})"
                            ),
                        );
                        None
                    }
                });

        let rate_limits = spec.rate_limits.clone().unwrap_or_default();
        let RateLimits {
            requests_per_minute,
            tokens_per_minute,
            concurrent_requests,
        } = &rate_limits;
        for (name, value) in [
            ("requestsPerMinute", requests_per_minute.map(u64::from)),
            ("tokensPerMinute", *tokens_per_minute),
            ("concurrentRequests", concurrent_requests.map(u64::from)),
        ] {
            if value == Some(0) {
                issues.add(
                    INVALID_RATE_LIMIT,
                    format!("spec.rateLimits.{name}: must be at least 1 (omit it for no limit)"),
                );
            }
        }
        check_fit(spec.fit_max_tokens.as_ref(), &mut issues);

        issues.finish()?;
        let value = value.expect("issues are empty only when the key resolved");
        Ok(ApiKeyConfig {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            team,
            key_hash: hash_api_key(&value),
            prefix: key_prefix(&value),
            allowed_models: spec.allowed_models.clone(),
            denied_models: spec.denied_models.clone(),
            rate_limits,
            provider_policy: spec.provider_policy.clone().unwrap_or_default(),
            expires_at,
            disabled: spec.disabled,
            fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Budgets

    fn budget(&mut self, r: ObjectRef, b: &Budget) {
        let generation = b.metadata.generation;
        match self.compile_budget(&r, b) {
            Ok((config, reason, message)) => {
                self.config
                    .budgets
                    .insert(format!("{}/{}", r.namespace, r.name), config);
                self.ready(r, generation, reason, message);
            }
            Err(rejection) => self.reject(r, generation, rejection),
        }
    }

    fn compile_budget(
        &self,
        r: &ObjectRef,
        b: &Budget,
    ) -> Result<(BudgetConfig, &'static str, String), Rejection> {
        let spec = &b.spec;
        let scope = &spec.scope;
        let mut issues = Issues::default();

        let limit = match spec.limit_usd.value() {
            Ok(limit) => limit,
            Err(e) => {
                issues.add(INVALID_LIMIT, format!("spec.limitUSD: {e}"));
                Decimal::ZERO
            }
        };
        if let Some(p) = spec.soft_limit_percent
            && !(1..=100).contains(&p)
        {
            issues.add(
                INVALID_SOFT_LIMIT,
                format!("spec.softLimitPercent: {p} is not between 1 and 100"),
            );
        }
        globs("spec.scope.models", &scope.models, &mut issues);
        check_fit(spec.fit_max_tokens.as_ref(), &mut issues);
        issues.finish()?;

        let ns = r.namespace.as_str();
        let team = scope.team.as_deref().filter(|t| !t.is_empty());
        let mut keys = BTreeSet::new();
        let in_namespace = self.ready_keys.range((ns.to_string(), String::new())..);
        for ((key_ns, key_name), (key, key_team)) in in_namespace {
            if key_ns != ns {
                break;
            }
            let labels = key.metadata.labels.as_ref();
            let named = scope.api_keys.is_empty() || scope.api_keys.contains(key_name);
            let labelled = scope
                .match_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            let teamed = team.is_none_or(|t| key_team.as_deref() == Some(t));
            if named && labelled && teamed {
                keys.insert(format!("{key_ns}/{key_name}"));
            }
        }

        let unresolved: Vec<String> = scope
            .api_keys
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|name| {
                !self
                    .ready_keys
                    .contains_key(&(ns.to_string(), (*name).clone()))
            })
            .map(|name| match self.rejected_reason("ApiKey", ns, name) {
                Some(reason) => format!("ApiKey {ns}/{name} is not ready: {reason}"),
                None => format!("ApiKey {ns}/{name} not found"),
            })
            .collect();

        let covers = if keys.is_empty() {
            "covers no keys yet".to_string()
        } else {
            format!("covers {}", plural(keys.len(), "key", "keys"))
        };
        let (reason, message) = if unresolved.is_empty() {
            (COMPILED, covers)
        } else {
            (
                SOME_KEYS_UNRESOLVED,
                format!(
                    "{covers}; spec.scope.apiKeys: {}",
                    join(unresolved.iter().map(String::as_str))
                ),
            )
        };

        Ok((
            BudgetConfig {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                limit_usd: limit,
                window: spec.window,
                api_keys: keys,
                models: scope.models.clone(),
                soft_limit_percent: spec.soft_limit_percent,
                action: spec.action,
                failure_mode: spec.failure_mode,
                fit_min_tokens: spec.fit_max_tokens.as_ref().and_then(|f| f.floor()),
            },
            reason,
            message,
        ))
    }
}

/// A ModelRoute that compiled on its own, before duplicate public names are settled.
struct RouteDraft<'a> {
    r: ObjectRef,
    route: &'a ModelRoute,
    config: RouteConfig,
    /// Which targets did not resolve, when some did not.
    warning: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Provider fields

/// Checks an http(s) base URL and strips trailing slashes. Never echoes a URL holding userinfo.
fn normalize_base_url(url: &str) -> Result<String, String> {
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if authority.contains('@') {
        return Err(
            "must not contain user:password@ credentials; use spec.credentials for the API key"
                .into(),
        );
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} must not contain whitespace or control characters"
        ));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "{url:?} must not contain a query or fragment; the router appends API paths to it"
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => ("", None),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{url:?} has an invalid port {port:?}"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 9110 `tchar`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn headers(spec: &BTreeMap<String, String>, issues: &mut Issues) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in spec {
        let field = format!("spec.headers[{name:?}]");
        let lower = name.to_ascii_lowercase();
        if !is_header_name(name) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: not a valid HTTP header name"),
            );
        } else if CREDENTIAL_HEADERS.contains(&lower.as_str()) {
            issues.add(
                INVALID_HEADER,
                format!(
                    "{field}: carries credentials; put the key in a Secret and reference it from \
                     spec.credentials.secretRef"
                ),
            );
        } else if ROUTER_HEADERS.contains(&lower.as_str()) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: set by the router on every request; remove it"),
            );
        } else if let Some(first) = seen.insert(lower, name) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: same header as {first:?} (header names are case-insensitive)"),
            );
        }
        // Values are not echoed: someone may have pasted a key here.
        if !value
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        {
            issues.add(
                INVALID_HEADER,
                format!(
                    "{field}: the value may hold only visible ASCII characters, spaces and tabs"
                ),
            );
        }
    }
    spec.clone()
}

fn models(spec: &[ProviderModel], issues: &mut Issues) -> BTreeMap<String, ModelConfig> {
    if spec.is_empty() {
        issues.add(NO_MODELS, "spec.models: at least one model is required");
    }
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in spec.iter().enumerate() {
        let path = format!("spec.models[{i}]");
        if m.name.is_empty() {
            issues.add(INVALID_MODELS, format!("{path}.name: must not be empty"));
        } else if m.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            issues.add(
                INVALID_MODELS,
                format!(
                    "{path}.name: {:?} must not contain whitespace or control characters",
                    m.name
                ),
            );
        } else if let Some(first) = seen.insert(&m.name, i) {
            issues.add(
                INVALID_MODELS,
                format!(
                    "{path}.name: {:?} is already listed at spec.models[{first}]",
                    m.name
                ),
            );
        }
        for (field, value) in [
            ("contextLength", m.context_length),
            ("maxOutputTokens", m.max_output_tokens),
        ] {
            if value == Some(0) {
                issues.add(
                    INVALID_MODELS,
                    format!("{path}.{field}: must be greater than 0 when set"),
                );
            }
        }

        let p = &m.pricing;
        let mut price = |field: &str, v: &Option<UsdAmount>| -> Option<Decimal> {
            let v = v.as_ref()?;
            v.value()
                .map_err(|e| issues.add(INVALID_PRICE, format!("{path}.pricing.{field}: {e}")))
                .ok()
        };
        let input = price("inputUSDPerMillion", &p.input_usd_per_million).unwrap_or_default();
        let output = price("outputUSDPerMillion", &p.output_usd_per_million).unwrap_or_default();
        let pricing = PriceTable {
            input_per_million: input,
            output_per_million: output,
            cached_input_per_million: price(
                "cachedInputUSDPerMillion",
                &p.cached_input_usd_per_million,
            )
            .unwrap_or(input),
            cache_write_per_million: price(
                "cacheWriteUSDPerMillion",
                &p.cache_write_usd_per_million,
            )
            .unwrap_or(input),
            reasoning_per_million: price("reasoningUSDPerMillion", &p.reasoning_usd_per_million)
                .unwrap_or(output),
            per_request: price("perRequestUSD", &p.per_request_usd).unwrap_or_default(),
            per_image: price("perImageUSD", &p.per_image_usd).unwrap_or_default(),
        };
        out.insert(
            m.name.clone(),
            ModelConfig {
                pricing,
                context_length: m.context_length,
                max_output_tokens: m.max_output_tokens,
                capabilities: m.capabilities.iter().copied().collect(),
            },
        );
    }
    out
}

/// A duration string as whole milliseconds.
/// A ModelRoute's retry passes and overall deadline.
fn route_retry(
    spec: &crate::resources::ModelRouteSpec,
    issues: &mut Issues,
) -> (RetryConfig, Option<u64>) {
    let mut retry = RetryConfig::default();
    if let Some(policy) = &spec.retries {
        if let Some(n) = policy.attempts {
            if n > 5 {
                issues.add(
                    INVALID_RETRIES,
                    format!("spec.retries.attempts: {n} is more than 5"),
                );
            }
            retry.attempts = n.min(5);
        }
        for (field, value, slot) in [
            ("backoff", &policy.backoff, &mut retry.backoff_ms),
            ("maxBackoff", &policy.max_backoff, &mut retry.max_backoff_ms),
        ] {
            if let Some(v) = value {
                match duration_ms(v) {
                    Ok(ms) => *slot = ms,
                    Err(e) => issues.add(INVALID_RETRIES, format!("spec.retries.{field}: {e}")),
                }
            }
        }
    }
    let deadline = spec.timeout.as_ref().and_then(|t| match duration_ms(t) {
        Ok(0) => {
            issues.add(
                INVALID_RETRIES,
                format!("spec.timeout: {t:?} must be at least 1ms"),
            );
            None
        }
        Ok(ms) => Some(ms),
        Err(e) => {
            issues.add(INVALID_RETRIES, format!("spec.timeout: {e}"));
            None
        }
    });
    (retry, deadline)
}

fn duration_ms(value: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(value).map_err(|e| {
        format!("{value:?} is not a duration such as \"10s\", \"1500ms\" or \"2m\" ({e})")
    })?;
    Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn timeouts(spec: Option<&ProviderTimeouts>, issues: &mut Issues) -> Timeouts {
    let mut out = Timeouts::default();
    let Some(spec) = spec else {
        return out;
    };
    for (field, value, slot) in [
        ("connect", &spec.connect, &mut out.connect_ms),
        ("firstToken", &spec.first_token, &mut out.first_token_ms),
        ("idle", &spec.idle, &mut out.idle_ms),
        ("total", &spec.total, &mut out.total_ms),
    ] {
        let Some(value) = value else { continue };
        match duration_ms(value) {
            Ok(0) => issues.add(
                INVALID_TIMEOUT,
                format!("spec.timeouts.{field}: {value:?} must be at least 1ms"),
            ),
            Ok(ms) => *slot = ms,
            Err(e) => issues.add(INVALID_TIMEOUT, format!("spec.timeouts.{field}: {e}")),
        }
    }
    out
}

/// The `azure`, `bedrock` and `vertex` settings: each only with its own type; Bedrock needs a
/// region, Vertex a location.
fn vendor_settings(
    spec: &ProviderSpec,
    issues: &mut Issues,
) -> (
    Option<AzureConfig>,
    Option<BedrockConfig>,
    Option<VertexConfig>,
) {
    let ty = spec.provider_type;
    let mut wrong_type = |field: &str, owner: ProviderType| {
        issues.add(
            INVALID_PROVIDER_SETTINGS,
            format!(
                "spec.{field}: only valid with type {} (this Provider's type is {})",
                owner.as_str(),
                ty.as_str()
            ),
        );
    };
    if spec.azure.is_some() && ty != ProviderType::AzureOpenAI {
        wrong_type("azure", ProviderType::AzureOpenAI);
    }
    if spec.bedrock.is_some() && ty != ProviderType::Bedrock {
        wrong_type("bedrock", ProviderType::Bedrock);
    }
    if spec.vertex.is_some() && ty != ProviderType::Vertex {
        wrong_type("vertex", ProviderType::Vertex);
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    let azure = (ty == ProviderType::AzureOpenAI).then(|| {
        let api_version = spec
            .azure
            .as_ref()
            .and_then(|a| a.api_version.clone())
            .unwrap_or_else(|| "2024-10-21".into());
        if !token(&api_version) {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                format!("spec.azure.apiVersion: {api_version:?} is not an API version"),
            );
        }
        AzureConfig { api_version }
    });
    let bedrock = match (ty, &spec.bedrock) {
        (ProviderType::Bedrock, Some(b)) if token(&b.region) => Some(BedrockConfig {
            region: b.region.clone(),
        }),
        (ProviderType::Bedrock, _) => {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                "spec.bedrock.region: required for type bedrock (the region requests are signed \
                 for, e.g. us-east-1)",
            );
            None
        }
        _ => None,
    };
    let vertex = match (ty, &spec.vertex) {
        (ProviderType::Vertex, Some(v))
            if token(&v.location) && v.project.as_deref().is_none_or(token) =>
        {
            Some(VertexConfig {
                project: v.project.clone(),
                location: v.location.clone(),
            })
        }
        (ProviderType::Vertex, _) => {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                "spec.vertex: type vertex needs vertex.location (e.g. us-central1) and, unless \
                 the service-account key names it, vertex.project",
            );
            None
        }
        _ => None,
    };
    (azure, bedrock, vertex)
}

fn mock(ty: ProviderType, spec: Option<&MockBehaviour>, issues: &mut Issues) -> Option<MockConfig> {
    if ty != ProviderType::Mock {
        if spec.is_some() {
            issues.add(
                INVALID_MOCK,
                format!(
                    "spec.mock: only valid with type mock (this Provider's type is {})",
                    ty.as_str()
                ),
            );
        }
        return None;
    }
    let spec = spec.cloned().unwrap_or_default();
    let chunk_chars = spec.chunk_chars.unwrap_or(8);
    if chunk_chars == 0 {
        issues.add(INVALID_MOCK, "spec.mock.chunkChars: must be at least 1");
    }
    let chunk_delay_ms = match spec.chunk_delay.as_deref().map(duration_ms) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(e)) => {
            issues.add(INVALID_MOCK, format!("spec.mock.chunkDelay: {e}"));
            0
        }
    };
    let embedding_dimensions = spec.embedding_dimensions.unwrap_or(8);
    if !(1..=4096).contains(&embedding_dimensions) {
        issues.add(
            INVALID_MOCK,
            format!(
                "spec.mock.embeddingDimensions: {embedding_dimensions} is not between 1 and 4096"
            ),
        );
    }
    Some(MockConfig {
        reply: spec.reply,
        chunk_chars,
        chunk_delay_ms,
        embedding_dimensions,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared field checks

fn globs(path: &str, globs: &[String], issues: &mut Issues) {
    for (i, g) in globs.iter().enumerate() {
        if let Err(e) = validate_glob(g) {
            issues.add(INVALID_GLOB, format!("{path}[{i}]: {e}"));
        }
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
