//! A throwaway Postgres cluster for tests: `initdb` into a scratch directory (trust auth, C locale),
//! the server on a free loopback port with its unix socket in that directory, a database named
//! [`DATABASE`]; stopped and deleted on drop. [`Postgres::stop`] and [`Postgres::start_again`]
//! take the same server down and up again, data kept, for outage tests.
//!
//! The programs come from [`Tool::PgBin`] (`make test` provides them). `initdb`, `pg_ctl` and
//! `postgres` refuse to run as root, so as root they run as `nobody` (or a `switchboard-test`
//! system user created when there is no `nobody`), owning the scratch directory; the client
//! (`psql`) runs as the caller. Durability settings are off (`fsync`, `full_page_writes`,
//! `synchronous_commit`): a clean stop still keeps every committed row, a machine crash need not.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::tools::{Tool, free_port, require};

/// The database [`Postgres::start`] creates and [`Postgres::dsn`] names.
pub const DATABASE: &str = "switchboard";

/// How long the server may take to accept queries after a start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Postgres server over a scratch data directory.
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    server: Option<Child>,
}

impl Postgres {
    /// `initdb`, start, create [`DATABASE`]; waits until it answers queries.
    pub async fn start() -> Postgres {
        let bin = require(Tool::PgBin);
        let user = unprivileged_user();
        let dir = scratch_dir();
        for sub in ["data", "socket"] {
            let path = dir.join(sub);
            std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
            }
        }
        let mut pg = Postgres {
            bin,
            dir,
            port: free_port(),
            user,
            server: None,
        };
        let data = pg.data_dir();
        let out = pg
            .as_server_user("initdb")
            .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .await
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed in {}:\n{}{}",
            data.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again().await;
        pg.psql_in("postgres", &format!("CREATE DATABASE {DATABASE}"))
            .await;
        pg
    }

    /// Starts the server over the same data directory and port (after [`Postgres::stop`]) and
    /// waits until it answers queries.
    pub async fn start_again(&mut self) {
        assert!(self.server.is_none(), "Postgres is already running");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("create server.log");
        let mut cmd = self.as_server_user("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .kill_on_drop(true);
        self.server = Some(cmd.spawn().expect("postgres starts"));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last_error = match self.query("postgres", "SELECT 1").await {
                Ok(_) => return,
                Err(e) => e,
            };
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                panic!("postgres exited ({status}):\n{}", self.server_log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not answer within {READY_TIMEOUT:?} ({last_error}):\n{}",
                self.server_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A clean (fast) shutdown, as an operator stopping the database would; waits until the server
    /// has exited. Committed rows survive; [`Postgres::start_again`] brings it back.
    pub async fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let out = self
            .as_server_user("pg_ctl")
            .args(["stop", "-m", "fast", "-w", "-t", "30", "-D"])
            .arg(self.data_dir())
            .output()
            .await
            .expect("pg_ctl runs");
        if !out.status.success() {
            let _ = server.kill().await;
            panic!(
                "pg_ctl stop failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = server.wait().await;
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// `postgres://postgres@127.0.0.1:PORT/switchboard` (trust auth, no password).
    pub fn dsn(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's unix socket (`.s.PGSQL.PORT`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// Runs SQL in [`DATABASE`] with `psql` and returns its unaligned, tuples-only output
    /// (`|`-separated columns, one row per line); panics on any error.
    pub async fn psql(&self, sql: &str) -> String {
        self.psql_in(DATABASE, sql).await
    }

    async fn psql_in(&self, database: &str, sql: &str) -> String {
        self.query(database, sql)
            .await
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    async fn query(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .await
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A command for one of the server programs, as the unprivileged user when we are root.
    fn as_server_user(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.stdin(Stdio::null()).env_remove("PGDATA");
        if let Some((uid, gid)) = self.user {
            // std drops the supplementary groups too when root sets the uid.
            cmd.uid(uid).gid(gid).current_dir(&self.dir);
        }
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // Immediate shutdown, so nothing is left behind even when a test panicked.
            let mut cmd = std::process::Command::new(self.bin.join("pg_ctl"));
            cmd.args(["stop", "-m", "immediate", "-w", "-t", "10", "-D"])
                .arg(self.data_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some((uid, gid)) = self.user {
                std::os::unix::process::CommandExt::uid(&mut cmd, uid);
                std::os::unix::process::CommandExt::gid(&mut cmd, gid);
            }
            if !cmd.status().is_ok_and(|s| s.success()) {
                let _ = server.start_kill();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new empty directory under the system temp dir, readable by the server user.
fn scratch_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "switchboard-pg-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// `Some((uid, gid))` of the user the server runs as when we are root, else `None`.
fn unprivileged_user() -> Option<(u32, u32)> {
    if effective_uid() != 0 {
        return None;
    }
    if let Some(ids) = passwd_entry("nobody") {
        return Some(ids);
    }
    const USER: &str = "switchboard-test";
    if passwd_entry(USER).is_none() {
        let status = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "running as root without a `nobody` user, and `useradd {USER}` failed: initdb refuses \
             to run as root"
        );
    }
    passwd_entry(USER)
}

/// The effective uid, from `/proc/self/status` (Linux).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|uid| uid.parse().ok())
        .expect("the effective uid in /proc/self/status")
}

/// (uid, gid) of `user` in /etc/passwd.
fn passwd_entry(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(Path::new("/etc/passwd")).ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, uid, gid, ..] if *name == user => {
                Some((uid.parse().ok()?, gid.parse().ok()?))
            }
            _ => None,
        }
    })
}
