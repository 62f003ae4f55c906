#!/usr/bin/env python3
"""Three router replicas on one Redis (`make bench-replicas`). Standard library only.

Saturation of one standalone router (in-process ledger) against three release routers sharing
one redis-server, in both ledger modes (`--ledger-mode lease`, the default, and `per-request`),
non-streamed 1 KB chat requests through a key with a Budget and rate limits (requests and tokens
per minute). This machine has two cores: every router is pinned to CPU 1 (the three replicas
share it), and the mock upstream, redis-server and the load generators (`oha`, one per router)
to CPU 0, as bench/run.py pins them. So the three replicas together have the standalone router's
core: their combined saturation over the standalone router's is each replica's saturation over
a standalone router's with the same share of a core. Configurations take turns over several
rounds (a slow spell of the shared VM lands on all alike). Redis's work is read from
`INFO commandstats` before and after each run: `EVALSHA` calls (the ledger's round trips) and
every command Redis ran (those inside scripts included), per request served.

Writes its own section of docs/benchmarks.md, between `<!-- replicas:begin -->` and
`<!-- replicas:end -->` (appended when absent), and bench/out/replicas.json.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time

from harness import OHA, OUT, ROOT, TARGET, Procs, log, pinned, wait_http  # noqa: E402


MOCK_ADDR = "127.0.0.1:18100"
REDIS_PORT = 18479
ROUTERS = [("127.0.0.1:18180", "127.0.0.1:18190"), ("127.0.0.1:18181", "127.0.0.1:18191"),
           ("127.0.0.1:18182", "127.0.0.1:18192")]
KEY = "sk-sb-replicas-0000-0123456789abcdef"
MODEL = "bench/chat"
N_KEYS = 100
CONNS = 64
BEGIN, END = "<!-- replicas:begin -->", "<!-- replicas:end -->"


def write_manifest(path):
    """N_KEYS keys with rate limits, one team Budget over them, one route to the mock."""
    keys = "\n".join(f"  k{i:04d}: sk-sb-replicas-{i:04d}-0123456789abcdef" for i in range(N_KEYS))
    docs = [f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n{keys}\n",
            f"""apiVersion: switchboard.dev/v1alpha1
kind: Provider
metadata:
  name: mock
spec:
  type: openaiCompatible
  baseURL: http://{MOCK_ADDR}/v1
  models:
    - name: bench-model
      pricing: {{inputUSDPerMillion: "0.15", outputUSDPerMillion: "0.60"}}
      contextLength: 128000
      maxOutputTokens: 4096
""",
            f"""apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata:
  name: chat
spec:
  model: {MODEL}
  targets:
    - {{provider: mock, model: bench-model}}
""",
            """apiVersion: switchboard.dev/v1alpha1
kind: Budget
metadata:
  name: team
spec:
  limitUSD: "1000000"
  window: monthly
  scope: {team: bench}
  action: block
"""]
    for i in range(N_KEYS):
        docs.append(f"""apiVersion: switchboard.dev/v1alpha1
kind: ApiKey
metadata:
  name: key-{i:04d}
  labels: {{team: bench}}
spec:
  secretRef: {{name: keys, key: k{i:04d}}}
  rateLimits: {{requestsPerMinute: 100000000, tokensPerMinute: 4000000000}}
""")
    with open(path, "w") as f:
        f.write("---\n".join(docs))


def write_body(path):
    base = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": ""}]}
    base["messages"][0]["content"] = "x" * (1024 - len(json.dumps(base, separators=(",", ":"))))
    with open(path, "w") as f:
        f.write(json.dumps(base, separators=(",", ":")))



def redis_info(section):
    """`INFO section` over a plain socket (RESP), as a dict of its `name:value` lines."""
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5) as s:
        s.sendall(f"INFO {section}\r\n".encode())
        data = b""
        while True:
            data += s.recv(65536)
            if data.startswith(b"$"):
                head, _, rest = data.partition(b"\r\n")
                if len(rest) >= int(head[1:]):
                    break
    out = {}
    for line in data.decode().split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def command_calls():
    """Calls per command so far (`cmdstat_evalsha` → `evalsha`)."""
    calls = {}
    for k, v in redis_info("commandstats").items():
        if k.startswith("cmdstat_"):
            fields = dict(p.split("=", 1) for p in v.split(","))
            calls[k[len("cmdstat_"):]] = int(fields["calls"])
    return calls


def redis_flush():
    with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5) as s:
        s.sendall(b"FLUSHALL\r\nCONFIG RESETSTAT\r\n")
        time.sleep(0.2)
        s.recv(4096)



def start_routers(procs, manifest, n, extra, tag):
    """`n` release routers on CPU 1, each with its own state directory, ready."""
    started = []
    for i, (listen, admin) in enumerate(ROUTERS[:n]):
        state = os.path.join(OUT, f"state-replicas-{tag}-{i}")
        shutil.rmtree(state, ignore_errors=True)
        env = dict(os.environ, SWITCHBOARD_LOG=os.environ.get("SWITCHBOARD_LOG", "warn"))
        p = procs.start(pinned(1, [os.path.join(TARGET, "switchboard-router"), "--manifests", manifest,
                                   "--listen", listen, "--admin-listen", admin, "--state-dir", state,
                                   "--usage-store", "off", *extra]),
                        f"replicas-{tag}-{i}.log", env=env)
        started.append(p)
    for (listen, admin) in ROUTERS[:n]:
        if not wait_http(f"http://{admin}/readyz", 30):
            raise RuntimeError(f"router {listen} did not become ready; see bench/out/replicas-{tag}-*.log")
    return started


def load(n, body, seconds):
    """`oha` at saturation against the first `n` routers at once (CONNS connections split
    between them): requests per second and 200s per router, errors."""
    runs = []
    for listen, _ in ROUTERS[:n]:
        argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", str(CONNS // n),
                "-m", "POST", "-H", f"Authorization: Bearer {KEY}", "-H", "Content-Type: application/json",
                "-D", body, f"http://{listen}/v1/chat/completions"]
        runs.append(subprocess.Popen(pinned(0, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for p in runs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"oha failed: {stderr[-2000:]}")
        r = json.loads(stdout)
        codes = r.get("statusCodeDistribution", {})
        errs = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k}
        ok = codes.get("200", 0)
        out.append({"rps": r["summary"].get("requestsPerSec") or 0.0, "ok": ok,
                    "errors": sum(codes.values()) - ok + sum(errs.values()),
                    "error_kinds": {**{k: v for k, v in codes.items() if k != "200"}, **errs}})
    return out


CONFIGS = [
    ("standalone", 1, [], "one router, in-process ledger"),
    ("lease", 3, ["--redis-url", f"redis://127.0.0.1:{REDIS_PORT}", "--ledger-mode", "lease"],
     "three routers, one Redis, `--ledger-mode lease` (default)"),
    ("per-request", 3, ["--redis-url", f"redis://127.0.0.1:{REDIS_PORT}", "--ledger-mode", "per-request"],
     "three routers, one Redis, `--ledger-mode per-request`"),
]


def run_config(procs, manifest, body, config, seconds):
    name, n, extra, _ = config
    if extra:
        redis_flush()
    routers = start_routers(procs, manifest, n, extra, name)
    try:
        load(n, body, 2)  # warm-up: connections, slices grown to the load
        before = command_calls() if extra else {}
        t0 = time.time()
        runs = load(n, body, seconds)
        wall = time.time() - t0
        after = command_calls() if extra else {}
    finally:
        for p in routers:
            procs.stop(p)
    ok = sum(r["ok"] for r in runs)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    row = {"config": name, "routers": n, "rps": sum(r["rps"] for r in runs),
           "per_router": [r["rps"] for r in runs], "ok": ok, "seconds": wall,
           "errors": sum(r["errors"] for r in runs),
           "error_kinds": [r["error_kinds"] for r in runs],
           "evalsha": diff.get("evalsha", 0) + diff.get("eval", 0),
           "commands": sum(v for k, v in diff.items() if k not in ("info", "config|resetstat")),
           "top_commands": sorted(diff.items(), key=lambda kv: -kv[1])[:8]}
    log(f"{name:<12} {n} router(s): {row['rps']:9.1f} req/s ({', '.join(f'{r:.0f}' for r in row['per_router'])}) "
        f"errors={row['errors']} evalsha={row['evalsha']} commands={row['commands']}")
    return row


def combine(rounds):
    row = dict(rounds[-1])
    row["rps"] = statistics.mean(r["rps"] for r in rounds)
    row["per_router_mean"] = row["rps"] / row["routers"]
    for k in ("ok", "errors", "evalsha", "commands"):
        row[k] = sum(r[k] for r in rounds)
    row["rounds"] = [round(r["rps"], 1) for r in rounds]
    row["ok_last"] = rounds[-1]["ok"]
    return row


def section(meta, rows):
    by = {r["config"]: r for r in rows}
    base = by["standalone"]["rps"]
    lines = [BEGIN, "", "## Three replicas on one Redis (`make bench-replicas`)", "",
             f"Run {meta['date']} on {meta['host']}; {meta['rounds']} interleaved rounds of {meta['seconds']} s "
             "per configuration (req/s: mean over rounds; Redis counts summed). Non-streamed 1 KB chat requests, "
             f"max_tokens 64, through one ApiKey with a monthly Budget and requests- and tokens-per-minute limits, "
             f"at saturation ({CONNS} connections in all). Every router is pinned to CPU 1 — the three replicas "
             "share the core the standalone router has alone — and the mock, redis-server and the load "
             "generators (one `oha` per router) to CPU 0. `vs standalone` is the replicas' combined rate over "
             "the standalone router's: each replica's saturation over a standalone router's on the same share "
             "of a core. `EVALSHA/req` counts the ledger's round trips to Redis per request served; "
             "`commands/req` every command Redis ran, those inside the Lua scripts included "
             "(`INFO commandstats` before and after each run). Design: [budgets.md](budgets.md#leases-limits-shared-at-local-speed).",
             "",
             "| configuration | routers | req/s (all) | req/s per router | vs standalone | EVALSHA/req | commands/req | errors | rounds (req/s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, _, _, label in CONFIGS:
        r = by[name]
        per_req = lambda v: f"{v / r['ok']:.4f}" if r["routers"] > 1 and r["ok"] else "—"
        lines.append(f"| {label} | {r['routers']} | {r['rps']:,.0f} | {r['per_router_mean']:,.0f} | "
                     f"{r['rps'] / base * 100:.0f} % | {per_req(r['evalsha'])} | {per_req(r['commands'])} | "
                     f"{r['errors']} | {', '.join(f'{v:,.0f}' for v in r['rounds'])} |")
    lease = by["lease"]
    if lease["ok_last"]:
        top = ", ".join(f"{k} {v / lease['ok_last']:.4f}" for k, v in lease["top_commands"])
        lines += ["", f"Lease mode, Redis commands per request by command (last round): {top}."]
    if meta.get("note"):
        lines += ["", meta["note"]]
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write_doc(path, text):
    doc = open(path).read() if os.path.exists(path) else ""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        doc = head + text + ("\n" + tail if tail else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "8")),
                    help="seconds of load per configuration and round")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--note", default="", help="a sentence about the run, printed under the table")
    ap.add_argument("--render", metavar="REPLICAS_JSON", help="only rewrite the section from a saved run")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        saved["meta"]["note"] = args.note or saved["meta"].get("note", "")
        write_doc(args.doc, section(saved["meta"], saved["rows"]))
        return 0
    for tool in (OHA, os.path.join(TARGET, "switchboard-router"), os.path.join(TARGET, "bench-mock")):
        if not os.path.exists(tool):
            sys.exit(f"missing {tool}: run `make bench-replicas` (it builds and installs them)")
    redis_server = shutil.which("redis-server")
    if not redis_server:
        sys.exit("redis-server not found: `make venv` or install redis-server")
    os.makedirs(OUT, exist_ok=True)
    manifest = os.path.join(OUT, "replicas.yaml")
    body = os.path.join(OUT, "replicas-body.json")
    write_manifest(manifest)
    write_body(body)
    procs = Procs()
    by = {c[0]: [] for c in CONFIGS}
    try:
        procs.start(pinned(0, [os.path.join(TARGET, "bench-mock"), MOCK_ADDR, "1"]), "replicas-mock.log")
        procs.start(pinned(0, [redis_server, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"]),
                    "replicas-redis.log")
        if not wait_http(f"http://{MOCK_ADDR}/v1/chat/completions", 10):
            raise RuntimeError("bench-mock did not start; see bench/out/replicas-mock.log")
        for i in range(args.rounds):
            k = i % len(CONFIGS)
            for config in CONFIGS[k:] + CONFIGS[:k]:
                by[config[0]].append(run_config(procs, manifest, body, config, args.seconds))
    finally:
        procs.stop_all()
    rows = [combine(by[c[0]]) for c in CONFIGS]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
            "rounds": args.rounds, "seconds": args.seconds, "note": args.note}
    with open(os.path.join(OUT, "replicas.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    write_doc(args.doc, section(meta, rows))
    log(f"wrote {os.path.relpath(args.doc, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
