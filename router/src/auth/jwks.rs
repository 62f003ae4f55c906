//! Issuers' signing keys, fetched once and kept: at start (or when an issuer first appears in the
//! config), then every [`REFRESH_INTERVAL`], and on demand when a token names a key the issuer
//! did not have, at most once per [`ON_DEMAND_INTERVAL`] and one fetch at a time (requests
//! waiting for it share its result), so a flood of tokens with made-up key ids costs one fetch.
//! A failed fetch keeps the keys already held. Keys the snapshot carries (the cluster's
//! ServiceAccount issuer, as the operator read it) are used as they are and never fetched.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::{ArcSwap, ArcSwapOption};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use switchboard_api::identity::{IssuerConfig, KeySource};

use super::jwt::{KeySet, TokenError};

/// How often keys are fetched again while all is well.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest wait before a fetch is retried after a failure (doubled up to the refresh interval).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(15);
/// At most one fetch per this interval for tokens naming a key the issuer does not have.
pub const ON_DEMAND_INTERVAL: Duration = Duration::from_secs(30);
/// Longest a fetch (discovery and key set together) may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Told of every key fetch: the issuer and `ok` or `error`.
type OnFetch = Box<dyn Fn(&str, &'static str) + Send + Sync>;

/// Every trusted issuer's keys, kept across config versions while the issuer and where its keys
/// come from stay the same.
pub struct Issuers {
    client: reqwest::Client,
    by_issuer: ArcSwap<HashMap<String, Arc<IssuerKeys>>>,
    on_fetch: OnFetch,
}

impl Issuers {
    /// No issuers yet. `on_fetch(issuer, outcome)` is told of every fetch (`ok` or `error`).
    pub fn new(on_fetch: impl Fn(&str, &'static str) + Send + Sync + 'static) -> Issuers {
        crate::providers::clients::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(FETCH_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a client with these settings builds");
        Issuers {
            client,
            by_issuer: ArcSwap::default(),
            on_fetch: Box::new(on_fetch),
        }
    }

    /// Keeps the keys of `issuers` (a config's trusted issuers): an issuer whose key source is
    /// unchanged keeps what it holds, a new one starts fetching (when a runtime is running; else
    /// on its first token), and issuers no longer trusted are dropped.
    pub fn sync(self: &Arc<Self>, issuers: &BTreeMap<String, IssuerConfig>) {
        let current = self.by_issuer.load();
        let mut next = HashMap::with_capacity(issuers.len());
        for (iss, config) in issuers {
            let kept = current
                .get(iss)
                .filter(|k| k.source == config.keys)
                .cloned();
            let keys = kept.unwrap_or_else(|| {
                let keys = IssuerKeys::new(iss, &config.keys, Arc::downgrade(self));
                keys.keep_fresh();
                keys
            });
            next.insert(iss.clone(), keys);
        }
        self.by_issuer.store(Arc::new(next));
    }

    /// The keys of a trusted issuer.
    pub fn get(&self, issuer: &str) -> Option<Arc<IssuerKeys>> {
        self.by_issuer.load().get(issuer).cloned()
    }
}

/// One issuer's keys and how they are kept fresh.
pub struct IssuerKeys {
    issuer: String,
    source: KeySource,
    keys: ArcSwapOption<KeySet>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// Fetches finished (either way): a request that waited for one does not start another.
    fetches_done: AtomicU64,
    /// Whether the task keeping the keys fresh runs.
    refreshing: AtomicBool,
    owner: Weak<Issuers>,
}

#[derive(Default)]
struct FetchState {
    last_on_demand: Option<Instant>,
    /// The key set URL discovery found, kept between fetches.
    jwks_uri: Option<String>,
}

impl IssuerKeys {
    fn new(issuer: &str, source: &KeySource, owner: Weak<Issuers>) -> Arc<IssuerKeys> {
        let keys = match source {
            KeySource::Jwks(doc) => match KeySet::from_jwks(doc) {
                Ok((set, skipped)) => {
                    log_skipped(issuer, &skipped);
                    Some(Arc::new(set))
                }
                Err(e) => {
                    tracing::warn!(
                        issuer,
                        "the issuer's key set in the config is unusable: {e}"
                    );
                    None
                }
            },
            KeySource::Discovery | KeySource::JwksUri(_) => None,
        };
        Arc::new(IssuerKeys {
            issuer: issuer.into(),
            source: source.clone(),
            keys: ArcSwapOption::new(keys),
            fetch: tokio::sync::Mutex::default(),
            fetches_done: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            owner,
        })
    }

    /// Whether its keys are fetched (rather than given in the config).
    pub fn fetched(&self) -> bool {
        !matches!(self.source, KeySource::Jwks(_))
    }

    /// Whether the key `kid` is held now.
    pub fn holds(&self, kid: &str) -> bool {
        self.keys.load().as_ref().is_some_and(|k| k.has_kid(kid))
    }

    /// Starts the task keeping fetched keys fresh, once, when a runtime runs (else on the first
    /// token).
    fn keep_fresh(self: &Arc<Self>) {
        if !self.fetched() || self.refreshing.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current()
            && !self.refreshing.swap(true, Ordering::SeqCst)
        {
            handle.spawn(refresh(Arc::downgrade(self)));
        }
    }

    /// The key set holding the key for a token with this `kid` and `alg`: from what is held, or
    /// after a fetch when the key is not there and a fetch on demand is due.
    pub async fn keys_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<KeySet>, TokenError> {
        if let Some(set) = self.keys.load_full()
            && set.find(kid, alg).is_some()
        {
            return Ok(set);
        }
        if self.fetched() {
            self.keep_fresh();
            self.fetch_on_demand().await;
        }
        match self.keys.load_full() {
            Some(set) if set.find(kid, alg).is_some() => Ok(set),
            Some(_) => Err(TokenError::UnknownKey {
                issuer: self.issuer.clone(),
                kid: kid.map_or_else(|| "(no kid)".into(), |k| k.chars().take(64).collect()),
                alg: format!("{alg:?}"),
            }),
            None => Err(TokenError::KeysUnavailable(self.issuer.clone())),
        }
    }

    /// Fetches unless a fetch finished while this one waited for its turn, or one on demand ran
    /// less than [`ON_DEMAND_INTERVAL`] ago.
    async fn fetch_on_demand(&self) {
        let seen = self.fetches_done.load(Ordering::SeqCst);
        let mut state = self.fetch.lock().await;
        if self.fetches_done.load(Ordering::SeqCst) != seen {
            return;
        }
        if state
            .last_on_demand
            .is_some_and(|t| t.elapsed() < ON_DEMAND_INTERVAL)
        {
            return;
        }
        state.last_on_demand = Some(Instant::now());
        let _ = self.fetch_with(&mut state).await;
    }

    /// One fetch, holding the fetch lock: the keys are replaced only by a usable key set.
    async fn fetch_with(&self, state: &mut FetchState) -> Result<(), String> {
        let result = match self.owner.upgrade() {
            Some(owner) => {
                let r = tokio::time::timeout(FETCH_TIMEOUT, self.download(&owner, state))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                (owner.on_fetch)(&self.issuer, if r.is_ok() { "ok" } else { "error" });
                r
            }
            None => Err("the router is shutting down".into()),
        };
        self.fetches_done.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(set) => {
                tracing::debug!(issuer = %self.issuer, keys = set.len(), "fetched the issuer's keys");
                self.keys.store(Some(Arc::new(set)));
                Ok(())
            }
            Err(e) => {
                let held = self.keys.load().as_ref().map_or(0, |k| k.len());
                tracing::warn!(issuer = %self.issuer, keys_kept = held, "fetching the issuer's keys failed: {e}");
                Err(e)
            }
        }
    }

    async fn download(&self, owner: &Issuers, state: &mut FetchState) -> Result<KeySet, String> {
        let uri = match (&self.source, &state.jwks_uri) {
            (KeySource::JwksUri(uri), _) | (KeySource::Discovery, Some(uri)) => uri.clone(),
            (KeySource::Discovery, None) => {
                let uri = discover(&owner.client, &self.issuer).await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
            (KeySource::Jwks(_), _) => return Err("its keys are not fetched".into()),
        };
        let doc = match get_json(&owner.client, &uri).await {
            Ok(doc) => doc,
            Err(e) => {
                // Discovered again next time: the issuer may have moved its keys.
                state.jwks_uri = None;
                return Err(e);
            }
        };
        let (set, skipped) = KeySet::from_jwks(&doc).map_err(|e| format!("{uri}: {e}"))?;
        log_skipped(&self.issuer, &skipped);
        if set.is_empty() {
            return Err(format!("{uri} holds no usable signing key"));
        }
        Ok(set)
    }
}

fn log_skipped(issuer: &str, skipped: &[String]) {
    if !skipped.is_empty() {
        tracing::info!(issuer, "keys not used: {}", skipped.join("; "));
    }
}

/// The key set URL of an issuer, from its OpenID discovery document, which must name the same
/// issuer (OpenID Connect Discovery 1.0, section 4.3).
async fn discover(client: &reqwest::Client, issuer: &str) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = get_json(client, &url).await?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!("{url} names another issuer"));
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| format!("{url} names no jwks_uri"))
}

/// GETs a JSON document of at most [`MAX_DOCUMENT_BYTES`].
async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let mut resp = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url} is not JSON: {e}"))
}

/// Keeps an issuer's keys fresh until it is dropped: a fetch now, then every
/// [`REFRESH_INTERVAL`], sooner (from [`RETRY_INTERVAL`], doubling) after failures.
async fn refresh(keys: Weak<IssuerKeys>) {
    let mut retry = RETRY_INTERVAL;
    loop {
        let Some(k) = keys.upgrade() else { return };
        let ok = {
            let mut state = k.fetch.lock().await;
            k.fetch_with(&mut state).await.is_ok()
        };
        drop(k);
        let wait = if ok {
            retry = RETRY_INTERVAL;
            REFRESH_INTERVAL
        } else {
            let wait = retry;
            retry = (retry * 2).min(REFRESH_INTERVAL);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}
