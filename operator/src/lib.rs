//! Switchboard's operator: watches Provider, ModelRoute, ApiKey and Budget objects (and the
//! Secrets they reference), compiles them with the incremental `switchboard_api::Compiler` into
//! the router snapshot, pushes every new version to routers over an authenticated stream (as a
//! delta when the change is small), stores it in sharded Secrets for routers starting while the
//! operator is down, and — on the elected leader only — writes status, Events and generated client
//! keys at a bounded rate, and (with `--redis-url`) the spend the routers recorded in the shared
//! ledger into Budget and ApiKey status.
//!
//! Layout: [`status`], [`keys`], [`publish`] and [`leader::decide`] decide (pure, unit-tested);
//! [`writer`] and [`leader::Elector`] talk to the API server; [`watches`] turns watches into
//! changes; [`controller`] runs the loop; [`outbox`] (status and Events), [`store`] (snapshot
//! Secrets) and [`figures`] (spend) are the leader's writers; [`push`] serves routers; [`crds`]
//! keeps the CRDs current (`--apply-crds`); [`start`] wires it all for `main` and the end-to-end
//! tests.

pub mod cli;
pub mod controller;
pub mod crds;
pub mod figures;
#[cfg(test)]
mod fixtures;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod outbox;
pub mod publish;
pub mod push;
pub mod status;
pub mod store;
pub mod watches;
pub mod writer;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use kube::Client;
use switchboard_ledger::redis::RedisLedger;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    controller::{Controller, Shared},
    leader::{Elector, LeaseSettings},
    metrics::Metrics,
    outbox::Outbox,
    push::{AdminState, PushState},
    store::StoreSettings,
    writer::Writer,
};

/// Resolves when `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Everything the operator needs besides the Kubernetes client.
#[derive(Clone, Debug)]
pub struct Config {
    /// Controller settings.
    pub controller: controller::Settings,
    /// Lease settings.
    pub lease: LeaseSettings,
    /// Address of the push server.
    pub listen: SocketAddr,
    /// Address of the admin server.
    pub admin_listen: SocketAddr,
    /// Token routers must present.
    pub router_token: String,
    /// Keep-alive interval on the config stream.
    pub keep_alive: Duration,
    /// Redis ledger the routers share (`redis://host:port/db`); spend is written into status only
    /// with one.
    pub redis_url: Option<String>,
}

/// A running operator.
pub struct Running {
    /// Address of the push server.
    pub push_addr: SocketAddr,
    /// Address of the admin server.
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops serving and watching, releases the Lease, and waits for everything to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true.
fn serve(
    listener: TcpListener,
    app: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("server failed: {e}");
        }
    })
}

/// Binds both servers and starts the election and the controller.
pub async fn start(client: Client, config: Config) -> anyhow::Result<Running> {
    anyhow::ensure!(
        !config.router_token.trim().is_empty(),
        "a router token is required (--router-token-file or SWITCHBOARD_OPERATOR_ROUTER_TOKEN)"
    );
    let push = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
    let ledger = config
        .redis_url
        .as_deref()
        .map(RedisLedger::new)
        .transpose()?;
    let push_addr = push.local_addr()?;
    let admin_addr = admin.local_addr()?;

    let metrics = Arc::new(Metrics::new());
    let (snapshots_tx, snapshots) = watch::channel(None);
    let (leader_tx, leader) = watch::channel(false);
    let (shutdown, shutdown_rx) = watch::channel(false);

    // Open streams never end by themselves: shut them down with the server by ending the
    // snapshot channel (the sender is dropped when the controller stops).
    let push_state = PushState {
        token: config.router_token.trim().into(),
        snapshots: snapshots.clone(),
        metrics: metrics.clone(),
        keep_alive: config.keep_alive,
    };
    let admin_state = AdminState {
        snapshots,
        metrics: metrics.clone(),
        leader: leader.clone(),
    };
    let mut tasks = vec![
        serve(push, push::push_app(push_state), shutdown_rx.clone()),
        serve(admin, push::admin_app(admin_state), shutdown_rx.clone()),
    ];

    let elector = Elector::new(client.clone(), config.lease.clone());
    tasks.push(tokio::spawn(elector.run(leader_tx, shutdown_rx.clone())));

    let settings = config.controller.clone();
    let shared = Arc::new(Shared::default());
    let outbox = Outbox::new();
    let writer = Writer::new(client.clone(), &settings.identity);
    tasks.push(tokio::spawn(outbox::run(
        outbox.clone(),
        shared.clone(),
        writer.clone(),
        metrics.clone(),
        settings.limits,
        leader.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(store::run(
        StoreSettings {
            secret: settings.snapshot_secret.clone(),
            max_shards: settings.max_shards,
        },
        writer,
        metrics.clone(),
        snapshots_tx.subscribe(),
        leader.clone(),
        shutdown_rx.clone(),
    )));
    let controller = Controller::new(
        client,
        settings.clone(),
        metrics.clone(),
        shared.clone(),
        outbox.clone(),
        snapshots_tx,
        leader.clone(),
    );
    if let Some(ledger) = ledger {
        tasks.push(tokio::spawn(figures::run(
            shared,
            outbox,
            Arc::new(ledger),
            metrics,
            settings.spend_interval,
            controller.new_spenders(),
            leader,
            shutdown_rx.clone(),
        )));
    }
    let rx = shutdown_rx.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = controller.run(rx).await {
            tracing::error!("controller stopped: {e:#}");
        }
    }));
    tracing::info!(%push_addr, %admin_addr, identity = %config.lease.identity, "operator started");
    Ok(Running {
        push_addr,
        admin_addr,
        shutdown,
        tasks,
    })
}
