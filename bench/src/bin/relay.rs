//! The floor of any proxy in `make bench`: a TCP relay that does no work at all. Each accepted
//! connection gets its own connection to the upstream and bytes are copied both ways
//! (`tokio::io::copy_bidirectional`), with no HTTP parsing. Pinned like the router, it measures
//! what the extra hop alone costs on the machine (loopback, wake-ups across cores), so the
//! router's own share of its added latency can be read off.
//!
//! Usage: `bench-relay LISTEN_ADDR UPSTREAM_ADDR` (one tokio worker).

use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18070".into());
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:18000".into());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(&listen).await?;
            eprintln!("bench-relay on {listen} -> {upstream}");
            loop {
                let (mut client, _) = listener.accept().await?;
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        })
}
