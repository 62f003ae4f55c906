use super::*;
use switchboard_api::snapshot::CacheMode;

fn body(json: &str) -> RawObject {
    RawObject::parse(json.as_bytes()).unwrap()
}

fn policy() -> CachePolicy {
    CachePolicy {
        mode: CacheMode::Exact,
        ttl_ms: 1000,
        scope: CacheScope::Key,
        semantic: None,
        max_entry_bytes: 1000,
        sampled: false,
        skip_tool_turns: false,
        cache_tool_calls: false,
        cache_incomplete: false,
    }
}

fn key(json: &str) -> String {
    exact_key("key:a/b", "chat", &body(json)).unwrap()
}

#[test]
fn order_whitespace_delivery_and_text_parts_do_not_change_the_key() {
    let base = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#);
    for same in [
        r#"{"max_tokens":5,"messages":[{"content":"hi","role":"user"}],"model":"m"}"#,
        r#"{ "model" : "m", "messages": [ {"role":"user","content":"hi"} ], "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}, "user": "u1" }"#,
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"h"},{"type":"text","text":"i"}]}],"max_tokens":5}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"cache":true,"metadata":{"a":"b"}}"#,
    ] {
        assert_eq!(key(same), base, "{same}");
    }
}

#[test]
fn what_changes_the_answer_changes_the_key() {
    let base = key(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    for other in [
        r#"{"model":"m2","messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi!"}]}"#,
        r#"{"model":"m","messages":[{"role":"system","content":"be terse"},{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"provider":{"order":["a"]}}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}"#,
    ] {
        assert_ne!(key(other), base, "{other}");
    }
    let b = body(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    assert_ne!(
        exact_key("key:a/b", "chat", &b),
        exact_key("key:a/c", "chat", &b)
    );
    assert_ne!(
        exact_key("key:a/b", "chat", &b),
        exact_key("key:a/b", "messages", &b)
    );
}

#[test]
fn scopes_name_the_key_team_namespace_or_nobody() {
    let mut k = ApiKeyConfig::test();
    k.namespace = "ns".into();
    k.name = "k".into();
    assert_eq!(scope_of(CacheScope::Key, &k), "key:ns/k");
    assert_eq!(scope_of(CacheScope::Team, &k), "key:ns/k");
    k.team = Some("t".into());
    assert_eq!(scope_of(CacheScope::Team, &k), "team:t");
    assert_eq!(scope_of(CacheScope::Namespace, &k), "ns:ns");
    assert_eq!(scope_of(CacheScope::Shared, &k), "shared");
}

#[test]
fn directives_come_from_cache_control_and_the_body() {
    let mut h = http::HeaderMap::new();
    assert_eq!(Directives::from_headers(&h), Directives::default());
    h.insert("cache-control", "max-age=0, No-Cache".parse().unwrap());
    let d = Directives::from_headers(&h);
    assert!(d.no_cache && !d.no_store);
    h.insert("cache-control", "no-store".parse().unwrap());
    let d = Directives::from_headers(&h);
    assert!(d.no_cache && d.no_store);
    let d = Directives::default().with_body(&body(r#"{"cache":false}"#));
    assert!(d.no_cache && d.no_store);
    let d = Directives::default().with_body(&body(r#"{"cache":true}"#));
    assert_eq!(d, Directives::default());
}

#[test]
fn admission_bypasses_sampled_and_tool_turns_when_told() {
    let hi = body(r#"{"messages":[{"role":"user","content":"hi"}]}"#);
    let p = policy();
    assert_eq!(admit(&p, &hi, Directives::default()), Ok(()));
    let no_cache = Directives {
        no_cache: true,
        no_store: false,
    };
    assert_eq!(
        admit(&p, &hi, no_cache),
        Err(Bypass::Client { store: true })
    );
    assert!(admit(&p, &hi, no_cache).unwrap_err().stores());
    let hot = body(r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.7}"#);
    let cold = body(r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
    assert_eq!(admit(&p, &hot, Directives::default()), Err(Bypass::Sampled));
    assert_eq!(admit(&p, &cold, Directives::default()), Ok(()));
    let sampled = CachePolicy {
        sampled: true,
        ..policy()
    };
    assert_eq!(admit(&sampled, &hot, Directives::default()), Ok(()));
    let tool = body(
        r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[]},{"role":"tool","content":"42"}]}"#,
    );
    assert_eq!(admit(&p, &tool, Directives::default()), Ok(()));
    let skip = CachePolicy {
        skip_tool_turns: true,
        ..policy()
    };
    assert_eq!(
        admit(&skip, &tool, Directives::default()),
        Err(Bypass::ToolTurn)
    );
}

#[test]
fn semantic_parts_split_the_last_user_turn_from_an_exact_partition() {
    let a = body(
        r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"What is the capital of France?"}]}"#,
    );
    let b = body(
        r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"Tell me France's capital"}]}]}"#,
    );
    let c = body(
        r#"{"model":"m","messages":[{"role":"system","content":"other"},{"role":"user","content":"What is the capital of France?"}]}"#,
    );
    let (pa, ta) = semantic_parts("s", "chat", &a).unwrap();
    let (pb, tb) = semantic_parts("s", "chat", &b).unwrap();
    let (pc, _) = semantic_parts("s", "chat", &c).unwrap();
    assert_eq!(pa, pb);
    assert_ne!(pa, pc);
    assert_eq!(ta, "What is the capital of France?");
    assert_eq!(tb, "Tell me France's capital");
    let assistant_last =
        body(r#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]}"#);
    assert_eq!(semantic_parts("s", "chat", &assistant_last), None);
}
