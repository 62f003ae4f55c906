//! The test harness itself: the throwaway Postgres keeps committed rows across a stop and a start
//! and leaves nothing behind; the throwaway Redis answers, goes away and comes back; `make test`
//! provided every tool (the bootstrap's pins are what runs).

use std::time::Duration;

use switchboard_e2e::{
    postgres::Postgres,
    redis::RedisServer,
    tools::{Tool, in_ci, optional},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[tokio::test]
async fn postgres_keeps_committed_rows_across_a_stop_and_a_start() {
    let mut pg = Postgres::start().await;
    assert!(pg.dsn().starts_with("postgres://postgres@127.0.0.1:"));
    assert!(pg.dsn().ends_with("/switchboard"));
    let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
    assert!(socket.exists(), "unix socket at {}", socket.display());
    assert_eq!(pg.psql("SELECT current_database()").await, "switchboard");

    pg.psql("CREATE TABLE t (id bigint PRIMARY KEY, note text)")
        .await;
    pg.psql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
        .await;

    pg.stop().await;
    assert!(!pg.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", pg.port())).await.is_err(),
        "nothing listens while stopped"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    pg.start_again().await;
    assert_eq!(
        pg.psql("SELECT count(*), sum(id), max(note) FROM t").await,
        "1000|500500|row 999"
    );
    let scratch = pg.socket_dir().parent().unwrap().to_path_buf();
    drop(pg);
    assert!(!scratch.exists(), "{} removed on drop", scratch.display());
}

#[tokio::test]
async fn two_postgres_servers_are_independent() {
    let (a, b) = tokio::join!(Postgres::start(), Postgres::start());
    assert_ne!(a.port(), b.port());
    a.psql("CREATE TABLE only_in_a (x int)").await;
    assert_eq!(
        b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")
            .await,
        "0"
    );
}

async fn ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn redis_answers_goes_away_and_comes_back() {
    let mut redis = RedisServer::start().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/0", redis.port()));
    assert_eq!(ping(redis.port()).await.unwrap(), "+PONG\r\n");
    redis.stop().await;
    assert!(ping(redis.port()).await.is_err());
    redis.restart().await;
    assert_eq!(ping(redis.port()).await.unwrap(), "+PONG\r\n");
}

/// The versions `make test` pins are the ones that run (tests/tools/wheels/kubectl-layer.txt,
/// tests/agents/package.json).
#[tokio::test]
async fn the_provided_tools_are_the_pinned_versions() {
    let checks: &[(Tool, &[&str], &str)] = &[
        (Tool::Helm, &["version", "--short"], "v4.3.1"),
        (Tool::Kubectl, &["version", "--client"], "v1.37.1"),
        (Tool::Claude, &["--version"], "2.1.332"),
        (Tool::Codex, &["--version"], "0.171.0"),
    ];
    for (tool, args, version) in checks {
        // A program found on PATH (a plain `cargo test`) is whatever version the machine has.
        if std::env::var_os(tool.var()).is_none() && !in_ci() {
            continue;
        }
        let Some(program) = optional(*tool, &format!("{tool:?} version check")) else {
            continue;
        };
        let out = tokio::process::Command::new(&program)
            .args(*args)
            .env("HOME", std::env::temp_dir())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(version),
            "{} {args:?}: expected {version}, got {text}{}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
