"""The report of `make bench`: docs/benchmarks.md (tables, ratios, the bars of issue 9, the usage
store's section, bench/notes.md) and docs/benchmarks.svg, from one run's rows. Sections other
tools own (`<!-- name:begin ... -->` to `<!-- name:end -->`: controlplane, console, ...) are kept
as the file had them. Standard library only."""

import os
import re

import peers as peer_gateways
import usage as usage_bench
from harness import BENCH, N_KEYS, N_ROUTES

def fmt(v, nd=2):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}"


def ratio(a, b, nd=2):
    if not a or not b:
        return "—"
    return f"{a / b:,.{nd}f}×"


def peers_in(rows):
    """The peers (`litellm`, `portkey`) that have rows in this run, in report order."""
    return [p for p in peer_gateways.NAMES if any(r["target"] == p for r in rows)]


def write_svg(path, rows):
    """Two panels: saturation throughput, and p50/p99 at a fixed 1,000 req/s."""
    targets = ["direct", "relay", "relay-http", "router", "router-redis"] + peers_in(rows)
    colors = {"direct": "#8c8c8c", "relay": "#bcbd22", "relay-http": "#dbdb8d", "router": "#1f77b4",
              "router-redis": "#17becf",
              "litellm": "#d62728", "portkey": "#9467bd"}
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
    """`peers`: the peers with rows in this run."""
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
    if "litellm" in peers and all(sat) and all(ll):
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


def bars_22(by, stream, memory, usage, callgrind):
    """The bars of issue 22 (round two), computed from this run: instructions and saturation as
    ratios to the zero-work relays, time to first token over the relay, memory, the usage store."""
    def verdict(ok):
        return "**met**" if ok else "**missed**"

    L = ["## Against the bars of issue 22 (computed from this run)\n",
         "`relay` is the TCP relay (no HTTP at all), `relay-http` the zero-work HTTP proxy on the "
         "router's own stack (hyper's server, hyper-util's pooled client; bench/src/bin/relay.rs): "
         "the floor of any HTTP gateway built on it.\n",
         "| bar | measured | verdict |", "|---|---|---|"]
    if callgrind:
        rt, rl, rh = (callgrind.get(k) for k in ("router", "relay", "relay-http"))
        if rt and rl:
            extra = f"; relay-http {rh:,}/request ({rt / rh:.2f}× it; it is {rh / rl:.1f}× the TCP relay)" if rh else ""
            L.append(f"| instructions/request ≤ 1.6× the relay's (1 KB, c=1, `bench/callgrind.sh`) | router "
                     f"{rt:,}, relay {rl:,}: {rt / rl:.1f}×{extra} | {verdict(rt <= 1.6 * rl)} |")
        st = callgrind.get("router-store")
        if st and rt:
            L.append(f"| (the usage store's share at c=1) | router with SQLite {st:,}/request, without {rt:,} "
                     f"(+{(st - rt) / rt * 100:.0f} %) | — |")
    for k in (1, 16):
        r, rl, rh = (by.get((f"sat-{k}KB", t)) for t in ("router", "relay", "relay-http"))
        if r and rl:
            http = f"; {r['rps'] / rh['rps'] * 100:.0f} % of relay-http ({rh['rps']:,.0f})" if rh else ""
            L.append(f"| saturation ≥ 60 % of the relay's, {k} KB | router {r['rps']:,.0f} req/s = "
                     f"{r['rps'] / rl['rps'] * 100:.0f} % of relay ({rl['rps']:,.0f}){http} | "
                     f"{verdict(r['rps'] >= 0.6 * rl['rps'])} |")
    r, rl = stream.get("router"), stream.get("relay")
    if r and rl:
        a = r["ttft_ms"]["p50"] - rl["ttft_ms"]["p50"]
        L.append(f"| streaming TTFT within 0.2 ms p50 of the relay's | router {r['ttft_ms']['p50']:.3f} ms, "
                 f"relay {rl['ttft_ms']['p50']:.3f} ms: +{a:.3f} ms | {verdict(a <= 0.2)} |")
    if "idle" in memory:
        L.append(f"| idle RSS < 20 MB with {N_KEYS:,} ApiKeys and {N_ROUTES} ModelRoutes | {memory['idle']:.1f} MB | "
                 f"{verdict(memory['idle'] < 20)} |")
    for m in memory.get("streams", []):
        if m["tls"] and m["n"] == max(x["n"] for x in memory["streams"] if x["tls"]):
            per = (m["rss"] - m["idle"]) * 1024 / max(m["opened"], 1)
            L.append(f"| < 20 KB per open stream over HTTP/2 upstreams | {per:.1f} KB ({m['opened']:,} streams open, "
                     f"{m['rss']:.1f} MB) | {verdict(per < 20)} |")
    for sc in ("sat-1KB", "sat-16KB"):
        off = by.get((sc, "router-nostore"))
        for t, label in (("router", "SQLite"), ("router-pg", "Postgres")):
            on = by.get((sc, t))
            if on and off:
                cost = 1 - on["rps"] / off["rps"]
                L.append(f"| the usage store costs ≤ 5 % of saturation ({sc}, {label}; issue 17) | "
                         f"{on['rps']:,.0f} vs {off['rps']:,.0f} req/s off: costs {cost * 100:.1f} % | {verdict(cost <= 0.05)} |")
    if usage is None:
        L.append("| (the usage store's 10M-row queries) | not run | — |")
    L.append("")
    return L


def write_doc(path, meta, rows, stream, memory, peer_notes, usage=None, callgrind=None):
    """Writes docs/benchmarks.md from one run; `peer_notes`: how each peer ran, by name;
    `callgrind`: bench/callgrind.sh's instruction counts (`instructions.parse`), if it ran."""
    by = {(r["scenario"], r["target"]): r for r in rows}
    peers = peers_in(rows)
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `bench/run.py` (`make bench`, or `make bench-peers` for the LiteLLM and Portkey columns); "
             "every number below comes from the one run described here. The machine is a shared, noisy "
             "VM: read the **ratios** (router/direct, peer/router), not the absolute numbers.\n")
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
    for p in peers:
        L.append(f"- {peer_gateways.LABELS[p]}: {peer_notes.get(p, '')}")
    L.append("")
    L.append("## Non-streaming\n")
    L.append("Latency in milliseconds as the load generator sees it (client → [gateway →] mock). "
             "`added` = target minus direct. `relay` is `bench-relay` (bench/src/bin/relay.rs), a TCP "
             "relay pinned like the router that does no work at all: its added latency is what the "
             "extra hop alone costs on this machine (loopback and wake-ups across the two cores), the "
             "floor for any proxy here; `relay-http` is `bench-relay --http`, a zero-work HTTP/1.1 proxy "
             "on the router's own stack (hyper's server, hyper-util's pooled client), the floor of any "
             "HTTP gateway built on it; `over relay` = router minus relay, the router's own share. "
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
        for t in ["direct", "relay", "relay-http", "router", "router-redis"] + peers:
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
    head = "| scenario | router/direct req/s | router/direct p50 | router/direct p99 |"
    for p in peers:
        n = peer_gateways.LABELS[p]
        head += f" router/{n} req/s | {n}/router p50 | {n}/router p99 |"
    L.append(head)
    L.append("|---|---:|---:|---:|" + "---:|---:|---:|" * len(peers))
    for sc in scenarios:
        d, r = by.get((sc, "direct")), by.get((sc, "router"))
        if not (d and r):
            continue
        line = f"| {sc} | {ratio(r['rps'], d['rps'])} | {ratio(r['p50'], d['p50'])} | {ratio(r['p99'], d['p99'])} |"
        for p in peers:
            pr = by.get((sc, p))
            line += (f" {ratio(r['rps'], pr['rps'])} | {ratio(pr['p50'], r['p50'])} | {ratio(pr['p99'], r['p99'])} |"
                     if pr else " — | — | — |")
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
    for t in ("direct", "relay", "relay-http", "router"):
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
    L += bars_22(by, stream, memory, usage, callgrind)
    if usage:
        L += usage_bench.doc_section(usage, by, usage.get("metrics", {}))
    notes = os.path.join(BENCH, "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            L.append(f.read())
    if os.path.exists(path):
        with open(path) as f:
            L += owned_sections(f.read(), "\n".join(L))
    with open(path, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


SECTION = re.compile(r"<!-- ([\w-]+):begin.*?<!-- \1:end -->", re.S)


def owned_sections(old, new):
    """The sections of the old page that other tools write (`make bench-controlplane`,
    `make bench-console`, ...), marked `<!-- name:begin ... -->` to `<!-- name:end -->`, in their
    order: kept as they were, except one the new page already has."""
    have = {m.group(1) for m in SECTION.finditer(new)}
    return [m.group(0) + "\n" for m in SECTION.finditer(old) if m.group(1) not in have]

