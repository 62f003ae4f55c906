//! Prometheus metrics of the operator, served on the admin port.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use switchboard_telemetry::metrics::Registry;

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
        let r = Registry::new();
        Metrics {
            snapshot_version: r.int_gauge(
                "switchboard_operator_snapshot_version",
                "Version of the router snapshot this replica publishes",
            ),
            leader: r.int_gauge(
                "switchboard_operator_leader",
                "1 while this replica holds the leader Lease",
            ),
            reconciles: r.int_counter_vec(
                "switchboard_operator_reconciles_total",
                "Compile rounds, by whether they published a new snapshot",
                &["published"],
            ),
            writes: r.int_counter_vec(
                "switchboard_operator_writes_total",
                "Writes to the API server by kind (status, event, key_secret, snapshot_secret) and result",
                &["kind", "result"],
            ),
            rejected_objects: r.int_gauge_vec(
                "switchboard_operator_rejected_objects",
                "Objects left out of the snapshot, by kind and reason",
                &["kind", "reason"],
            ),
            stream_clients: r.int_gauge(
                "switchboard_operator_stream_clients",
                "Routers connected to the config stream",
            ),
            spend_reads: r.int_counter_vec(
                "switchboard_operator_spend_reads_total",
                "Reads of spend from the ledger (leader only), by result (ok, error)",
                &["result"],
            ),
            registry: r,
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
        self.registry.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
