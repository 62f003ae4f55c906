//! Token counts from a real tokenizer — OpenAI's `o200k_base` (tiktoken-rs) — for the answers
//! the router must give without an upstream that counts: `count_tokens` for targets with no
//! counting API. An estimate of another vendor's count, never a bound: a tokenizer's count says
//! nothing safe about a different tokenizer's (budgets bound input by bytes instead; see
//! `budgets/spend.rs`). Pure.

/// The tokenizer's name, as reported with an estimate.
pub const TOKENIZER: &str = "o200k_base";

/// The tokens of `text` in [`TOKENIZER`] (special-token text counts as plain text).
pub fn count(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tokens_not_characters() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello"), 1);
        let n = count("The quick brown fox jumps over the lazy dog.");
        assert!((8..=12).contains(&n), "{n}");
    }
}
