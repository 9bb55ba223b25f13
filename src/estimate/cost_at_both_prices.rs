//! `CostAtBothPrices`: an exact amount at batch price and what the same tokens cost at realtime price.

use serde::Serialize;

use crate::pricing::{Money, MoneyError};

/// One amount at both prices, in the model's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostAtBothPrices {
    pub batch: Money,
    pub realtime: Money,
}

impl CostAtBothPrices {
    /// `self + other` at both prices, exactly.
    ///
    /// # Errors
    /// When the currencies differ or the sum overflows (see [`Money::checked_add`]).
    pub fn checked_add(self, other: CostAtBothPrices) -> Result<CostAtBothPrices, MoneyError> {
        Ok(CostAtBothPrices {
            batch: self.batch.checked_add(other.batch)?,
            realtime: self.realtime.checked_add(other.realtime)?,
        })
    }
}

/// Serialised as exact decimal text: `{"batch": "0.0123", "realtime": "0.0246"}`.
impl Serialize for CostAtBothPrices {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("CostAtBothPrices", 2)?;
        state.serialize_field("batch", &self.batch.to_decimal_string())?;
        state.serialize_field("realtime", &self.realtime.to_decimal_string())?;
        state.end()
    }
}
