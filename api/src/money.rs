//! Money as Kubernetes wants it: decimal strings in the resources (`"0.15"`), exact
//! [`Decimal`]s everywhere money is computed, and whole nano-dollars (1e-9 USD, `i64`) in the
//! spend ledger's counters. No floating point touches a price or a spend, and nothing here can
//! overflow or panic: every amount is bounded by [`MAX_NANOS`], the largest the ledger counts
//! exactly, and conversions that could leave that range say so.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects
)]

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
    /// Parses the amount exactly (a price: any precision, at most [`max_usd`]); the error says
    /// what is wrong with it.
    pub fn value(&self) -> Result<Decimal, String> {
        parse_usd(&self.0)
    }

    /// Parses a limit: like [`UsdAmount::value`], and in whole nano-dollars (at most nine
    /// decimals), since that is what the ledger counts and compares.
    pub fn limit_value(&self) -> Result<Decimal, String> {
        let value = self.value()?;
        if value.normalize().scale() > 9 {
            return Err(format!(
                "{:?} has more than nine decimals; a limit is counted in whole nano-dollars \
                 ($0.000000001)",
                self.0
            ));
        }
        Ok(value)
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

/// Parses a non-negative decimal string with no exponent and at most 28 significant digits, no
/// larger than [`max_usd`].
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
    let value =
        Decimal::from_str(s).map_err(|e| format!("{s:?} is not a representable decimal: {e}"))?;
    if value > max_usd() {
        return Err(format!(
            "{s:?} is above {}, the largest amount the spend ledger counts exactly \
             (2^53 - 1 nano-dollars)",
            max_usd()
        ));
    }
    Ok(value)
}

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// The largest amount of money any counter, limit, price or cost may hold: 2^53 - 1 nano-dollars
/// ($9,007,199.254740991). Up to here every ledger is exact (Redis's Lua scripts compute in
/// doubles), and sums of two such amounts cannot overflow an `i64`.
pub const MAX_NANOS: i64 = (1 << 53) - 1;

/// [`MAX_NANOS`] in USD.
pub fn max_usd() -> Decimal {
    Decimal::new(MAX_NANOS, 9)
}

/// `usd` in nano-dollars rounded up (so no charge rounds to zero), or `None` when it is negative
/// or above [`MAX_NANOS`].
pub fn checked_nanos(usd: Decimal) -> Option<i64> {
    let nanos = usd
        .checked_mul(Decimal::from(NANOS_PER_USD))?
        .round_dp_with_strategy(0, RoundingStrategy::AwayFromZero)
        .to_i64()?;
    (0..=MAX_NANOS).contains(&nanos).then_some(nanos)
}

/// A cost or limit in nano-dollars, rounded up, kept within `0..=MAX_NANOS`: for amounts that
/// are bounded already (compiled prices and limits), where leaving the range is impossible
/// short of a hand-made snapshot. Never panics.
pub fn to_nanos(usd: Decimal) -> i64 {
    if usd.is_sign_negative() {
        return 0;
    }
    checked_nanos(usd).unwrap_or(MAX_NANOS)
}

/// Nano-dollars as an exact USD decimal.
pub fn from_nanos(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9).normalize()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
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
    fn amounts_the_ledger_cannot_count_exactly_are_rejected_with_the_reason() {
        // 28 digits: a valid decimal, but no ledger counts it.
        let err = parse_usd("9999999999999999999999999999").unwrap_err();
        assert!(err.contains("largest amount"), "{err}");
        assert!(err.contains("9007199.254740991"), "{err}");
        assert_eq!(parse_usd("9007199.254740991").unwrap(), max_usd());
        assert!(parse_usd("9007199.254740992").is_err());
        // A price may be tiny; a limit must be whole nano-dollars.
        assert!(
            UsdAmount::from("0.0000000000000000000000000001")
                .value()
                .is_ok()
        );
        let err = UsdAmount::from("0.0000000001").limit_value().unwrap_err();
        assert!(err.contains("nine decimals"), "{err}");
        assert_eq!(
            UsdAmount::from("1.000000001").limit_value().unwrap(),
            d("1.000000001")
        );
    }

    #[test]
    fn conversions_to_nanos_never_panic_and_say_when_out_of_range() {
        let huge = d("79228162514264337593543950335");
        assert_eq!(checked_nanos(huge), None);
        assert_eq!(to_nanos(huge), MAX_NANOS);
        assert_eq!(checked_nanos(d("-1")), None);
        assert_eq!(to_nanos(d("-1")), 0);
        assert_eq!(checked_nanos(max_usd()), Some(MAX_NANOS));
        assert_eq!(checked_nanos(d("0.0000000000000000000000000001")), Some(1));
        assert_eq!(from_nanos(i64::MAX), d("9223372036.854775807"));
    }

    proptest::proptest! {
        /// Any decimal converts without panicking; in range it round-trips through nanos.
        #[test]
        fn nanos_round_trip_in_range(mantissa in proptest::num::i128::ANY, scale in 0u32..=28) {
            let Ok(usd) = Decimal::try_from_i128_with_scale(mantissa % (1i128 << 96), scale) else {
                return Ok(());
            };
            let saturated = to_nanos(usd);
            proptest::prop_assert!((0..=MAX_NANOS).contains(&saturated));
            if let Some(n) = checked_nanos(usd) {
                proptest::prop_assert_eq!(n, saturated);
                // Rounded up, by less than one nano-dollar.
                proptest::prop_assert!(from_nanos(n) >= usd);
                proptest::prop_assert!(from_nanos(n) - usd < Decimal::new(1, 9));
            } else {
                proptest::prop_assert!(usd.is_sign_negative() && !usd.is_zero() || usd > max_usd());
            }
        }
    }

    #[test]
    fn rejects_everything_that_is_not_a_plain_non_negative_decimal() {
        for bad in ["", "-1", "1e3", "abc", "0.", ".5", " 1", "1,5", "NaN", "+1"] {
            assert!(parse_usd(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
