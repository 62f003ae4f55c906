//! Budget windows in UTC: a day, a week starting Monday 00:00, a calendar month, or all time.
//! Pure calendar arithmetic (jiff), shared by the router (which counter a request charges) and the
//! operator (what `status.windowStart` / `status.resetsAt` say). Defined for every instant jiff
//! represents: a window that would end past the year 9999 never ends.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

use jiff::{Timestamp, ToSpan, civil::Date, tz::TimeZone};

use crate::resources::BudgetWindow;

impl BudgetWindow {
    /// The window's name as a Budget's `spec.window` writes it (`daily`, `weekly`, `monthly`,
    /// `total`).
    pub fn name(self) -> &'static str {
        match self {
            BudgetWindow::Daily => "daily",
            BudgetWindow::Weekly => "weekly",
            BudgetWindow::Monthly => "monthly",
            BudgetWindow::Total => "total",
        }
    }
}

/// The window containing `now`: `(start, end)`, end exclusive; `end` is `None` for `total` (and
/// for a window that would end past the last instant jiff represents).
pub fn window_bounds(window: BudgetWindow, now: Timestamp) -> (Timestamp, Option<Timestamp>) {
    let today = now.to_zoned(TimeZone::UTC).date();
    let (start, end): (Date, Option<Date>) = match window {
        BudgetWindow::Daily => (today, today.tomorrow().ok()),
        BudgetWindow::Weekly => {
            let back = i64::from(today.weekday().to_monday_zero_offset());
            // Before the first Monday jiff knows, the week starts at its first day.
            let monday = today.checked_sub(back.days()).unwrap_or(Date::MIN);
            (monday, monday.checked_add(7.days()).ok())
        }
        BudgetWindow::Monthly => {
            let first = today.first_of_month();
            (first, first.checked_add(1.month()).ok())
        }
        BudgetWindow::Total => return (Timestamp::UNIX_EPOCH, None),
    };
    // UTC midnight exists for every date jiff represents but the last (whose end is then none).
    let at_midnight = |d: Date| d.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
    (
        at_midnight(start).unwrap_or(Timestamp::MIN),
        end.and_then(at_midnight),
    )
}

/// A short, stable label for the window containing `now`, used in counter names
/// (`d2026-11-21`, `w2026-11-16`, `m2026-11`, `total`).
pub fn window_label(window: BudgetWindow, now: Timestamp) -> String {
    let (start, _) = window_bounds(window, now);
    let d = start.to_zoned(TimeZone::UTC).date();
    match window {
        BudgetWindow::Daily => format!("d{d}"),
        BudgetWindow::Weekly => format!("w{d}"),
        BudgetWindow::Monthly => format!("m{:04}-{:02}", d.year(), d.month()),
        BudgetWindow::Total => "total".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn window() -> impl Strategy<Value = BudgetWindow> {
        prop_oneof![
            Just(BudgetWindow::Daily),
            Just(BudgetWindow::Weekly),
            Just(BudgetWindow::Monthly),
            Just(BudgetWindow::Total),
        ]
    }

    fn instant() -> impl Strategy<Value = Timestamp> {
        let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        prop_oneof![
            // Around now, where budgets live.
            (1_600_000_000i64..2_600_000_000, 0i32..1_000_000_000),
            // Anywhere jiff goes, edges included.
            (min..=max, 0i32..1_000_000_000),
            prop_oneof![Just(min), Just(max), Just(0), Just(-1)].prop_map(|s| (s, 0)),
        ]
        .prop_filter_map("representable", |(s, n)| Timestamp::new(s, n).ok())
    }

    proptest! {
        /// Every instant lies in exactly one window of each kind: the window starts at a UTC
        /// midnight (a Monday, the 1st) at or before it and ends after it; the next window starts
        /// where it ends; every instant of it has its label; and nothing panics at the ends of
        /// time.
        #[test]
        fn windows_tile_time(w in window(), now in instant()) {
            let (start, end) = window_bounds(w, now);
            let label = window_label(w, now);
            let day = start.to_zoned(TimeZone::UTC);
            match w {
                BudgetWindow::Total => {
                    prop_assert_eq!(end, None);
                    prop_assert_eq!(label, "total");
                    return Ok(());
                }
                // The first window jiff represents starts at its first instant.
                _ if start == Timestamp::MIN => {}
                BudgetWindow::Weekly => {
                    prop_assert_eq!(day.weekday(), jiff::civil::Weekday::Monday);
                }
                BudgetWindow::Monthly => prop_assert_eq!(day.day(), 1),
                BudgetWindow::Daily => {}
            }
            prop_assert!(start <= now);
            if start > Timestamp::MIN {
                prop_assert_eq!(day.time(), jiff::civil::Time::midnight());
            }
            prop_assert_eq!(window_bounds(w, start), (start, end));
            prop_assert_eq!(window_label(w, start), label.clone());
            let Some(end) = end else {
                // Only a window reaching past the last day jiff represents has no end.
                prop_assert!(now.as_second() > Timestamp::MAX.as_second() - 32 * 86_400);
                return Ok(());
            };
            prop_assert!(now < end);
            let last = end.checked_sub(jiff::SignedDuration::from_nanos(1)).unwrap();
            prop_assert_eq!(window_bounds(w, last), (start, Some(end)));
            prop_assert_eq!(window_bounds(w, end).0, end);
            prop_assert_ne!(window_label(w, end), label);
            let days = (end.as_second() - start.as_second()) / 86_400;
            match w {
                _ if start == Timestamp::MIN => {}
                BudgetWindow::Daily => prop_assert_eq!(days, 1),
                BudgetWindow::Weekly => prop_assert_eq!(days, 7),
                BudgetWindow::Monthly => prop_assert!((28..=31).contains(&days)),
                BudgetWindow::Total => {}
            }
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn bounds(w: BudgetWindow, now: &str) -> (String, Option<String>) {
        let (s, e) = window_bounds(w, ts(now));
        (s.to_string(), e.map(|e| e.to_string()))
    }

    #[test]
    fn days_are_utc_days() {
        assert_eq!(
            bounds(BudgetWindow::Daily, "2026-11-21T23:59:59.999Z"),
            (
                "2026-11-21T00:00:00Z".into(),
                Some("2026-11-22T00:00:00Z".into())
            )
        );
        assert_eq!(
            bounds(BudgetWindow::Daily, "2026-12-31T12:00:00Z")
                .1
                .unwrap(),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-16 is a Monday.
        for now in [
            "2026-11-16T00:00:00Z",
            "2026-11-18T10:00:00Z",
            "2026-11-22T23:59:59Z",
        ] {
            assert_eq!(
                bounds(BudgetWindow::Weekly, now),
                (
                    "2026-11-16T00:00:00Z".into(),
                    Some("2026-11-23T00:00:00Z".into())
                ),
                "{now}"
            );
        }
        // A week spanning a year end.
        assert_eq!(
            bounds(BudgetWindow::Weekly, "2027-01-01T08:00:00Z"),
            (
                "2026-12-28T00:00:00Z".into(),
                Some("2027-01-04T00:00:00Z".into())
            )
        );
        assert_eq!(
            window_label(BudgetWindow::Weekly, ts("2026-11-22T23:59:59Z")),
            "w2026-11-16"
        );
    }

    #[test]
    fn months_end_where_the_calendar_says_including_leap_years() {
        let cases = [
            (
                "2028-02-29T23:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
            (
                "2027-02-28T23:00:00Z",
                "2027-02-01T00:00:00Z",
                "2027-03-01T00:00:00Z",
            ),
            (
                "2026-01-31T23:59:59Z",
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            (
                "2026-12-15T00:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "2100-02-28T00:00:00Z",
                "2100-02-01T00:00:00Z",
                "2100-03-01T00:00:00Z",
            ),
        ];
        for (now, start, end) in cases {
            assert_eq!(
                bounds(BudgetWindow::Monthly, now),
                (start.into(), Some(end.into())),
                "{now}"
            );
        }
        assert_eq!(
            window_label(BudgetWindow::Monthly, ts("2028-02-29T23:00:00Z")),
            "m2028-02"
        );
    }

    #[test]
    fn total_never_resets() {
        assert_eq!(bounds(BudgetWindow::Total, "2026-11-21T00:00:00Z").1, None);
        assert_eq!(
            window_label(BudgetWindow::Total, ts("2026-11-21T00:00:00Z")),
            "total"
        );
    }
}
