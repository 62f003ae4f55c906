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
