use super::super::fixtures::*;

// ---------------------------------------------------------------------------------------------
// Provider rejections

type Bend = fn(&mut Provider);

#[test]
fn provider_rejections_name_the_reason_and_field() {
    let cases: Vec<(Bend, &str, &str)> = vec![
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: secret_ref("creds", "apiKey"),
                    env: Some("OPENAI_API_KEY".into()),
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials: set exactly one of secretRef or env, not both",
        ),
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: None,
                    env: None,
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials: set exactly one",
        ),
        (
            |p| {
                p.spec.credentials = Some(Credentials {
                    secret_ref: None,
                    env: Some("1-BAD".into()),
                })
            },
            INVALID_CREDENTIALS,
            "spec.credentials.env: \"1-BAD\"",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Openai;
                p.spec.credentials = None;
            },
            MISSING_CREDENTIALS,
            "spec.credentials: type openai needs",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Anthropic;
                p.spec.credentials = None;
            },
            MISSING_CREDENTIALS,
            "spec.credentials: type anthropic needs",
        ),
        (
            |p| p.spec.provider_type = ProviderType::Mock,
            INVALID_CREDENTIALS,
            "spec.credentials: type mock takes no credentials",
        ),
        (
            |p| {
                p.spec.credentials.as_mut().unwrap().secret_ref = secret_ref("nope", "apiKey");
            },
            SECRET_NOT_FOUND,
            "spec.credentials.secretRef: Secret default/nope not found",
        ),
        (
            |p| {
                p.spec.credentials.as_mut().unwrap().secret_ref = secret_ref("creds", "token");
            },
            SECRET_KEY_NOT_FOUND,
            "spec.credentials.secretRef: Secret default/creds has no key \"token\" (it has \
             \"apiKey\")",
        ),
        (
            |p| p.spec.base_url = None,
            MISSING_BASE_URL,
            "spec.baseURL: required for type openaiCompatible",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::AzureOpenAI;
                p.spec.base_url = None;
            },
            MISSING_BASE_URL,
            "spec.baseURL: required for type azureOpenAI",
        ),
        (
            |p| p.spec.base_url = Some("ftp://upstream.test/v1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"ftp://upstream.test/v1\" must start with http:// or https://",
        ),
        (
            |p| p.spec.base_url = Some("https:///v1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"https:///v1\" has no host",
        ),
        (
            |p| p.spec.base_url = Some("http://upstream.test:80a/v1".into()),
            INVALID_BASE_URL,
            "has an invalid port",
        ),
        (
            |p| p.spec.base_url = Some("http://upstream.test/v1?x=1".into()),
            INVALID_BASE_URL,
            "spec.baseURL: \"http://upstream.test/v1?x=1\" must not contain a query",
        ),
        (
            |p| {
                p.spec.bedrock = Some(BedrockSettings {
                    region: "us-east-1".into(),
                })
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.bedrock: only valid with type bedrock (this Provider's type is openaiCompatible)",
        ),
        (
            |p| p.spec.provider_type = ProviderType::Bedrock,
            INVALID_PROVIDER_SETTINGS,
            "spec.bedrock.region: required for type bedrock",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Vertex;
                p.spec.vertex = Some(VertexSettings {
                    project: Some("bad project".into()),
                    location: "us-central1".into(),
                });
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.vertex: type vertex needs vertex.location",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::AzureOpenAI;
                p.spec.azure = Some(AzureSettings {
                    api_version: Some("2024 10".into()),
                });
            },
            INVALID_PROVIDER_SETTINGS,
            "spec.azure.apiVersion: \"2024 10\" is not an API version",
        ),
        (
            |p| p.spec.mock = Some(MockBehaviour::default()),
            INVALID_MOCK,
            "spec.mock: only valid with type mock (this Provider's type is openaiCompatible)",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    chunk_chars: Some(0),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.chunkChars: must be at least 1",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    embedding_dimensions: Some(4097),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.embeddingDimensions: 4097 is not between 1 and 4096",
        ),
        (
            |p| {
                p.spec.provider_type = ProviderType::Mock;
                p.spec.credentials = None;
                p.spec.mock = Some(MockBehaviour {
                    chunk_delay: Some("soon".into()),
                    ..Default::default()
                });
            },
            INVALID_MOCK,
            "spec.mock.chunkDelay: \"soon\" is not a duration",
        ),
        (
            |p| {
                p.spec
                    .headers
                    .insert("Authorization".into(), "Bearer x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"Authorization\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("X-API-Key".into(), "x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X-API-Key\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("api-key".into(), "x".into());
            },
            INVALID_HEADER,
            "spec.headers[\"api-key\"]: carries credentials",
        ),
        (
            |p| {
                p.spec.headers.insert("Content-Length".into(), "1".into());
            },
            INVALID_HEADER,
            "spec.headers[\"Content-Length\"]: set by the router",
        ),
        (
            |p| {
                p.spec.headers.insert("X Team".into(), "ml".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X Team\"]: not a valid HTTP header name",
        ),
        (
            |p| {
                p.spec
                    .headers
                    .insert("X-Team".into(), "ml\r\nX-Evil: 1".into());
            },
            INVALID_HEADER,
            "spec.headers[\"X-Team\"]: the value may hold only visible ASCII",
        ),
        (
            |p| {
                p.spec.headers.insert("X-Team".into(), "a".into());
                p.spec.headers.insert("x-team".into(), "b".into());
            },
            INVALID_HEADER,
            "spec.headers[\"x-team\"]: same header as \"X-Team\"",
        ),
        (
            |p| p.spec.models.clear(),
            NO_MODELS,
            "spec.models: at least one model is required",
        ),
        (
            |p| p.spec.models[0].name = String::new(),
            INVALID_MODELS,
            "spec.models[0].name: must not be empty",
        ),
        (
            |p| p.spec.models.push(model("m", "1", "2")),
            INVALID_MODELS,
            "spec.models[1].name: \"m\" is already listed at spec.models[0]",
        ),
        (
            |p| p.spec.models[0].context_length = Some(0),
            INVALID_MODELS,
            "spec.models[0].contextLength: must be greater than 0",
        ),
        (
            |p| p.spec.models[0].max_output_tokens = Some(0),
            INVALID_MODELS,
            "spec.models[0].maxOutputTokens: must be greater than 0",
        ),
        (
            |p| {
                p.spec.models.push(model("n", "abc", "1"));
            },
            INVALID_PRICE,
            "spec.models[1].pricing.inputUSDPerMillion: \"abc\" is not a non-negative decimal \
             string such as \"0.15\"",
        ),
        (
            |p| p.spec.models[0].pricing.cached_input_usd_per_million = Some("-1".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.cachedInputUSDPerMillion: \"-1\"",
        ),
        (
            |p| p.spec.models[0].pricing.cache_write_usd_per_million = Some("1e3".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.cacheWriteUSDPerMillion",
        ),
        (
            |p| p.spec.models[0].pricing.reasoning_usd_per_million = Some("".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.reasoningUSDPerMillion",
        ),
        (
            |p| p.spec.models[0].pricing.per_request_usd = Some("free".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.perRequestUSD",
        ),
        (
            |p| p.spec.models[0].pricing.per_image_usd = Some(".5".into()),
            INVALID_PRICE,
            "spec.models[0].pricing.perImageUSD",
        ),
        (
            // #16.2: 28 digits parse as a decimal, but no ledger counts them; Ready=False, not
            // a panic at the first request.
            |p| {
                p.spec.models[0].pricing.output_usd_per_million =
                    Some("9999999999999999999999999999".into())
            },
            INVALID_PRICE,
            "spec.models[0].pricing.outputUSDPerMillion: \"9999999999999999999999999999\" is \
             above 9007199.254740991, the largest amount the spend ledger counts exactly",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    connect: Some("ten seconds".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.connect: \"ten seconds\" is not a duration",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    total: Some("0s".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.total: \"0s\" must be at least 1ms",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    idle: Some("500us".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.idle",
        ),
        (
            |p| {
                p.spec.timeouts = Some(ProviderTimeouts {
                    first_token: Some("-1s".into()),
                    ..Default::default()
                })
            },
            INVALID_TIMEOUT,
            "spec.timeouts.firstToken",
        ),
    ];
    for (i, (bend, reason, field)) in cases.into_iter().enumerate() {
        let mut p = Provider::test("p");
        bend(&mut p);
        let c = compile(&[p.into(), creds(), Provider::test("other").into()]);
        let msg = assert_rejected(&c, "Provider", "p", reason, field);
        assert!(!msg.contains(UPSTREAM_SECRET), "case {i}: {msg}");
        assert!(
            ready(&c, "Provider", "other").0 == COMPILED,
            "case {i}: the other Provider still compiles"
        );
        assert!(!c.config.providers.contains_key("default/p"), "case {i}");
    }
}

#[test]
fn every_problem_of_a_provider_is_reported_at_once() {
    let mut p = Provider::test("p");
    p.spec.base_url = Some("upstream.test".into());
    p.spec.models[0].pricing.input_usd_per_million = Some("x".into());
    let c = compile(&[p.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", INVALID_BASE_URL, "spec.baseURL");
    assert!(
        msg.contains("; spec.models[0].pricing.inputUSDPerMillion"),
        "{msg}"
    );
}

#[test]
fn provider_types_get_their_defaults_and_credential_rules() {
    // Ollama: openaiCompatible without credentials; trailing slashes stripped.
    let mut ollama = Provider::test("ollama");
    ollama.spec.credentials = None;
    ollama.spec.base_url = Some("http://localhost:11434/v1//".into());
    // Credentials from the router's environment.
    let mut env = Provider::test("env");
    env.spec.provider_type = ProviderType::Openai;
    env.spec.base_url = None;
    env.spec.credentials = Some(Credentials {
        secret_ref: None,
        env: Some("OPENAI_API_KEY".into()),
    });
    // Cloud identity: no credentials, but a base URL.
    let mut bedrock = Provider::test("bedrock");
    bedrock.spec.provider_type = ProviderType::Bedrock;
    bedrock.spec.credentials = None;
    bedrock.spec.base_url = Some("https://bedrock-runtime.us-east-1.amazonaws.com".into());
    bedrock.spec.bedrock = Some(BedrockSettings {
        region: "us-east-1".into(),
    });
    // Mock: no base URL, default behaviour.
    let mut mock = Provider::test("mock");
    mock.spec.provider_type = ProviderType::Mock;
    mock.spec.credentials = None;
    mock.spec.base_url = Some("ignored".into());
    let mut ipv6 = Provider::test("ipv6");
    ipv6.spec.base_url = Some("http://[::1]:8000/v1".into());

    let c = compile(&[
        ollama.into(),
        env.into(),
        bedrock.into(),
        mock.into(),
        ipv6.into(),
        creds(),
    ]);
    for (r, res) in &c.results {
        assert!(res.outcome.is_ready(), "{r}: {:?}", res.outcome);
    }
    let p = &c.config.providers;
    assert_eq!(
        p["default/ollama"].base_url.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_eq!(p["default/ollama"].credential, None);
    assert_eq!(
        p["default/env"].base_url.as_deref(),
        Some("https://api.openai.com/v1")
    );
    assert_eq!(
        p["default/env"].credential,
        Some(CredentialSource::Env("OPENAI_API_KEY".into()))
    );
    assert_eq!(p["default/bedrock"].credential, None);
    assert_eq!(
        p["default/bedrock"].bedrock,
        Some(BedrockConfig {
            region: "us-east-1".into()
        })
    );
    assert_eq!(p["default/ollama"].bedrock, None);
    assert_eq!(p["default/mock"].base_url, None);
    assert_eq!(
        p["default/mock"].mock,
        Some(MockConfig {
            reply: None,
            chunk_chars: 8,
            chunk_delay_ms: 0,
            embedding_dimensions: 8,
        })
    );
    assert_eq!(p["default/mock"].timeouts, Timeouts::default());
    assert_eq!(
        p["default/mock"].data_policy, None,
        "an undeclared policy stays unknown"
    );
}

#[test]
fn a_base_url_with_userinfo_is_rejected_without_echoing_it() {
    let mut p = Provider::test("p");
    p.spec.base_url = Some("https://user:hunter2-password@upstream.test/v1".into());
    let c = compile(&[p.into(), creds()]);
    let msg = assert_rejected(&c, "Provider", "p", INVALID_BASE_URL, "spec.baseURL");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_zero_concurrency_limit_is_rejected() {
    let mut p = Provider::test("p");
    p.spec.max_concurrent_requests = Some(0);
    let c = compile(&[p.into(), creds()]);
    assert_rejected(
        &c,
        "Provider",
        "p",
        INVALID_CONCURRENCY_LIMIT,
        "spec.maxConcurrentRequests",
    );
    let mut p = Provider::test("p");
    p.spec.max_concurrent_requests = Some(4);
    let c = compile(&[p.into(), creds()]);
    assert_eq!(
        c.config.providers["default/p"].max_concurrent_requests,
        Some(4)
    );
}
