//! The one way usage records are lost (docs/usage.md): the store is down and the spill file cannot
//! take them (its disk is full). Driven through the real writer — a router whose usage store is a
//! Postgres nobody listens on and whose spill file is `/dev/full`, where every write fails with
//! ENOSPC — each request's record is counted as dropped on `/metrics`, an ERROR log line says so,
//! and the chart's alert watches exactly that counter.

mod support;

use std::{
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use support::{TestRouter, free_port, get_text, hi, manifests, usage_options};
use switchboard_router::state::Settings;

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The value of `switchboard_usage_records_total{stage="…"}` in a `/metrics` text.
fn stage(metrics: &str, stage: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("switchboard_usage_records_total{")
                && l.contains(&format!("stage=\"{stage}\""))
        })
        .and_then(|l| l.rsplit_once(' '))
        .map_or(0, |(_, v)| v.parse::<f64>().unwrap() as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_the_spill_disk_cannot_take_are_dropped_with_an_error_and_a_metric() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let down = format!("postgres://switchboard@127.0.0.1:{}/usage", free_port());
    let full = PathBuf::from("/dev/full");
    let (router, _state, usage) = TestRouter::start_with_usage(
        &manifests(&[]),
        Settings::default(),
        usage_options(&down, full),
    )
    .await;
    const N: u64 = 3;
    for _ in 0..N {
        let resp = router
            .chat(serde_json::json!({"model": "test/mock", "messages": hi()}))
            .await;
        assert_eq!(resp.status(), 200, "requests are served whatever the store");
    }
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = get_text(&router.http, &router.admin("/metrics")).await;
        if stage(&metrics, "dropped") >= N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stage(&metrics, "dropped"), N, "{metrics}");
    assert_eq!(stage(&metrics, "written"), 0);
    assert_eq!(stage(&metrics, "spilled"), 0);

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("usage records dropped"))
        .unwrap_or_else(|| panic!("no drop logged in:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("spill file"), "says why: {line}");

    // The chart's alert fires on this counter's stage.
    let rule = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/switchboard/templates/prometheusrule.yaml"),
    )
    .unwrap();
    let alert = rule
        .split_once("alert: SwitchboardUsageRecordsDropped")
        .expect("the alert exists")
        .1;
    let expr = alert.split_once("labels:").unwrap().0;
    assert!(
        expr.contains("increase(switchboard_usage_records_total{")
            && expr.contains("stage=\"dropped\"")
            && expr.contains("> 0"),
        "{expr}"
    );

    usage.shutdown().await;
    router.server.shutdown().await;
}
