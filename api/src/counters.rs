//! Names of the spend ledger's counters, shared by the router (which counters a request charges)
//! and the operator (which counters it reads back into Budget and ApiKey status). A money counter's
//! name carries its window's label, so a new window starts a new counter.

use jiff::Timestamp;

use crate::{
    resources::BudgetWindow,
    windows::{window_bounds, window_label},
};

/// The end and counter label of the `window` containing `now`, memoised per thread for the
/// current second: every request needs them several times, and they change only at window
/// boundaries, which fall on whole seconds.
pub fn window_at(window: BudgetWindow, now: Timestamp) -> (Option<Timestamp>, String) {
    type Memo = [Option<(i64, Option<Timestamp>, String)>; 4];
    thread_local! {
        static MEMO: std::cell::RefCell<Memo> = const { std::cell::RefCell::new([None, None, None, None]) };
    }
    let slot = match window {
        BudgetWindow::Daily => 0,
        BudgetWindow::Weekly => 1,
        BudgetWindow::Monthly => 2,
        BudgetWindow::Total => 3,
    };
    let second = now.as_second();
    MEMO.with_borrow_mut(|memo| match &memo[slot] {
        Some((at, end, label)) if *at == second => (*end, label.clone()),
        _ => {
            let (_, end) = window_bounds(window, now);
            let label = window_label(window, now);
            memo[slot] = Some((second, end, label.clone()));
            (end, label)
        }
    })
}

/// Counter name of a key's usage in the window containing `now`.
pub fn key_usage_counter(key_id: &str, window: BudgetWindow, now: Timestamp) -> String {
    format!("k:{key_id}:{}", window_at(window, now).1)
}

/// Counter name of a budget in the window containing `now`.
pub fn budget_counter(budget_id: &str, window: BudgetWindow, now: Timestamp) -> String {
    format!("b:{budget_id}:{}", window_at(window, now).1)
}

/// Counter name of a key's requests in flight.
pub fn concurrency_counter(key_id: &str) -> String {
    format!("c:{key_id}")
}

/// Counter name of a key's requests in the minute starting at `minute` (Unix seconds).
pub fn requests_per_minute_counter(key_id: &str, minute: i64) -> String {
    format!("rpm:{key_id}:{minute}")
}

/// Counter name of a key's tokens in the minute starting at `minute` (Unix seconds).
pub fn tokens_per_minute_counter(key_id: &str, minute: i64) -> String {
    format!("tpm:{key_id}:{minute}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoised_windows_change_at_the_boundary_second() {
        let before: Timestamp = "2026-11-30T23:59:59.900Z".parse().unwrap();
        let after: Timestamp = "2026-12-01T00:00:00.001Z".parse().unwrap();
        for (now, day, month) in [
            (before, "k:id:d2026-11-30", "k:id:m2026-11"),
            (before, "k:id:d2026-11-30", "k:id:m2026-11"),
            (after, "k:id:d2026-12-01", "k:id:m2026-12"),
            (before, "k:id:d2026-11-30", "k:id:m2026-11"),
        ] {
            assert_eq!(key_usage_counter("id", BudgetWindow::Daily, now), day);
            assert_eq!(key_usage_counter("id", BudgetWindow::Monthly, now), month);
            assert_eq!(
                window_at(BudgetWindow::Daily, now).0,
                window_bounds(BudgetWindow::Daily, now).1
            );
        }
    }
}
