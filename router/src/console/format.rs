//! How the console writes numbers, money and times. Pure.

use jiff::{Timestamp, tz::TimeZone};
use rust_decimal::Decimal;
use switchboard_api::money::from_nanos;

/// Exact USD of nano-dollars, as the usage API writes it (`0.00042`, `12.5`).
pub fn usd_exact(nanos: i64) -> String {
    from_nanos(nanos).normalize().to_string()
}

/// USD for reading: cents from a dollar up, six decimals below (`$12.35`, `$0.000123`).
pub fn usd(nanos: i64) -> String {
    usd_decimal(from_nanos(nanos))
}

/// [`usd`] of a decimal amount.
pub fn usd_decimal(amount: Decimal) -> String {
    let places = if amount.abs() >= Decimal::ONE { 2 } else { 6 };
    let rounded = amount.round_dp(places);
    if places == 2 {
        format!("${rounded:.2}")
    } else {
        format!("${}", rounded.normalize())
    }
}

/// USD of nano-dollars as a float, for charts.
pub fn usd_f64(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

/// A count with thousands separators (`12,345`).
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A share as a percentage with one decimal (`2.5%`), `–` of nothing.
pub fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "–".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Milliseconds for reading (`850 ms`, `2.4 s`).
pub fn millis(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1_000.0)
    }
}

/// Unix milliseconds as a UTC time (`2026-12-07 06:15:27`).
pub fn time_ms(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Unix seconds as a UTC time to the minute (`2026-12-07 06:15 UTC`).
pub fn time_s(s: i64) -> String {
    Timestamp::from_second(s)
        .map(|t| {
            t.to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| s.to_string())
}

/// An absent value as `–`.
pub fn or_dash(v: Option<&str>) -> &str {
    match v {
        Some(s) if !s.is_empty() => s,
        _ => "–",
    }
}

/// `?k=v&…` of `params`, percent-encoded.
pub fn query_string(params: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let pairs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_in_cents_from_a_dollar_and_exactly_below() {
        assert_eq!(usd(12_345_678_901), "$12.35");
        assert_eq!(usd(1_000_000_000), "$1.00");
        assert_eq!(usd(123_456), "$0.000123");
        assert_eq!(usd(0), "$0");
        assert_eq!(usd_exact(420_000), "0.00042");
        assert_eq!(usd_exact(12_500_000_000), "12.5");
    }

    #[test]
    fn counts_percentages_and_durations() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-1_000), "-1,000");
        assert_eq!(percent(1, 40), "2.5%");
        assert_eq!(percent(1, 0), "–");
        assert_eq!(millis(850), "850 ms");
        assert_eq!(millis(2_449), "2.4 s");
        assert_eq!(time_ms(0), "1970-01-01 00:00:00");
        assert_eq!(time_s(86_400 + 60), "1970-01-02 00:01 UTC");
        assert_eq!(or_dash(Some("")), "–");
        assert_eq!(or_dash(Some("ml")), "ml");
    }
}
