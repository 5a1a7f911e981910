//! Plugin and promotion wire types.
//!
//! A plugin (analytics, marketing, ads, ...) is installed per establishment; the
//! installation is an event in the establishment's journal so that the Pro apps see it
//! live. A promotion is the marketing plugin's, but applying one is a booking decision,
//! made by the establishment's actor: so the terms travel with the booking command and
//! the discount is recorded on the booking.

use serde::{Deserialize, Serialize};

/// A plugin's settings as JSON. The gateway validates them against the plugin's schema
/// before the install command is sent; the engine stores them as given.
pub type PluginSettings = serde_json::Value;

/// How a promotion lowers a price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// A percentage of the service's price (1..=100), rounded down to the cent.
    Percent(u8),
    /// A fixed amount in minor units, at most the price.
    FixedCents(i64),
}

impl Discount {
    /// The discount on a price, never more than the price and never negative.
    pub fn on(self, price_cents: i64) -> i64 {
        let price = price_cents.max(0);
        match self {
            Discount::Percent(p) => price * i64::from(p.min(100)) / 100,
            Discount::FixedCents(c) => c.clamp(0, price),
        }
    }
}

/// The terms of a promotion code, as the marketing plugin resolved it for a booking. The
/// actor enforces the usage limit and the once-per-customer rule against its own count of
/// uses, so two concurrent bookings cannot both use a code one of them may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionTerms {
    /// The code, normalised (upper case).
    pub code: String,
    pub discount: Discount,
    /// Uses allowed across all customers; `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_limit: Option<u32>,
    /// Each customer may use the code once.
    #[serde(default)]
    pub once_per_customer: bool,
}

/// A promotion applied to a booking: what the service cost and what was taken off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPromotion {
    pub code: String,
    /// The service's price at booking time, in minor units.
    pub price_cents: i64,
    /// What the promotion took off, in minor units; the customer pays the difference.
    pub discount_cents: i64,
    pub currency: String,
}

/// Longest plugin name: names are short identifiers (`analytics`, `ads`).
pub const MAX_PLUGIN_NAME: usize = 32;

/// Whether `name` is a well-formed plugin name: 1 to 32 of `a-z`, `0-9`, `_`, `-`,
/// starting with a letter.
pub fn valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= MAX_PLUGIN_NAME
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
