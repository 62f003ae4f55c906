//! The table of [`super`]'s cases: one object per case, the CEL rules it breaks (by message) and
//! the reason `compile()` rejects it with.

use switchboard_api::compile::reason::*;

/// One object (kind + spec, in YAML flow style), the rules it breaks (by message, in schema
/// order) and the reason `compile()` rejects it with (`None`: valid for both).
pub struct Case {
    pub name: &'static str,
    pub kind: &'static str,
    pub spec: &'static str,
    pub fails: &'static [&'static str],
    pub reason: Option<&'static str>,
}

const fn ok(name: &'static str, kind: &'static str, spec: &'static str) -> Case {
    Case {
        name,
        kind,
        spec,
        fails: &[],
        reason: None,
    }
}

const fn bad(
    name: &'static str,
    kind: &'static str,
    spec: &'static str,
    fails: &'static [&'static str],
    reason: &'static str,
) -> Case {
    Case {
        name,
        kind,
        spec,
        fails,
        reason: Some(reason),
    }
}

const BASE_URL: &str = "baseURL is required for type openaiCompatible, azureOpenAI, vertex or \
                        bedrock (they have no default endpoint)";
const CREDENTIALS_REQUIRED: &str = "credentials are required for type openai, anthropic, gemini or azureOpenAI (set secretRef or env)";
const CREDENTIALS_ON_MOCK: &str = "credentials are not allowed with type mock";
const CREDENTIALS_ONE_OF: &str = "credentials must set exactly one of secretRef or env";
const MOCK_ONLY: &str = "mock is only valid with type mock";
const AZURE_ONLY: &str = "azure is only valid with type azureOpenAI";
const BEDROCK: &str =
    "bedrock (with its region) is required for type bedrock and only valid with it";
const VERTEX: &str =
    "vertex (with its location) is required for type vertex and only valid with it";
const NO_MODELS_MSG: &str = "models must list at least one model";
const MODELS_UNIQUE: &str = "models must not list the same name twice";
const CONCURRENCY: &str = "maxConcurrentRequests must be at least 1 (leave it unset for no limit)";

const NO_TARGETS_MSG: &str = "targets must list at least one target";
const TARGETS_UNIQUE: &str = "targets must not list the same provider and model twice";
const WEIGHT: &str = "weight must be at least 1 (remove the target to stop sending it traffic)";
const FALLBACK_SELF: &str = "fallbackModels must not contain this route's own model";
const FALLBACK_UNIQUE: &str = "fallbackModels must not list the same name twice";
const ATTEMPTS: &str = "attempts must be at most 5";

const ALLOWED_GLOB: &str = "allowedModels must not contain an empty glob";
const DENIED_GLOB: &str = "deniedModels must not contain an empty glob";
const RPM: &str = "requestsPerMinute must be at least 1 (leave it unset for no limit)";
const TPM: &str = "tokensPerMinute must be at least 1 (leave it unset for no limit)";
const CONCURRENT: &str = "concurrentRequests must be at least 1 (leave it unset for no limit)";
const SUBJECT_ONE_OF: &str = "a subject must set exactly one of serviceAccount or oidc";
const SUBJECTS_UNIQUE: &str = "subjects must not list the same subject twice";
const SA_NAMESPACE: &str = "serviceAccount.namespace must not be empty";
const SA_NAME: &str = "serviceAccount.name must not be empty";
const ISSUER_URL: &str = "oidc.issuer must be an http(s) URL, as tokens carry it in iss";
const ISSUER_ALONE: &str =
    "oidc must set subject or claims (an issuer alone would admit everyone it issues tokens to)";
const EMPTY_SUBJECT: &str = "oidc.subject must not be empty";

const SOFT_LIMIT: &str = "softLimitPercent must be between 1 and 100";
const SCOPE_GLOB: &str = "scope.models must not contain an empty glob";
const FIT_FLOOR: &str = "fitMaxTokens.minTokens must be at least 1";

const CACHE_SEMANTIC: &str = "cache.semantic is required with mode: semantic";
const CACHE_THRESHOLD: &str = "semantic.threshold must be above 0 and at most 1";
const CACHE_ENTRY_BYTES: &str = "maxEntryBytes must be at least 1";

pub const CASES: &[Case] = &[
    // Provider
    ok("mock", "Provider", "{type: mock, models: [{name: a}]}"),
    ok(
        "mock with behaviour",
        "Provider",
        "{type: mock, mock: {reply: hi}, models: [{name: a}]}",
    ),
    ok(
        "openai, Secret credentials, default endpoint",
        "Provider",
        "{type: openai, credentials: {secretRef: {name: creds, key: apiKey}}, \
          models: [{name: a}, {name: b}], maxConcurrentRequests: 1}",
    ),
    ok(
        "anthropic, env credentials",
        "Provider",
        "{type: anthropic, credentials: {env: ANTHROPIC_API_KEY}, models: [{name: a}]}",
    ),
    ok(
        "openaiCompatible without credentials",
        "Provider",
        "{type: openaiCompatible, baseURL: 'http://vllm:8000/v1', models: [{name: a}]}",
    ),
    ok(
        "azureOpenAI with baseURL and credentials",
        "Provider",
        "{type: azureOpenAI, baseURL: 'https://x.openai.azure.com/openai', credentials: {env: AZURE_KEY}, models: [{name: a}]}",
    ),
    ok(
        "azureOpenAI with settings",
        "Provider",
        "{type: azureOpenAI, baseURL: 'https://x.openai.azure.com', credentials: {env: AZURE_KEY}, \
          azure: {apiVersion: '2024-10-21'}, models: [{name: a}]}",
    ),
    ok(
        "bedrock with region",
        "Provider",
        "{type: bedrock, baseURL: 'https://bedrock-runtime.us-east-1.amazonaws.com', \
          bedrock: {region: us-east-1}, models: [{name: a}]}",
    ),
    ok(
        "vertex with location",
        "Provider",
        "{type: vertex, baseURL: 'https://us-central1-aiplatform.googleapis.com/v1', \
          vertex: {project: p, location: us-central1}, models: [{name: a}]}",
    ),
    bad(
        "azure settings on openai",
        "Provider",
        "{type: openai, credentials: {env: KEY}, azure: {}, models: [{name: a}]}",
        &[AZURE_ONLY],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "bedrock without region",
        "Provider",
        "{type: bedrock, baseURL: 'https://bedrock-runtime.us-east-1.amazonaws.com', models: [{name: a}]}",
        &[BEDROCK],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "bedrock settings on mock",
        "Provider",
        "{type: mock, bedrock: {region: us-east-1}, models: [{name: a}]}",
        &[BEDROCK],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "vertex without location",
        "Provider",
        "{type: vertex, baseURL: 'https://us-central1-aiplatform.googleapis.com/v1', models: [{name: a}]}",
        &[VERTEX],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "vertex settings on openaiCompatible",
        "Provider",
        "{type: openaiCompatible, baseURL: 'http://vllm:8000/v1', vertex: {location: us-central1}, \
          models: [{name: a}]}",
        &[VERTEX],
        INVALID_PROVIDER_SETTINGS,
    ),
    bad(
        "openaiCompatible without baseURL",
        "Provider",
        "{type: openaiCompatible, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "azureOpenAI without baseURL",
        "Provider",
        "{type: azureOpenAI, credentials: {env: AZURE_KEY}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "vertex without baseURL",
        "Provider",
        "{type: vertex, vertex: {location: us-central1}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "bedrock without baseURL",
        "Provider",
        "{type: bedrock, bedrock: {region: us-east-1}, models: [{name: a}]}",
        &[BASE_URL],
        MISSING_BASE_URL,
    ),
    bad(
        "openai without credentials",
        "Provider",
        "{type: openai, models: [{name: a}]}",
        &[CREDENTIALS_REQUIRED],
        MISSING_CREDENTIALS,
    ),
    bad(
        "gemini without credentials",
        "Provider",
        "{type: gemini, models: [{name: a}]}",
        &[CREDENTIALS_REQUIRED],
        MISSING_CREDENTIALS,
    ),
    bad(
        "mock with credentials",
        "Provider",
        "{type: mock, credentials: {env: KEY}, models: [{name: a}]}",
        &[CREDENTIALS_ON_MOCK],
        INVALID_CREDENTIALS,
    ),
    bad(
        "credentials with secretRef and env",
        "Provider",
        "{type: openai, credentials: {secretRef: {name: creds, key: apiKey}, env: KEY}, models: [{name: a}]}",
        &[CREDENTIALS_ONE_OF],
        INVALID_CREDENTIALS,
    ),
    bad(
        "credentials empty",
        "Provider",
        "{type: openai, credentials: {}, models: [{name: a}]}",
        &[CREDENTIALS_ONE_OF],
        INVALID_CREDENTIALS,
    ),
    bad(
        "mock behaviour on openai",
        "Provider",
        "{type: openai, credentials: {env: KEY}, mock: {reply: hi}, models: [{name: a}]}",
        &[MOCK_ONLY],
        INVALID_MOCK,
    ),
    bad(
        "no models",
        "Provider",
        "{type: mock, models: []}",
        &[NO_MODELS_MSG],
        NO_MODELS,
    ),
    bad(
        "a model name twice",
        "Provider",
        "{type: mock, models: [{name: a}, {name: b}, {name: a}]}",
        &[MODELS_UNIQUE],
        INVALID_MODELS,
    ),
    bad(
        "maxConcurrentRequests 0",
        "Provider",
        "{type: mock, maxConcurrentRequests: 0, models: [{name: a}]}",
        &[CONCURRENCY],
        INVALID_CONCURRENCY_LIMIT,
    ),
    bad(
        "two problems at once",
        "Provider",
        "{type: openaiCompatible, mock: {}, models: []}",
        &[NO_MODELS_MSG, BASE_URL, MOCK_ONLY],
        MISSING_BASE_URL,
    ),
    // ModelRoute (Provider `ctx` offers m1 and m2)
    ok(
        "one target",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}]}",
    ),
    ok(
        "weights, priorities, fallbacks, retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1, weight: 3}, \
          {provider: ctx, model: m2, weight: 1, priority: 1}], \
          fallbackModels: [case/b, case/c], retries: {attempts: 5}}",
    ),
    ok(
        "no retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], retries: {attempts: 0}}",
    ),
    bad(
        "no targets",
        "ModelRoute",
        "{model: case/a, targets: []}",
        &[NO_TARGETS_MSG],
        NO_TARGETS,
    ),
    bad(
        "a target twice",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}, {provider: ctx, model: m2}, \
          {provider: ctx, model: m1, weight: 2}]}",
        &[TARGETS_UNIQUE],
        INVALID_TARGET,
    ),
    bad(
        "weight 0",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1, weight: 0}]}",
        &[WEIGHT],
        INVALID_TARGET,
    ),
    bad(
        "falls back to itself",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], fallbackModels: [case/b, case/a]}",
        &[FALLBACK_SELF],
        INVALID_FALLBACK,
    ),
    bad(
        "a fallback twice",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], fallbackModels: [case/b, case/b]}",
        &[FALLBACK_UNIQUE],
        INVALID_FALLBACK,
    ),
    bad(
        "six retries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], retries: {attempts: 6}}",
        &[ATTEMPTS],
        INVALID_RETRIES,
    ),
    ok(
        "an exact cache",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], \
          cache: {mode: exact, ttl: 10m, scope: team, maxEntryBytes: 1024}}",
    ),
    ok(
        "a semantic cache",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], \
          cache: {mode: semantic, semantic: {threshold: 0.9, embeddingModel: case/e}}}",
    ),
    bad(
        "a semantic cache without semantic",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], cache: {mode: semantic}}",
        &[CACHE_SEMANTIC],
        INVALID_CACHE,
    ),
    bad(
        "a cache threshold above 1",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], \
          cache: {mode: semantic, semantic: {threshold: 1.5, embeddingModel: case/e}}}",
        &[CACHE_THRESHOLD],
        INVALID_CACHE,
    ),
    bad(
        "a cache of 0-byte entries",
        "ModelRoute",
        "{model: case/a, targets: [{provider: ctx, model: m1}], \
          cache: {mode: exact, maxEntryBytes: 0}}",
        &[CACHE_ENTRY_BYTES],
        INVALID_CACHE,
    ),
    // ApiKey (Secret `creds` holds `key`)
    ok(
        "caching disabled for a key",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, cache: {mode: disabled}}",
    ),
    bad(
        "a key's semantic cache without semantic",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, cache: {mode: semantic}}",
        &[CACHE_SEMANTIC],
        INVALID_CACHE,
    ),
    bad(
        "a key's cache threshold of 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, \
          cache: {mode: semantic, semantic: {threshold: 0, embeddingModel: case/e}}}",
        &[CACHE_THRESHOLD],
        INVALID_CACHE,
    ),
    bad(
        "a key's cache of 0-byte entries",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, cache: {mode: exact, maxEntryBytes: 0}}",
        &[CACHE_ENTRY_BYTES],
        INVALID_CACHE,
    ),
    ok(
        "globs and limits",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, allowedModels: ['openai/*', smart], \
          deniedModels: ['openai/o3*'], \
          rateLimits: {requestsPerMinute: 1, tokensPerMinute: 1, concurrentRequests: 1}}",
    ),
    bad(
        "an empty allowed glob",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, allowedModels: ['openai/*', '']}",
        &[ALLOWED_GLOB],
        INVALID_GLOB,
    ),
    bad(
        "an empty denied glob",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, deniedModels: ['']}",
        &[DENIED_GLOB],
        INVALID_GLOB,
    ),
    bad(
        "requestsPerMinute 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {requestsPerMinute: 0}}",
        &[RPM],
        INVALID_RATE_LIMIT,
    ),
    bad(
        "tokensPerMinute 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {tokensPerMinute: 0}}",
        &[TPM],
        INVALID_RATE_LIMIT,
    ),
    bad(
        "concurrentRequests 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, rateLimits: {concurrentRequests: 0}}",
        &[CONCURRENT],
        INVALID_RATE_LIMIT,
    ),
    ok(
        "fitMaxTokens",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, fitMaxTokens: {enabled: true, minTokens: 1}}",
    ),
    bad(
        "fitMaxTokens floor 0",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, fitMaxTokens: {enabled: true, minTokens: 0}}",
        &[FIT_FLOOR],
        INVALID_FIT,
    ),
    ok(
        "a ServiceAccount subject instead of a key",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}]}",
    ),
    ok(
        "OIDC subjects alongside a key",
        "ApiKey",
        "{secretRef: {name: creds, key: key}, subjects: [\
          {oidc: {issuer: 'https://idp.example', subject: alice}}, \
          {oidc: {issuer: 'https://idp.example', claims: {groups: ml, email_verified: 'true'}}}]}",
    ),
    bad(
        "a subject of neither kind",
        "ApiKey",
        "{subjects: [{}]}",
        &[SUBJECT_ONE_OF],
        INVALID_SUBJECT,
    ),
    bad(
        "a subject of both kinds",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}, \
          oidc: {issuer: 'https://idp.example', subject: alice}}]}",
        &[SUBJECT_ONE_OF],
        INVALID_SUBJECT,
    ),
    bad(
        "the same subject twice",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: trainer}}, \
          {serviceAccount: {namespace: ml, name: trainer}}]}",
        &[SUBJECTS_UNIQUE],
        INVALID_SUBJECT,
    ),
    bad(
        "a ServiceAccount without a name",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: ml, name: ''}}]}",
        &[SA_NAME],
        INVALID_SUBJECT,
    ),
    bad(
        "a ServiceAccount without a namespace",
        "ApiKey",
        "{subjects: [{serviceAccount: {namespace: '', name: trainer}}]}",
        &[SA_NAMESPACE],
        INVALID_SUBJECT,
    ),
    bad(
        "an issuer that is not a URL",
        "ApiKey",
        "{subjects: [{oidc: {issuer: idp.example, subject: alice}}]}",
        &[ISSUER_URL],
        INVALID_SUBJECT,
    ),
    bad(
        "an issuer alone",
        "ApiKey",
        "{subjects: [{oidc: {issuer: 'https://idp.example', claims: {}}}]}",
        &[ISSUER_ALONE],
        INVALID_SUBJECT,
    ),
    bad(
        "an empty OIDC subject",
        "ApiKey",
        "{subjects: [{oidc: {issuer: 'https://idp.example', subject: ''}}]}",
        &[EMPTY_SUBJECT],
        INVALID_SUBJECT,
    ),
    // Budget
    ok(
        "fitMaxTokens with the default floor",
        "Budget",
        "{limitUSD: '10', fitMaxTokens: {enabled: true}}",
    ),
    bad(
        "fitMaxTokens floor 0",
        "Budget",
        "{limitUSD: '10', fitMaxTokens: {enabled: true, minTokens: 0}}",
        &[FIT_FLOOR],
        INVALID_FIT,
    ),
    ok(
        "soft limit 1",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 1}",
    ),
    ok(
        "soft limit 100, model scope",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 100, scope: {models: ['openai/*']}}",
    ),
    bad(
        "soft limit 0",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 0}",
        &[SOFT_LIMIT],
        INVALID_SOFT_LIMIT,
    ),
    bad(
        "soft limit 101",
        "Budget",
        "{limitUSD: '10', softLimitPercent: 101}",
        &[SOFT_LIMIT],
        INVALID_SOFT_LIMIT,
    ),
    bad(
        "an empty scope glob",
        "Budget",
        "{limitUSD: '10', scope: {models: ['']}}",
        &[SCOPE_GLOB],
        INVALID_GLOB,
    ),
];
