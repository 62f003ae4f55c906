//! `switchboard-router`: runs the router on manifest files (standalone) or on the snapshots the
//! operator pushes (`--operator-url`).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use clap::Parser;
use switchboard_ledger::{
    Ledger,
    lease::{LeaseLedger, LeaseSettings},
    local::LocalLedger,
    redis::RedisLedger,
};
use switchboard_router::{
    admin::auth::AdminAuth,
    cli::{Cli, LedgerMode},
    config::{issuers::TrustedIssuers, operator},
    load_manifests,
    response_store::{ResponseStore, StoreSettings, memory::MemoryStore, redis::RedisStore},
    routing::health::HealthPolicy,
    server::{self, connection::ConnectionLimits},
    state::{AppState, Settings, release_freed_memory},
    usage::{self, UsageOptions, retention::Retention},
};
use switchboard_telemetry::OtlpOptions;
use tokio::signal::unix::{SignalKind, signal};

/// mimalloc instead of glibc's malloc: fewer instructions per allocation on the request path,
/// throughput that holds under sustained load (glibc's fell run after run), and freed memory
/// goes back to the system. Built with `no_thp`: with transparent huge pages its arenas cost
/// about 20 MB more idle and 20 KB more per open stream.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let export = OtlpOptions {
        endpoint: cli.otlp_endpoint.clone(),
        protocol: cli.otlp_protocol.clone(),
        service_name: "switchboard-router".into(),
    };
    // Lives to the end of `main`, so queued log lines and spans are written before exit.
    let mut telemetry = switchboard_telemetry::init(&export, cli.log_format, &cli.log)?;
    let OpenLedger {
        ledger,
        persisted: local_ledger,
    } = open_ledger(&cli)?;
    tracing::info!(ledger = ledger.kind(), "spend ledger ready");
    let settings = settings(&cli)?;
    tracing::info!("{}", settings.admin.describe());
    let responses: Arc<dyn ResponseStore> = match &cli.redis_url {
        Some(url) => Arc::new(RedisStore::new(url, cli.response_ttl)?),
        None => Arc::new(MemoryStore::new(settings.response_store.clone())),
    };
    tracing::info!(store = responses.kind(), "response store ready");
    let state = AppState::with_stores(settings, ledger, responses);
    let usage = match usage_options(&cli) {
        Some(options) => Some(usage::start(&state.metrics, &state.usage, options).await?),
        None => {
            tracing::info!("usage store off (--usage-store off): requests are not recorded");
            None
        }
    };
    if let Some(level) = telemetry.log_level.take() {
        let _ = state.log_level.set(level);
    }
    let (stop_follower, follower_stop) = tokio::sync::watch::channel(false);
    match &cli.operator_url {
        Some(url) => {
            let token = operator::read_token(
                cli.operator_token_file.as_deref(),
                cli.operator_token.as_deref(),
            )?;
            let source = operator::OperatorSource::new(url, token);
            operator::start(
                state.clone(),
                source,
                cli.snapshot_file.clone(),
                follower_stop,
            );
        }
        None => load_manifests(&state, &cli.manifests, &cli.namespace, 1)?,
    }
    // The compile (or the stored snapshot's decoding) ran on this thread, which idles from now on.
    release_freed_memory();
    let server = server::start(
        state.clone(),
        cli.listen,
        cli.admin_listen,
        cli.drain_timeout,
    )
    .await?;
    serve_until_stopped(&cli, &state).await?;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_follower.send(true);
    server.shutdown().await;
    // Every request has ended; record what they spent before exiting.
    state.settler.drain(cli.drain_timeout).await;
    if let Some(usage) = usage {
        usage.shutdown().await;
    }
    if let Some(l) = local_ledger {
        l.flush()?;
    }
    // Unused slices go back to the other replicas now rather than when they lapse.
    if let Err(e) = state.settler.ledger().close().await {
        tracing::warn!("the ledger did not close cleanly (its slices lapse on their own): {e}");
    }
    telemetry.shutdown().await;
    Ok(())
}

/// The process settings from the flags.
fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let admin_token = cli
        .admin_token_file
        .as_deref()
        .map(AdminAuth::read_token_file)
        .transpose()?;
    Ok(Settings {
        max_request_bytes: cli.max_request_bytes,
        health: HealthPolicy {
            consecutive_failures: cli.eject_after_failures.max(1),
            base_ejection: cli.ejection_time,
            ..HealthPolicy::default()
        },
        trace_content: cli.trace_content,
        requests_per_client: cli.upstream_requests_per_connection.max(1),
        connections: ConnectionLimits {
            header_timeout: cli.header_timeout,
            idle_timeout: cli.idle_timeout,
            min_body_rate: cli.min_body_rate,
            max_connections: cli.max_connections.max(1),
        },
        allow_empty_reload: cli.allow_empty_reload,
        admin: AdminAuth::new(
            admin_token.as_deref(),
            cli.admin_trust_proxy_headers,
            cli.admin_protect_metrics,
        ),
        trusted_issuers: TrustedIssuers::from_flags(
            &cli.trust_issuers,
            &cli.trust_issuer_jwks,
            &cli.token_audiences,
        )?,
        response_store: StoreSettings {
            ttl: cli.response_ttl,
            max_bytes: cli.response_store_bytes,
        },
        cache: switchboard_router::cache::CacheSettings {
            max_bytes: cli.cache_bytes,
            redis_url: cli.redis_url.clone(),
            semantic_bytes: cli.cache_index_bytes,
        },
    })
}

/// The usage store's settings from the flags; `None` with `--usage-store off`.
fn usage_options(cli: &Cli) -> Option<UsageOptions> {
    let keep = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    Some(UsageOptions {
        url: cli.usage_store_url()?,
        spill_file: cli.usage_spill_file(),
        spill_max_bytes: cli.usage_spill_max_bytes,
        retention: Retention {
            records: keep(cli.usage_retention),
            rollups: keep(cli.usage_rollup_retention),
        },
        drain: cli.drain_timeout,
    })
}

/// The spend ledger the flags name, and the local one again when it persists to a state file.
struct OpenLedger {
    ledger: Arc<dyn Ledger>,
    /// Flushed at exit.
    persisted: Option<Arc<LocalLedger>>,
}

/// The spend ledger the flags name: Redis, a local one persisted to the state file, or an
/// in-memory one.
fn open_ledger(cli: &Cli) -> anyhow::Result<OpenLedger> {
    let (ledger, persisted): (Arc<dyn Ledger>, _) = match (&cli.redis_url, &cli.state_file) {
        (Some(url), _) => match cli.ledger_mode {
            LedgerMode::Lease => (LeaseLedger::redis(url, LeaseSettings::default())?, None),
            LedgerMode::PerRequest => (Arc::new(RedisLedger::new(url)?), None),
        },
        (None, Some(path)) => {
            let l = LocalLedger::open(path)?;
            (l.clone(), Some(l))
        }
        (None, None) => (LocalLedger::in_memory(), None),
    };
    Ok(OpenLedger { ledger, persisted })
}

/// Serves until SIGTERM or SIGINT; in standalone mode SIGHUP reloads the manifests (as the next
/// config version), keeping the current config — and its version — when they do not load.
async fn serve_until_stopped(cli: &Cli, state: &AppState) -> anyhow::Result<()> {
    let version = AtomicU64::new(1);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    // After a reload, when to release the replaced config's memory again: it is dropped on the
    // retiring thread once its last request ends, but its pages belong to this thread.
    let mut release_at: Option<tokio::time::Instant> = None;
    loop {
        let release = async {
            match release_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = release => {
                release_at = None;
                release_freed_memory();
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv(), if cli.operator_url.is_none() => {
                let next = version.load(Ordering::SeqCst).saturating_add(1);
                match load_manifests(state, &cli.manifests, &cli.namespace, next) {
                    Ok(()) => {
                        version.store(next, Ordering::SeqCst);
                        tracing::info!(version = next, "reloaded manifests");
                        release_freed_memory();
                        release_at =
                            Some(tokio::time::Instant::now() + std::time::Duration::from_secs(1));
                    }
                    Err(e) => tracing::error!("reload failed, keeping the current config: {e:#}"),
                }
            }
        }
    }
}
