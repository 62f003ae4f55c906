//! Budget windows in UTC: a day, a week starting Monday 00:00, a calendar month, or all time.
//! Pure calendar arithmetic (jiff), shared by the router (which counter a request charges) and the
//! operator (what `status.windowStart` / `status.resetsAt` say).

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

/// The window containing `now`: `(start, end)`, end exclusive; `end` is `None` for `total`.
pub fn window_bounds(window: BudgetWindow, now: Timestamp) -> (Timestamp, Option<Timestamp>) {
    let today = now.to_zoned(TimeZone::UTC).date();
    let (start, end): (Date, Option<Date>) = match window {
        BudgetWindow::Daily => (today, Some(today.tomorrow().expect("dates before 9999"))),
        BudgetWindow::Weekly => {
            let back = i64::from(today.weekday().to_monday_zero_offset());
            let monday = today
                .checked_sub(back.days())
                .expect("dates after year -9999");
            (
                monday,
                Some(monday.checked_add(7.days()).expect("dates before 9999")),
            )
        }
        BudgetWindow::Monthly => {
            let first = today.first_of_month();
            (
                first,
                Some(first.checked_add(1.month()).expect("dates before 9999")),
            )
        }
        BudgetWindow::Total => return (Timestamp::UNIX_EPOCH, None),
    };
    let at_midnight = |d: Date| {
        d.to_zoned(TimeZone::UTC)
            .expect("UTC midnight always exists")
            .timestamp()
    };
    (at_midnight(start), end.map(at_midnight))
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
mod tests {
    use super::*;

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
