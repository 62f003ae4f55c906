use super::*;
use crate::resources::{CacheScope, SemanticCacheSpec};

fn spec(mode: CacheMode) -> CacheSpec {
    CacheSpec {
        mode,
        ttl: None,
        scope: CacheScope::default(),
        semantic: None,
        max_entry_bytes: None,
        sampled: false,
        skip_tool_turns: false,
        cache_tool_calls: false,
        cache_incomplete: false,
    }
}

fn compiled(s: &CacheSpec) -> (Option<CachePolicy>, Vec<String>) {
    let mut issues = Issues::default();
    let policy = compile_cache(Some(s), &mut issues);
    (policy, issues.0.into_iter().map(|r| r.message).collect())
}

#[test]
fn defaults_fill_an_exact_block() {
    let (policy, issues) = compiled(&spec(CacheMode::Exact));
    assert!(issues.is_empty(), "{issues:?}");
    let p = policy.unwrap();
    assert_eq!(p.ttl_ms, CachePolicy::DEFAULT_TTL_MS);
    assert_eq!(p.scope, CacheScope::Key);
    assert_eq!(p.max_entry_bytes, CachePolicy::DEFAULT_MAX_ENTRY_BYTES);
    assert!(p.is_on());
}

#[test]
fn no_block_is_no_policy() {
    let mut issues = Issues::default();
    assert_eq!(compile_cache(None, &mut issues), None);
    assert!(issues.0.is_empty());
}

#[test]
fn bad_blocks_name_the_field() {
    let mut bad_ttl = spec(CacheMode::Exact);
    bad_ttl.ttl = Some("soon".into());
    let mut zero_ttl = spec(CacheMode::Exact);
    zero_ttl.ttl = Some("0s".into());
    let semantic_without = spec(CacheMode::Semantic);
    let mut bad_threshold = spec(CacheMode::Semantic);
    bad_threshold.semantic = Some(SemanticCacheSpec {
        threshold: 1.5,
        embedding_model: " ".into(),
    });
    let mut zero_bytes = spec(CacheMode::Exact);
    zero_bytes.max_entry_bytes = Some(0);
    for (s, want) in [
        (bad_ttl, vec!["spec.cache.ttl: \"soon\" is not a duration"]),
        (zero_ttl, vec!["spec.cache.ttl: must be at least 1ms"]),
        (
            semantic_without,
            vec!["spec.cache.semantic: required with mode: semantic"],
        ),
        (
            bad_threshold,
            vec![
                "spec.cache.semantic.threshold: 1.5 must be above 0 and at most 1",
                "spec.cache.semantic.embeddingModel: must name an embeddings model",
            ],
        ),
        (
            zero_bytes,
            vec!["spec.cache.maxEntryBytes: must be at least 1"],
        ),
    ] {
        let (_, issues) = compiled(&s);
        assert_eq!(issues.len(), want.len(), "{issues:?}");
        for (got, want) in issues.iter().zip(want) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
    }
}

#[test]
fn a_semantic_block_compiles() {
    let mut s = spec(CacheMode::Semantic);
    s.ttl = Some("10m".into());
    s.scope = CacheScope::Team;
    s.semantic = Some(SemanticCacheSpec {
        threshold: 0.9,
        embedding_model: "openai/text-embedding-3-small".into(),
    });
    let (policy, issues) = compiled(&s);
    assert!(issues.is_empty(), "{issues:?}");
    let p = policy.unwrap();
    assert_eq!(p.ttl_ms, 600_000);
    assert_eq!(p.semantic.unwrap().threshold, 0.9);
}
