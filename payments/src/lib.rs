//! The payment provider boundary and its first implementation, Stripe.
//!
//! The engine decides about payments (`navaro_engine::domain::payments`); this crate only
//! talks to providers. [`PaymentProvider`] is what the gateway calls: create a payment
//! for a checkout, re-read it, cancel it, refund it; save a card (Customers,
//! SetupIntents) and charge it off-session (fees). [`stripe::Stripe`] speaks Stripe's
//! HTTP API (PaymentIntents, Refunds) at a configurable base URL, so tests run it
//! against localstripe. [`webhook`] verifies `Stripe-Signature` headers and parses
//! Stripe events. Every call that changes something carries an idempotency key that the
//! caller derives from (payment, action), so a retry after a crash or a timeout is the
//! same request to the provider.
//!
//! Adding a provider (Mercado Pago, Pix): implement [`PaymentProvider`] and a webhook
//! verifier for it, and wire it in the gateway (`docs/payments.md`).

pub mod provider;
pub mod stripe;
pub mod webhook;

pub use provider::{
    CreateIntent, Intent, IntentStatus, OffSessionCharge, PaymentProvider, ProviderError, Refund,
    Setup,
};
