#!/usr/bin/env python3
"""Switchboard benchmark driver (`make bench`, `make bench-peers`). Standard library only.

Starts the bench mock upstream (CPU 0) and the release router (CPU 1) with a generated manifest
(1,000 ApiKeys, 200 ModelRoutes, a Budget and a rate limit on every key), drives them with `oha`
(open loop at fixed rates, closed loop at concurrency 1 and at saturation), measures streaming
with `bench-sse`, and writes docs/benchmarks.md and docs/benchmarks.svg.

With --peers it also starts LiteLLM proxy (bench/.venv-litellm, CPU 1) on the same mock and runs
the non-streaming scenarios against it in the same run.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

import usage as usage_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
OUT = os.path.join(BENCH, "out")
TARGET = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
OHA = os.path.join(BENCH, ".tools", "bin", "oha")
LITELLM_VENV = os.path.join(BENCH, ".venv-litellm")

MOCK_ADDR = "127.0.0.1:18000"
MOCK_TLS_ADDR = "127.0.0.1:18443"
MOCK_CA = os.path.join(OUT, "mock-ca.pem")
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"
ROUTER_ADDR = "127.0.0.1:18080"
ROUTER_ADMIN = "127.0.0.1:18090"
RELAY_ADDR = "127.0.0.1:18070"
REDIS_PORT = 18379
ROUTER_REDIS_ADDR = "127.0.0.1:18081"
ROUTER_REDIS_ADMIN = "127.0.0.1:18091"
ROUTER_NOSTORE_ADDR = "127.0.0.1:18082"
ROUTER_NOSTORE_ADMIN = "127.0.0.1:18092"
ROUTER_PG_ADDR = "127.0.0.1:18083"
ROUTER_PG_ADMIN = "127.0.0.1:18093"
LITELLM_ADDR = "127.0.0.1:18400"
# LiteLLM refuses to start without a master key; with one (and no database) it checks it per request.
LITELLM_KEY = "sk-litellm-bench-0123456789abcdef"
BENCH_KEY = "sk-sb-bench-0000-0123456789abcdef"
ROUTER_MODEL = "bench/chat"
ROUTER_MODEL_TLS = "bench/chat-tls"
N_KEYS = 1000
N_ROUTES = 200

HAVE_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pinned(cpu, argv):
    return (["taskset", "-c", str(cpu)] if HAVE_TASKSET else []) + argv


# ---------------------------------------------------------------------------------------- setup


def write_manifest(path):
    docs = []
    keys = "\n".join(f"  k{i:04d}: sk-sb-bench-{i:04d}-0123456789abcdef" for i in range(N_KEYS))
    docs.append(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: bench-keys\nstringData:\n{keys}\n")
    docs.append(
        f"""apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata:
  name: bench-upstream
spec:
  type: openaiCompatible
  baseURL: http://{MOCK_ADDR}/v1
  models:
    - name: bench-model
      pricing: {{inputUSDPerMillion: "0.15", outputUSDPerMillion: "0.60"}}
      contextLength: 128000
      maxOutputTokens: 4096
"""
    )
    # The same mock over HTTPS (HTTP/2 by ALPN, as hosted providers serve), for the memory rows.
    docs.append(
        f"""apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata:
  name: bench-upstream-tls
spec:
  type: openaiCompatible
  baseURL: https://{MOCK_TLS_ADDR}/v1
  models:
    - name: bench-model
      pricing: {{inputUSDPerMillion: "0.15", outputUSDPerMillion: "0.60"}}
"""
    )
    for i in range(N_ROUTES):
        model = {0: ROUTER_MODEL, 1: ROUTER_MODEL_TLS}.get(i, f"bench/model-{i:03d}")
        provider = "bench-upstream-tls" if i == 1 else "bench-upstream"
        docs.append(
            f"""apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata:
  name: route-{i:03d}
spec:
  model: {model}
  targets:
    - {{provider: {provider}, model: bench-model}}
"""
        )
    for i in range(N_KEYS):
        docs.append(
            f"""apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata:
  name: key-{i:04d}
  labels: {{team: bench}}
spec:
  secretRef: {{name: bench-keys, key: k{i:04d}}}
  rateLimits: {{requestsPerMinute: 100000000, tokensPerMinute: 4000000000}}
"""
        )
    docs.append(
        """apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata:
  name: bench-monthly
spec:
  limitUSD: "100000000"
  window: monthly
  scope: {team: bench}
  softLimitPercent: 80
  action: block
"""
    )
    with open(path, "w") as f:
        f.write("---\n".join(docs))


def write_body(path, size, model):
    base = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": ""}]}
    pad = size - len(json.dumps(base, separators=(",", ":")))
    base["messages"][0]["content"] = "x" * max(pad, 0)
    with open(path, "w") as f:
        f.write(json.dumps(base, separators=(",", ":")))


def wait_http(url, timeout, method="GET", proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=2) as r:
                if r.status < 500:
                    return True
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


# ------------------------------------------------------------------------------ process metrics


def proc_tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except Exception:
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except Exception:
            pass
    return total


def connections_to(port):
    """Established TCP connections from this machine to local `port` (client side only)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, remote, state = cols[1], cols[2], cols[3]
                    if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port \
                            and int(local.rsplit(":", 1)[1], 16) != port:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def rss_kb(pid, field="VmRSS"):
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except Exception:
            pass
    return total


# ------------------------------------------------------------------------------------- running


def oha(url, body_file, duration, rate=None, conns=64, key=BENCH_KEY):
    argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", str(conns),
            "-m", "POST", "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
            "-D", body_file]
    if rate:
        argv += ["-q", str(rate), "--latency-correction"]
    argv.append(url)
    res = subprocess.run(pinned(0, argv), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"oha failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def measure_rounds(name, targets, run, duration, rounds):
    """Runs every target `rounds` times for `duration / rounds` seconds each, interleaved (the
    order rotates each round, so no target always follows the same one), and combines each
    target's rounds: a slow spell of this shared machine then lands on every target alike
    instead of on whichever ran during it. `run(target, seconds)` measures one round."""
    per = max(1, round(duration / rounds))
    by_target = {t: [] for t in targets}
    for i in range(rounds):
        k = i % len(targets)
        for t in targets[k:] + targets[:k]:
            by_target[t].append(run(t, per))
    return [combine(by_target[t]) for t in targets]


def combine(rounds):
    """One row from a target's rounds: rate averaged, counts summed, each latency percentile the
    median over the rounds (one noisy round does not move it), the per-round values kept."""
    row = dict(rounds[-1])
    row["rps"] = statistics.mean(r["rps"] for r in rounds)
    for k in ("p50", "p99", "p999"):
        row[k] = statistics.median(r[k] for r in rounds)
    row["errors"] = sum(r["errors"] for r in rounds)
    row["total"] = sum(r["total"] for r in rounds)
    cpus = [r["cpu"] for r in rounds if r["cpu"] is not None]
    row["cpu"] = statistics.mean(cpus) if cpus else None
    kinds = {}
    for r in rounds:
        for k, v in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    row["error_kinds"] = kinds
    row["rounds"] = [{k: r[k] for k in ("rps", "p50", "p99", "p999")} for r in rounds]
    return row


def stream_summary(times, errors):
    """`bench-sse ttft`'s summary over the per-stream (TTFT, last byte) times of several rounds."""
    def pcts(v):
        v = sorted(v)
        at = lambda p: v[round((len(v) - 1) * p)] if v else float("nan")
        return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99),
                "mean": statistics.mean(v) if v else float("nan")}
    return {"n": len(times), "errors": errors,
            "ttft_ms": pcts([f for f, _ in times]), "last_byte_ms": pcts([l for _, l in times])}


def measure(name, target, pid, url, body_file, duration, rate, conns):
    t0, c0 = time.time(), cpu_ticks(pid) if pid else 0
    r = oha(url, body_file, duration, rate, conns, key=LITELLM_KEY if target == "litellm" else BENCH_KEY)
    wall = time.time() - t0
    cpu = (cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK") / wall * 100 if pid else None
    rss = rss_kb(pid) / 1024 if pid else None
    s = r["summary"]
    lp = r.get("latencyPercentiles", {})
    codes = r.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    # Requests still in flight when the run's time is up are cut by oha ("aborted due to
    # deadline"): not errors of the target, so not counted.
    errs = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
    total = sum(codes.values()) + sum(errs.values())
    row = {
        "scenario": name, "target": target, "rate": rate, "conns": conns,
        "rps": s.get("requestsPerSec") or 0.0,
        "p50": (lp.get("p50") or 0) * 1e3, "p99": (lp.get("p99") or 0) * 1e3,
        "p999": (lp.get("p99.9") or 0) * 1e3,
        "errors": total - ok, "total": total,
        "cpu": cpu, "rss": rss,
        "error_kinds": {**{k: v for k, v in codes.items() if k != "200"}, **errs},
    }
    log(f"{name:<22} {target:<8} rps={row['rps']:9.1f} p50={row['p50']:.3f}ms p99={row['p99']:.3f}ms "
        f"p99.9={row['p999']:.3f}ms err={row['errors']}/{total} cpu={cpu if cpu is None else round(cpu)}% "
        f"rss={rss if rss is None else round(rss, 1)}MB")
    return row


def sse(mode, addr, key, model, **kw):
    argv = [os.path.join(TARGET, "bench-sse"), mode, "--addr", addr, "--key", key, "--model", model]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.Popen(pinned(0, argv), stdout=subprocess.PIPE, text=True)


def start_router(procs, manifest, env, listen, admin, log_name, extra=()):
    """Starts the release router on CPU 1 and waits until it is ready. Each instance has its own
    state directory (its SQLite usage store and spill file), emptied first."""
    state = os.path.join(OUT, "state-" + log_name.rsplit(".", 1)[0])
    shutil.rmtree(state, ignore_errors=True)
    router = procs.start(pinned(1, [os.path.join(TARGET, "switchboard-router"), "--manifests", manifest,
                                    "--listen", listen, "--admin-listen", admin, "--state-dir", state, *extra]),
                         log_name, env=env)
    if not wait_http(f"http://{admin}/readyz", 30):
        raise RuntimeError(f"router did not become ready; see bench/out/{log_name}")
    return router


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, argv, log_name, env=None, **popen):
        f = open(os.path.join(OUT, log_name), "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True, **popen)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in self.procs:
            try:
                self.stop(p)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------------------- report


def fmt(v, nd=2):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    if not a or not b:
        return "—"
    return f"{a / b:,.{nd}f}×"


def write_svg(path, rows, peers):
    """Two panels: saturation throughput, and p50/p99 at a fixed 1,000 req/s."""
    targets = ["direct", "relay", "router", "router-redis"] + (["litellm"] if peers else [])
    colors = {"direct": "#8c8c8c", "relay": "#bcbd22", "router": "#1f77b4", "router-redis": "#17becf",
              "litellm": "#d62728"}
    sat = [(sc, t, r["rps"]) for sc in ("sat-1KB", "sat-16KB") for t in targets
           for r in rows if r["scenario"] == sc and r["target"] == t]
    lat = [(f"{sc[-3:]} {t} {m}", t, r[m]) for sc in ("rate-1000-1KB", "rate-1000-16KB")
           for t in ("direct", "relay", "router") for m in ("p50", "p99")
           for r in rows if r["scenario"] == sc and r["target"] == t]
    W, left = 760, 190
    H = 24 + 2 * (12 + 30) + 24 * (len(sat) + len(lat)) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(y0, title, items, unit, fmtv):
        out.append(f'<text x="10" y="{y0}" font-size="14" font-weight="bold">{title}</text>')
        vmax = max([v for _, _, v in items] + [1e-9])
        for i, (label, t, v) in enumerate(items):
            y = y0 + 12 + i * 24
            w = (W - left - 120) * v / vmax
            out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{label}</text>')
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="18" fill="{colors[t]}"/>')
            out.append(f'<text x="{left + w + 6:.1f}" y="{y + 14}">{fmtv(v)} {unit}</text>')
        return y0 + 12 + len(items) * 24 + 30

    y = panel(24, "Saturation throughput (closed loop, 64 connections)", [(f"{sc} {t}", t, v) for sc, t, v in sat],
              "req/s", lambda v: f"{v:,.0f}")
    panel(y, "Latency at a fixed 1,000 req/s (open loop), 1 KB and 16 KB bodies", lat, "ms", lambda v: f"{v:.3f}")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


def bars(by, stream, memory, peers):
    """The section that checks this run against issue 9's bars, computed from the rows above."""
    def verdict(ok):
        return "**met**" if ok else "**missed**"

    def added(sc, t="router"):
        d, r, rl = by.get((sc, "direct")), by.get((sc, t)), by.get((sc, "relay"))
        if not (d and r):
            return None
        return {"p50": r["p50"] - d["p50"], "p99": r["p99"] - d["p99"],
                "floor50": rl["p50"] - d["p50"] if rl else None}

    L = ["## Against the bars of issue 9 (computed from this run)\n",
         "`added` is router minus direct; `relay floor` is what a proxy that does no work at all adds on this "
         "machine (the `relay` rows), so the router's own share is the difference.\n",
         "| bar | measured | verdict |", "|---|---|---|"]
    sat = [by.get((f"sat-{k}KB", "router")) for k in (1, 16)]
    if all(sat):
        L.append(f"| ≥ 15,000 non-streaming req/s at saturation, router on one core | "
                 f"{sat[0]['rps']:,.0f} (1 KB), {sat[1]['rps']:,.0f} (16 KB) | "
                 f"{verdict(min(r['rps'] for r in sat) >= 15000)} |")
    ll = [by.get((f"sat-{k}KB", "litellm")) for k in (1, 16)]
    if peers and all(sat) and all(ll):
        x = [r["rps"] / p["rps"] for r, p in zip(sat, ll)]
        L.append(f"| over 100× LiteLLM at saturation | {x[0]:,.0f}× (1 KB), {x[1]:,.0f}× (16 KB) | "
                 f"{verdict(min(x) > 100)} |")
    for label, sc in (("concurrency 1", "c1"), ("a fixed 1,000 req/s", "rate-1000")):
        for k in (1, 16):
            a = added(f"{sc}-{k}KB")
            if not a:
                continue
            floor = f" (relay floor +{a['floor50']:.3f})" if a["floor50"] is not None else ""
            L.append(f"| added < 0.1 ms p50 and < 0.5 ms p99 at {label}, {k} KB | "
                     f"p50 +{a['p50']:.3f}{floor}, p99 +{a['p99']:.3f} ms | "
                     f"p50 {verdict(a['p50'] < 0.1)}, p99 {verdict(a['p99'] < 0.5)} |")
    d, r = stream.get("direct"), stream.get("router")
    if d and r:
        a50 = r["ttft_ms"]["p50"] - d["ttft_ms"]["p50"]
        a99 = r["ttft_ms"]["p99"] - d["ttft_ms"]["p99"]
        L.append(f"| streaming adds < 1 ms to time to first token | p50 +{a50:.3f}, p99 +{a99:.3f} ms | "
                 f"p50 {verdict(a50 < 1)}, p99 {verdict(a99 < 1)} |")
    if "idle" in memory:
        L.append(f"| RSS < 50 MB idle with {N_KEYS:,} ApiKeys and {N_ROUTES} ModelRoutes | {memory['idle']:.1f} MB | "
                 f"{verdict(memory['idle'] < 50)} |")
    for m in memory.get("streams", []):
        if m["n"] == max(x["n"] for x in memory["streams"]):
            kind = "HTTP/2 (HTTPS) upstream" if m["tls"] else "HTTP/1.1 upstream"
            L.append(f"| RSS under thousands of open streams ({kind}) | {m['rss']:.1f} MB with {m['opened']:,} open "
                     f"(idle {m['idle']:.1f}): {(m['rss'] - m['idle']) * 1024 / max(m['opened'], 1):.1f} KB per stream; "
                     f"{m['late']:.1f} MB 12 s later | "
                     f"see the notes below |")
    L.append("")
    return L


def write_doc(path, meta, rows, stream, memory, peers, litellm_note, usage=None):
    by = {(r["scenario"], r["target"]): r for r in rows}
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `bench/run.py` (`make bench`, or `make bench-peers` for the LiteLLM columns); "
             "every number below comes from the one run described here. The machine is a shared, noisy "
             "VM: read the **ratios** (router/direct, LiteLLM/router), not the absolute numbers.\n")
    L.append("## Run\n")
    L.append(f"- date: {meta['date']}")
    L.append(f"- command: `{meta['command']}`")
    L.append(f"- machine: {meta['nproc']} CPUs, `{meta['cpu']}`, `{meta['uname']}`")
    L.append(f"- pinning: {meta['pinning']}")
    L.append(f"- load generator: `{meta['oha']}` from crates.io (open loop with `-q RATE --latency-correction` "
             "at fixed rates; closed loop at concurrency 1 and at saturation with 64 connections); "
             f"{meta['duration']} s per target and scenario"
             + (f", in {meta['rounds']} interleaved rounds (targets take turns; each percentile is the "
                "median over the rounds)" if meta.get("rounds", 1) > 1 else ""))
    L.append("- upstream: `bench-mock` (bench/src/bin/mock.rs), one tokio worker, fixed JSON answer with fixed usage; "
             "SSE with a chunk every 5 ms; a second instance serves HTTPS (a test CA the router trusts through "
             "`SSL_CERT_FILE`, next to the system roots; HTTP/2 by ALPN) for the held-stream rows")
    L.append(f"- router: release build, `--manifests` with {N_KEYS:,} ApiKeys (each with a rate limit), "
             f"{N_ROUTES} ModelRoutes, one Budget over every key (`action: block`), an `openaiCompatible` "
             "Provider on the mock; metrics always on; access log at the default level; every request "
             "recorded in the usage store, SQLite by default (see \"Usage store\" for the cost)")
    if peers:
        L.append(f"- LiteLLM: {litellm_note}")
    L.append("")
    L.append("## Non-streaming\n")
    L.append("Latency in milliseconds as the load generator sees it (client → [gateway →] mock). "
             "`added` = target minus direct. `relay` is `bench-relay` (bench/src/bin/relay.rs), a TCP "
             "relay pinned like the router that does no work at all: its added latency is what the "
             "extra hop alone costs on this machine (loopback and wake-ups across the two cores), the "
             "floor for any proxy here; `over relay` = router minus relay, the router's own share. "
             "`router-redis` is the same router with `--redis-url` (the shared ledger every replica "
             "of a multi-replica deployment uses; redis-server on CPU 0 with the mock and the load "
             "generator): each request makes one Redis round trip before it is sent upstream. "
             "CPU% and RSS are the gateway process's (CPU% of one core, averaged over the run; RSS at "
             "the end of the run).\n")
    L.append("| scenario | target | achieved req/s | p50 | p99 | p99.9 | errors | gateway CPU% | gateway RSS MB | added p50 | added p99 | over relay p50 | over relay p99 |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    for sc in scenarios:
        d = by.get((sc, "direct"))
        rl = by.get((sc, "relay"))
        for t in ("direct", "relay", "router", "router-redis", "litellm"):
            r = by.get((sc, t))
            if not r:
                continue
            a50 = fmt(r["p50"] - d["p50"], 3) if d and t != "direct" else ""
            a99 = fmt(r["p99"] - d["p99"], 3) if d and t != "direct" else ""
            o50 = fmt(r["p50"] - rl["p50"], 3) if rl and t.startswith("router") else ""
            o99 = fmt(r["p99"] - rl["p99"], 3) if rl and t.startswith("router") else ""
            L.append(f"| {sc} | {t} | {fmt(r['rps'], 0)} | {fmt(r['p50'], 3)} | {fmt(r['p99'], 3)} | "
                     f"{fmt(r['p999'], 3)} | {r['errors']}/{r['total']} | {fmt(r['cpu'], 0)} | {fmt(r['rss'], 1)} | "
                     f"{a50} | {a99} | {o50} | {o99} |")
    L.append("")
    L.append("### Ratios\n")
    L.append("| scenario | router/direct req/s | router/direct p50 | router/direct p99 |" + (" router/LiteLLM req/s | LiteLLM/router p50 | LiteLLM/router p99 |" if peers else ""))
    L.append("|---|---:|---:|---:|" + ("---:|---:|---:|" if peers else ""))
    for sc in scenarios:
        d, r, ll = by.get((sc, "direct")), by.get((sc, "router")), by.get((sc, "litellm"))
        if not (d and r):
            continue
        line = f"| {sc} | {ratio(r['rps'], d['rps'])} | {ratio(r['p50'], d['p50'])} | {ratio(r['p99'], d['p99'])} |"
        if peers:
            line += (f" {ratio(r['rps'], ll['rps'])} | {ratio(ll['p50'], r['p50'])} | {ratio(ll['p99'], r['p99'])} |"
                     if ll else " — | — | — |")
        L.append(line)
    L.append("")
    L.append("![throughput and latency](benchmarks.svg)\n")
    L.append("## Streaming\n")
    L.append(f"`bench-sse ttft` (bench/src/bin/sse.rs): {stream.get('router', {}).get('n', '?')} sequential streamed requests "
             f"per target ({meta.get('rounds', 1)} interleaved rounds), "
             "a new TCP connection each (raw HTTP/1.1, no client library), 20 content chunks 5 ms apart. "
             "Time to first token = request written → first content chunk read; last byte = → end of the "
             "stream (the router adds its usage chunk and `[DONE]`).\n")
    L.append("| target | TTFT p50 | TTFT p90 | TTFT p99 | last byte p50 | last byte p99 | errors |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for t in ("direct", "router"):
        s = stream.get(t)
        if s:
            L.append(f"| {t} | {fmt(s['ttft_ms']['p50'], 3)} | {fmt(s['ttft_ms']['p90'], 3)} | {fmt(s['ttft_ms']['p99'], 3)} | "
                     f"{fmt(s['last_byte_ms']['p50'], 3)} | {fmt(s['last_byte_ms']['p99'], 3)} | {s['errors']} |")
    if stream.get("direct") and stream.get("router"):
        d, r = stream["direct"], stream["router"]
        L.append(f"\nAdded by the router: TTFT p50 {fmt(r['ttft_ms']['p50'] - d['ttft_ms']['p50'], 3)} ms, "
                 f"p99 {fmt(r['ttft_ms']['p99'] - d['ttft_ms']['p99'], 3)} ms; last byte p50 "
                 f"{fmt(r['last_byte_ms']['p50'] - d['last_byte_ms']['p50'], 3)} ms.\n")
    L.append("## Memory\n")
    L.append("| state | router RSS MB |")
    L.append("|---|---:|")
    for label, v in memory["rows"]:
        L.append(f"| {label} | {fmt(v, 1)} |")
    L.append("")
    for n in memory.get("notes", []):
        L.append(f"- {n}")
    L.append("")
    L += bars(by, stream, memory, peers)
    if usage:
        L += usage_bench.doc_section(usage, by, usage.get("metrics", {}))
    notes = os.path.join(BENCH, "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            L.append(f.read())
    # `make bench-controlplane` owns its section of the file: keep it.
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        begin, end = old.find("<!-- controlplane:begin"), old.find("<!-- controlplane:end -->")
        if 0 <= begin < end:
            L.append(old[begin:end + len("<!-- controlplane:end -->")])
    with open(path, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


# ------------------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", action="store_true", help="also run LiteLLM proxy side by side")
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "15")),
                    help="seconds of load per target and scenario, split over the rounds")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                    help="interleaved rounds per scenario (targets take turns)")
    ap.add_argument("--streams", type=int, default=int(os.environ.get("BENCH_STREAMS", "5000")))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--usage-rows", type=int, default=int(os.environ.get("BENCH_USAGE_ROWS", "10000000")),
                    help="records generated for the usage store's query rows")
    ap.add_argument("--usage-only", action="store_true",
                    help="only the usage store's rows (bench/usage.py), spliced into the doc")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 s per scenario, few streams")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite the doc and chart from a saved bench/out/results.json")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        peers = any(r["target"] == "litellm" for r in saved["rows"])
        write_doc(args.doc, saved["meta"], saved["rows"], saved["stream"], saved["memory"], peers,
                  saved.get("litellm_note", ""), saved.get("usage"))
        write_svg(os.path.join(os.path.dirname(args.doc), "benchmarks.svg"), saved["rows"], peers)
        return 0
    if args.quick:
        args.duration, args.streams, args.usage_rows = 2, 200, 200_000
    if args.usage_only:
        return usage_bench.run_only(sys.modules[__name__], args)

    os.makedirs(OUT, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    manifest = os.path.join(OUT, "manifests.yaml")
    write_manifest(manifest)
    bodies = {}
    for size in (1, 16):
        for target, model in (("direct", "bench-model"), ("relay", "bench-model"), ("router", ROUTER_MODEL),
                              ("router-redis", ROUTER_MODEL), ("router-nostore", ROUTER_MODEL),
                              ("router-pg", ROUTER_MODEL), ("litellm", ROUTER_MODEL)):
            p = os.path.join(OUT, f"body-{size}KB-{target}.json")
            write_body(p, size * 1024, model)
            bodies[(size, target)] = p

    procs = Procs()
    rows, stream, memory = [], {}, {"rows": [], "notes": []}
    litellm_note, usage = "", None
    try:
        mock = procs.start(pinned(0, [os.path.join(TARGET, "bench-mock"), MOCK_ADDR, "1"]), "mock.log")
        if not wait_http(f"http://{MOCK_ADDR}/v1/chat/completions", 10, method="GET"):
            raise RuntimeError("mock did not start")
        if os.path.exists(MOCK_CA):
            os.remove(MOCK_CA)
        procs.start(pinned(0, [os.path.join(TARGET, "bench-mock"), MOCK_TLS_ADDR, "1", MOCK_CA]), "mock-tls.log")
        deadline = time.time() + 10
        while not os.path.exists(MOCK_CA) and time.time() < deadline:
            time.sleep(0.1)
        if not os.path.exists(MOCK_CA):
            raise RuntimeError("the HTTPS mock did not start; see bench/out/mock-tls.log")
        # The router trusts the HTTPS mock's test CA through the standard variable, next to the
        # system's roots (so it loads as many trust anchors as it would in production).
        trust = os.path.join(OUT, "trust.pem")
        with open(trust, "w") as out:
            if os.path.exists(SYSTEM_ROOTS):
                with open(SYSTEM_ROOTS) as f:
                    out.write(f.read())
            with open(MOCK_CA) as f:
                out.write(f.read())
        env = dict(os.environ, SWITCHBOARD_LOG=os.environ.get("SWITCHBOARD_LOG", "info"), SSL_CERT_FILE=trust)
        router = start_router(procs, manifest, env, ROUTER_ADDR, ROUTER_ADMIN, "router.log")
        time.sleep(1)
        idle = rss_kb(router.pid) / 1024
        memory["rows"].append((f"idle, {N_KEYS:,} ApiKeys + {N_ROUTES} ModelRoutes loaded", idle))
        memory["idle"] = idle
        log(f"router idle RSS {idle:.1f} MB")

        relay = procs.start(pinned(1, [os.path.join(TARGET, "bench-relay"), RELAY_ADDR, MOCK_ADDR]),
                            "relay.log")
        if not wait_http(f"http://{RELAY_ADDR}/v1/chat/completions", 10, method="GET"):
            raise RuntimeError("bench-relay did not start")

        router_redis = None
        if shutil.which("redis-server"):
            procs.start(pinned(0, ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"]),
                        "redis.log")
            time.sleep(0.5)
            router_redis = start_router(procs, manifest, env, ROUTER_REDIS_ADDR, ROUTER_REDIS_ADMIN,
                                        "router-redis.log", ["--redis-url", f"redis://127.0.0.1:{REDIS_PORT}"])
        else:
            log("redis-server not found: no router-redis rows")

        # The usage store's cost: the same router without it, and with Postgres instead of SQLite.
        router_nostore = start_router(procs, manifest, env, ROUTER_NOSTORE_ADDR, ROUTER_NOSTORE_ADMIN,
                                      "router-nostore.log", ["--usage-store", "off"])
        pg, router_pg = None, None
        bindir = usage_bench.pg_bin()
        if bindir:
            pg = usage_bench.Postgres(bindir, os.path.join(OUT, "pg"), procs)
            router_pg = start_router(procs, manifest, dict(env, SWITCHBOARD_USAGE_STORE=pg.create(usage_bench.PG_DB_ROUTER)),
                                     ROUTER_PG_ADDR, ROUTER_PG_ADMIN, "router-pg.log")
        else:
            log("Postgres not found: no router-pg rows and no Postgres usage rows")

        litellm = None
        if args.peers:
            litellm, litellm_note = start_litellm(procs)

        urls = {"direct": f"http://{MOCK_ADDR}/v1/chat/completions",
                "relay": f"http://{RELAY_ADDR}/v1/chat/completions",
                "router": f"http://{ROUTER_ADDR}/v1/chat/completions"}
        pids = {"direct": None, "relay": relay.pid, "router": router.pid}
        if router_redis:
            urls["router-redis"] = f"http://{ROUTER_REDIS_ADDR}/v1/chat/completions"
            pids["router-redis"] = router_redis.pid
        urls["router-nostore"] = f"http://{ROUTER_NOSTORE_ADDR}/v1/chat/completions"
        pids["router-nostore"] = router_nostore.pid
        if router_pg:
            urls["router-pg"] = f"http://{ROUTER_PG_ADDR}/v1/chat/completions"
            pids["router-pg"] = router_pg.pid
        if litellm:
            urls["litellm"] = f"http://{LITELLM_ADDR}/v1/chat/completions"
            pids["litellm"] = litellm.pid
        # Warm up connections (and LiteLLM's lazy imports).
        for t in urls:
            oha(urls[t], bodies[(1, t)], 2, None, 4, key=LITELLM_KEY if t == "litellm" else BENCH_KEY)

        D = args.duration
        plan = []
        for size in (1, 16):
            redis = ["router-redis"] if size == 1 else []
            store = ["router-nostore", "router-pg"]
            plan.append((f"c1-{size}KB", size, None, 1, ["direct", "relay", "router"] + redis + ["litellm"]))
            for rate in (500, 1000, 2000):
                plan.append((f"rate-{rate}-{size}KB", size, rate, 64,
                             ["direct", "relay", "router"] + (redis + store if rate == 1000 else [])))
            plan.append((f"sat-{size}KB", size, None, 64, ["direct", "relay", "router"] + redis + store + ["litellm"]))
        if litellm:
            plan.insert(1, ("rate-100-1KB", 1, 100, 64, ["direct", "relay", "router", "litellm"]))
        for name, size, rate, conns, targets in plan:
            present = [t for t in targets if t in urls]
            rows += measure_rounds(
                name, present,
                lambda t, secs: measure(name, t, pids[t], urls[t], bodies[(size, t)], secs, rate, conns),
                D, args.rounds)
        if litellm:
            procs.stop(litellm)
        if router_redis:
            procs.stop(router_redis)
        usage_metrics = {}
        for name, admin, proc in (("router", ROUTER_ADMIN, router), ("router-pg", ROUTER_PG_ADMIN, router_pg)):
            if proc:
                usage_metrics[name] = usage_bench.usage_metrics(admin)
                log(f"{name} usage records: {usage_metrics[name]}")
        procs.stop(router_nostore)
        if router_pg:
            procs.stop(router_pg)
        # Let the stopped processes' teardown (sockets, memory) finish off the router's core.
        time.sleep(3)

        # Streaming: added time to first token and last byte, in interleaved rounds like the rest.
        n = max(20, D * 30)
        targets = [("direct", MOCK_ADDR, "bench-model"), ("router", ROUTER_ADDR, ROUTER_MODEL)]
        for t, addr, model in targets:
            # Warm-up (connections, first-use paths), not measured.
            sse("ttft", addr, BENCH_KEY, model, n=10, chunks=2, interval_ms=5).communicate()
        times, errors = {t: [] for t, _, _ in targets}, {t: 0 for t, _, _ in targets}
        for i in range(args.rounds):
            for t, addr, model in targets[i % 2:] + targets[:i % 2]:
                dump = os.path.join(OUT, f"ttft-{t}-{i + 1}.txt")
                p = sse("ttft", addr, BENCH_KEY, model, n=max(1, n // args.rounds), chunks=20, interval_ms=5,
                        dump=dump)
                out, _ = p.communicate()
                errors[t] += json.loads(out)["errors"]
                with open(dump) as f:
                    times[t] += [tuple(map(float, line.split())) for line in f if line.strip()]
        for t in times:
            stream[t] = stream_summary(times[t], errors[t])
            log(f"stream {t}: {stream[t]}")

        # Memory under many concurrent open streams (a chunk a second, so the machine keeps up).
        memory["rows"].append(("after the load runs (allocator keeps freed pages)", rss_kb(router.pid) / 1024))
        memory["rows"].append(("peak (VmHWM) over the load runs", rss_kb(router.pid, "VmHWM") / 1024))
        procs.stop(router)
        time.sleep(2)
        # Held streams, each upstream kind on a fresh router (the same manifest and pinning), so
        # what the streams cost is not hidden in pages the load runs left behind.
        upstreams = [(ROUTER_MODEL, MOCK_ADDR, "HTTP/1.1 upstream (plain HTTP, a connection per stream)"),
                     (ROUTER_MODEL_TLS, MOCK_TLS_ADDR, "HTTP/2 upstream (HTTPS, ALPN, up to 100 streams a connection)")]
        for model, upstream, how in upstreams:
            fresh = start_router(procs, manifest, env, ROUTER_ADDR, ROUTER_ADMIN, "router-streams.log")
            time.sleep(1)
            idle = rss_kb(fresh.pid) / 1024
            for n_streams in sorted({min(1000, args.streams), args.streams}):
                chunks = 25
                p = sse("hold", ROUTER_ADDR, BENCH_KEY, model, n=n_streams, chunks=chunks, interval_ms=1000)
                line = p.stdout.readline().strip()
                opened = int(line.split()[1]) if line.startswith("OPEN") else 0
                time.sleep(2)
                held = rss_kb(fresh.pid) / 1024
                conns = connections_to(int(upstream.rsplit(":", 1)[1]))
                # Again 12 chunks later: memory per stream must not grow while it streams.
                time.sleep(12)
                late = rss_kb(fresh.pid) / 1024
                done = p.stdout.readline().strip()
                p.wait()
                memory["rows"].append((f"{opened:,} of {n_streams:,} streams open at once, {how}", held))
                memory.setdefault("streams", []).append(
                    {"n": n_streams, "opened": opened, "rss": held, "idle": idle, "tls": upstream == MOCK_TLS_ADDR,
                     "late": late, "done": done, "conns": conns})
                memory["notes"].append(
                    f"{n_streams:,} streams, {how}: `{done}` (each {chunks} chunks, 1 s apart); "
                    f"{conns:,} upstream connections while they were open; "
                    f"{(held - idle) * 1024 / max(opened, 1):.1f} KB per open stream over this router's idle "
                    f"{idle:.1f} MB; {late:.1f} MB 12 chunks later")
                log(f"{n_streams} streams ({upstream}): opened={opened} rss={held:.1f}MB conns={conns} {done}")
                time.sleep(3)
            procs.stop(fresh)
            time.sleep(1)

        # The usage store on its own: write rates, then ten million rows and the API's queries.
        usage = usage_bench.measure(TARGET, OUT, pg, args.usage_rows, max(5, D // 2))
        usage["metrics"] = usage_metrics
    finally:
        procs.stop_all()

    oha_version = subprocess.run([OHA, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench-peers" if args.peers else "make bench",
        "nproc": os.cpu_count(), "cpu": cpu, "uname": " ".join(platform.uname()).strip(),
        "pinning": ("taskset: router (and LiteLLM) on CPU 1; mock, oha and bench-sse on CPU 0"
                    if HAVE_TASKSET else "none (taskset missing or a single CPU)"),
        "oha": oha_version, "duration": args.duration, "rounds": args.rounds,
    }
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "stream": stream, "memory": memory,
                   "litellm_note": litellm_note, "usage": usage}, f, indent=1)
    write_doc(args.doc, meta, rows, stream, memory, args.peers and any(r["target"] == "litellm" for r in rows),
              litellm_note, usage)
    write_svg(os.path.join(os.path.dirname(args.doc), "benchmarks.svg"), rows,
              any(r["target"] == "litellm" for r in rows))
    log(f"wrote {args.doc}")


def start_litellm(procs):
    exe = os.path.join(LITELLM_VENV, "bin", "litellm")
    if not os.path.exists(exe):
        return None, "not installed (bench/.venv-litellm/bin/litellm missing); see `make bench-peers`"
    version = subprocess.run([os.path.join(LITELLM_VENV, "bin", "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True).stdout.strip()
    cfg = os.path.join(OUT, "litellm.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model_list:
  - model_name: {ROUTER_MODEL}
    litellm_params:
      model: openai/bench-model
      api_base: http://{MOCK_ADDR}/v1
      api_key: sk-bench-upstream
litellm_settings:
  turn_off_message_logging: true
  telemetry: false
general_settings:
  master_key: {LITELLM_KEY}
""")
    env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False")
    host, port = LITELLM_ADDR.split(":")
    p = procs.start(pinned(1, [exe, "--config", cfg, "--host", host, "--port", port, "--num_workers", "1"]),
                    "litellm.log", env=env)
    if not wait_http(f"http://{LITELLM_ADDR}/health/liveliness", 120, proc=p):
        procs.stop(p)
        return None, "did not become ready within 120 s; see bench/out/litellm.log"
    log(f"LiteLLM {version} ready")
    return p, (f"litellm[proxy] {version} from PyPI in bench/.venv-litellm, one worker (`--num_workers 1`), "
               "`turn_off_message_logging: true`, `telemetry: false`, `LITELLM_LOG=ERROR`, a master key "
               "(it refuses to start without one) and no database, pinned to CPU 1")


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
