//! `switchboard-operator`: runs the operator in a cluster (or against any kubeconfig context).

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use switchboard_operator::{
    Config,
    cli::{Cli, split_namespaced},
    controller, crds,
    leader::LeaseSettings,
};
use switchboard_telemetry::OtlpOptions;
use tokio::signal::unix::{SignalKind, signal};

fn router_token(cli: &Cli) -> anyhow::Result<String> {
    if let Some(file) = &cli.router_token_file {
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the router token file {}", file.display()))?;
        return Ok(token.trim().to_string());
    }
    cli.router_token
        .clone()
        .map(|t| t.trim().to_string())
        .context("a router token is required: --router-token-file FILE or SWITCHBOARD_OPERATOR_ROUTER_TOKEN")
}

fn identity(cli: &Cli) -> String {
    cli.identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("switchboard-operator-{:08x}", rand::random::<u32>()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let export = OtlpOptions {
        endpoint: cli.otlp_endpoint.clone(),
        protocol: cli.otlp_protocol.clone(),
        service_name: "switchboard-operator".into(),
    };
    // The live filter (`log_level`) is not exposed by the operator's admin server (yet).
    let telemetry = switchboard_telemetry::init(&export, cli.log_format, &cli.log)?;
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let snapshot_secret = split_namespaced(&cli.snapshot_secret)
        .map_err(anyhow::Error::msg)
        .context("--snapshot-secret")?;
    let identity = identity(&cli);
    let lease_duration = cli.lease_duration.max(Duration::from_secs(2));
    let config = Config {
        controller: controller::Settings {
            namespace: cli.namespace.clone(),
            snapshot_secret: snapshot_secret.clone(),
            identity: identity.clone(),
            debounce: cli.debounce,
            resync: Duration::from_secs(300),
            spend_interval: cli.spend_interval.max(Duration::from_millis(100)),
            max_shards: cli.snapshot_max_shards.max(1),
            limits: switchboard_operator::outbox::Limits {
                qps: cli.status_qps.max(0.1),
                burst: cli.status_burst.max(1),
                concurrency: 8,
            },
        },
        lease: LeaseSettings {
            namespace: cli
                .lease_namespace
                .clone()
                .unwrap_or_else(|| snapshot_secret.0.clone()),
            name: cli.lease_name.clone(),
            identity,
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 7,
        },
        listen: cli.listen,
        admin_listen: cli.admin_listen,
        router_token: router_token(&cli)?,
        keep_alive: Duration::from_secs(15),
        redis_url: cli.redis_url.clone(),
    };
    let client = kube::Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or KUBECONFIG)")?;
    if cli.apply_crds {
        crds::apply(client.clone(), env!("CARGO_PKG_VERSION"))
            .await
            .context("--apply-crds")?;
    }
    let running = switchboard_operator::start(client, config).await?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: releasing the lease");
    running.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}
