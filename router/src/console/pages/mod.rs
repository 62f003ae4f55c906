//! One file per console page. Each handler reads what it shows (the usage store's rollups and
//! records, the ledger, the live config and health) and renders it with [`super::layout`].

pub mod budgets;
pub mod keys;
pub mod overview;
pub mod playground;
pub mod providers;
pub mod requests;

use std::sync::Arc;

use crate::{
    state::AppState,
    usage::{
        query::{Dim, ReportQuery},
        store::{
            Store, StoreError,
            read::{Report, ReportRow},
        },
    },
};

/// The usage store, or why there is none.
pub fn store(state: &AppState) -> Result<&Arc<Store>, String> {
    state.usage.get().map(|r| r.store()).ok_or_else(|| {
        "the usage store is off on this router (--usage-store off), so there is no history to show"
            .to_string()
    })
}

/// A report over the days `from..=to` from the rollups.
pub async fn report(
    store: &Store,
    from: i64,
    to: i64,
    group_by: Vec<Dim>,
    filters: Vec<(Dim, Vec<String>)>,
    limit: usize,
) -> Result<Report, StoreError> {
    store
        .report(&ReportQuery {
            from,
            to,
            group_by,
            filters,
            limit,
        })
        .await
}

/// The one row of an ungrouped report (zeros when nothing matched).
pub fn total(report: &Report) -> crate::usage::rollup::Totals {
    report
        .rows
        .first()
        .map(|ReportRow { totals, .. }| *totals)
        .unwrap_or_default()
}

/// Rows a page of the keys and budgets pages shows.
pub const PAGE_ROWS: usize = 100;

/// The `?after=` of the keys and budgets pages: the id the page starts after.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AfterQuery {
    /// The last id of the previous page.
    pub after: Option<String>,
}

/// One page of `items` (sorted by `id`, ascending): where it starts in `items`, those after
/// `after` (at most `rows`), and the item to continue after when more follow. Keyset by id, so no
/// later page skips or repeats an item when others are added before it.
pub fn page_after<'a, T>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    after: Option<&str>,
    rows: usize,
) -> (usize, &'a [T], Option<&'a T>) {
    let start = after.map_or(0, |a| items.partition_point(|t| id(t) <= a));
    let end = start.saturating_add(rows).min(items.len());
    let page = &items[start..end];
    (start, page, page.last().filter(|_| end < items.len()))
}

/// The "Next →" link of a keyset page: `path?after=<id>`, encoded.
pub fn next_link(path: &str, after: &str) -> String {
    format!(
        "{path}{}",
        super::format::query_string(&[("after".into(), after.into())])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_ids_and_stop_at_the_end() {
        let ids = ["ns/k0", "ns/k1", "ns/k2", "ns/k3", "ns/k4"];
        fn id<'a>(s: &'a &str) -> &'a str {
            s
        }
        let (start, first, next) = page_after(&ids, id, None, 2);
        assert_eq!((start, first), (0, &ids[0..2]));
        assert_eq!(next, Some(&"ns/k1"));
        let (start, second, next) = page_after(&ids, id, Some("ns/k1"), 2);
        assert_eq!((start, second), (2, &ids[2..4]));
        let (start, last, next) = page_after(&ids, id, next.copied(), 2);
        assert_eq!((start, last), (4, &ids[4..5]));
        assert!(next.is_none());
        // An id that is gone (or never was) still starts the page after where it would sort.
        let (_, from_gone, _) = page_after(&ids, id, Some("ns/k2a"), 2);
        assert_eq!(from_gone, &ids[3..5]);
        let (_, past_the_end, next) = page_after(&ids, id, Some("zz"), 2);
        assert!(past_the_end.is_empty() && next.is_none());
        assert_eq!(
            next_link("/console/keys", "ns/k<1>"),
            "/console/keys?after=ns/k%3C1%3E"
        );
    }
}
