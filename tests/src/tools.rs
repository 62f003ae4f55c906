//! Where the tests find the programs they run: the variables `make test` sets from
//! `tests/tools/bootstrap.py`, falling back to `PATH` for a plain `cargo test`.
//!
//! A missing program is a test failure when `CI` is set (CI must never skip for want of a tool);
//! elsewhere a test that needs it says so loudly and skips ([`optional`]), or fails with the way
//! to get it ([`require`]) where the test has no meaning without it.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

/// A program the tests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `redis-server`.
    RedisServer,
    /// The directory holding Postgres' `initdb` and `postgres`.
    PgBin,
    /// Debian's `chromium`, driven by Playwright.
    Chromium,
    /// `helm` (v4).
    Helm,
    /// `kubectl`.
    Kubectl,
    /// A Python with the pinned SDKs, Playwright and kubernetes-validate.
    Python,
    /// Claude Code (`claude`).
    Claude,
    /// Codex CLI (`codex`).
    Codex,
}

impl Tool {
    /// The environment variable `make test` sets.
    pub fn var(self) -> &'static str {
        match self {
            Tool::RedisServer => "SWITCHBOARD_TEST_REDIS_SERVER",
            Tool::PgBin => "SWITCHBOARD_TEST_PG_BIN",
            Tool::Chromium => "SWITCHBOARD_TEST_CHROMIUM",
            Tool::Helm => "SWITCHBOARD_TEST_HELM",
            Tool::Kubectl => "SWITCHBOARD_TEST_KUBECTL",
            Tool::Python => "SWITCHBOARD_TEST_PYTHON",
            Tool::Claude => "SWITCHBOARD_TEST_CLAUDE",
            Tool::Codex => "SWITCHBOARD_TEST_CODEX",
        }
    }

    /// The program looked up on `PATH` when the variable is unset (for `PgBin`, `initdb`'s
    /// directory). The Python on `PATH` is not used: it would lack the pinned packages.
    fn on_path(self) -> Option<&'static str> {
        match self {
            Tool::RedisServer => Some("redis-server"),
            Tool::PgBin => Some("initdb"),
            Tool::Chromium => Some("chromium"),
            Tool::Helm => Some("helm"),
            Tool::Kubectl => Some("kubectl"),
            Tool::Claude => Some("claude"),
            Tool::Codex => Some("codex"),
            Tool::Python => None,
        }
    }
}

/// The program (for [`Tool::PgBin`], the directory), from its variable or `PATH`.
pub fn find(tool: Tool) -> Option<PathBuf> {
    if let Some(value) = std::env::var_os(tool.var()).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(value));
    }
    if tool == Tool::PgBin {
        return pg_bin_dir();
    }
    search_path(tool.on_path()?)
}

/// `initdb`'s directory on `PATH` when `postgres` and `psql` are beside it, else the newest
/// Debian `/usr/lib/postgresql/N/bin`.
fn pg_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Some(dir) = search_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && complete(&dir)
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn search_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn how_to_get(tool: Tool) -> String {
    format!(
        "{} is not set and {} is not on PATH: run `make test` (tests/tools/bootstrap.py provides \
         it, or says why it cannot)",
        tool.var(),
        tool.on_path().unwrap_or("it")
    )
}

/// Whether missing tools must fail (the `CI` variable is set and not `false`/`0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The tool, or a failure that says how to get it.
pub fn require(tool: Tool) -> PathBuf {
    find(tool).unwrap_or_else(|| panic!("{}", how_to_get(tool)))
}

/// The tool; without it, `None` after a SKIPPED line on stderr (written past the test harness's
/// capture, so it shows in every run), or a failure under CI.
pub fn optional(tool: Tool, test: &str) -> Option<PathBuf> {
    if let Some(path) = find(tool) {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "CI is set: {test} cannot skip. {}",
        how_to_get(tool)
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {} ***\n",
        how_to_get(tool)
    );
    None
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}
