//! A provider ready to be called: its compiled config, the adapter that speaks its wire format,
//! its resolved credential (and the secrets in it, to scrub), and its upstream clients.

use std::sync::Arc;

use switchboard_api::snapshot::{ProviderConfig, ProviderType, SecretValue};

use super::{Adapter, WireFormat, clients::ClientSet};

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
    /// `Authorization: Bearer <credential>`, rendered once per config version (marked
    /// sensitive); `None` without a credential or when it cannot be a header value.
    bearer: Option<http::HeaderValue>,
}

/// The OpenAI-format paths whose full URLs are parsed ahead of time.
const OPENAI_PATHS: [&str; 4] = [
    "/chat/completions",
    "/embeddings",
    "/responses",
    "/completions",
];

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

    /// The pre-rendered `Authorization: Bearer` value of the credential (see the field).
    pub fn bearer(&self) -> Option<&http::HeaderValue> {
        self.bearer.as_ref()
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

    /// Whether this provider's type speaks `format` natively, so a request in that format is
    /// forwarded as the client sent it: Responses for `openai` and `azureOpenAI`, legacy
    /// completions for `openai` and `openaiCompatible`, Anthropic Messages for `anthropic` (and
    /// for `vertex` and `bedrock`, with their Claude models: their adapters decide per model).
    pub fn speaks(&self, format: WireFormat) -> bool {
        let t = self.config.provider_type;
        match format {
            WireFormat::OpenAiResponses => {
                matches!(t, ProviderType::Openai | ProviderType::AzureOpenAI)
            }
            WireFormat::OpenAiCompletions => {
                matches!(t, ProviderType::Openai | ProviderType::OpenaiCompatible)
            }
            WireFormat::AnthropicMessages => matches!(
                t,
                ProviderType::Anthropic | ProviderType::Vertex | ProviderType::Bedrock
            ),
        }
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

impl ProviderRuntime {
    /// The provider `id` with its config, its credential (or why it is unavailable) and the
    /// clients its connect timeout shares.
    pub fn new(
        id: &str,
        config: ProviderConfig,
        credential: Result<Option<SecretValue>, String>,
        clients: Arc<ClientSet>,
    ) -> ProviderRuntime {
        let adapter = Adapter::for_provider(config.provider_type, &credential);
        let openai_urls = match (&adapter, &config.base_url) {
            (Adapter::OpenAi, Some(base)) => OPENAI_PATHS
                .iter()
                .filter_map(|path| {
                    let url = reqwest::Url::parse(&format!("{base}{path}")).ok()?;
                    Some((*path, url))
                })
                .collect(),
            _ => Vec::new(),
        };
        let secret_parts = credential
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .and_then(|c| json_secret_parts(c.expose()))
            .unwrap_or_default();
        let bearer = credential
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .and_then(|c| http::HeaderValue::try_from(format!("Bearer {}", c.expose())).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        ProviderRuntime {
            id: id.to_string(),
            openai_urls,
            bearer,
            config,
            adapter,
            secret_parts,
            credential,
            clients,
        }
    }
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
