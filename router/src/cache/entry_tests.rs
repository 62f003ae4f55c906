use super::*;
use switchboard_api::snapshot::{CacheMode, CacheScope};

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":7,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello é","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4},"cost":0.0000045},"provider":"p","system_fingerprint":null}"#;

fn policy() -> CachePolicy {
    CachePolicy {
        mode: CacheMode::Exact,
        ttl_ms: 1000,
        scope: CacheScope::Key,
        semantic: None,
        max_entry_bytes: 100_000,
        sampled: false,
        skip_tool_turns: false,
        cache_tool_calls: false,
        cache_incomplete: false,
    }
}

#[test]
fn only_complete_answers_that_fit_are_stored_unless_configured() {
    let p = policy();
    assert!(storable(ANSWER.as_bytes(), &p));
    let length = ANSWER.replace(r#""finish_reason":"stop""#, r#""finish_reason":"length""#);
    let tools = ANSWER.replace(
        r#""finish_reason":"stop""#,
        r#""finish_reason":"tool_calls""#,
    );
    let refusal = ANSWER.replace(r#""refusal":null"#, r#""refusal":"no""#);
    let error = ANSWER.replace(r#""finish_reason":"stop""#, r#""finish_reason":"error""#);
    for s in [&length, &tools, &refusal, &error] {
        assert!(!storable(s.as_bytes(), &p), "{s}");
    }
    let lenient = CachePolicy {
        cache_tool_calls: true,
        cache_incomplete: true,
        ..policy()
    };
    for s in [&length, &tools, &refusal] {
        assert!(storable(s.as_bytes(), &lenient), "{s}");
    }
    assert!(!storable(error.as_bytes(), &lenient));
    let small = CachePolicy {
        max_entry_bytes: 10,
        ..policy()
    };
    assert!(!storable(ANSWER.as_bytes(), &small));
    assert!(!storable(b"not json", &p));
}

#[test]
fn a_hit_costs_nothing_and_says_what_it_saved() {
    let h = hit(ANSWER.as_bytes()).unwrap();
    assert_eq!(h.saved, "0.0000045".parse::<Decimal>().unwrap());
    assert_eq!(h.usage.prompt_tokens, 9);
    assert_eq!(h.usage.cached_tokens, 4);
    assert_eq!(h.finish_reason.as_deref(), Some("stop"));
    let v: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(v["usage"]["cost"], json!(0));
    assert_eq!(v["usage"]["cache_saved_cost"], json!(0.0000045));
    assert_eq!(v["choices"][0]["message"]["content"], "Hello é");
    assert!(hit(b"{}").is_none());
}

#[test]
fn a_replayed_hit_reassembles_into_the_same_answer() {
    let h = hit(ANSWER.as_bytes()).unwrap();
    let frames = replay(&h.body).unwrap();
    let text: String = frames
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap())
        .collect();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let mut payloads = text.clone();
    let mut a = Assembler::default();
    for p in crate::streaming::sse::take_payloads(&mut payloads) {
        a.push(&p);
    }
    let back: Value = serde_json::from_slice(&a.finish().unwrap()).unwrap();
    let orig: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(back["choices"], orig["choices"]);
    assert_eq!(back["usage"], orig["usage"]);
    // The usage chunk comes last, with no choices.
    let last = text.trim_end().rsplit("\n\n").nth(1).unwrap();
    let last: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["cost"], json!(0));
}

#[test]
fn streamed_tool_calls_are_put_back_together() {
    let mut a = Assembler::default();
    for p in [
        r#"{"id":"s","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":""}}]},"finish_reason":null}]}"#,
        r#"{"id":"s","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]},"finish_reason":null}]}"#,
        r#"{"id":"s","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"s","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"cost":0.1}}"#,
        "[DONE]",
    ] {
        a.push(p);
    }
    let v: Value = serde_json::from_slice(&a.finish().unwrap()).unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_1");
    assert_eq!(call["function"]["name"], "get");
    assert_eq!(call["function"]["arguments"], "{\"a\":1}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn broken_streams_leave_nothing_to_store() {
    let content =
        r#"{"id":"s","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#;
    let usage = r#"{"id":"s","choices":[],"usage":{"cost":0}}"#;
    let err = r#"{"id":"s","choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#;
    for payloads in [
        vec![content, usage],
        vec![content, "[DONE]"],
        vec![content, err, usage, "[DONE]"],
        vec![content, r#"{"error":{"message":"x"}}"#, "[DONE]"],
    ] {
        let mut a = Assembler::default();
        for p in &payloads {
            a.push(p);
        }
        assert!(a.finish().is_none(), "{payloads:?}");
    }
}
