//! The token issuers routers trust, shipped in the snapshot so routers need no Kubernetes client:
//! the cluster's own ServiceAccount issuer, discovered through the API server
//! (`/.well-known/openid-configuration` for its `iss`, `/openid/v1/jwks` for its keys, both read
//! with the operator's client and credentials) with its key set carried in the snapshot, and any
//! issuer named with `--trust-issuer`, whose keys routers find by discovery. Discovered at start,
//! then again every [`IssuerSettings::interval`] (the API server's signing keys rotate); a failed
//! discovery keeps what was found before.

use std::time::Duration;

use anyhow::{Context, bail};
use kube::Client;
use serde_json::Value;
use switchboard_api::identity::{DEFAULT_AUDIENCE, IssuerConfig, KeySource};
use tokio::sync::watch;

/// Longest one discovery (document and key set) may take.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which issuers to trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// Trust the cluster's ServiceAccount issuer (discovered through the API server).
    pub cluster: bool,
    /// Other issuer URLs to trust (routers discover their keys).
    pub trust: Vec<String>,
    /// Audiences a token must name one of.
    pub audiences: Vec<String>,
    /// How often the cluster's issuer and keys are read again.
    pub interval: Duration,
}

impl Default for IssuerSettings {
    fn default() -> Self {
        IssuerSettings {
            cluster: true,
            trust: Vec::new(),
            audiences: vec![DEFAULT_AUDIENCE.into()],
            interval: Duration::from_secs(300),
        }
    }
}

impl IssuerSettings {
    /// The issuers trusted when the cluster's is `cluster` (in issuer order; an issuer named
    /// with `--trust-issuer` that is the cluster's keeps the cluster's key set).
    pub fn trusted(&self, cluster: Option<&IssuerConfig>) -> Vec<IssuerConfig> {
        let mut out: Vec<IssuerConfig> = cluster.into_iter().cloned().collect();
        for issuer in &self.trust {
            if out.iter().all(|i| &i.issuer != issuer) {
                out.push(IssuerConfig {
                    issuer: issuer.clone(),
                    audiences: self.audiences.clone(),
                    keys: KeySource::Discovery,
                });
            }
        }
        out.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        out
    }
}

/// The cluster's ServiceAccount issuer from its discovery document and key set, read through the
/// API server.
pub async fn cluster_issuer(client: &Client, audiences: &[String]) -> anyhow::Result<IssuerConfig> {
    let doc = get(client, "/.well-known/openid-configuration").await?;
    let jwks = get(client, "/openid/v1/jwks").await?;
    issuer_from(&doc, jwks, audiences)
}

/// Pure: the issuer a discovery document names, with `jwks` as its keys.
pub fn issuer_from(doc: &Value, jwks: Value, audiences: &[String]) -> anyhow::Result<IssuerConfig> {
    let Some(issuer) = doc.get("issuer").and_then(Value::as_str) else {
        bail!("the API server's OpenID discovery document names no issuer");
    };
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        bail!("the API server's issuer {issuer:?} is not an http(s) URL");
    }
    if !jwks.get("keys").is_some_and(Value::is_array) {
        bail!("the API server's /openid/v1/jwks is not a JSON Web Key Set");
    }
    Ok(IssuerConfig {
        issuer: issuer.into(),
        audiences: audiences.to_vec(),
        keys: KeySource::Jwks(jwks),
    })
}

async fn get(client: &Client, path: &str) -> anyhow::Result<Value> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .context("building the request")?;
    client
        .request::<Value>(request)
        .await
        .with_context(|| format!("GET {path} from the API server"))
}

/// The issuers to trust now: the cluster's read again (or `previous`'s when that fails).
async fn discover(
    client: &Client,
    settings: &IssuerSettings,
    previous: Option<IssuerConfig>,
) -> (Vec<IssuerConfig>, Option<IssuerConfig>) {
    let cluster = if settings.cluster {
        let found = tokio::time::timeout(
            DISCOVERY_TIMEOUT,
            cluster_issuer(client, &settings.audiences),
        )
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        match found {
            Ok(issuer) => Some(issuer),
            Err(e) => {
                tracing::warn!(
                    kept = previous.is_some(),
                    "cannot read the cluster's ServiceAccount token issuer, so routers accept no \
                     ServiceAccount token until it is read: {e:#}"
                );
                previous
            }
        }
    } else {
        None
    };
    (settings.trusted(cluster.as_ref()), cluster)
}

/// The trusted issuers found now, and a task keeping them current until `shutdown`.
pub async fn start(
    client: Client,
    settings: IssuerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> (
    watch::Receiver<Vec<IssuerConfig>>,
    tokio::task::JoinHandle<()>,
) {
    let (trusted, mut cluster) = discover(&client, &settings, None).await;
    if let Some(c) = &cluster {
        tracing::info!(issuer = %c.issuer, "trusting the cluster's ServiceAccount tokens");
    }
    let (tx, rx) = watch::channel(trusted);
    let task = tokio::spawn(async move {
        if !settings.cluster {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = crate::stopped(&mut shutdown) => return,
            }
            let (trusted, found) = discover(&client, &settings, cluster.take()).await;
            cluster = found;
            tx.send_if_modified(|current| {
                let changed = *current != trusted;
                *current = trusted;
                changed
            });
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_cluster_issuer_carries_its_key_set_and_others_are_discovered_by_routers() {
        let aud = vec!["switchboard".to_string()];
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"}]});
        let cluster = issuer_from(
            &json!({"issuer": "https://kubernetes.default.svc.cluster.local"}),
            jwks.clone(),
            &aud,
        )
        .unwrap();
        assert_eq!(cluster.keys, KeySource::Jwks(jwks));
        let settings = IssuerSettings {
            trust: vec![
                "https://kubernetes.default.svc.cluster.local".into(),
                "https://accounts.example".into(),
            ],
            ..IssuerSettings::default()
        };
        let trusted = settings.trusted(Some(&cluster));
        assert_eq!(trusted.len(), 2);
        assert_eq!(trusted[0].issuer, "https://accounts.example");
        assert_eq!(trusted[0].keys, KeySource::Discovery);
        assert_eq!(trusted[1], cluster, "the cluster's keeps its key set");
        assert_eq!(settings.trusted(None).len(), 2);

        assert!(issuer_from(&json!({}), json!({"keys": []}), &aud).is_err());
        assert!(issuer_from(&json!({"issuer": "k8s"}), json!({"keys": []}), &aud).is_err());
        assert!(issuer_from(&json!({"issuer": "https://k"}), json!({}), &aud).is_err());
    }
}
