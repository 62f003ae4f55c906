"""The usage store's part of `make bench` (bench/run.py calls it): a Postgres server for the
`router-pg` rows, the sustained write rate into SQLite and Postgres, and the report, activity and
generation queries on ten million generated rows, with their plans (bench/src/bin/usage.rs does
the work; this file starts what it needs and writes the section of docs/benchmarks.md).
Standard library only."""

import glob
import json
import os
import pwd
import shutil
import subprocess
import time
import urllib.request

PG_PORT = 18432
PG_DB_ROUTER = "router"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pg_bin():
    """The directory of Postgres' server programs: SWITCHBOARD_TEST_PG_BIN, `initdb` on PATH, or
    the newest Debian /usr/lib/postgresql/N/bin."""
    candidates = [os.environ.get("SWITCHBOARD_TEST_PG_BIN", "")]
    if shutil.which("initdb"):
        candidates.append(os.path.dirname(shutil.which("initdb")))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for d in candidates:
        if d and all(os.path.exists(os.path.join(d, p)) for p in ("initdb", "pg_ctl", "postgres", "psql")):
            return d
    return None


class Postgres:
    """A throwaway Postgres in `dir` with the default (durable) settings: fsync on, synchronous
    commits. As root, the server runs as `nobody` (initdb refuses root). With `cpu`, the server
    and its backends are pinned to that CPU (`taskset`), as a database on its own machine would
    be: off the core of the router under load."""

    def __init__(self, bindir, dir, procs, cpu=None):
        self.bin, self.dir, self.procs = bindir, dir, procs
        shutil.rmtree(dir, ignore_errors=True)
        os.makedirs(os.path.join(dir, "socket"))
        self.user = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.user = (nobody.pw_uid, nobody.pw_gid)
            for root, dirs, _ in os.walk(dir):
                for d in [root] + [os.path.join(root, x) for x in dirs]:
                    os.chown(d, *self.user)
        data = os.path.join(dir, "data")
        self._run(["initdb", "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "-D", data])
        argv = self._argv(["postgres", "-D", data, "-p", str(PG_PORT), "-k", os.path.join(dir, "socket"),
                           "-c", "listen_addresses=127.0.0.1"])
        if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.server = procs.start(argv,
            "postgres.log", **self._user_kw())
        for _ in range(300):
            if self.psql("SELECT 1", check=False) == "1":
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("postgres did not start; see bench/out/postgres.log")

    def _argv(self, argv):
        return [os.path.join(self.bin, argv[0])] + argv[1:]

    def _user_kw(self):
        return {"user": self.user[0], "group": self.user[1], "extra_groups": []} if self.user else {}

    def _run(self, argv):
        subprocess.run(self._argv(argv), check=True, capture_output=True, cwd=self.dir, **self._user_kw())

    def psql(self, sql, db="postgres", check=True):
        res = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1",
                              "-p", str(PG_PORT), "-U", "postgres", "-d", db, "-c", sql],
                             capture_output=True, text=True)
        if check and res.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {res.stderr}")
        return res.stdout.strip()

    def create(self, db):
        self.psql(f"DROP DATABASE IF EXISTS {db}")
        self.psql(f"CREATE DATABASE {db}")
        return self.dsn(db)

    def dsn(self, db):
        return f"postgres://postgres@127.0.0.1:{PG_PORT}/{db}"

    def size(self, db):
        return int(self.psql(f"SELECT pg_database_size('{db}')"))


def bench_usage(target, args):
    res = subprocess.run([os.path.join(target, "bench-usage")] + args, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"bench-usage {args[0]} failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def usage_metrics(admin):
    """`switchboard_usage_records_total` by stage, from a router's /metrics."""
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("switchboard_usage_records_total{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            out[stage] = int(float(line.rsplit(" ", 1)[1]))
    return out


def measure(target, out_dir, pg, rows, write_seconds):
    """Write rates, then a seeded store of `rows` records per database and the query timings."""
    result = {"write": [], "seed": [], "query": [], "rows": rows}
    stores = [("sqlite", lambda name: f"sqlite://{os.path.join(out_dir, name + '.db')}")]
    if pg:
        stores.append(("postgres", lambda name: pg.create(name.replace("-", "_"))))
    for kind, url_of in stores:
        url = url_of("usage-write")
        r = bench_usage(target, ["write", "--store", url, "--seconds", str(write_seconds)])
        log(f"usage write {kind}: {r['rows_per_sec']:,.0f} rows/s (slowest batch {r['slowest_batch_ms']:.1f} ms)")
        result["write"].append(r)
    for kind, url_of in stores:
        url = url_of("usage-seeded")
        log(f"usage seed {kind}: {rows:,} records")
        r = bench_usage(target, ["seed", "--store", url, "--rows", str(rows)])
        r["bytes"] = (pg.size("usage_seeded") if kind == "postgres"
                      else sum(os.path.getsize(p) for p in glob.glob(os.path.join(out_dir, "usage-seeded.db*"))))
        log(f"usage seed {kind}: {r}")
        result["seed"].append(r)
        q = bench_usage(target, ["query", "--store", url])
        for x in q["queries"]:
            log(f"usage query {kind}: {x['name']}: median {x['median_ms']:.2f} ms, max {x['max_ms']:.2f} ms")
        result["query"].append(q)
        # Ten million rows are several GB and the disk is shared: one seeded store at a time.
        drop(out_dir, pg, kind)
    return result


def drop(out_dir, pg, kind):
    """Removes the bench's stores of one kind."""
    if kind == "sqlite":
        for p in glob.glob(os.path.join(out_dir, "usage-*.db*")):
            os.remove(p)
    else:
        for db in ("usage_write", "usage_seeded"):
            pg.psql(f"DROP DATABASE IF EXISTS {db}")


BEGIN = "<!-- usage:begin (make bench-usage) -->"
END = "<!-- usage:end -->"


def splice(doc, lines):
    """Puts the "Usage store" section (`lines`, marked BEGIN … END as the console's and the control
    plane's are, so a full `make bench` keeps or replaces it like theirs) into `doc`
    (docs/benchmarks.md) in place of the marked one there; without one, in place of an unmarked
    "## Usage store" section of an older page, else at the end. Nothing else on the page changes."""
    with open(doc) as f:
        old = f.read().split("\n")
    begin = next((i for i, l in enumerate(old) if l.startswith("<!-- usage:begin")), None)
    end = next((i for i, l in enumerate(old) if l.startswith(END)), None)
    if begin is not None and end is not None and end > begin:
        start, stop = begin, end + 1
    else:
        heads = [i for i, l in enumerate(old) if l.startswith("## ") or l.startswith("<!-- ")]
        start = next((i for i in heads if old[i].startswith("## Usage store")), None)
        if start is not None:
            stop = next((i for i in heads if i > start), len(old))
        else:
            start = stop = len(old)
    new = old[:start] + lines + [""] + old[stop:]
    with open(doc, "w") as f:
        f.write("\n".join(new).rstrip() + "\n")


def run_only(rb, args):
    """`make bench-usage`: the usage store's rows alone — saturation of the router with the store
    off, on SQLite and on Postgres, then `measure` — spliced into the page (see `splice`). `rb` is
    bench/run.py, whose harness this uses."""
    os.makedirs(rb.OUT, exist_ok=True)
    manifest = os.path.join(rb.OUT, "manifests.yaml")
    rb.write_manifest(manifest)
    targets = [("router", rb.ROUTER_ADDR, rb.ROUTER_ADMIN, []),
               ("router-nostore", rb.ROUTER_NOSTORE_ADDR, rb.ROUTER_NOSTORE_ADMIN, ["--usage-store", "off"]),
               ("router-pg", rb.ROUTER_PG_ADDR, rb.ROUTER_PG_ADMIN, [])]
    bodies = {}
    for size in (1, 16):
        for t, *_ in targets:
            p = os.path.join(rb.OUT, f"body-{size}KB-{t}.json")
            rb.write_body(p, size * 1024, rb.ROUTER_MODEL)
            bodies[(size, t)] = p
    procs = rb.Procs()
    rows, metrics = [], {}
    try:
        procs.start(rb.pinned(0, [os.path.join(rb.TARGET, "bench-mock"), rb.MOCK_ADDR, "1"]), "mock.log")
        if not rb.wait_http(f"http://{rb.MOCK_ADDR}/v1/chat/completions", 10, method="GET"):
            raise RuntimeError("mock did not start")
        env = dict(os.environ, SWITCHBOARD_LOG=os.environ.get("SWITCHBOARD_LOG", "info"))
        bindir = pg_bin()
        pg = Postgres(bindir, os.path.join(rb.OUT, "pg"), procs, cpu=0) if bindir else None
        urls, pids, admins = {}, {}, {}
        for t, addr, admin, extra in targets:
            run_env = env
            if t == "router-pg":
                if not pg:
                    log("Postgres not found: no router-pg rows")
                    continue
                run_env = dict(env, SWITCHBOARD_USAGE_STORE=pg.create(PG_DB_ROUTER))
            p = rb.start_router(procs, manifest, run_env, addr, admin, f"{t}.log", extra)
            urls[t], pids[t], admins[t] = f"http://{addr}/v1/chat/completions", p.pid, admin
        for t in urls:
            rb.oha(urls[t], bodies[(1, t)], 2, None, 4)
        for size in (1, 16):
            name = f"sat-{size}KB"
            rows += rb.measure_rounds(
                name, list(urls),
                lambda t, secs: rb.measure(name, t, pids[t], urls[t], bodies[(size, t)], secs, None, 64),
                args.duration, args.rounds)
        time.sleep(2)
        for t in ("router", "router-pg"):
            if t in admins:
                metrics[t] = usage_metrics(admins[t])
                log(f"{t} usage records: {metrics[t]}")
        usage = measure(rb.TARGET, rb.OUT, pg, args.usage_rows, max(5, args.duration // 2))
        usage["metrics"] = metrics
    finally:
        procs.stop_all()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    usage["meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "make bench-usage", "nproc": os.cpu_count(), "cpu": cpu,
        "duration": args.duration, "rounds": args.rounds,
    }
    with open(os.path.join(rb.OUT, "usage-results.json"), "w") as f:
        json.dump({"rows": rows, "usage": usage}, f, indent=1)
    by = {(r["scenario"], r["target"]): r for r in rows}
    splice(args.doc, doc_section(usage, by, metrics))
    log(f"wrote the usage store section of {args.doc}")
    return 0


def doc_section(usage, by, metrics):
    """The "Usage store" section of docs/benchmarks.md."""
    def fmt(v, nd=0):
        return "—" if v is None else f"{v:,.{nd}f}"

    L = [BEGIN, "## Usage store\n"]
    meta = usage.get("meta")
    if meta and meta.get("saved"):
        L.append(f"Saturation rows from the run above; the write rates and the queries on {usage['rows']:,} "
                 f"records from `{meta['command']}` at {meta['date']} on the same machine (seeding ten "
                 "million records takes a quarter of an hour; `bench/run.py --usage-from`).\n")
    elif meta:
        L.append(f"Measured {meta['date']} by `{meta['command']}` on {meta['nproc']} × {meta['cpu']} "
                 f"({meta['duration']} s of load per target and scenario over {meta['rounds']} interleaved "
                 "rounds), apart from the full run above.\n")
    L += ["Every request is recorded ([usage.md](usage.md)). `router` records to SQLite, its default "
         "(`sqlite://<state dir>/usage.db`, WAL, `synchronous=NORMAL`); `router-pg` to a Postgres 15 "
         "on CPU 0 with durable defaults (fsync, synchronous commit); `router-nostore` runs "
         "`--usage-store off`. Same manifest, pinning and load as the rows above.\n",
         "| scenario | store | req/s | p50 ms | p99 ms | cost of the store (req/s) |", "|---|---|---:|---:|---:|---:|"]
    verdicts = []
    for sc in sorted({s for s, t in by if t == "router-nostore"}):
        off = by.get((sc, "router-nostore"))
        for t, label in (("router-nostore", "off"), ("router", "SQLite"), ("router-pg", "Postgres")):
            r = by.get((sc, t))
            if not r:
                continue
            cost = "" if t == "router-nostore" else f"{(1 - r['rps'] / off['rps']) * 100:+.1f} %"
            if t != "router-nostore" and sc.startswith("sat-"):
                verdicts.append((sc, label, 1 - r["rps"] / off["rps"]))
            L.append(f"| {sc} | {label} | {fmt(r['rps'])} | {fmt(r['p50'], 3)} | {fmt(r['p99'], 3)} | {cost} |")
    L.append("")
    for name, m in metrics.items():
        L.append(f"- `{name}` usage records after the load runs: " +
                 ", ".join(f"{k} {v:,}" for k, v in sorted(m.items())))
    L.append("")
    L.append("Sustained write rate: one writer storing generated records in batches of 512 (the router's "
             "batch size) through the router's own `Store::insert` — each batch one transaction with its "
             "rollup upserts (`bench-usage write`).\n")
    L.append("| store | rows/s | batches | slowest batch ms |")
    L.append("|---|---:|---:|---:|")
    for w in usage["write"]:
        L.append(f"| {w['store']} | {fmt(w['rows_per_sec'])} | {fmt(w['batches'])} | {fmt(w['slowest_batch_ms'], 1)} |")
    L.append("")
    L.append(f"Reports on {usage['rows']:,} records: generated by the database itself over 90 days "
             "(200 keys in 10 teams and 20 apps, 30 models on 5 providers, 5 end users per key, a third "
             "untagged, a third tagged `prod`, a third `prod,batch`), rollups built from them "
             "(`bench-usage seed`), then each API's query through the router's `Store` methods "
             "(`bench-usage query`): median and slowest of 10 runs after a warm-up.\n")
    L.append("| store | records | `usage_daily` | `usage_daily_tags` | `usage_daily_users` | on disk | seeding s |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for s in usage["seed"]:
        n = s["rows"]
        L.append(f"| {s['store']} | {fmt(n['usage_records'])} | {fmt(n['usage_daily'])} | {fmt(n['usage_daily_tags'])} | "
                 f"{fmt(n['usage_daily_users'])} | {s['bytes'] / 2**30:.1f} GiB | "
                 f"{s['records_seconds'] + s['rollups_seconds']:.0f} |")
    L.append("")
    names = [x["name"] for x in usage["query"][0]["queries"]] if usage["query"] else []
    stores = [q["store"] for q in usage["query"]]
    L.append("| query | " + " | ".join(f"{s} median ms | {s} max ms" for s in stores) + " | rows |")
    L.append("|---|" + "---:|---:|" * len(stores) + "---:|")
    slowest = 0.0
    for name in names:
        cells, rows_ = [], ""
        for q in usage["query"]:
            x = next(x for x in q["queries"] if x["name"] == name)
            cells.append(f"{x['median_ms']:.2f} | {x['max_ms']:.2f}")
            rows_ = x["rows"]
            if not name.startswith("generation"):
                slowest = max(slowest, x["max_ms"])
        L.append(f"| {name} | " + " | ".join(cells) + f" | {rows_} |")
    L.append("")
    L.append("### Against the bars of issue 17\n")
    L.append("| bar | measured | verdict |")
    L.append("|---|---|---|")
    for sc, label, cost in verdicts:
        L.append(f"| the store costs at most 5 % of throughput ({sc}, {label}) | {cost * 100:+.1f} % | "
                 f"{'**met**' if cost <= 0.05 else '**missed**'} |")
    if names:
        L.append(f"| usage report and activity query under 200 ms on {usage['rows']:,} rows | slowest run "
                 f"{slowest:.1f} ms | {'**met**' if slowest < 200 else '**missed**'} |")
    L.append("")
    L.append("### Query plans\n")
    L.append("What each database chose (Postgres: `EXPLAIN (ANALYZE, BUFFERS)`, SQLite: `EXPLAIN QUERY "
             "PLAN`). The reports and activity read only the daily rollups (a range of their primary key, or "
             "the `(key_id, day)` index); generation pages walk the `(created_at, generation_id)` index "
             "backwards from the cursor, or, filtered, the `(filter, created_at, generation_id, status)` "
             "index of their most selective filter (usage.md#indexes), and stop after a page.\n")
    for q in usage["query"]:
        for x in q["queries"]:
            if not x["plan"]:
                continue
            L.append(f"<details><summary>{q['store']}: {x['name']}</summary>\n")
            L.append("```")
            L += x["plan"]
            L.append("```\n")
            L.append("</details>\n")
    L.append(END)
    return L
