//! Prometheus metrics of the operator, served on the admin port.

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// Version of the snapshot this replica publishes.
    pub snapshot_version: IntGauge,
    /// 1 while this replica holds the Lease.
    pub leader: IntGauge,
    /// Compile rounds run.
    pub reconciles: IntCounterVec,
    /// Writes to the API server by kind of write and result.
    pub writes: IntCounterVec,
    /// Objects left out of the snapshot, by kind and reason.
    pub rejected_objects: IntGaugeVec,
    /// Routers connected to the config stream.
    pub stream_clients: IntGauge,
    /// Spend reads from the ledger, by result.
    pub spend_reads: IntCounterVec,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let snapshot_version = IntGauge::new(
            "switchboard_operator_snapshot_version",
            "Version of the router snapshot this replica publishes",
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "switchboard_operator_leader",
            "1 while this replica holds the leader Lease",
        )
        .expect("valid metric");
        let reconciles = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_reconciles_total",
                "Compile rounds, by whether they published a new snapshot",
            ),
            &["published"],
        )
        .expect("valid metric");
        let writes = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_writes_total",
                "Writes to the API server by kind (status, event, key_secret, snapshot_secret) and result",
            ),
            &["kind", "result"],
        )
        .expect("valid metric");
        let rejected_objects = IntGaugeVec::new(
            Opts::new(
                "switchboard_operator_rejected_objects",
                "Objects left out of the snapshot, by kind and reason",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let stream_clients = IntGauge::new(
            "switchboard_operator_stream_clients",
            "Routers connected to the config stream",
        )
        .expect("valid metric");
        let spend_reads = IntCounterVec::new(
            Opts::new(
                "switchboard_operator_spend_reads_total",
                "Reads of spend from the ledger (leader only), by result (ok, error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        for m in [
            Box::new(snapshot_version.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(leader.clone()),
            Box::new(reconciles.clone()),
            Box::new(writes.clone()),
            Box::new(rejected_objects.clone()),
            Box::new(stream_clients.clone()),
            Box::new(spend_reads.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        Metrics {
            registry,
            snapshot_version,
            leader,
            reconciles,
            writes,
            rejected_objects,
            stream_clients,
            spend_reads,
        }
    }

    /// Counts one write.
    pub fn write(&self, kind: &str, ok: bool) {
        self.writes
            .with_label_values(&[kind, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Counts one spend read.
    pub fn spend_read(&self, ok: bool) {
        self.spend_reads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding never fails");
        String::from_utf8(buf).expect("exposition is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
