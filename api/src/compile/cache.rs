//! The `cache` block of a ModelRoute or an ApiKey, compiled into a [`CachePolicy`].

use super::{Issues, duration_ms, reason::INVALID_CACHE};
use crate::{
    resources::{CacheMode, CacheSpec},
    snapshot::{CachePolicy, SemanticPolicy},
};

/// Compiles `spec.cache`; every problem goes into `issues`.
pub(super) fn compile_cache(spec: Option<&CacheSpec>, issues: &mut Issues) -> Option<CachePolicy> {
    let spec = spec?;
    let ttl_ms = match spec.ttl.as_deref().map(duration_ms) {
        None => CachePolicy::DEFAULT_TTL_MS,
        Some(Ok(0)) => {
            issues.add(INVALID_CACHE, "spec.cache.ttl: must be at least 1ms");
            0
        }
        Some(Ok(ms)) => ms,
        Some(Err(e)) => {
            issues.add(INVALID_CACHE, format!("spec.cache.ttl: {e}"));
            0
        }
    };
    let semantic = spec.semantic.as_ref().map(|s| {
        if !(s.threshold > 0.0 && s.threshold <= 1.0) {
            issues.add(
                INVALID_CACHE,
                format!(
                    "spec.cache.semantic.threshold: {} must be above 0 and at most 1",
                    s.threshold
                ),
            );
        }
        if s.embedding_model.trim().is_empty() {
            issues.add(
                INVALID_CACHE,
                "spec.cache.semantic.embeddingModel: must name an embeddings model",
            );
        }
        SemanticPolicy {
            threshold: s.threshold,
            embedding_model: s.embedding_model.clone(),
        }
    });
    if spec.mode == CacheMode::Semantic && semantic.is_none() {
        issues.add(
            INVALID_CACHE,
            "spec.cache.semantic: required with mode: semantic",
        );
    }
    if spec.max_entry_bytes == Some(0) {
        issues.add(
            INVALID_CACHE,
            "spec.cache.maxEntryBytes: must be at least 1",
        );
    }
    Some(CachePolicy {
        mode: spec.mode,
        ttl_ms,
        scope: spec.scope,
        semantic,
        max_entry_bytes: spec
            .max_entry_bytes
            .unwrap_or(CachePolicy::DEFAULT_MAX_ENTRY_BYTES),
        sampled: spec.sampled,
        skip_tool_turns: spec.skip_tool_turns,
        cache_tool_calls: spec.cache_tool_calls,
        cache_incomplete: spec.cache_incomplete,
    })
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
