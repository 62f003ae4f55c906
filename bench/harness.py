"""The benchmark harness shared by bench/run.py, its scenarios and bench/usage.py: addresses and
fixtures (the manifest, request bodies), starting and stopping processes pinned to a CPU, reading
their CPU time, memory and connections from /proc, and one load run with `oha`. Standard library
only."""

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
OUT = os.path.join(BENCH, "out")
TARGET = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release")
OHA = os.path.join(BENCH, ".tools", "bin", "oha")

MOCK_ADDR = "127.0.0.1:18000"
MOCK_TLS_ADDR = "127.0.0.1:18443"
MOCK_CA = os.path.join(OUT, "mock-ca.pem")
SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt"
ROUTER_ADDR = "127.0.0.1:18080"
ROUTER_ADMIN = "127.0.0.1:18090"
RELAY_ADDR = "127.0.0.1:18070"
RELAY_HTTP_ADDR = "127.0.0.1:18071"
REDIS_PORT = 18379
ROUTER_REDIS_ADDR = "127.0.0.1:18081"
ROUTER_REDIS_ADMIN = "127.0.0.1:18091"
ROUTER_NOSTORE_ADDR = "127.0.0.1:18082"
ROUTER_NOSTORE_ADMIN = "127.0.0.1:18092"
ROUTER_PG_ADDR = "127.0.0.1:18083"
ROUTER_PG_ADMIN = "127.0.0.1:18093"
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
  limitUSD: "1000000"
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


def write_fixtures():
    """Writes bench/out/manifests.yaml and a 1 KB and a 16 KB request body per target; returns
    the manifest's path and the bodies' paths by (size in KB, target)."""
    os.makedirs(OUT, exist_ok=True)
    manifest = os.path.join(OUT, "manifests.yaml")
    write_manifest(manifest)
    bodies = {}
    for size in (1, 16):
        for target, model in (("direct", "bench-model"), ("relay", "bench-model"), ("relay-http", "bench-model"),
                              ("router", ROUTER_MODEL),
                              ("router-redis", ROUTER_MODEL), ("router-nostore", ROUTER_MODEL),
                              ("router-pg", ROUTER_MODEL), ("litellm", ROUTER_MODEL),
                              ("portkey", "bench-model")):
            p = os.path.join(OUT, f"body-{size}KB-{target}.json")
            write_body(p, size * 1024, model)
            bodies[(size, target)] = p
    return manifest, bodies


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


def auth_headers(key=BENCH_KEY):
    """The headers of a request to the router (or any target taking a bearer key)."""
    return [f"Authorization: Bearer {key}"]


def oha(url, body_file, duration, rate=None, conns=64, headers=None):
    """One `oha` run of `duration` seconds (open loop at `rate`, else closed loop over `conns`
    connections), with `headers` (default: the router's bench key); its JSON summary."""
    argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-c", str(conns), "-m", "POST"]
    for h in (auth_headers() if headers is None else headers) + ["Content-Type: application/json"]:
        argv += ["-H", h]
    argv += ["-D", body_file]
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


def measure(name, target, pid, url, body_file, duration, rate, conns, headers=None):
    """One row: `oha` on `url` with the target's CPU% and RSS (of `pid` and its children)."""
    t0, c0 = time.time(), cpu_ticks(pid) if pid else 0
    r = oha(url, body_file, duration, rate, conns, headers)
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
    # The bench's configuration is part of what is measured: an object the router rejected (a
    # Budget over the ledger's exact range, say) would be measured without, silently.
    with open(os.path.join(OUT, log_name)) as f:
        rejected = [line.strip() for line in f if "rejected:" in line]
    if rejected:
        raise RuntimeError(f"the router rejected part of the bench manifest: {rejected[0]}")
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
