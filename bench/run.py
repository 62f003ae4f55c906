#!/usr/bin/env python3
"""Switchboard benchmark driver (`make bench`, `make bench-peers`). Standard library only.

Starts the bench mock upstream (CPU 0) and the release router (CPU 1) with a generated manifest
(1,000 ApiKeys, 200 ModelRoutes, a Budget and a rate limit on every key), drives them with `oha`
(open loop at fixed rates, closed loop at concurrency 1 and at saturation), measures streaming
with `bench-sse`, and writes docs/benchmarks.md and docs/benchmarks.svg.

With --peers it also starts LiteLLM proxy and Portkey's gateway (bench/peers.py, CPU 1) on the
same mock and runs the non-streaming scenarios against them in the same run.

The parts: bench/harness.py (fixtures, processes, one load run), bench/scenarios.py (what is
run), bench/peers.py (the other gateways), bench/report.py (the page), bench/usage.py (the usage
store's rows).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time

import harness
import report
import scenarios
import usage as usage_bench
from harness import HAVE_TASKSET, OHA, OUT, ROOT, ROUTER_ADMIN, ROUTER_PG_ADMIN, TARGET, Procs, log, rss_kb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", action="store_true", help="also run LiteLLM proxy and Portkey's gateway side by side")
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "15")),
                    help="seconds of load per target and scenario, split over the rounds")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")),
                    help="interleaved rounds per scenario (targets take turns)")
    ap.add_argument("--streams", type=int, default=int(os.environ.get("BENCH_STREAMS", "10000")))
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--usage-rows", type=int, default=int(os.environ.get("BENCH_USAGE_ROWS", "10000000")),
                    help="records generated for the usage store's query rows (0: none, the page keeps its section)")
    ap.add_argument("--usage-from", metavar="RESULTS_JSON",
                    help="take the usage store's write and query rows from a saved bench/out/results.json "
                         "(its date is shown) instead of seeding ten million records again")
    ap.add_argument("--usage-only", action="store_true",
                    help="only the usage store's rows (bench/usage.py), spliced into the doc")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 s per scenario, few streams")
    ap.add_argument("--fixtures", action="store_true",
                    help="only write the manifest and request bodies into bench/out (for bench/callgrind.sh)")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite the doc and chart from a saved bench/out/results.json")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        notes = saved.get("peer_notes") or {"litellm": saved.get("litellm_note", "")}
        report.write_doc(args.doc, saved["meta"], saved["rows"], saved["stream"], saved["memory"], notes,
                         saved.get("usage"), saved.get("callgrind"))
        report.write_svg(os.path.join(os.path.dirname(args.doc), "benchmarks.svg"), saved["rows"])
        return 0
    if args.quick:
        args.duration, args.streams, args.usage_rows = 2, 200, 200_000
    if args.usage_only:
        return usage_bench.run_only(harness, args)

    manifest, bodies = harness.write_fixtures()
    if args.fixtures:
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    procs = Procs()
    rows, stream, memory = [], {}, {"rows": [], "notes": []}
    peer_notes, usage = {}, None
    try:
        t = scenarios.start_targets(procs, manifest, args.peers, memory)
        peer_notes = t.peer_notes
        rows = scenarios.non_streaming(t, bodies, args.duration, args.rounds)
        for proc in list(t.peers.values()) + [t.router_redis]:
            if proc:
                procs.stop(proc)
        usage_metrics = {}
        for name, admin, proc in (("router", ROUTER_ADMIN, t.router), ("router-pg", ROUTER_PG_ADMIN, t.router_pg)):
            if proc:
                usage_metrics[name] = usage_bench.usage_metrics(admin)
                log(f"{name} usage records: {usage_metrics[name]}")
        procs.stop(t.router_nostore)
        if t.router_pg:
            procs.stop(t.router_pg)
        # Let the stopped processes' teardown (sockets, memory) finish off the router's core.
        time.sleep(3)

        stream = scenarios.streaming(args.duration, args.rounds)

        memory["rows"].append(("after the load runs (allocator keeps freed pages)", rss_kb(t.router.pid) / 1024))
        memory["rows"].append(("peak (VmHWM) over the load runs", rss_kb(t.router.pid, "VmHWM") / 1024))
        procs.stop(t.router)
        time.sleep(2)
        scenarios.held_streams(procs, manifest, t.env, args.streams, memory)

        # The usage store on its own: write rates, then ten million rows and the API's queries.
        # BENCH_USAGE_ROWS=0: no store rows (the page keeps its "Usage store" section);
        # --usage-from: the store's own rows (write rates, 10M-row queries) of an earlier run.
        if args.usage_from:
            with open(args.usage_from) as f:
                saved = json.load(f)
            usage = saved["usage"]
            usage["meta"] = dict(saved["meta"], saved=True)
            usage["metrics"] = usage_metrics
        elif args.usage_rows:
            usage = usage_bench.measure(TARGET, OUT, t.pg, args.usage_rows, max(5, args.duration // 2))
            usage["metrics"] = usage_metrics
    finally:
        procs.stop_all()
    callgrind = instructions(args) if shutil.which("valgrind") and not args.quick else None

    oha_version = subprocess.run([OHA, "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench-peers" if args.peers else "make bench",
        "nproc": os.cpu_count(), "cpu": cpu, "uname": " ".join(platform.uname()).strip(),
        "pinning": ("taskset: router (and the peers) on CPU 1; mock, oha and bench-sse on CPU 0"
                    if HAVE_TASKSET else "none (taskset missing or a single CPU)"),
        "oha": oha_version, "duration": args.duration, "rounds": args.rounds,
    }
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "stream": stream, "memory": memory,
                   "peer_notes": peer_notes, "usage": usage, "callgrind": callgrind}, f, indent=1)
    report.write_doc(args.doc, meta, rows, stream, memory, peer_notes, usage, callgrind)
    report.write_svg(os.path.join(os.path.dirname(args.doc), "benchmarks.svg"), rows)
    log(f"wrote {args.doc}")


def instructions(args):
    """Instructions per request under callgrind (bench/callgrind.sh, 1 KB, concurrency 1): the
    router without the usage store (as issue 22 counts it), with it (SQLite, as the load runs
    above), and the two relays. {name: per request}."""
    n = os.environ.get("BENCH_CALLGRIND_REQUESTS", "500")
    out = {}
    for key, extra in (("router", {"ROUTER_ARGS": "--usage-store off"}),
                       ("router-store", {"ROUTER_ONLY": "1"})):
        log(f"callgrind: {key}")
        res = subprocess.run([os.path.join(ROOT, "bench", "callgrind.sh"), "", n, "1KB"],
                             env=dict(os.environ, **extra), capture_output=True, text=True)
        if res.returncode != 0:
            log(f"callgrind failed: {res.stderr[-1000:]}")
            return None
        for line in res.stdout.splitlines():
            name, _, rest = line.partition(": ")
            if rest.endswith(" per request"):
                out[key if name == "router" else name] = int(rest.split(", ")[-1].split()[0])
    log(f"callgrind: {out}")
    return out


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
