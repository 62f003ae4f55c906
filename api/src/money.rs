//! Money as Kubernetes wants it: decimal strings in the resources (`"0.15"`), exact
//! [`Decimal`]s everywhere money is computed, and whole nano-dollars (1e-9 USD, `i64`) in the
//! spend ledger's counters. No floating point touches a price or a spend.

use std::{borrow::Cow, fmt, str::FromStr};

use rust_decimal::{Decimal, RoundingStrategy, prelude::ToPrimitive};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern every money field must match: a non-negative decimal without exponent.
pub const DECIMAL_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?$";

/// A non-negative USD amount written as a decimal string, e.g. `"0.15"`.
///
/// The schema only checks the shape; [`UsdAmount::value`] is the one place it is parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UsdAmount(pub String);

impl UsdAmount {
    /// Parses the amount exactly; the error says what is wrong with it.
    pub fn value(&self) -> Result<Decimal, String> {
        parse_usd(&self.0)
    }
}

impl From<&str> for UsdAmount {
    fn from(s: &str) -> Self {
        UsdAmount(s.to_string())
    }
}

impl fmt::Display for UsdAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for UsdAmount {
    fn schema_name() -> Cow<'static, str> {
        "UsdAmount".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DECIMAL_PATTERN,
        })
    }
}

/// Parses a non-negative decimal string with no exponent and at most 28 significant digits.
pub fn parse_usd(s: &str) -> Result<Decimal, String> {
    let well_formed = {
        let mut parts = s.splitn(2, '.');
        let int = parts.next().unwrap_or("");
        let frac = parts.next();
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
    };
    if !well_formed {
        return Err(format!(
            "{s:?} is not a non-negative decimal string such as \"0.15\""
        ));
    }
    Decimal::from_str(s).map_err(|e| format!("{s:?} is not a representable decimal: {e}"))
}

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// A cost in nano-dollars, rounded up (so no charge rounds to zero).
pub fn to_nanos(usd: Decimal) -> i64 {
    (usd * Decimal::from(NANOS_PER_USD))
        .round_dp_with_strategy(0, RoundingStrategy::AwayFromZero)
        .to_i64()
        .unwrap_or(i64::MAX)
}

/// Nano-dollars as an exact USD decimal.
pub fn from_nanos(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn nanos_round_up_so_nothing_is_free_by_accident() {
        assert_eq!(
            to_nanos(d("0.0000000001")),
            1,
            "a tenth of a nano-dollar is charged as one"
        );
        assert_eq!(to_nanos(d("0.000000001")), 1);
        assert_eq!(to_nanos(d("1.5")), 1_500_000_000);
        assert_eq!(to_nanos(Decimal::ZERO), 0);
        assert_eq!(from_nanos(1), d("0.000000001"));
    }

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(parse_usd("0.15").unwrap(), Decimal::new(15, 2));
        assert_eq!(parse_usd("3").unwrap(), Decimal::from(3));
        assert_eq!(
            parse_usd("0.000000001").unwrap(),
            Decimal::new(1, 9),
            "a nano-dollar survives"
        );
    }

    #[test]
    fn rejects_everything_that_is_not_a_plain_non_negative_decimal() {
        for bad in ["", "-1", "1e3", "abc", "0.", ".5", " 1", "1,5", "NaN", "+1"] {
            assert!(parse_usd(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
