//! A price move: the old and new price and how far it fell, as the alerts, the listings of
//! interest and the API state it.

/// Hundredths of a percent in a whole.
const CENTI_PCT_PER_WHOLE: i128 = 10_000;

/// The old and new price and how far it fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceMove {
    pub old_minor: i64,
    pub new_minor: i64,
    /// How much the price fell, in minor units (0 when it did not fall).
    pub drop_minor: i64,
    /// The fall in hundredths of a percent of the old price, rounded down (0 when it did not
    /// fall), so `drop_pct` never claims more than the real drop.
    pub drop_centi_pct: i64,
}

impl PriceMove {
    pub fn between(old_minor: i64, new_minor: i64) -> Self {
        let drop = i128::from(old_minor) - i128::from(new_minor);
        let (drop_minor, drop_centi_pct) = if old_minor > 0 && drop > 0 {
            let centi = drop * CENTI_PCT_PER_WHOLE / i128::from(old_minor);
            (
                i64::try_from(drop).unwrap_or(i64::MAX),
                i64::try_from(centi).unwrap_or(i64::MAX),
            )
        } else {
            (0, 0)
        };
        Self {
            old_minor,
            new_minor,
            drop_minor,
            drop_centi_pct,
        }
    }

    /// The drop in percent, two decimals (the `drop_pct` attribute).
    pub fn drop_pct(&self) -> f64 {
        self.drop_centi_pct as f64 / 100.0
    }
}
