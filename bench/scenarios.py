"""The scenarios of `make bench`, in the order bench/run.py runs them: the targets started (mock,
HTTPS mock, router, relay, router with Redis, without a usage store, with Postgres, peers), the
non-streaming load in interleaved rounds, streaming time to first token, and memory under many
held streams. Each returns what the report needs. Standard library only."""

import json
import os
import shutil
import time

import peers as peer_gateways
import usage as usage_bench
from harness import (
    BENCH_KEY, MOCK_ADDR, MOCK_CA, MOCK_TLS_ADDR, N_KEYS, N_ROUTES, OUT, REDIS_PORT, RELAY_ADDR, RELAY_HTTP_ADDR, ROUTER_ADDR,
    ROUTER_ADMIN, ROUTER_MODEL, ROUTER_MODEL_TLS, ROUTER_NOSTORE_ADDR, ROUTER_NOSTORE_ADMIN, ROUTER_PG_ADDR,
    ROUTER_PG_ADMIN, ROUTER_REDIS_ADDR, ROUTER_REDIS_ADMIN, SYSTEM_ROOTS, TARGET, connections_to, log,
    measure, measure_rounds, oha, pinned, rss_kb, sse, start_router, stream_summary, wait_http,
)


class Targets:
    """Everything the load runs against, started: `urls` and `pids` by target name, `headers` for
    targets that need their own (peers), the processes to stop, and how each peer runs."""

    def __init__(self):
        self.urls, self.pids, self.headers = {}, {}, {}
        self.router = self.relay = self.relay_http = self.router_redis = self.router_nostore = self.router_pg = None
        self.pg, self.env = None, None
        self.peers, self.peer_notes = {}, {}

    def add(self, name, url, proc, headers=None):
        self.urls[name], self.pids[name] = url, proc.pid if proc else None
        if headers is not None:
            self.headers[name] = headers


def start_targets(procs, manifest, with_peers, memory):
    """Starts the mocks, the routers, the relay and (with `with_peers`) the peers; records the
    router's idle RSS in `memory`."""
    t = Targets()
    procs.start(pinned(0, [os.path.join(TARGET, "bench-mock"), MOCK_ADDR, "1"]), "mock.log")
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
    t.env = env = dict(os.environ, SWITCHBOARD_LOG=os.environ.get("SWITCHBOARD_LOG", "info"), SSL_CERT_FILE=trust)
    t.router = start_router(procs, manifest, env, ROUTER_ADDR, ROUTER_ADMIN, "router.log")
    time.sleep(1)
    idle = rss_kb(t.router.pid) / 1024
    memory["rows"].append((f"idle, {N_KEYS:,} ApiKeys + {N_ROUTES} ModelRoutes loaded", idle))
    memory["idle"] = idle
    log(f"router idle RSS {idle:.1f} MB")

    t.relay = procs.start(pinned(1, [os.path.join(TARGET, "bench-relay"), RELAY_ADDR, MOCK_ADDR]), "relay.log")
    if not wait_http(f"http://{RELAY_ADDR}/v1/chat/completions", 10, method="GET"):
        raise RuntimeError("bench-relay did not start")
    t.relay_http = procs.start(pinned(1, [os.path.join(TARGET, "bench-relay"), "--http", RELAY_HTTP_ADDR, MOCK_ADDR]),
                               "relay-http.log")
    if not wait_http(f"http://{RELAY_HTTP_ADDR}/v1/chat/completions", 10, method="GET"):
        raise RuntimeError("bench-relay --http did not start")

    if shutil.which("redis-server"):
        procs.start(pinned(0, ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"]),
                    "redis.log")
        time.sleep(0.5)
        t.router_redis = start_router(procs, manifest, env, ROUTER_REDIS_ADDR, ROUTER_REDIS_ADMIN,
                                      "router-redis.log", ["--redis-url", f"redis://127.0.0.1:{REDIS_PORT}"])
    else:
        log("redis-server not found: no router-redis rows")

    # The usage store's cost: the same router without it, and with Postgres instead of SQLite.
    t.router_nostore = start_router(procs, manifest, env, ROUTER_NOSTORE_ADDR, ROUTER_NOSTORE_ADMIN,
                                    "router-nostore.log", ["--usage-store", "off"])
    bindir = usage_bench.pg_bin()
    if bindir:
        # On CPU 0 with the mock and the load generator: the router's core is what is measured.
        t.pg = usage_bench.Postgres(bindir, os.path.join(OUT, "pg"), procs, cpu=0)
        t.router_pg = start_router(procs, manifest,
                                   dict(env, SWITCHBOARD_USAGE_STORE=t.pg.create(usage_bench.PG_DB_ROUTER)),
                                   ROUTER_PG_ADDR, ROUTER_PG_ADMIN, "router-pg.log")
    else:
        log("Postgres not found: no router-pg rows and no Postgres usage rows")

    if with_peers:
        for name in peer_gateways.NAMES:
            proc, t.peer_notes[name] = peer_gateways.start(name, procs)
            if proc:
                t.peers[name] = proc

    t.add("direct", f"http://{MOCK_ADDR}/v1/chat/completions", None)
    t.add("relay", f"http://{RELAY_ADDR}/v1/chat/completions", t.relay)
    t.add("relay-http", f"http://{RELAY_HTTP_ADDR}/v1/chat/completions", t.relay_http)
    t.add("router", f"http://{ROUTER_ADDR}/v1/chat/completions", t.router)
    if t.router_redis:
        t.add("router-redis", f"http://{ROUTER_REDIS_ADDR}/v1/chat/completions", t.router_redis)
    t.add("router-nostore", f"http://{ROUTER_NOSTORE_ADDR}/v1/chat/completions", t.router_nostore)
    if t.router_pg:
        t.add("router-pg", f"http://{ROUTER_PG_ADDR}/v1/chat/completions", t.router_pg)
    for name, proc in t.peers.items():
        t.add(name, peer_gateways.url(name), proc, peer_gateways.headers(name))
    return t


def non_streaming(t, bodies, duration, rounds):
    """The closed-loop (concurrency 1, saturation) and open-loop (fixed rates) rows, each scenario
    in interleaved rounds over its targets."""
    # Warm up connections (and the peers' lazy imports).
    for name in t.urls:
        oha(t.urls[name], bodies[(1, name)], 2, None, 4, t.headers.get(name))
    peers = list(peer_gateways.NAMES)
    plan = []
    for size in (1, 16):
        redis = ["router-redis"] if size == 1 else []
        store = ["router-nostore", "router-pg"]
        plan.append((f"c1-{size}KB", size, None, 1, ["direct", "relay", "relay-http", "router"] + redis + peers))
        for rate in (500, 1000, 2000):
            plan.append((f"rate-{rate}-{size}KB", size, rate, 64,
                         ["direct", "relay", "router"] + (redis + store if rate == 1000 else [])))
        plan.append((f"sat-{size}KB", size, None, 64,
                     ["direct", "relay", "relay-http", "router"] + redis + store + peers))
    if t.peers:
        plan.insert(1, ("rate-100-1KB", 1, 100, 64, ["direct", "relay", "router"] + peers))
    rows = []
    for name, size, rate, conns, targets in plan:
        present = [x for x in targets if x in t.urls]
        rows += measure_rounds(
            name, present,
            lambda x, secs: measure(name, x, t.pids[x], t.urls[x], bodies[(size, x)], secs, rate, conns,
                                    t.headers.get(x)),
            duration, rounds)
    return rows


def streaming(duration, rounds):
    """Added time to first token and last byte, in interleaved rounds like the rest: the summary
    by target."""
    n = max(20, duration * 30)
    targets = [("direct", MOCK_ADDR, "bench-model"), ("relay", RELAY_ADDR, "bench-model"),
               ("relay-http", RELAY_HTTP_ADDR, "bench-model"), ("router", ROUTER_ADDR, ROUTER_MODEL)]
    for _, addr, model in targets:
        # Warm-up (connections, first-use paths), not measured.
        sse("ttft", addr, BENCH_KEY, model, n=10, chunks=2, interval_ms=5).communicate()
    times, errors = {x: [] for x, _, _ in targets}, {x: 0 for x, _, _ in targets}
    for i in range(rounds):
        for x, addr, model in targets[i % len(targets):] + targets[:i % len(targets)]:
            dump = os.path.join(OUT, f"ttft-{x}-{i + 1}.txt")
            p = sse("ttft", addr, BENCH_KEY, model, n=max(1, n // rounds), chunks=20, interval_ms=5, dump=dump)
            out, _ = p.communicate()
            errors[x] += json.loads(out)["errors"]
            with open(dump) as f:
                times[x] += [tuple(map(float, line.split())) for line in f if line.strip()]
    stream = {}
    for x in times:
        stream[x] = stream_summary(times[x], errors[x])
        log(f"stream {x}: {stream[x]}")
    return stream


def held_streams(procs, manifest, env, n_streams_max, memory):
    """Memory under many concurrent open streams (a chunk a second, so the machine keeps up), each
    upstream kind on a fresh router (the same manifest and pinning), so what the streams cost is
    not hidden in pages the load runs left behind. Adds rows and notes to `memory`."""
    upstreams = [(ROUTER_MODEL, MOCK_ADDR, "HTTP/1.1 upstream (plain HTTP, a connection per stream)"),
                 (ROUTER_MODEL_TLS, MOCK_TLS_ADDR, "HTTP/2 upstream (HTTPS, ALPN, up to 100 streams a connection)")]
    for model, upstream, how in upstreams:
        fresh = start_router(procs, manifest, env, ROUTER_ADDR, ROUTER_ADMIN, "router-streams.log")
        time.sleep(1)
        idle = rss_kb(fresh.pid) / 1024
        for n_streams in sorted({min(1000, n_streams_max), n_streams_max}):
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
