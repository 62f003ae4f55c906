//! What the usage APIs ask the store, parsed from their query strings. Pure.
//!
//! Days are UTC days counted from 1970-01-01, as the rollups key them; dates in and out are
//! `YYYY-MM-DD`.

use jiff::{Span, Timestamp, civil::Date};

use super::record::DAY_MS;

const EPOCH: Date = Date::constant(1970, 1, 1);

/// Days since 1970-01-01 of `date`.
pub fn day_of(date: Date) -> i64 {
    date.since(EPOCH).map_or(0, |s| i64::from(s.get_days()))
}

/// The date of a day number (1970-01-01 for numbers out of range).
pub fn date_of(day: i64) -> Date {
    EPOCH.checked_add(Span::new().days(day)).unwrap_or(EPOCH)
}

/// Today, UTC.
pub fn today() -> i64 {
    Timestamp::now().as_millisecond().div_euclid(DAY_MS)
}

fn parse_date(name: &str, v: &str) -> Result<i64, String> {
    v.parse::<Date>()
        .map(day_of)
        .map_err(|_| format!("`{name}` must be a date, YYYY-MM-DD"))
}

/// A dimension of the usage report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// UTC day.
    Day,
    /// ApiKey id (`namespace/name`).
    Key,
    /// Team.
    Team,
    /// Billed public model.
    Model,
    /// Provider that served.
    Provider,
    /// Calling app.
    App,
    /// Tag.
    Tag,
    /// End user.
    User,
}

impl Dim {
    /// Every dimension.
    pub const ALL: [Dim; 8] = [
        Dim::Day,
        Dim::Key,
        Dim::Team,
        Dim::Model,
        Dim::Provider,
        Dim::App,
        Dim::Tag,
        Dim::User,
    ];

    /// Its name in `group_by`, as a filter parameter and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Dim::Day => "day",
            Dim::Key => "key",
            Dim::Team => "team",
            Dim::Model => "model",
            Dim::Provider => "provider",
            Dim::App => "app",
            Dim::Tag => "tag",
            Dim::User => "user",
        }
    }

    /// Its column in the rollup tables.
    pub fn column(self) -> &'static str {
        match self {
            Dim::Day => "day",
            Dim::Key => "key_id",
            Dim::Team => "team",
            Dim::Model => "model",
            Dim::Provider => "provider",
            Dim::App => "app",
            Dim::Tag => "tag",
            Dim::User => "end_user",
        }
    }

    fn parse(name: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// Comma-separated values of a filter parameter (`team=ml,infra`); an empty value (`app=`)
/// selects requests without one.
fn values(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).collect()
}

fn limit(v: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("`limit` must be an integer from 1 to {max}")),
    }
}

/// `GET /admin/v1/usage`: totals over `from..=to`, grouped and filtered by dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    /// First day (inclusive).
    pub from: i64,
    /// Last day (inclusive).
    pub to: i64,
    /// Dimensions grouped by, in the order asked.
    pub group_by: Vec<Dim>,
    /// Filters: each dimension's accepted values.
    pub filters: Vec<(Dim, Vec<String>)>,
    /// Most groups returned.
    pub limit: usize,
}

/// Most groups a report returns.
pub const REPORT_MAX_LIMIT: usize = 100_000;

impl ReportQuery {
    /// Parses `from`, `to` (default: the 30 days up to `today`), `group_by` (comma-separated
    /// dimensions), a filter per dimension name, `limit`; `format` is left to the caller.
    pub fn parse(params: &[(String, String)], today: i64) -> Result<ReportQuery, String> {
        let mut q = ReportQuery {
            from: today - 29,
            to: today,
            group_by: Vec::new(),
            filters: Vec::new(),
            limit: 10_000,
        };
        let mut from = None;
        for (k, v) in params {
            match k.as_str() {
                "from" => from = Some(parse_date(k, v)?),
                "to" => q.to = parse_date(k, v)?,
                "limit" => q.limit = limit(v, REPORT_MAX_LIMIT)?,
                "format" => {}
                "group_by" => {
                    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        let d = Dim::parse(name).ok_or_else(|| {
                            format!(
                                "`group_by` has an unknown dimension `{name}` (expected {})",
                                names()
                            )
                        })?;
                        if !q.group_by.contains(&d) {
                            q.group_by.push(d);
                        }
                    }
                }
                other => match Dim::parse(other) {
                    Some(Dim::Day) => return Err("filter days with `from` and `to`".into()),
                    Some(d) => q.filters.push((d, values(v))),
                    None => return Err(format!("unknown parameter `{other}`")),
                },
            }
        }
        q.from = from.unwrap_or(q.to - 29);
        if q.from > q.to {
            return Err("`from` is after `to`".into());
        }
        if q.uses(Dim::Tag) && q.uses(Dim::User) {
            return Err("tags and end users are rolled up apart: group or filter by one of `tag` and `user`".into());
        }
        Ok(q)
    }

    /// Whether the query groups or filters by `d`.
    pub fn uses(&self, d: Dim) -> bool {
        self.group_by.contains(&d) || self.filters.iter().any(|(f, _)| *f == d)
    }
}

fn names() -> String {
    Dim::ALL.map(Dim::name).join(", ")
}

/// `GET /api/v1/activity`: daily totals per model and provider, for one key or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityQuery {
    /// First day (inclusive).
    pub from: i64,
    /// Last day (inclusive).
    pub to: i64,
    /// The key whose activity this is; `None` for every key (the admin token).
    pub key_id: Option<String>,
}

impl ActivityQuery {
    /// The last 30 UTC days up to today (today included, as far as it has gone), or the one
    /// `date` asked for.
    pub fn parse(
        params: &[(String, String)],
        today: i64,
        key_id: Option<String>,
    ) -> Result<ActivityQuery, String> {
        let mut q = ActivityQuery {
            from: today - 29,
            to: today,
            key_id,
        };
        for (k, v) in params {
            if k == "date" {
                let day = parse_date(k, v)?;
                q.from = day;
                q.to = day;
            }
        }
        Ok(q)
    }
}

/// Where a page of generations starts: after the record created at `created_at_ms` with id `id`
/// (newest first). Rendered as `<created_at_ms>.<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time of the last record of the previous page.
    pub created_at_ms: i64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// `<ms>.<id>`.
    pub fn render(&self) -> String {
        format!("{}.{}", self.created_at_ms, self.id)
    }

    fn parse(v: &str) -> Option<Cursor> {
        let (ms, id) = v.split_once('.')?;
        Some(Cursor {
            created_at_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// A filter of the generations list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerationFilter {
    /// By a report dimension (not `day`: use `from`/`to`).
    Dim(Dim),
    /// By endpoint.
    Endpoint,
    /// By HTTP status.
    Status,
}

/// `GET /admin/v1/generations`: records newest first, a page at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationsQuery {
    /// Created at or after (Unix ms).
    pub from_ms: Option<i64>,
    /// Created before (Unix ms).
    pub to_ms: Option<i64>,
    /// Filters and their accepted values.
    pub filters: Vec<(GenerationFilter, Vec<String>)>,
    /// Continue after this record.
    pub after: Option<Cursor>,
    /// Page size.
    pub limit: usize,
}

/// Largest page of generations.
pub const GENERATIONS_MAX_LIMIT: usize = 500;

/// A time bound: RFC 3339, or a date (its UTC midnight; `to` a date means the end of that day).
fn parse_time(name: &str, v: &str, end_of_day: bool) -> Result<i64, String> {
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let day = parse_date(name, v)
        .map_err(|_| format!("`{name}` must be an RFC 3339 time or a date, YYYY-MM-DD"))?;
    Ok((day + i64::from(end_of_day)) * DAY_MS)
}

impl GenerationsQuery {
    /// Parses `from`, `to`, `cursor`, `limit` (default 50) and filters: the report dimensions
    /// but `day`, `endpoint` and `status`.
    pub fn parse(params: &[(String, String)]) -> Result<GenerationsQuery, String> {
        let mut q = GenerationsQuery {
            from_ms: None,
            to_ms: None,
            filters: Vec::new(),
            after: None,
            limit: 50,
        };
        for (k, v) in params {
            match k.as_str() {
                "from" => q.from_ms = Some(parse_time(k, v, false)?),
                "to" => q.to_ms = Some(parse_time(k, v, true)?),
                "limit" => q.limit = limit(v, GENERATIONS_MAX_LIMIT)?,
                "cursor" => {
                    q.after = Some(Cursor::parse(v).ok_or("`cursor` is not one this API returned")?)
                }
                "endpoint" => q.filters.push((GenerationFilter::Endpoint, values(v))),
                "status" => {
                    let codes = values(v);
                    if codes.iter().any(|c| c.parse::<u16>().is_err()) {
                        return Err("`status` must be HTTP status codes".into());
                    }
                    q.filters.push((GenerationFilter::Status, codes));
                }
                other => match Dim::parse(other) {
                    Some(Dim::Day) | None => return Err(format!("unknown parameter `{other}`")),
                    Some(d) => q.filters.push((GenerationFilter::Dim(d), values(v))),
                },
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn days_count_from_1970() {
        let d = Date::constant(2025, 3, 1);
        assert_eq!(day_of(Date::constant(1970, 1, 2)), 1);
        assert_eq!(date_of(day_of(d)), d);
        assert_eq!(day_of(Date::constant(1969, 12, 31)), -1);
    }

    #[test]
    fn a_report_defaults_to_the_last_30_days() {
        let q = ReportQuery::parse(&[], 20_000).unwrap();
        assert_eq!((q.from, q.to, q.limit), (19_971, 20_000, 10_000));
        assert!(q.group_by.is_empty());
    }

    #[test]
    fn a_report_parses_groups_filters_and_dates() {
        let q = ReportQuery::parse(
            &params(&[
                ("from", "2025-01-01"),
                ("to", "2025-01-31"),
                ("group_by", "team, model,team"),
                ("provider", "openai,anthropic"),
                ("app", ""),
                ("format", "csv"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!(q.to - q.from, 30);
        assert_eq!(date_of(q.from), Date::constant(2025, 1, 1));
        assert_eq!(q.group_by, [Dim::Team, Dim::Model]);
        assert_eq!(
            q.filters,
            [
                (
                    Dim::Provider,
                    vec!["openai".to_string(), "anthropic".to_string()]
                ),
                (Dim::App, vec![String::new()])
            ]
        );
    }

    #[test]
    fn bad_reports_say_what_is_wrong() {
        let err = |p: &[(&str, &str)]| ReportQuery::parse(&params(p), 100).unwrap_err();
        assert!(err(&[("group_by", "colour")]).contains("colour"));
        assert!(err(&[("from", "yesterday")]).contains("YYYY-MM-DD"));
        assert!(err(&[("from", "2025-02-01"), ("to", "2025-01-01")]).contains("after"));
        assert!(err(&[("group_by", "tag"), ("user", "alice")]).contains("one of"));
        assert!(err(&[("limit", "0")]).contains("limit"));
        assert!(err(&[("colour", "red")]).contains("colour"));
        assert!(err(&[("day", "2025-01-01")]).contains("from"));
    }

    #[test]
    fn activity_is_30_days_or_one_date() {
        let q = ActivityQuery::parse(&[], 100, Some("default/a".into())).unwrap();
        assert_eq!((q.from, q.to), (71, 100));
        let one = ActivityQuery::parse(&params(&[("date", "1970-01-11")]), 100, None).unwrap();
        assert_eq!((one.from, one.to, one.key_id), (10, 10, None));
        assert!(ActivityQuery::parse(&params(&[("date", "x")]), 100, None).is_err());
    }

    #[test]
    fn generations_parse_times_cursors_and_filters() {
        let q = GenerationsQuery::parse(&params(&[
            ("from", "1970-01-02"),
            ("to", "1970-01-02"),
            ("cursor", "1234.gen-abc"),
            ("status", "200,502"),
            ("key", "default/main"),
            ("limit", "10"),
        ]))
        .unwrap();
        assert_eq!(q.from_ms, Some(DAY_MS));
        assert_eq!(q.to_ms, Some(2 * DAY_MS));
        assert_eq!(
            q.after,
            Some(Cursor {
                created_at_ms: 1234,
                id: "gen-abc".into()
            })
        );
        assert_eq!(q.after.as_ref().unwrap().render(), "1234.gen-abc");
        assert_eq!(q.filters.len(), 2);
        let t = GenerationsQuery::parse(&params(&[("from", "2025-01-01T00:00:01Z")])).unwrap();
        assert_eq!(t.from_ms, Some(1_735_689_601_000));
        for bad in [
            ("cursor", "nope"),
            ("status", "ok"),
            ("day", "1"),
            ("limit", "501"),
        ] {
            assert!(GenerationsQuery::parse(&params(&[bad])).is_err(), "{bad:?}");
        }
    }
}
