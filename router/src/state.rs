//! Shared state of a router process.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use switchboard_ledger::{Ledger, local::LocalLedger};
use tokio::sync::watch;

use crate::{
    admin::auth::AdminAuth,
    auth::Tokens,
    budgets::settler::Settler,
    config::{issuers::TrustedIssuers, runtime::Runtime},
    observability::{generations::GenerationStore, metrics::Metrics},
    providers::clients::{ClientPool, REQUESTS_PER_CLIENT},
    response_store::{ResponseStore, StoreSettings, memory::MemoryStore},
    routing::health::{Health, HealthPolicy},
    server::connection::ConnectionLimits,
};

/// Asks the allocator to give the memory this thread freed back to the system now.
///
/// mimalloc (the router binary's global allocator) keeps freed pages for reuse and purges them
/// only after a delay checked while the thread that freed them allocates again; a config
/// compile or swap frees hundreds of megabytes at 100k keys on a thread that then idles (the
/// main thread, the retiring thread), so without this the router held the compile's peak (~500
/// MB) forever. `mi_collect(true)` collects the calling thread's heap and purges the free
/// pages of every arena (process wide), so call it on the thread that ran the compile or
/// dropped the old config, after the swap, never on a request's path. It walks only this
/// thread's pages and free arena ranges: microseconds for a small config.
// The router's one exception to the workspace's ban on unsafe code (see router/Cargo.toml).
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time;
    // with another global allocator (the library's tests) it collects mimalloc's unused heap.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Sends a replaced runtime to the retiring thread, which drops it once nothing else holds it.
fn retire(old: Arc<Runtime>) {
    static RETIRING: OnceLock<std::sync::mpsc::Sender<Arc<Runtime>>> = OnceLock::new();
    let sender = RETIRING.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Runtime>>();
        let spawned = std::thread::Builder::new()
            .name("switchboard-retire".into())
            .spawn(move || {
                let mut held: Vec<Arc<Runtime>> = Vec::new();
                loop {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(old) => held.push(old),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    // The last holder: dropping it here frees it on this thread.
                    let before = held.len();
                    held.retain(|r| Arc::strong_count(r) > 1);
                    if held.len() < before {
                        release_freed_memory();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the retiring thread; old configs are dropped in place: {e}"
            );
        }
        tx
    });
    // Without the thread the send fails and the runtime is dropped here.
    let _ = sender.send(old);
}

/// Settings that do not come from the config snapshot.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest accepted request body in bytes.
    pub max_request_bytes: usize,
    /// When targets are ejected.
    pub health: HealthPolicy,
    /// Record prompts and completions on traces (span events); off by default.
    pub trace_content: bool,
    /// Requests one upstream HTTP client carries before another is used (see
    /// [`REQUESTS_PER_CLIENT`]).
    pub requests_per_client: usize,
    /// Timeouts and the cap of client connections, on both listeners.
    pub connections: ConnectionLimits,
    /// Accept a manifest reload that drops every provider, route or key being served.
    pub allow_empty_reload: bool,
    /// Who may call the admin listener's protected endpoints.
    pub admin: AdminAuth,
    /// Issuers whose tokens a standalone router trusts.
    pub trusted_issuers: TrustedIssuers,
    /// How long stored Responses are kept, and the in-process store's size.
    pub response_store: StoreSettings,
    /// Where cached answers are kept and how many.
    pub cache: crate::cache::CacheSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_request_bytes: 10 * 1024 * 1024,
            health: HealthPolicy::default(),
            trace_content: false,
            requests_per_client: REQUESTS_PER_CLIENT,
            connections: ConnectionLimits::default(),
            allow_empty_reload: false,
            admin: AdminAuth::default(),
            trusted_issuers: TrustedIssuers::default(),
            response_store: StoreSettings::default(),
            cache: crate::cache::CacheSettings::default(),
        }
    }
}

/// How long a read of recorded state (`/metrics`, a generation record) waits for the records of
/// responses already sent (see [`AppState::records_written`]).
pub const RECORDS_WAIT: Duration = Duration::from_millis(100);

/// What every handler shares: the current config (swapped atomically), metrics, upstream clients.
pub struct AppState {
    runtime: ArcSwapOption<Runtime>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Upstream HTTP clients, kept across config versions.
    pub clients: ClientPool,
    /// Health of upstream targets, kept across config versions.
    pub health: Health,
    /// Recent generations for `/api/v1/generation`.
    pub generations: GenerationStore,
    /// The spend and rate-limit ledger, with background settlement.
    pub settler: Arc<Settler>,
    /// Trusted issuers' keys and the tokens verified, kept across config versions.
    pub tokens: Tokens,
    /// Stored Responses (`store: true`).
    pub responses: Arc<dyn ResponseStore>,
    /// Cached answers (docs/caching.md).
    pub cache: crate::cache::Cache,
    /// Process settings.
    pub settings: Settings,
    /// The live log filter, when this process installed one (the binary does; tests need not).
    pub log_level: std::sync::OnceLock<switchboard_telemetry::LogLevel>,
    /// The usage store's recorder, once [`crate::usage::start`] ran (absent with
    /// `--usage-store off`).
    pub usage: std::sync::OnceLock<Arc<crate::usage::Recorder>>,
    /// Access records handed off by [`crate::observability::access::Access::finish_after_response`], and how
    /// many of them are written: both only grow.
    records_handed_off: AtomicU64,
    records_written: AtomicU64,
    /// Turns true when the drain timeout cuts the streams still open.
    streams_cut: watch::Sender<bool>,
}

impl AppState {
    /// The usage store, for the usage APIs: 404 (`usage_store_off`) when it is off.
    pub fn usage_store(&self) -> Result<&Arc<crate::usage::store::Store>, crate::error::ApiError> {
        self.usage
            .get()
            .map(|r| r.store())
            .ok_or(crate::error::ApiError::UsageStoreOff)
    }

    /// State with no config yet (not ready), counting spend in memory only.
    pub fn new(settings: Settings) -> Arc<AppState> {
        AppState::with_ledger(settings, LocalLedger::in_memory())
    }

    /// State with no config yet, counting spend in `ledger`, storing Responses in process.
    pub fn with_ledger(settings: Settings, ledger: Arc<dyn Ledger>) -> Arc<AppState> {
        let responses = Arc::new(MemoryStore::new(settings.response_store.clone()));
        AppState::with_stores(settings, ledger, responses)
    }

    /// State with no config yet, counting spend in `ledger` and storing Responses in
    /// `responses`.
    pub fn with_stores(
        settings: Settings,
        ledger: Arc<dyn Ledger>,
        responses: Arc<dyn ResponseStore>,
    ) -> Arc<AppState> {
        let metrics = Metrics::new();
        let gauges = metrics.budget_gauges();
        let fetches = metrics.jwks_fetches.clone();
        let cache = crate::cache::Cache::new(&settings.cache, metrics.cache_metrics());
        Arc::new(AppState {
            responses,
            cache,
            runtime: ArcSwapOption::empty(),
            tokens: Tokens::new(move |issuer, outcome| {
                fetches.with_label_values(&[issuer, outcome]).inc()
            }),
            metrics,
            clients: ClientPool::new(settings.requests_per_client),
            health: Health::new(settings.health.clone()),
            generations: GenerationStore::default(),
            settler: Settler::start(ledger, gauges),
            log_level: std::sync::OnceLock::new(),
            usage: std::sync::OnceLock::new(),
            records_handed_off: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            streams_cut: watch::Sender::new(false),
            settings,
        })
    }

    /// Ends every stream still open with an error chunk (the drain timeout was reached).
    pub fn cut_streams(&self) {
        self.streams_cut.send_replace(true);
    }

    /// Turns true when [`AppState::cut_streams`] is called.
    pub fn streams_cut(&self) -> watch::Receiver<bool> {
        self.streams_cut.subscribe()
    }

    /// Whether the drain timeout has cut open requests.
    pub fn cutting(&self) -> bool {
        *self.streams_cut.borrow()
    }

    /// Counts an access record handed off to be written after its response.
    pub(crate) fn record_handed_off(&self) {
        self.records_handed_off.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a handed-off access record as written.
    pub(crate) fn record_written(&self) {
        self.records_written.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits (at most `limit`) until as many access records are written as had been handed off
    /// when called, so that what a client reads right after its response (metrics, its
    /// generation record) includes that response.
    pub async fn records_written(&self, limit: Duration) {
        let target = self.records_handed_off.load(Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        while self.records_written.load(Ordering::SeqCst) < target {
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::task::yield_now().await;
            if self.records_written.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    /// The config being served, if any.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.load_full()
    }

    /// Starts serving a new config version. The one it replaces is dropped on the retiring
    /// thread once the last request using it is done, never on a request's thread (dropping a
    /// hundred thousand keys takes tens of milliseconds).
    pub fn install(&self, runtime: Runtime) {
        self.metrics
            .config_version
            .set(i64::try_from(runtime.config.version).unwrap_or(i64::MAX));
        tracing::info!(
            version = runtime.config.version,
            hash = %runtime.config.hash,
            providers = runtime.config.providers.len(),
            routes = runtime.config.routes.len(),
            api_keys = runtime.config.api_keys.len(),
            issuers = runtime.config.issuers.len(),
            "serving config"
        );
        self.tokens.sync(&runtime.config);
        if let Some(old) = self.runtime.swap(Some(Arc::new(runtime))) {
            retire(old);
        }
    }
}
