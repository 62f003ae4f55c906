//! Prometheus metrics of the operator, served on the admin port.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
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
    /// Time to recompile a round of changes.
    pub compile_seconds: Histogram,
    /// Writes waiting in the leader's outbox, by queue.
    pub outbox: IntGaugeVec,
    /// Events dropped because too many were waiting.
    pub events_dropped: IntCounter,
    /// Shard Secrets the stored snapshot takes.
    pub snapshot_shards: IntGauge,
    /// Compressed bytes of the stored snapshot.
    pub snapshot_bytes: IntGauge,
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
            compile_seconds: r.histogram(
                "switchboard_operator_compile_seconds",
                "Time to recompile a round of changes (the first round compiles everything)",
                vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
            ),
            outbox: r.int_gauge_vec(
                "switchboard_operator_outbox",
                "Writes waiting in the leader's outbox, by queue (key_secret, urgent, bulk, event)",
                &["queue"],
            ),
            events_dropped: r.int_counter(
                "switchboard_operator_events_dropped_total",
                "Events dropped because too many were waiting to be written",
            ),
            snapshot_shards: r.int_gauge(
                "switchboard_operator_snapshot_shards",
                "Shard Secrets the stored snapshot takes (leader)",
            ),
            snapshot_bytes: r.int_gauge(
                "switchboard_operator_snapshot_bytes",
                "Compressed bytes of the stored snapshot, all shards (leader)",
            ),
            registry: r,
        }
    }

    /// Sets the outbox gauges.
    pub fn outbox(&self, keys: usize, urgent: usize, bulk: usize, events: usize) {
        for (queue, n) in [
            ("key_secret", keys),
            ("urgent", urgent),
            ("bulk", bulk),
            ("event", events),
        ] {
            self.outbox
                .with_label_values(&[queue])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts Events dropped.
    pub fn events_dropped(&self, n: usize) {
        self.events_dropped.inc_by(n as u64);
    }

    /// Records what the stored snapshot takes.
    pub fn snapshot_stored(&self, shards: usize, bytes: u64) {
        self.snapshot_shards
            .set(i64::try_from(shards).unwrap_or(i64::MAX));
        self.snapshot_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
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
