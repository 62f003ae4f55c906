//! Compile from scratch, one change recompiled, and what the snapshot takes.

use std::time::{Duration, Instant};

use switchboard_api::{
    Object,
    compile::{Compiler, compile_owned},
    snapshot::{SnapshotText, shards::MAX_SHARD_BYTES},
    testing::scale::{self, Scale},
};
use switchboard_operator::publish::ShardStore;

use crate::{median, ms, thousands};

/// Field `n` of the measuring thread's `/proc/thread-self/schedstat`.
fn schedstat(n: usize) -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .nth(n)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// The measuring thread's CPU time (advanced at scheduler ticks and switches: milliseconds
/// apart, so only long spans are read right).
fn cpu() -> Duration {
    schedstat(0)
}

/// How long the measuring thread has waited, runnable, for a CPU (advanced as it is switched
/// in, so a wait is counted whole).
fn waited() -> Duration {
    schedstat(1)
}

pub struct CompileRow {
    scale: Scale,
    /// From scratch, CPU time, sorted.
    scratch: Vec<Duration>,
    /// (what changed, median, max).
    changes: Vec<(&'static str, Duration, Duration)>,
    json_bytes: usize,
    shards: usize,
    stored_bytes: u64,
    largest_shard: u64,
}

/// One object changed in the compiled set, back and forth (`i` picks the variant).
fn change(scale: &Scale, what: &str, i: usize) -> Object {
    match what {
        "ModelRoute" => {
            let mut r = scale::route(5, scale);
            r.spec.targets[0].weight = Some(10 + (i % 2) as u32);
            r.into()
        }
        "ApiKey labels" => {
            let mut k = scale::api_key(7, scale);
            let group = if i.is_multiple_of(2) { "g-3" } else { "g-7" };
            k.metadata
                .labels
                .as_mut()
                .expect("labelled")
                .insert("group".into(), group.into());
            k.into()
        }
        "Budget (label group)" => {
            let mut b = scale::budget(7);
            b.spec.limit_usd = format!("{}", 20 + i % 2).as_str().into();
            b.into()
        }
        "Budget (whole namespace)" => {
            let mut b = scale::budget(1);
            b.spec.limit_usd = format!("{}", 20 + i % 2).as_str().into();
            b.into()
        }
        _ => {
            let mut p = scale::provider(1);
            p.spec.models[0].pricing.input_usd_per_million =
                Some(format!("0.{}", 5 + i % 2).as_str().into());
            p.into()
        }
    }
}

/// Compiles `keys` from scratch three times, printing the CPU times.
pub fn compile_only(keys: usize) {
    let objects = scale::objects(&Scale::keys(keys));
    for _ in 0..3 {
        let input = objects.clone();
        let t = cpu();
        let c = compile_owned(input);
        println!("{keys} keys: {} ms CPU", ms(cpu() - t));
        drop(c);
    }
}

/// Each kind of change of [`change`] applied and recompiled 20 times on `objects` compiled:
/// (what, wall times, how long of each the measuring thread waited for a CPU).
fn one_change(
    scale: &Scale,
    objects: Vec<Object>,
) -> Vec<(&'static str, Vec<Duration>, Vec<Duration>)> {
    let mut compiler = Compiler::new();
    for o in objects {
        compiler.apply(o);
    }
    compiler.recompile();
    let mut changes = Vec::new();
    for what in [
        "ModelRoute",
        "ApiKey labels",
        "Budget (label group)",
        "Budget (whole namespace)",
        "Provider",
    ] {
        let mut wall = Vec::new();
        let mut waits = Vec::new();
        for i in 0..20 {
            let object = change(scale, what, i);
            let (t, w) = (Instant::now(), waited());
            compiler.apply(object);
            let c = compiler.recompile();
            wall.push(t.elapsed());
            waits.push(waited() - w);
            assert!(c.snapshot_changed(), "{what} changed the snapshot");
        }
        changes.push((what, wall, waits));
    }
    changes
}

/// Compiles `keys` from scratch three times as [`measure`] does, then prints each one-change
/// wall time and how much of it the thread waited for a CPU (to tell work from a busy machine).
pub fn changes_only(keys: usize) {
    let scale = Scale::keys(keys);
    let objects = scale::objects(&scale);
    for _ in 0..3 {
        drop(compile_owned(objects.clone()));
    }
    for (what, wall, waits) in one_change(&scale, objects) {
        let list = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" ");
        println!("{what}: wall ms {}", list(&wall));
        println!("{what}: of which waiting for a CPU {}", list(&waits));
    }
}

pub fn measure(keys: usize) -> CompileRow {
    let scale = Scale::keys(keys);
    let objects = scale::objects(&scale);
    let mut scratch = Vec::new();
    let mut compiled = None;
    for _ in 0..3 {
        let input = objects.clone();
        let t = cpu();
        let c = compile_owned(input);
        scratch.push(cpu() - t);
        compiled = Some(c);
    }
    scratch.sort();
    let config = compiled.expect("compiled").config;

    let changes = one_change(&scale, objects)
        .into_iter()
        .map(|(what, mut wall, _)| {
            let max = *wall.iter().max().expect("times");
            (what, median(&mut wall), max)
        })
        .collect();

    let text = SnapshotText::of(&config);
    let plan = ShardStore::default()
        .plan(&text, 1, &config.hash, 1024)
        .expect("the snapshot shards");
    let stored_bytes = plan.manifest.shards.iter().map(|s| s.bytes).sum();
    let largest_shard = plan
        .manifest
        .shards
        .iter()
        .map(|s| s.bytes)
        .max()
        .unwrap_or(0);
    assert!(largest_shard as usize <= MAX_SHARD_BYTES);
    CompileRow {
        scale,
        scratch,
        changes,
        json_bytes: text.len(),
        shards: plan.manifest.shards.len(),
        stored_bytes,
        largest_shard,
    }
}

pub fn report(rows: &[CompileRow]) -> Vec<String> {
    let mut out = vec![
        "### Compile".into(),
        String::new(),
        "From scratch is the first compile of an operator or a standalone router (after \
         parsing); one change is what a watch event of that object costs the operator's \
         compiler (apply + recompile: the object, what depends on it, the snapshot hash)."
            .into(),
        String::new(),
        "| keys / routes / budgets / providers | from scratch, CPU ms (min / median of 3) | \
         ModelRoute | ApiKey labels | Budget (label group) | Budget (whole namespace) | \
         Provider |"
            .into(),
        "|---|---:|---:|---:|---:|---:|---:|".into(),
    ];
    for r in rows {
        let s = &r.scale;
        let changes: Vec<String> = r
            .changes
            .iter()
            .map(|(_, median, max)| format!("{} ({})", ms(*median), ms(*max)))
            .collect();
        out.push(format!(
            "| {} / {} / {} / {} | {} / {} | {} |",
            thousands(s.api_keys as u64),
            thousands(s.routes as u64),
            thousands(s.budgets as u64),
            thousands(s.providers as u64),
            ms(r.scratch[0]),
            ms(r.scratch[1]),
            changes.join(" | ")
        ));
    }
    out.push(String::new());
    out.push(
        "One change: wall ms, median (max) of 20. A Budget whose limit changes keeps its \
         resolved keys and their digest sum (a Budget's digest is its fields plus the sum of its \
         members' digests), so even the namespace-wide Budget, which lists every key, costs its \
         fields, not its keys; a changed scope is resolved through the label index and costs \
         its matches."
            .into(),
    );
    out.push(String::new());
    out.push("### Snapshot size".into());
    out.push(String::new());
    out.push(
        "| keys | snapshot JSON (MB) | stored: shard Secrets | stored: all shards (MB, zstd) | \
         largest shard (KB; limit 768) | stored bytes per key |"
            .into(),
    );
    out.push("|---|---:|---:|---:|---:|---:|".into());
    for r in rows {
        out.push(format!(
            "| {} | {:.1} | {} | {:.2} | {} | {:.0} |",
            thousands(r.scale.api_keys as u64),
            r.json_bytes as f64 / 1e6,
            r.shards,
            r.stored_bytes as f64 / 1e6,
            r.largest_shard / 1024,
            r.stored_bytes as f64 / r.scale.api_keys as f64
        ));
    }
    out.push(String::new());
    out
}
