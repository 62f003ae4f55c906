//! Fitting a request to what a budget has left (`fitMaxTokens` on the Budget or the ApiKey):
//! when a blocking budget refuses a request's worst case, its output limit is lowered to the
//! largest one whose worst case the budget still covers — never below the configured floor — and
//! the request is reserved again at that limit. Pure.
//!
//! The money guarantee is unchanged: the fitted limit is found with the very worst-case function
//! admission reserves with (every candidate, the dearest price), so what is reserved covers what
//! the fitted request can cost, and the ledger still admits it atomically. The router then sends
//! the fitted limit upstream instead of the client's (`max_tokens` / `max_completion_tokens` in
//! the chat view, `max_tokens` of a native Messages request), so no upstream can produce more.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

/// The largest output limit in `floor..=requested` whose worst case (nano-dollars, from
/// `worst_case`, non-decreasing in the limit) is at most `room`; `None` when even the floor (or
/// the request's own limit, if lower) does not fit.
pub fn fit(requested: u64, floor: u64, room: i64, worst_case: impl Fn(u64) -> i64) -> Option<u64> {
    let mut lo = floor.min(requested);
    if worst_case(lo) > room {
        return None;
    }
    // Invariant: `lo` fits; everything above `hi` does not.
    let mut hi = requested;
    while lo < hi {
        // `lo < mid <= hi`: neither step can leave `0..=requested`.
        let mid = lo.saturating_add(hi.saturating_sub(lo).div_ceil(2));
        if worst_case(mid) <= room {
            lo = mid;
        } else {
            hi = mid.saturating_sub(1);
        }
    }
    Some(lo)
}

/// The floor of fitting for a request of a key whose own floor is `key_floor`, refused by a
/// budget whose floor is `budget_floor` (each `Some` when that object turns fitting on): the
/// higher of the two, or `None` when neither does.
pub fn floor(key_floor: Option<u64>, budget_floor: Option<u64>) -> Option<u64> {
    key_floor.max(budget_floor)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// $0.25 fixed plus $0.000025 an output token, in nano-dollars.
    fn worst(n: u64) -> i64 {
        250_000_000 + 25_000 * n as i64
    }

    #[test]
    fn the_largest_limit_the_room_covers_is_found_exactly() {
        // $1 of room: (1e9 - 2.5e8) / 25e3 = 30000 tokens exactly.
        assert_eq!(fit(128_000, 1024, 1_000_000_000, worst), Some(30_000));
        assert_eq!(worst(30_000), 1_000_000_000);
        // One nano-dollar less: one token less.
        assert_eq!(fit(128_000, 1024, 999_999_999, worst), Some(29_999));
        // What fits already is left alone.
        assert_eq!(fit(1000, 10, i64::MAX, worst), Some(1000));
    }

    #[test]
    fn never_below_the_floor() {
        let room = worst(1023);
        assert_eq!(fit(128_000, 1024, room, worst), None);
        assert_eq!(fit(128_000, 1024, worst(1024), worst), Some(1024));
        // A request asking for less than the floor is fitted no lower than it asked.
        assert_eq!(fit(500, 1024, worst(500), worst), Some(500));
        assert_eq!(fit(500, 1024, worst(499), worst), None);
    }

    #[test]
    fn the_search_holds_at_the_ends_of_u64() {
        let linear = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        assert_eq!(fit(u64::MAX, 0, 1000, linear), Some(1000));
        assert_eq!(fit(u64::MAX, 0, i64::MAX, |_| 0), Some(u64::MAX));
        assert_eq!(fit(u64::MAX, u64::MAX, 0, |_| 1), None);
        assert_eq!(fit(0, 1024, 0, |_| 0), Some(0));
    }

    #[test]
    fn the_floor_is_the_stricter_of_key_and_budget() {
        assert_eq!(floor(None, None), None);
        assert_eq!(floor(Some(1024), None), Some(1024));
        assert_eq!(floor(Some(1024), Some(4096)), Some(4096));
    }
}
