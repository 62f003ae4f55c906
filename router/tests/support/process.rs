//! [`RouterProcess`]: the `switchboard-router` binary as a child process, for tests of what only
//! a process shows (signals, exit, environment-only configuration).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{free_port, get_text, http, temp_manifest};

/// The `switchboard-router` binary running as a child process.
pub struct RouterProcess {
    pub child: Child,
    pub api: String,
    pub admin: String,
    /// Its own state directory, removed when it is dropped (unused when the test names one).
    state_dir: PathBuf,
}

impl RouterProcess {
    /// Starts the binary configured only through the environment, and waits until it is ready.
    pub async fn spawn_with_env(manifest: &str, extra_env: &[(&str, &str)]) -> RouterProcess {
        RouterProcess::spawn(manifest, &[], extra_env, None).await
    }

    /// Starts the binary with extra flags and environment, its stderr (the logs) written to
    /// `log` when given, and waits until it is ready.
    pub async fn spawn(
        manifest: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> RouterProcess {
        let (api, admin) = (free_port(), free_port());
        let path = temp_manifest(manifest);
        // Each process its own state directory (usage store and spill file), unless the test
        // names one.
        let state_dir = path.with_extension("state");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard-router"));
        cmd.env("SWITCHBOARD_MANIFESTS", &path)
            .env("SWITCHBOARD_STATE_DIR", &state_dir)
            .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{api}"))
            .env("SWITCHBOARD_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::null(),
            });
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let router = RouterProcess {
            child: cmd.spawn().unwrap(),
            api: format!("http://127.0.0.1:{api}"),
            admin: format!("http://127.0.0.1:{admin}"),
            state_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http().get(format!("{}/readyz", router.admin)).send().await
                && r.status() == 200
            {
                return router;
            }
            assert!(Instant::now() < deadline, "router did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics(&self) -> String {
        get_text(&http(), &format!("{}/metrics", self.admin)).await
    }

    /// Sends SIGTERM (a clean shutdown).
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "router did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}
