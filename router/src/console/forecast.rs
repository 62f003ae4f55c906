//! When a budget's spend reaches its limit at the current rate. Pure.
//!
//! The rate is the window's spend so far over the time it took (`since` to `now`): a steady
//! burn is projected straight, which is what a platform engineer reads a burn-down for. Money is
//! integer nano-dollars; the arithmetic is in `i128`, so no amount overflows.

/// What the current rate says about a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forecast {
    /// Spend (settled and reserved) is at or over the limit already.
    Reached,
    /// Nothing spent yet this window: at a rate of zero the limit is never reached.
    Idle,
    /// The limit is reached at this time (Unix seconds), before the window resets.
    At(i64),
    /// The window resets first; this is what it will have spent by then (nano-dollars).
    Resets {
        /// Spend projected at the window's end.
        projected_nanos: i64,
    },
}

/// The forecast for `used_nanos` spent of `limit_nanos` between `since` and `now` (Unix
/// seconds), in a window ending at `end` (`None`: never, a `total` budget).
pub fn forecast(
    used_nanos: i64,
    limit_nanos: i64,
    since: i64,
    now: i64,
    end: Option<i64>,
) -> Forecast {
    if used_nanos >= limit_nanos {
        return Forecast::Reached;
    }
    let elapsed = i128::from(now.saturating_sub(since).max(1));
    if used_nanos <= 0 {
        return Forecast::Idle;
    }
    let used = i128::from(used_nanos);
    let left = i128::from(limit_nanos) - used;
    // Seconds until the limit at `used / elapsed` nano-dollars a second, rounded up.
    let seconds = (left * elapsed + used - 1) / used;
    let at = i128::from(now) + seconds;
    match end {
        Some(end) if at >= i128::from(end) => {
            let projected = used * i128::from(end.saturating_sub(since).max(1)) / elapsed;
            Forecast::Resets {
                projected_nanos: i64::try_from(projected).unwrap_or(i64::MAX),
            }
        }
        _ => Forecast::At(i64::try_from(at).unwrap_or(i64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_steady_burn_reaches_the_limit_when_the_line_crosses_it() {
        // $10 of a $40 monthly budget in the first 5 days of a 30-day window: day 20.
        let start = 1_000 * DAY;
        let now = start + 5 * DAY;
        let f = forecast(
            10_000_000_000,
            40_000_000_000,
            start,
            now,
            Some(start + 30 * DAY),
        );
        assert_eq!(f, Forecast::At(start + 20 * DAY));
    }

    #[test]
    fn a_slow_burn_is_projected_to_the_reset() {
        let start = 0;
        let now = 10 * DAY;
        let f = forecast(1_000, 1_000_000, start, now, Some(30 * DAY));
        assert_eq!(
            f,
            Forecast::Resets {
                projected_nanos: 3_000
            }
        );
    }

    #[test]
    fn nothing_spent_is_idle_and_the_limit_reached_is_reached() {
        assert_eq!(forecast(0, 100, 0, 50, Some(100)), Forecast::Idle);
        assert_eq!(forecast(100, 100, 0, 50, Some(100)), Forecast::Reached);
        assert_eq!(forecast(150, 100, 0, 50, None), Forecast::Reached);
    }

    #[test]
    fn a_total_budget_has_no_reset_and_huge_amounts_do_not_overflow() {
        assert_eq!(forecast(1, 3, 0, 10, None), Forecast::At(30));
        let f = forecast(1, i64::MAX, 0, i64::MAX / 2, None);
        assert_eq!(f, Forecast::At(i64::MAX));
        // Rounded up: the limit is reached, not almost reached, at the time given.
        assert_eq!(forecast(3, 10, 0, 10, None), Forecast::At(10 + 24));
    }

    #[test]
    fn now_at_the_start_of_the_window_counts_one_second() {
        assert_eq!(forecast(5, 10, 100, 100, Some(1_000)), Forecast::At(101));
    }
}
