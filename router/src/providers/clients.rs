//! Upstream HTTP clients (HTTP/1.1 and HTTP/2 by ALPN, rustls), pooled by connect timeout and
//! kept across config versions so connection pools survive reloads; each attempt leases one.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// Upstream HTTP clients keyed by connect timeout, kept across config versions so connection
/// pools survive reloads.
pub struct ClientPool {
    sets: Mutex<HashMap<u64, Arc<ClientSet>>>,
    per_client: usize,
}

impl Default for ClientPool {
    fn default() -> Self {
        ClientPool::new(REQUESTS_PER_CLIENT)
    }
}

impl ClientPool {
    /// A pool whose clients each carry at most `per_client` requests at once.
    pub fn new(per_client: usize) -> ClientPool {
        ClientPool {
            sets: Mutex::default(),
            per_client: per_client.max(1),
        }
    }

    /// The clients for a connect timeout, the first built on first use.
    pub fn get(&self, connect_ms: u64) -> Result<Arc<ClientSet>, String> {
        let mut sets = self.sets.lock().expect("client pool lock poisoned");
        if let Some(set) = sets.get(&connect_ms) {
            return Ok(set.clone());
        }
        let first = build_client(connect_ms)?;
        let set = Arc::new(ClientSet {
            connect_ms,
            per_client: self.per_client,
            members: Mutex::new(vec![Member {
                client: first,
                in_flight: Arc::default(),
            }]),
        });
        sets.insert(connect_ms, set.clone());
        Ok(set)
    }
}

/// Requests one client carries at once, at most. An HTTP/2 upstream (negotiated by ALPN) gets one
/// connection per client, and hyper queues requests beyond the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS` on that connection instead of opening another one: a
/// long-lived stream would then hold the next request back until it ends. Servers are asked to
/// allow at least 100 concurrent streams (RFC 9113, section 6.5.2), so past 100 requests in
/// flight another client, with its own connection, is used.
pub const REQUESTS_PER_CLIENT: usize = 100;

/// The upstream HTTP clients of one connect timeout: grown by one whenever every client carries
/// its limit ([`REQUESTS_PER_CLIENT`] by default). With HTTP/1.1 upstreams the first client takes the traffic
/// until then, so its keep-alive pool is reused as before.
pub struct ClientSet {
    connect_ms: u64,
    per_client: usize,
    members: Mutex<Vec<Member>>,
}

struct Member {
    client: reqwest::Client,
    in_flight: Arc<AtomicUsize>,
}

/// A client leased for one attempt, counted as carrying it until dropped.
pub struct ClientLease {
    client: reqwest::Client,
    in_flight: Arc<AtomicUsize>,
}

impl ClientLease {
    /// The client to send the attempt with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for ClientLease {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientSet {
    /// The first client carrying fewer requests than its limit, or a new one.
    pub fn lease(&self) -> ClientLease {
        let mut members = self.members.lock().expect("client set lock poisoned");
        let free = members
            .iter()
            .find(|m| m.in_flight.load(Ordering::Acquire) < self.per_client);
        let member = match free {
            Some(m) => m,
            None => match build_client(self.connect_ms) {
                Ok(client) => {
                    members.push(Member {
                        client,
                        in_flight: Arc::default(),
                    });
                    members.last().expect("just pushed")
                }
                // Built once already with the same settings, so this does not happen; if it
                // did, the least loaded client still serves.
                Err(_) => members
                    .iter()
                    .min_by_key(|m| m.in_flight.load(Ordering::Acquire))
                    .expect("a set starts with one client"),
            },
        };
        member.in_flight.fetch_add(1, Ordering::AcqRel);
        ClientLease {
            client: member.client.clone(),
            in_flight: member.in_flight.clone(),
        }
    }

    /// How many clients the set holds.
    pub fn client_count(&self) -> usize {
        self.members.lock().expect("client set lock poisoned").len()
    }
}

impl std::fmt::Debug for ClientSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSet")
            .field("connect_ms", &self.connect_ms)
            .field("clients", &self.client_count())
            .finish()
    }
}

/// An upstream HTTP client: pooled connections, HTTP/2 where the upstream offers it by ALPN.
fn build_client(connect_ms: u64) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(connect_ms))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        // An API that moves answers with an error, not a redirect: reqwest would replay a
        // 301/302 POST as a GET, and following costs a layer on every request.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building the HTTP client failed: {e}"))
}

/// Installs rustls' ring provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
