//! The config a router is serving right now: the snapshot plus what is derived from it once per
//! version (resolved credentials, upstream clients). Swapped atomically; requests read it without
//! locks.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use crate::providers;
use switchboard_api::{
    compile::ObjectOutcome,
    manifest::ObjectRef,
    snapshot::{CredentialSource, ProviderConfig, ProviderType, RouterConfig, SecretValue},
};

/// How a provider is spoken to: one variant per wire format.
#[derive(Clone, Debug)]
pub enum Adapter {
    /// OpenAI Chat Completions over HTTP (`openai`, `openaiCompatible`).
    OpenAi,
    /// OpenAI Chat Completions at Azure deployment URLs (`azureOpenAI`).
    Azure,
    /// Anthropic Messages (`anthropic`).
    Anthropic,
    /// Google AI generateContent (`gemini`).
    Gemini,
    /// Vertex AI: Gemini and Anthropic models, with the provider's OAuth2 token cache.
    Vertex(providers::vertex::Auth),
    /// Bedrock Converse, with the provider's AWS credentials.
    Bedrock(providers::bedrock::Auth),
    /// The built-in deterministic mock.
    Mock,
    /// A type whose adapter is not built: requests get a 501. Every type has one today; kept so
    /// a type added to the API before its adapter is refused cleanly.
    Unsupported(ProviderType),
}

/// The secret values of a JSON-object credential: string fields whose name says key, secret,
/// token or password (`private_key`, `secretAccessKey`, `sessionToken`, ...), 8+ characters.
fn json_secret_parts(credential: &str) -> Option<Vec<String>> {
    let serde_json::Value::Object(map) = serde_json::from_str(credential).ok()? else {
        return None;
    };
    Some(
        map.iter()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                ["key", "secret", "token", "password"]
                    .iter()
                    .any(|w| k.contains(w))
            })
            .filter_map(|(_, v)| v.as_str())
            .filter(|s| s.len() >= 8)
            .map(str::to_string)
            .collect(),
    )
}

/// A provider ready to be called.
#[derive(Debug)]
pub struct ProviderRuntime {
    /// The provider's compiled config.
    pub config: ProviderConfig,
    /// How to speak to it.
    pub adapter: Adapter,
    /// The credential, or why it is unavailable (e.g. an unset environment variable).
    pub credential: Result<Option<SecretValue>, String>,
    /// Pooled HTTP clients (HTTP/1.1 and HTTP/2, rustls), shared with providers of equal
    /// settings; each attempt leases one ([`ClientSet::lease`]).
    pub clients: Arc<ClientSet>,
    /// Secret parts of a JSON credential (see [`ProviderRuntime::secrets`]).
    secret_parts: Vec<String>,
    /// `namespace/name`.
    id: String,
    /// `baseURL` + each of [`OPENAI_PATHS`], parsed once per config version rather than per
    /// request.
    openai_urls: Vec<(&'static str, reqwest::Url)>,
}

/// The OpenAI-format paths whose full URLs are parsed ahead of time.
const OPENAI_PATHS: [&str; 2] = ["/chat/completions", "/embeddings"];

impl ProviderRuntime {
    /// `namespace/name`, the key of the provider in the snapshot.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `baseURL` followed by `path`: pre-parsed for the OpenAI paths, parsed now otherwise.
    pub fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        if let Some((_, url)) = self.openai_urls.iter().find(|(p, _)| *p == path) {
            return Ok(url.clone());
        }
        let base = self.config.base_url.as_deref().unwrap_or_default();
        reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| format!("invalid upstream URL {base}{path}: {e}"))
    }

    /// Every string that must never be shown: the credential itself and, for JSON credentials
    /// (a GCP service-account key, AWS keys), each of its string values long enough to be secret.
    pub fn secrets(&self) -> Vec<&str> {
        let Some(cred) = self.credential_str() else {
            return Vec::new();
        };
        let mut out = vec![cred];
        out.extend(self.secret_parts.iter().map(String::as_str));
        out
    }

    /// The credential as a string slice, if resolved.
    pub fn credential_str(&self) -> Option<&str> {
        self.credential
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .map(SecretValue::expose)
    }
}

/// The status of one object from the last compile, for `/config` and logs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObjectStatus {
    /// `Kind namespace/name`.
    pub object: String,
    /// In the snapshot or not.
    pub ready: bool,
    /// Condition reason.
    pub reason: &'static str,
    /// Detail.
    pub message: String,
}

impl ObjectStatus {
    /// From a compile verdict.
    pub fn new(object: &ObjectRef, outcome: &ObjectOutcome) -> Self {
        let (ready, reason, message) = match outcome {
            ObjectOutcome::Ready { reason, message } => (true, *reason, message.clone()),
            ObjectOutcome::Rejected { reason, message } => (false, *reason, message.clone()),
        };
        ObjectStatus {
            object: object.to_string(),
            ready,
            reason,
            message,
        }
    }
}

/// One loaded config version.
#[derive(Debug)]
pub struct Runtime {
    /// The snapshot.
    pub config: RouterConfig,
    /// Providers by id, ready to call.
    pub providers: HashMap<String, Arc<ProviderRuntime>>,
    /// Verdicts of the compile that produced the snapshot (empty when it came pre-compiled).
    pub objects: Vec<ObjectStatus>,
}

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

impl Runtime {
    /// Builds the runtime for a validated snapshot. `env` resolves `credentials.env` names.
    pub fn build(
        config: RouterConfig,
        objects: Vec<ObjectStatus>,
        clients: &ClientPool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Runtime, String> {
        let mut providers = HashMap::new();
        for (id, p) in &config.providers {
            let credential = match &p.credential {
                None => Ok(None),
                Some(CredentialSource::Value(v)) => Ok(Some(v.clone())),
                Some(CredentialSource::Env(name)) => match env(name) {
                    Some(v) if !v.trim().is_empty() => Ok(Some(SecretValue::new(v.trim()))),
                    _ => Err(format!(
                        "provider {} reads its credential from environment variable {name}, \
                         which is not set on this router",
                        p.name
                    )),
                },
            };
            if let Err(why) = &credential {
                tracing::warn!(provider = %id, "{why}");
            }
            let adapter = match p.provider_type {
                ProviderType::Openai | ProviderType::OpenaiCompatible => Adapter::OpenAi,
                ProviderType::AzureOpenAI => Adapter::Azure,
                ProviderType::Anthropic => Adapter::Anthropic,
                ProviderType::Gemini => Adapter::Gemini,
                ProviderType::Vertex => {
                    Adapter::Vertex(providers::vertex::Auth::from_credential(&credential))
                }
                ProviderType::Bedrock => {
                    Adapter::Bedrock(providers::bedrock::Auth::from_credential(&credential))
                }
                ProviderType::Mock => Adapter::Mock,
            };
            let openai_urls = match (&adapter, &p.base_url) {
                (Adapter::OpenAi, Some(base)) => OPENAI_PATHS
                    .iter()
                    .filter_map(|path| {
                        let url = reqwest::Url::parse(&format!("{base}{path}")).ok()?;
                        Some((*path, url))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            providers.insert(
                id.clone(),
                Arc::new(ProviderRuntime {
                    id: id.clone(),
                    openai_urls,
                    config: p.clone(),
                    adapter,
                    secret_parts: credential
                        .as_ref()
                        .ok()
                        .and_then(|c| c.as_ref())
                        .and_then(|c| json_secret_parts(c.expose()))
                        .unwrap_or_default(),
                    credential,
                    clients: clients.get(p.timeouts.connect_ms)?,
                }),
            );
        }
        Ok(Runtime {
            config,
            providers,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::json_secret_parts;

    #[test]
    fn json_credentials_yield_each_secret_value() {
        let parts = json_secret_parts(
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nMIIE","client_email":"sa@p.iam","accessKeyId":"AKIAXXXXXXXX"}"#,
        )
        .unwrap();
        assert!(parts.contains(&"-----BEGIN PRIVATE KEY-----\nMIIE".to_string()));
        assert!(parts.contains(&"AKIAXXXXXXXX".to_string()));
        assert!(
            !parts.contains(&"sa@p.iam".to_string()),
            "only key/secret/token fields"
        );
        assert!(!parts.contains(&"service_account".to_string()));
        assert!(json_secret_parts("sk-plain-key-0123456789").is_none());
    }
}
