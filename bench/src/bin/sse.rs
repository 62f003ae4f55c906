//! SSE probe for `make bench`: raw HTTP/1.1 over TCP, one connection per request, so the numbers
//! carry no client library's buffering.
//!
//! `bench-sse ttft --addr HOST:PORT --key K --model M --n 200 --chunks 20`
//!   sequential streamed requests; prints JSON with time to first content chunk and to last byte
//!   (p50/p90/p99/mean, milliseconds); `--dump FILE` also writes each stream's two times, in order.
//! `bench-sse hold --addr HOST:PORT --key K --model M --n 5000 --chunks 30 --interval-ms 1000`
//!   opens N streams at once; prints `OPEN <streams with content so far>` once every stream has
//!   its first content chunk (or after 60 s), then `DONE ok=<n> failed=<n>` when they end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Opts {
    addr: String,
    path: String,
    key: String,
    model: String,
    n: usize,
    chunks: u64,
    interval_ms: u64,
    /// `ttft` only: a file to write each stream's time to first content chunk and to last byte
    /// (milliseconds, one stream per line, in order).
    dump: Option<String>,
}

fn request(o: &Opts) -> Vec<u8> {
    let body = format!(
        "{{\"model\":\"{}\",\"stream\":true,\"mock_chunks\":{},\"mock_interval_ms\":{},\"messages\":[{{\"role\":\"user\",\"content\":\"Say hello\"}}]}}",
        o.model, o.chunks, o.interval_ms
    );
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        o.path,
        o.addr,
        o.key,
        body.len(),
        body
    )
    .into_bytes()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One streamed request: (time to the first content chunk, time to the last byte), or an error.
async fn one(
    addr: &str,
    req: &[u8],
    on_first: impl FnOnce(),
) -> Result<(Duration, Duration), String> {
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.write_all(req).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let mut first = None;
    let mut on_first = Some(on_first);
    loop {
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if first.is_none()
            && let Some(h) = find(&buf, b"\r\n\r\n")
        {
            if !buf.starts_with(b"HTTP/1.1 200") {
                return Err(String::from_utf8_lossy(&buf[..h]).into_owned());
            }
            if find(&buf[h..], b"\"content\":\"").is_some() {
                first = Some(start.elapsed());
                if let Some(f) = on_first.take() {
                    f();
                }
            }
        }
        // Once content has been seen keep only a tail: bounded memory per stream.
        if first.is_some() && buf.len() > 4096 {
            let keep = buf.split_off(buf.len() - 64);
            buf = keep;
        }
    }
    let last = start.elapsed();
    if find(&buf, b"[DONE]").is_none() {
        return Err("stream ended without [DONE]".to_owned());
    }
    Ok((first.ok_or("no content chunk")?, last))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    format!(
        "{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"mean\":{:.3}}}",
        pct(&v, 0.5),
        pct(&v, 0.9),
        pct(&v, 0.99),
        mean
    )
}

async fn ttft(o: Opts) {
    let req = request(&o);
    let (mut firsts, mut lasts, mut errors) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..o.n {
        match one(&o.addr, &req, || ()).await {
            Ok((f, l)) => {
                firsts.push(f.as_secs_f64() * 1e3);
                lasts.push(l.as_secs_f64() * 1e3);
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("bench-sse: {e}");
                }
            }
        }
    }
    if let Some(path) = &o.dump {
        let lines: String = firsts
            .iter()
            .zip(&lasts)
            .map(|(f, l)| format!("{f:.3} {l:.3}\n"))
            .collect();
        if let Err(e) = std::fs::write(path, lines) {
            eprintln!("bench-sse: writing {path}: {e}");
        }
    }
    println!(
        "{{\"n\":{},\"errors\":{},\"ttft_ms\":{},\"last_byte_ms\":{}}}",
        firsts.len(),
        errors,
        summary(firsts),
        summary(lasts)
    );
}

async fn hold(o: Opts) {
    let req: Arc<[u8]> = request(&o).into();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(o.n);
    for _ in 0..o.n {
        let (addr, req, opened) = (o.addr.clone(), req.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            one(&addr, &req, || {
                opened.fetch_add(1, Ordering::Relaxed);
            })
            .await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) < o.n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("OPEN {}", opened.load(Ordering::Relaxed));
    let (mut ok, mut failed) = (0usize, 0usize);
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("bench-sse: {e}");
                }
            }
            Err(_) => failed += 1,
        }
    }
    println!("DONE ok={ok} failed={failed}");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let mut kv = HashMap::new();
    while let (Some(k), Some(v)) = (args.next(), args.next()) {
        kv.insert(k.trim_start_matches('-').to_owned(), v);
    }
    let get = |k: &str, d: &str| kv.get(k).cloned().unwrap_or_else(|| d.to_owned());
    let o = Opts {
        addr: get("addr", "127.0.0.1:18000"),
        path: get("path", "/v1/chat/completions"),
        key: get("key", "none"),
        model: get("model", "bench-model"),
        n: get("n", "200").parse().unwrap_or(200),
        chunks: get("chunks", "20").parse().unwrap_or(20),
        interval_ms: get("interval-ms", "5").parse().unwrap_or(5),
        dump: kv.get("dump").cloned(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match mode.as_str() {
        "ttft" => rt.block_on(ttft(o)),
        "hold" => rt.block_on(hold(o)),
        _ => {
            eprintln!("usage: bench-sse ttft|hold --addr HOST:PORT --key K --model M --n N ...");
            std::process::exit(2);
        }
    }
}
