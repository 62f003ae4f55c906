//! A replaced config's memory goes back to the system (issue 25): the router's allocator,
//! mimalloc, keeps freed pages for the thread that owns them until it allocates again, and the
//! thread that compiled a config (the main thread) idles, so a router that reloaded a large config
//! kept the old one's memory for good. Its own test binary, with the router's allocator and one
//! test, so nothing else allocates on the side while the resident size is read.

use std::{path::PathBuf, time::Duration};

use switchboard_api::testing::scale::{self, SCALE_NAMESPACE, Scale};
use switchboard_router::{
    load_manifests,
    state::{AppState, Settings, release_freed_memory},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This process's resident set in MB (`VmRSS`).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb / 1024.0
}

/// `keys` scale ApiKeys (with their routes, budgets, providers) written as manifests.
fn manifest_file(name: &str, keys: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "switchboard-memory-release-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, scale::manifests(&scale::objects(&Scale::keys(keys)))).unwrap();
    path
}

#[test]
fn a_large_config_replaced_by_a_small_one_gives_its_memory_back() {
    let big = manifest_file("big", 40_000);
    let small = manifest_file("small", 10);
    let state = AppState::new(Settings::default());
    load_manifests(&state, std::slice::from_ref(&big), SCALE_NAMESPACE, 1).unwrap();
    let serving = rss_mb();

    // A reload, as after SIGHUP: the old config is dropped on the retiring thread (which
    // releases what it freed), and this thread releases again a second later, as `main` does.
    load_manifests(&state, std::slice::from_ref(&small), SCALE_NAMESPACE, 2).unwrap();
    release_freed_memory();
    let mut replaced = rss_mb();
    for tick in 1..=100 {
        if replaced < 0.5 * serving {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if tick == 10 {
            release_freed_memory();
        }
        replaced = rss_mb();
    }
    let _ = std::fs::remove_file(big);
    let _ = std::fs::remove_file(small);
    assert!(
        replaced < 0.5 * serving,
        "the replaced config's memory stayed: {serving:.0} MB serving 40,000 keys, \
         {replaced:.0} MB 10 s after replacing them with 10"
    );
}
