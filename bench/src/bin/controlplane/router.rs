//! The release router as a process: standalone on the manifests (start to ready, SIGHUP to the
//! new version served) and from the stored shard files alone (start to ready), with the RSS of
//! each.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use switchboard_api::{
    compile::compile_owned,
    snapshot::{SnapshotText, shards::MANIFEST_KEY},
    testing::scale::{self, Scale},
};
use switchboard_operator::publish::ShardStore;

use crate::{ms, thousands};

pub struct RouterRow {
    keys: usize,
    standalone_ready: Duration,
    sighup: Duration,
    standalone_rss: (u64, u64),
    snapshot_ready: Duration,
    snapshot_rss: (u64, u64),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on `port`: (status, body), or `None` while nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

/// The version `/readyz` reports once ready.
fn ready_version(port: u16) -> Option<u64> {
    let (status, body) = get(port, "/readyz")?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["version"].as_u64()
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "gave up after {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

/// (RSS, peak RSS) of `pid` in MB.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:") / 1024, kb("VmHWM:") / 1024)
}

/// (RSS, peak RSS) of `pid` in MB once it has settled: read every 100 ms until it has not
/// fallen for a second (the allocator returns a compile's freed pages after it), at most 10 s.
fn settled_rss(pid: u32) -> (u64, u64) {
    let start = Instant::now();
    let mut low = rss(pid);
    let mut low_since = Instant::now();
    while low_since.elapsed() < Duration::from_secs(1) && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss(pid);
        if now.0 < low.0 {
            low = now;
            low_since = Instant::now();
        }
    }
    low
}

struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the router with its own state directory `state`: a usage store left by another build
/// in the default one must not stop it.
fn spawn(bin: &Path, state: &Path, args: &[String]) -> Router {
    std::fs::create_dir_all(state).expect("a state dir");
    let child = Command::new(bin)
        .args(args)
        .arg(format!("--state-dir={}", state.display()))
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: make bench-controlplane)",
                bin.display()
            )
        });
    Router(child)
}

/// Writes the snapshot's stored Secrets as the chart mounts them; the manifest's path.
fn write_stored(dir: &Path, keys: usize) -> PathBuf {
    let config = compile_owned(scale::objects(&Scale::keys(keys))).config;
    let text = SnapshotText::of(&config);
    let plan = ShardStore::default()
        .plan(&text, 1, &config.hash, 1024)
        .expect("shards");
    std::fs::create_dir_all(dir).expect("a temp dir");
    for w in &plan.shards {
        std::fs::write(dir.join(&w.shard.key), &w.bytes).expect("a shard file");
    }
    let manifest = dir.join(MANIFEST_KEY);
    std::fs::write(
        &manifest,
        serde_json::to_vec(&plan.manifest).expect("a manifest"),
    )
    .expect("the manifest file");
    manifest
}

pub fn measure(keys: usize, bin: &Path) -> RouterRow {
    let dir = std::env::temp_dir().join(format!("sb-bench-cp-{}-{keys}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let limit = Duration::from_secs(600);

    // Standalone on the manifests.
    let manifests = dir.join("manifests.yaml");
    std::fs::write(
        &manifests,
        scale::manifests(&scale::objects(&Scale::keys(keys))),
    )
    .expect("manifests");
    let (api, admin) = (free_port(), free_port());
    let router = spawn(
        bin,
        &dir.join("state-standalone"),
        &[
            "--manifests".into(),
            manifests.display().to_string(),
            format!("--listen=127.0.0.1:{api}"),
            format!("--admin-listen=127.0.0.1:{admin}"),
        ],
    );
    let standalone_ready = wait_for(limit, || ready_version(admin) == Some(1));
    let standalone_rss = settled_rss(router.0.id());
    let hup = Instant::now();
    let _ = Command::new("kill")
        .args(["-HUP", &router.0.id().to_string()])
        .status();
    wait_for(limit, || ready_version(admin) == Some(2));
    let sighup = hup.elapsed();
    drop(router);

    // From the stored shards alone (no operator answers).
    let manifest = write_stored(&dir.join("snapshot"), keys);
    let (api, admin) = (free_port(), free_port());
    let router = spawn(
        bin,
        &dir.join("state-stored"),
        &[
            format!("--operator-url=http://127.0.0.1:{}", free_port()),
            "--operator-token=bench-token".into(),
            format!("--snapshot-file={}", manifest.display()),
            format!("--listen=127.0.0.1:{api}"),
            format!("--admin-listen=127.0.0.1:{admin}"),
        ],
    );
    let snapshot_ready = wait_for(limit, || ready_version(admin) == Some(1));
    let snapshot_rss = settled_rss(router.0.id());
    drop(router);
    let _ = std::fs::remove_dir_all(&dir);
    RouterRow {
        keys,
        standalone_ready,
        sighup,
        standalone_rss,
        snapshot_ready,
        snapshot_rss,
    }
}

pub fn report(rows: &[RouterRow]) -> Vec<String> {
    let mut out = vec![
        "### Router".into(),
        String::new(),
        "The release `switchboard-router` as a process. Standalone: `--manifests` on the scale \
         as YAML (parsing included: read one document at a time, parsed straight into its \
         typed object and handed to the compiler, its text dropped). From the stored snapshot: `--snapshot-file` on the \
         manifest and shard files as the chart mounts them, the operator unreachable. RSS is read once it has stopped \
         falling for a second after ready (at most 10 s), the peak is the process's high-water \
         mark."
            .into(),
        String::new(),
        "| keys | standalone start → ready (ms) | SIGHUP → new version served (ms) | standalone \
         settled RSS MB (peak) | from stored shards start → ready (ms) | from stored shards \
         settled RSS MB (peak) |"
            .into(),
        "|---|---:|---:|---:|---:|---:|".into(),
    ];
    for r in rows {
        out.push(format!(
            "| {} | {} | {} | {} ({}) | {} | {} ({}) |",
            thousands(r.keys as u64),
            ms(r.standalone_ready),
            ms(r.sighup),
            r.standalone_rss.0,
            r.standalone_rss.1,
            ms(r.snapshot_ready),
            r.snapshot_rss.0,
            r.snapshot_rss.1
        ));
    }
    out.push(String::new());
    if let (Some(small), Some(large)) = (rows.first(), rows.last())
        && large.keys > small.keys
    {
        let per_key = (large.snapshot_rss.0 as f64 - small.snapshot_rss.0 as f64) * 1024.0 * 1024.0
            / (large.keys - small.keys) as f64;
        out.push(format!(
            "What a key costs a router: {per_key:.0} bytes of RSS (from the stored snapshot, {} \
             to {} keys, with their share of routes and budgets).",
            thousands(small.keys as u64),
            thousands(large.keys as u64)
        ));
        out.push(String::new());
    }
    out
}
