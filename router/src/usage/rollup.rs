//! Daily rollups, maintained as records are written: what each batch of newly stored records
//! adds to them. Pure.
//!
//! Three tables, because a request has one key, team, model, provider and app but any number of
//! tags: `usage_daily` (day × key × team × model × provider × app) counts every request once;
//! `usage_daily_tags` has one row per tag (a request tagged `a,b` counts under both, and an
//! untagged one under the empty tag); `usage_daily_users` adds the end user. A report picks the
//! table its grouping and filters need, so no sum ever counts a request twice unless it groups
//! by tag. Absent dimensions are the empty string, never NULL, so they form one group.
//!
//! Two hourly rollups serve the console's last hours: `usage_hourly` (hour × model × team ×
//! provider) and `usage_hourly_latency`, a histogram of latencies per hour in buckets of two
//! significant digits ([`latency_bucket`]), from which percentiles are read to within 10 %.

use std::collections::BTreeMap;

use super::record::UsageRecord;

/// What a group of requests adds up to. Saturating sums: rollups are reports, and an `i64` of
/// nano-dollars or tokens does not overflow in practice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Requests.
    pub requests: i64,
    /// Requests answered with a status ≥ 400.
    pub failed: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Input tokens read from the cache.
    pub cached_tokens: i64,
    /// Input tokens written to the cache.
    pub cache_write_tokens: i64,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: i64,
    /// Cost in nano-dollars.
    pub cost_nanos: i64,
    /// Sum of latencies, milliseconds (an average is this over `requests`).
    pub latency_ms: i64,
}

impl Totals {
    /// One request's contribution.
    pub fn of(r: &UsageRecord) -> Totals {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Totals {
            requests: 1,
            failed: i64::from(r.status >= 400),
            prompt_tokens: n(r.tokens.prompt_tokens),
            completion_tokens: n(r.tokens.completion_tokens),
            cached_tokens: n(r.tokens.cached_tokens),
            cache_write_tokens: n(r.tokens.cache_write_tokens),
            reasoning_tokens: n(r.tokens.reasoning_tokens),
            cost_nanos: r.cost_nanos,
            latency_ms: n(r.latency_ms),
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Totals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.failed = self.failed.saturating_add(other.failed);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
        self.latency_ms = self.latency_ms.saturating_add(other.latency_ms);
    }
}

/// A rollup row's key, borrowed from the records it sums. `extra` is the tag
/// (`usage_daily_tags`), the end user (`usage_daily_users`), or empty (`usage_daily`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey<'a> {
    /// Days since 1970-01-01, UTC.
    pub day: i64,
    /// Tag or end user; empty in `usage_daily`.
    pub extra: &'a str,
    /// ApiKey id.
    pub key_id: &'a str,
    /// Team.
    pub team: &'a str,
    /// Billed public model.
    pub model: &'a str,
    /// Provider that served.
    pub provider: &'a str,
    /// App.
    pub app: &'a str,
}

/// An hourly rollup row's key, borrowed from the records it sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HourKey<'a> {
    /// Hours since 1970-01-01 00:00 UTC.
    pub hour: i64,
    /// Billed public model.
    pub model: &'a str,
    /// Team.
    pub team: &'a str,
    /// Provider that served.
    pub provider: &'a str,
}

/// The histogram bucket of a latency: its lower bound to two significant digits (exact below
/// 100 ms, then 100, 110, … 990, 1000, 1100, …), at most 10 % below the latency. The
/// migration that backfills `usage_hourly_latency` computes the same in SQL.
pub fn latency_bucket(ms: u64) -> i64 {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let step = match ms {
        ..100 => 1,
        100..1_000 => 10,
        1_000..10_000 => 100,
        10_000..100_000 => 1_000,
        100_000..1_000_000 => 10_000,
        _ => 100_000,
    };
    ms / step * step
}

/// The `p`th percentile, nearest-rank, of a histogram given as `(bucket, count)` in bucket
/// order: the bucket holding the value of rank ⌈p·n/100⌉; `None` when it is empty.
pub fn percentile(histogram: &[(i64, i64)], p: i64) -> Option<i64> {
    let n: i64 = histogram.iter().map(|(_, c)| (*c).max(0)).sum();
    if n == 0 {
        return None;
    }
    let rank = ((p * n + 99) / 100).clamp(1, n);
    let mut seen = 0;
    histogram.iter().find_map(|(bucket, c)| {
        seen += (*c).max(0);
        (seen >= rank).then_some(*bucket)
    })
}

/// What a batch adds to each rollup table, in key order: writers upsert rows in the same order,
/// so two replicas writing at once lock rows in the same order and do not deadlock. Keys borrow
/// the records' strings: a batch's deltas copy no text.
#[derive(Debug, Default, PartialEq)]
pub struct Deltas<'a> {
    /// `usage_daily`.
    pub daily: BTreeMap<RollupKey<'a>, Totals>,
    /// `usage_daily_tags`.
    pub tags: BTreeMap<RollupKey<'a>, Totals>,
    /// `usage_daily_users`.
    pub users: BTreeMap<RollupKey<'a>, Totals>,
    /// `usage_hourly`.
    pub hourly: BTreeMap<HourKey<'a>, Totals>,
    /// `usage_hourly_latency`: requests per (hour, latency bucket).
    pub latency: BTreeMap<(i64, i64), i64>,
}

impl<'a> Deltas<'a> {
    /// The rollup increments of `records` (each counted once: pass only records newly stored).
    pub fn of(records: impl IntoIterator<Item = &'a UsageRecord>) -> Deltas<'a> {
        let mut d = Deltas::default();
        for r in records {
            let totals = Totals::of(r);
            let team = r.team.as_deref().unwrap_or("");
            let provider = r.provider.as_deref().unwrap_or("");
            let key = RollupKey {
                day: r.day(),
                extra: "",
                key_id: &r.key_id,
                team,
                model: r.billed_model(),
                provider,
                app: r.app.as_deref().unwrap_or(""),
            };
            d.daily.entry(key).or_default().add(&totals);
            let user = RollupKey {
                extra: r.user.as_deref().unwrap_or(""),
                ..key
            };
            d.users.entry(user).or_default().add(&totals);
            if r.tags.is_empty() {
                d.tags.entry(key).or_default().add(&totals);
            }
            for tag in &r.tags {
                let tagged = RollupKey { extra: tag, ..key };
                d.tags.entry(tagged).or_default().add(&totals);
            }
            let hour = HourKey {
                hour: r.hour(),
                model: key.model,
                team,
                provider,
            };
            d.hourly.entry(hour).or_default().add(&totals);
            *d.latency
                .entry((r.hour(), latency_bucket(r.latency_ms)))
                .or_default() += 1;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::record::tests::sample;

    #[test]
    fn a_request_counts_once_per_table_and_once_per_tag() {
        let a = sample("a", 0);
        let b = UsageRecord {
            tags: vec![],
            user: None,
            status: 502,
            cost_nanos: 0,
            ..sample("b", 1000)
        };
        let d = Deltas::of([&a, &b]);
        assert_eq!(d.daily.len(), 1);
        let day = d.daily.values().next().unwrap();
        assert_eq!((day.requests, day.failed), (2, 1));
        assert_eq!(day.cost_nanos, a.cost_nanos);
        assert_eq!(day.prompt_tokens, 200);
        // a is tagged prod and batch, b untagged: three tag rows, a counted under each of its tags.
        let tags: Vec<(&str, i64)> = d.tags.iter().map(|(k, t)| (k.extra, t.requests)).collect();
        assert_eq!(tags, [("", 1), ("batch", 1), ("prod", 1)]);
        let users: Vec<&str> = d.users.keys().map(|k| k.extra).collect();
        assert_eq!(users, ["", "alice"]);
    }

    #[test]
    fn rows_are_keyed_by_day_and_billed_model() {
        let a = sample("a", 0);
        let next_day = sample("b", DAY);
        let fallback = UsageRecord {
            served_model: None,
            provider: None,
            ..sample("c", 0)
        };
        let d = Deltas::of([&a, &next_day, &fallback]);
        let keys: Vec<(i64, &str, &str)> = d
            .daily
            .keys()
            .map(|k| (k.day, k.model, k.provider))
            .collect();
        assert_eq!(
            keys,
            [
                (0, "openai/gpt-4o", "openai"),
                (0, "smart", ""),
                (1, "openai/gpt-4o", "openai")
            ]
        );
    }

    #[test]
    fn hours_roll_up_by_model_team_and_provider_with_a_latency_histogram() {
        let hour = crate::usage::record::HOUR_MS;
        let a = UsageRecord {
            latency_ms: 1234,
            ..sample("a", 0)
        };
        let b = UsageRecord {
            latency_ms: 1299,
            ..sample("b", hour - 1)
        };
        let c = UsageRecord {
            latency_ms: 7,
            ..sample("c", hour)
        };
        let d = Deltas::of([&a, &b, &c]);
        let hours: Vec<(i64, i64)> = d.hourly.iter().map(|(k, t)| (k.hour, t.requests)).collect();
        assert_eq!(hours, [(0, 2), (1, 1)]);
        let first = d.hourly.keys().next().unwrap();
        assert_eq!(
            (first.model, first.team, first.provider),
            ("openai/gpt-4o", "ml", "openai")
        );
        let latency: Vec<((i64, i64), i64)> = d.latency.into_iter().collect();
        assert_eq!(latency, [((0, 1200), 2), ((1, 7), 1)]);
    }

    #[test]
    fn latency_buckets_keep_two_significant_digits() {
        let cases = [
            (0, 0),
            (99, 99),
            (100, 100),
            (109, 100),
            (999, 990),
            (1_000, 1_000),
            (1_999, 1_900),
            (54_321, 54_000),
            (999_999, 990_000),
            (1_234_567, 1_200_000),
            (u64::MAX, i64::MAX / 100_000 * 100_000),
        ];
        for (ms, bucket) in cases {
            assert_eq!(latency_bucket(ms), bucket, "{ms}");
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            assert!(bucket <= ms && (ms - bucket) * 10 <= ms.max(1), "{ms}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_over_the_histogram() {
        // 10 values: 4 × 5 ms, 5 × 20 ms, 1 × 900 ms.
        let h = [(5, 4), (20, 5), (900, 1)];
        assert_eq!(percentile(&h, 50), Some(20));
        assert_eq!(percentile(&h, 40), Some(5));
        assert_eq!(percentile(&h, 90), Some(20));
        assert_eq!(percentile(&h, 95), Some(900));
        assert_eq!(percentile(&h, 100), Some(900));
        assert_eq!(percentile(&[(7, 1)], 50), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[(7, 0)], 50), None);
    }

    const DAY: i64 = crate::usage::record::DAY_MS;
}
