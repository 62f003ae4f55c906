//! `make bench-cache`: what the response cache costs and saves, as ratios measured in one run on
//! one machine. The release router runs as a process in front of `bench-mock` (one worker) with
//! two routes over the same upstream: `bench/plain` (no `cache` block) and `bench/cached`
//! (`mode: exact`, in process). Three request kinds:
//!
//! - *miss, caching off*: a new prompt each time on `bench/plain`;
//! - *miss, caching on*: a new prompt each time on `bench/cached` (lookup, upstream, store);
//! - *hit*: the same prompt on `bench/cached` (answered from the cache, no upstream).
//!
//! Saturation: each kind closed-loop at `--concurrency` (default 32) for `--seconds` (default 6),
//! in two interleaved rounds (the better of the two counts, as the box is shared). Latency: each
//! kind one request at a time, interleaved in blocks of 100, 1500 each; median and p99. The
//! usage store is off, so the figures are the cache's alone.
//!
//! Usage: `bench-cache [--router-bin PATH] [--mock-bin PATH] [--write docs/benchmarks.md]`.

use std::{
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

const BEGIN: &str = "<!-- cache:begin (make bench-cache) -->";
const END: &str = "<!-- cache:end -->";
const KEY: &str = "sk-sb-bench-cache-0123456789";

struct Args {
    router_bin: PathBuf,
    mock_bin: PathBuf,
    write: Option<PathBuf>,
    seconds: u64,
    concurrency: usize,
}

fn args() -> Args {
    let exe = std::env::current_exe().expect("own path");
    let mut a = Args {
        router_bin: exe.with_file_name("switchboard-router"),
        mock_bin: exe.with_file_name("bench-mock"),
        write: None,
        seconds: 6,
        concurrency: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--router-bin" => a.router_bin = value().into(),
            "--mock-bin" => a.mock_bin = value().into(),
            "--write" => a.write = Some(value().into()),
            "--seconds" => a.seconds = value().parse().expect("seconds"),
            "--concurrency" => a.concurrency = value().parse().expect("a number"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn manifest(upstream: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: s}}
stringData: {{upstream: sk-upstream-bench, client: {KEY}}}
---
apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata: {{name: mock}}
spec:
  type: openaiCompatible
  baseURL: http://127.0.0.1:{upstream}/v1
  credentials: {{secretRef: {{name: s, key: upstream}}}}
  models: [{{name: m, pricing: {{inputUSDPerMillion: "0.15", outputUSDPerMillion: "0.60"}}}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: plain}}
spec: {{model: bench/plain, targets: [{{provider: mock, model: m}}]}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {{name: cached}}
spec:
  model: bench/cached
  targets: [{{provider: mock, model: m}}]
  cache: {{mode: exact, ttl: 1h}}
---
apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata: {{name: bench}}
spec: {{secretRef: {{name: s, key: client}}}}
"#
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    MissOff,
    MissOn,
    Hit,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::MissOff, Kind::MissOn, Kind::Hit];

    fn name(self) -> &'static str {
        match self {
            Kind::MissOff => "miss, caching off (`bench/plain`)",
            Kind::MissOn => "miss, caching on (`bench/cached`, new prompt)",
            Kind::Hit => "hit (`bench/cached`, same prompt)",
        }
    }

    fn body(self, n: u64) -> String {
        let (model, prompt) = match self {
            Kind::MissOff => ("bench/plain", format!("question {n}")),
            Kind::MissOn => ("bench/cached", format!("question {n}")),
            Kind::Hit => ("bench/cached", "the same question".to_string()),
        };
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{prompt}"}}],"max_tokens":64}}"#
        )
    }

    /// The `X-Switchboard-Cache` this kind must get.
    fn header(self) -> Option<&'static str> {
        match self {
            Kind::MissOff => None,
            Kind::MissOn => Some("miss"),
            Kind::Hit => Some("hit"),
        }
    }
}

struct Bench {
    client: reqwest::Client,
    url: String,
    prompts: AtomicU64,
}

impl Bench {
    async fn one(&self, kind: Kind) -> Duration {
        let n = self.prompts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = self
            .client
            .post(&self.url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(kind.body(n))
            .send()
            .await
            .expect("the router answers");
        let status = resp.status();
        let tag = resp
            .headers()
            .get("x-switchboard-cache")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let body = resp.bytes().await.expect("a body");
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(tag.as_deref(), kind.header(), "{}", kind.name());
        elapsed
    }

    /// Requests per second of `kind`, closed-loop at `concurrency` for `seconds`.
    async fn saturate(self: &Arc<Self>, kind: Kind, concurrency: usize, seconds: u64) -> f64 {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (b, stop, done) = (self.clone(), stop.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    b.one(kind).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        // A second of warm-up, not counted.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (start_n, started) = (done.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let n = done.load(Ordering::Relaxed) - start_n;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("a load task");
        }
        rate
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs, load average {load} at the start")
}

fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", admin))
            .and_then(|mut s| {
                s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n")?;
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out)?;
                Ok(out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"))
            })
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the router was not ready in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let a = args();
    let machine = machine();
    let dir = std::env::temp_dir().join(format!("bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let upstream = free_port();
    let _mock = Process(
        Command::new(&a.mock_bin)
            .args([format!("127.0.0.1:{upstream}"), "1".into()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", a.mock_bin.display())),
    );
    let manifests = dir.join("cache.yaml");
    std::fs::write(&manifests, manifest(upstream)).expect("write the manifests");
    let (api, admin) = (free_port(), free_port());
    let _router = Process(
        Command::new(&a.router_bin)
            .arg("--manifests")
            .arg(&manifests)
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--usage-store", "off", "--log", "warn"])
            .arg("--state-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", a.router_bin.display())),
    );
    wait_ready(admin);
    // reqwest is built without a default TLS provider; install ring as the router does.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let bench = Arc::new(Bench {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(a.concurrency)
            .build()
            .expect("a client"),
        url: format!("http://127.0.0.1:{api}/v1/chat/completions"),
        prompts: AtomicU64::new(0),
    });
    let report = runtime.block_on(async {
        // The hit's entry, stored once.
        let _ = bench
            .client
            .post(&bench.url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(Kind::Hit.body(0))
            .send()
            .await
            .expect("fill")
            .bytes()
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut rates = [0f64; 3];
        for round in 0..2 {
            for (i, kind) in Kind::ALL.into_iter().enumerate() {
                eprintln!("saturation, round {round}: {}", kind.name());
                let r = bench.saturate(kind, a.concurrency, a.seconds).await;
                rates[i] = rates[i].max(r);
            }
        }
        let mut lat: [Vec<Duration>; 3] = Default::default();
        eprintln!("latency, one at a time");
        for _ in 0..15 {
            for (i, kind) in Kind::ALL.into_iter().enumerate() {
                for _ in 0..100 {
                    lat[i].push(bench.one(kind).await);
                }
            }
        }
        for l in &mut lat {
            l.sort();
        }
        render(&machine, &a, rates, &lat)
    });
    println!("{report}");
    if let Some(path) = a.write {
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let updated = match (doc.find(BEGIN), doc.find(END)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{report}{}", &doc[..b], &doc[e + END.len()..])
            }
            _ => format!("{}\n\n{report}\n", doc.trim_end()),
        };
        std::fs::write(&path, updated).expect("write the report");
        eprintln!("wrote {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn render(machine: &str, a: &Args, rates: [f64; 3], lat: &[Vec<Duration>; 3]) -> String {
    let [off, on, hit] = rates;
    let p50 = |i: usize| percentile(&lat[i], 0.5);
    let p99 = |i: usize| percentile(&lat[i], 0.99);
    let mut out = vec![
        BEGIN.to_string(),
        "## Response cache".into(),
        String::new(),
        format!(
            "Generated by `make bench-cache` (bench/src/bin/cache.rs); {machine}; {} UTC. Release \
             router as a process in front of `bench-mock` (one worker, answers at once), the load \
             generator in the same box; usage store off. A miss with caching on looks the request \
             up (normalize, SHA-256, in-process `moka`), calls the upstream and stores the answer; \
             a hit answers from the cache. Saturation: {} requests in flight, {} s per kind, the \
             better of two interleaved rounds. Latency: one request at a time, {} per kind, \
             interleaved in blocks of 100.",
            jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M"),
            a.concurrency,
            a.seconds,
            lat[0].len()
        ),
        String::new(),
        "| request | saturation, req/s | vs miss (caching off) | latency p50, µs | p99, µs |"
            .into(),
        "|---|---:|---:|---:|---:|".into(),
    ];
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        out.push(format!(
            "| {} | {:.0} | {:.2}× | {} | {} |",
            kind.name(),
            rates[i],
            rates[i] / off,
            us(p50(i)),
            us(p99(i)),
        ));
    }
    let added = |a: Duration, b: Duration| a.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    out.push(String::new());
    out.push(format!(
        "Exact hits saturate at **{:.2}×** the miss path (no upstream call). Caching on adds \
         **{:+.0} µs** to a miss at the median and {:+.0} µs at p99 ({:.2}× and {:.2}× the \
         uncached miss), and costs {:.1} % of the miss path's saturation throughput.",
        hit / off,
        added(p50(1), p50(0)),
        added(p99(1), p99(0)),
        p50(1).as_secs_f64() / p50(0).as_secs_f64(),
        p99(1).as_secs_f64() / p99(0).as_secs_f64(),
        (1.0 - on / off) * 100.0,
    ));
    out.push(END.to_string());
    out.join("\n")
}
