//! Providers: one upstream account each, checked field by field into a [`ProviderConfig`].

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{
    Compiler, Issues, Rejection, compiler::object_ref, duration_ms, key::KeySet, plural, reason::*,
};
use crate::{
    manifest::ObjectRef,
    money::UsdAmount,
    resources::{
        Credentials, MockBehaviour, Provider, ProviderModel, ProviderSpec, ProviderTimeouts,
        ProviderType,
    },
    snapshot::{
        AzureConfig, BedrockConfig, CredentialSource, MockConfig, ModelConfig, PriceTable,
        ProviderConfig, SecretValue, Timeouts, VertexConfig,
    },
};

/// Headers that carry credentials; a Provider sets them through `credentials` only.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
];

/// Headers the router itself sets on every upstream request.
const ROUTER_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

impl Compiler {
    /// Recompiles the marked Providers; routes targeting one whose entry or verdict changed are
    /// marked in `routes`.
    pub(super) fn settle_providers(&mut self, dirty: KeySet, routes: &mut KeySet) {
        for key in dirty {
            let r = object_ref("Provider", &key);
            let id = key.id();
            let before = (
                self.config.providers.get(id).cloned(),
                self.results.get(&r).cloned(),
            );
            match self.providers.get(&key).cloned() {
                None => {
                    self.put::<ProviderConfig>(id, None);
                    self.forget(r.clone());
                }
                Some(p) => {
                    let generation = p.metadata.generation;
                    match self.compile_provider(&r, &p) {
                        Ok(config) => {
                            let message = plural(config.models.len(), "model", "models");
                            self.put(id, Some(config));
                            self.ready(r.clone(), generation, COMPILED, message);
                        }
                        Err(rejection) => {
                            self.put::<ProviderConfig>(id, None);
                            self.reject(r.clone(), generation, rejection);
                        }
                    }
                }
            }
            let after = (self.config.providers.get(id), self.results.get(&r));
            if (before.0.as_ref(), before.1.as_ref()) != after {
                routes.extend(self.index.provider_users(&key).cloned());
            }
        }
    }

    fn compile_provider(&self, r: &ObjectRef, p: &Provider) -> Result<ProviderConfig, Rejection> {
        let spec = &p.spec;
        let ty = spec.provider_type;
        let mut issues = Issues::default();

        let base_url = if ty == ProviderType::Mock {
            None
        } else {
            match spec.base_url.as_deref().or(ty.default_base_url()) {
                None => {
                    issues.add(
                        MISSING_BASE_URL,
                        format!(
                            "spec.baseURL: required for type {} (it has no default endpoint)",
                            ty.as_str()
                        ),
                    );
                    None
                }
                Some(url) => match normalize_base_url(url) {
                    Ok(url) => Some(url),
                    Err(e) => {
                        issues.add(INVALID_BASE_URL, format!("spec.baseURL: {e}"));
                        None
                    }
                },
            }
        };
        let credential = self.credential(&r.namespace, ty, spec.credentials.as_ref(), &mut issues);
        let headers = headers(&spec.headers, &mut issues);
        let models = models(&spec.models, &mut issues);
        let timeouts = timeouts(spec.timeouts.as_ref(), &mut issues);
        let mock = mock(ty, spec.mock.as_ref(), &mut issues);
        let (azure, bedrock, vertex) = vendor_settings(spec, &mut issues);
        let max_concurrent_requests = spec.max_concurrent_requests;
        if max_concurrent_requests == Some(0) {
            issues.add(
                INVALID_CONCURRENCY_LIMIT,
                "spec.maxConcurrentRequests: must be at least 1 (leave it unset for no limit)",
            );
        }

        issues.finish()?;
        Ok(ProviderConfig {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            provider_type: ty,
            base_url,
            credential,
            headers,
            models,
            data_policy: spec.data_policy.clone(),
            max_concurrent_requests,
            timeouts,
            mock,
            azure,
            bedrock,
            vertex,
        })
    }

    fn credential(
        &self,
        namespace: &str,
        ty: ProviderType,
        credentials: Option<&Credentials>,
        issues: &mut Issues,
    ) -> Option<CredentialSource> {
        use ProviderType::*;
        let Some(c) = credentials else {
            if matches!(ty, Openai | Anthropic | Gemini | AzureOpenAI) {
                issues.add(
                    MISSING_CREDENTIALS,
                    format!(
                        "spec.credentials: type {} needs an API key; set credentials.secretRef \
                         (a Secret key) or credentials.env (an environment variable of the router)",
                        ty.as_str()
                    ),
                );
            }
            return None;
        };
        if ty == Mock {
            issues.add(
                INVALID_CREDENTIALS,
                "spec.credentials: type mock takes no credentials; remove the field",
            );
            return None;
        }
        match (&c.secret_ref, &c.env) {
            (Some(_), Some(_)) => {
                issues.add(
                    INVALID_CREDENTIALS,
                    "spec.credentials: set exactly one of secretRef or env, not both",
                );
                None
            }
            (None, None) => {
                issues.add(
                    INVALID_CREDENTIALS,
                    "spec.credentials: set exactly one of secretRef or env (it is empty)",
                );
                None
            }
            (None, Some(env)) => {
                if is_env_name(env) {
                    Some(CredentialSource::Env(env.clone()))
                } else {
                    issues.add(
                        INVALID_CREDENTIALS,
                        format!(
                            "spec.credentials.env: {env:?} is not an environment variable name \
                             (letters, digits and `_`, not starting with a digit)"
                        ),
                    );
                    None
                }
            }
            (Some(secret_ref), None) => match self.secret_value(namespace, secret_ref) {
                // The router sends the credential in a header: it must be a valid header value.
                // Vertex (a service-account JSON key) and Bedrock (JSON AWS keys) sign with it
                // instead, so any text will do there.
                Ok(value)
                    if matches!(ty, Vertex | Bedrock)
                        || value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
                {
                    Some(CredentialSource::Value(SecretValue::new(value)))
                }
                Ok(_) => {
                    issues.add(
                        INVALID_SECRET,
                        format!(
                            "spec.credentials.secretRef: Secret {namespace}/{} key {:?} contains \
                             characters that cannot be sent in an HTTP header (control or \
                             non-ASCII characters)",
                            secret_ref.name, secret_ref.key
                        ),
                    );
                    None
                }
                Err(e) => {
                    issues.add(
                        e.reason,
                        format!("spec.credentials.secretRef: {}", e.message),
                    );
                    None
                }
            },
        }
    }
}

/// Checks an http(s) base URL and strips trailing slashes. Never echoes a URL holding userinfo.
fn normalize_base_url(url: &str) -> Result<String, String> {
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    if authority.contains('@') {
        return Err(
            "must not contain user:password@ credentials; use spec.credentials for the API key"
                .into(),
        );
    }
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?} must not contain whitespace or control characters"
        ));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "{url:?} must not contain a query or fragment; the router appends API paths to it"
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => ("", None),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{url:?} has an invalid port {port:?}"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 9110 `tchar`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn headers(spec: &BTreeMap<String, String>, issues: &mut Issues) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (name, value) in spec {
        let field = format!("spec.headers[{name:?}]");
        let lower = name.to_ascii_lowercase();
        if !is_header_name(name) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: not a valid HTTP header name"),
            );
        } else if CREDENTIAL_HEADERS.contains(&lower.as_str()) {
            issues.add(
                INVALID_HEADER,
                format!(
                    "{field}: carries credentials; put the key in a Secret and reference it from \
                     spec.credentials.secretRef"
                ),
            );
        } else if ROUTER_HEADERS.contains(&lower.as_str()) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: set by the router on every request; remove it"),
            );
        } else if let Some(first) = seen.insert(lower, name) {
            issues.add(
                INVALID_HEADER,
                format!("{field}: same header as {first:?} (header names are case-insensitive)"),
            );
        }
        // Values are not echoed: someone may have pasted a key here.
        if !value
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        {
            issues.add(
                INVALID_HEADER,
                format!(
                    "{field}: the value may hold only visible ASCII characters, spaces and tabs"
                ),
            );
        }
    }
    spec.clone()
}

fn models(spec: &[ProviderModel], issues: &mut Issues) -> BTreeMap<String, ModelConfig> {
    if spec.is_empty() {
        issues.add(NO_MODELS, "spec.models: at least one model is required");
    }
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, m) in spec.iter().enumerate() {
        let path = format!("spec.models[{i}]");
        if m.name.is_empty() {
            issues.add(INVALID_MODELS, format!("{path}.name: must not be empty"));
        } else if m.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            issues.add(
                INVALID_MODELS,
                format!(
                    "{path}.name: {:?} must not contain whitespace or control characters",
                    m.name
                ),
            );
        } else if let Some(first) = seen.insert(&m.name, i) {
            issues.add(
                INVALID_MODELS,
                format!(
                    "{path}.name: {:?} is already listed at spec.models[{first}]",
                    m.name
                ),
            );
        }
        for (field, value) in [
            ("contextLength", m.context_length),
            ("maxOutputTokens", m.max_output_tokens),
        ] {
            if value == Some(0) {
                issues.add(
                    INVALID_MODELS,
                    format!("{path}.{field}: must be greater than 0 when set"),
                );
            }
        }

        let p = &m.pricing;
        let mut price = |field: &str, v: &Option<UsdAmount>| -> Option<Decimal> {
            let v = v.as_ref()?;
            v.value()
                .map_err(|e| issues.add(INVALID_PRICE, format!("{path}.pricing.{field}: {e}")))
                .ok()
        };
        let input = price("inputUSDPerMillion", &p.input_usd_per_million).unwrap_or_default();
        let output = price("outputUSDPerMillion", &p.output_usd_per_million).unwrap_or_default();
        let pricing = PriceTable {
            input_per_million: input,
            output_per_million: output,
            cached_input_per_million: price(
                "cachedInputUSDPerMillion",
                &p.cached_input_usd_per_million,
            )
            .unwrap_or(input),
            cache_write_per_million: price(
                "cacheWriteUSDPerMillion",
                &p.cache_write_usd_per_million,
            )
            .unwrap_or(input),
            reasoning_per_million: price("reasoningUSDPerMillion", &p.reasoning_usd_per_million)
                .unwrap_or(output),
            per_request: price("perRequestUSD", &p.per_request_usd).unwrap_or_default(),
            per_image: price("perImageUSD", &p.per_image_usd).unwrap_or_default(),
        };
        out.insert(
            m.name.clone(),
            ModelConfig {
                pricing,
                context_length: m.context_length,
                max_output_tokens: m.max_output_tokens,
                capabilities: m.capabilities.iter().copied().collect(),
            },
        );
    }
    out
}

fn timeouts(spec: Option<&ProviderTimeouts>, issues: &mut Issues) -> Timeouts {
    let mut out = Timeouts::default();
    let Some(spec) = spec else {
        return out;
    };
    for (field, value, slot) in [
        ("connect", &spec.connect, &mut out.connect_ms),
        ("firstToken", &spec.first_token, &mut out.first_token_ms),
        ("idle", &spec.idle, &mut out.idle_ms),
        ("total", &spec.total, &mut out.total_ms),
    ] {
        let Some(value) = value else { continue };
        match duration_ms(value) {
            Ok(0) => issues.add(
                INVALID_TIMEOUT,
                format!("spec.timeouts.{field}: {value:?} must be at least 1ms"),
            ),
            Ok(ms) => *slot = ms,
            Err(e) => issues.add(INVALID_TIMEOUT, format!("spec.timeouts.{field}: {e}")),
        }
    }
    out
}

/// The `azure`, `bedrock` and `vertex` settings: each only with its own type; Bedrock needs a
/// region, Vertex a location.
fn vendor_settings(
    spec: &ProviderSpec,
    issues: &mut Issues,
) -> (
    Option<AzureConfig>,
    Option<BedrockConfig>,
    Option<VertexConfig>,
) {
    let ty = spec.provider_type;
    let mut wrong_type = |field: &str, owner: ProviderType| {
        issues.add(
            INVALID_PROVIDER_SETTINGS,
            format!(
                "spec.{field}: only valid with type {} (this Provider's type is {})",
                owner.as_str(),
                ty.as_str()
            ),
        );
    };
    if spec.azure.is_some() && ty != ProviderType::AzureOpenAI {
        wrong_type("azure", ProviderType::AzureOpenAI);
    }
    if spec.bedrock.is_some() && ty != ProviderType::Bedrock {
        wrong_type("bedrock", ProviderType::Bedrock);
    }
    if spec.vertex.is_some() && ty != ProviderType::Vertex {
        wrong_type("vertex", ProviderType::Vertex);
    }
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    let azure = (ty == ProviderType::AzureOpenAI).then(|| {
        let api_version = spec
            .azure
            .as_ref()
            .and_then(|a| a.api_version.clone())
            .unwrap_or_else(|| "2024-10-21".into());
        if !token(&api_version) {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                format!("spec.azure.apiVersion: {api_version:?} is not an API version"),
            );
        }
        AzureConfig { api_version }
    });
    let bedrock = match (ty, &spec.bedrock) {
        (ProviderType::Bedrock, Some(b)) if token(&b.region) => Some(BedrockConfig {
            region: b.region.clone(),
        }),
        (ProviderType::Bedrock, _) => {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                "spec.bedrock.region: required for type bedrock (the region requests are signed \
                 for, e.g. us-east-1)",
            );
            None
        }
        _ => None,
    };
    let vertex = match (ty, &spec.vertex) {
        (ProviderType::Vertex, Some(v))
            if token(&v.location) && v.project.as_deref().is_none_or(token) =>
        {
            Some(VertexConfig {
                project: v.project.clone(),
                location: v.location.clone(),
            })
        }
        (ProviderType::Vertex, _) => {
            issues.add(
                INVALID_PROVIDER_SETTINGS,
                "spec.vertex: type vertex needs vertex.location (e.g. us-central1) and, unless \
                 the service-account key names it, vertex.project",
            );
            None
        }
        _ => None,
    };
    (azure, bedrock, vertex)
}

fn mock(ty: ProviderType, spec: Option<&MockBehaviour>, issues: &mut Issues) -> Option<MockConfig> {
    if ty != ProviderType::Mock {
        if spec.is_some() {
            issues.add(
                INVALID_MOCK,
                format!(
                    "spec.mock: only valid with type mock (this Provider's type is {})",
                    ty.as_str()
                ),
            );
        }
        return None;
    }
    let spec = spec.cloned().unwrap_or_default();
    let chunk_chars = spec.chunk_chars.unwrap_or(8);
    if chunk_chars == 0 {
        issues.add(INVALID_MOCK, "spec.mock.chunkChars: must be at least 1");
    }
    let chunk_delay_ms = match spec.chunk_delay.as_deref().map(duration_ms) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(e)) => {
            issues.add(INVALID_MOCK, format!("spec.mock.chunkDelay: {e}"));
            0
        }
    };
    let embedding_dimensions = spec.embedding_dimensions.unwrap_or(8);
    if !(1..=4096).contains(&embedding_dimensions) {
        issues.add(
            INVALID_MOCK,
            format!(
                "spec.mock.embeddingDimensions: {embedding_dimensions} is not between 1 and 4096"
            ),
        );
    }
    Some(MockConfig {
        reply: spec.reply,
        chunk_chars,
        chunk_delay_ms,
        embedding_dimensions,
    })
}

#[cfg(test)]
#[path = "providers_tests.rs"]
mod tests;
