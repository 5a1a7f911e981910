//! What Navaro needs from a payment provider.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

/// A payment to open at the provider for a checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateIntent {
    /// Integer minor units.
    pub amount_cents: i64,
    /// ISO 4217, any case (providers want lower case; the client lowers it).
    pub currency: String,
    /// Derived from (payment, action): the same key for every attempt of one creation.
    pub idempotency_key: String,
    /// Where the payment belongs (establishment, payment id), read back from webhooks.
    pub metadata: BTreeMap<String, String>,
}

/// Where a provider's payment stands, in Navaro's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntentStatus {
    /// Waiting for the customer (no card yet, or a declined one to replace, or 3-D
    /// Secure pending). `Intent::failure` says whether an attempt was declined.
    RequiresPayment,
    /// The provider is processing it; a webhook follows.
    Processing,
    /// Authorized, waiting for capture (manual capture).
    RequiresCapture,
    Succeeded,
    Canceled,
}

/// A provider's payment as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub id: String,
    /// What the app needs to pay; only on creation and re-reads, never recorded.
    pub client_secret: Option<String>,
    pub status: IntentStatus,
    pub amount_cents: i64,
    /// Lower case, as providers answer.
    pub currency: String,
    pub metadata: BTreeMap<String, String>,
    /// The last attempt's decline, in the provider's words.
    pub failure: Option<String>,
}

/// A card setup at the provider (a Stripe SetupIntent): the customer enters a card in
/// the app with `client_secret`; once `succeeded`, `payment_method` can be charged
/// off-session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub id: String,
    /// Only on creation and re-reads, never recorded.
    pub client_secret: Option<String>,
    /// `true` once the card is saved.
    pub succeeded: bool,
    pub customer: Option<String>,
    pub payment_method: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A charge of a saved card without the customer present (a fee).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffSessionCharge {
    pub customer: String,
    pub payment_method: String,
    pub amount_cents: i64,
    pub currency: String,
    /// Derived from (booking, fee, attempt).
    pub idempotency_key: String,
    pub metadata: BTreeMap<String, String>,
}

/// A refund the provider made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub amount_cents: i64,
}

/// Why a provider call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the request (bad request, declined, not found); retrying
    /// the same request will not help.
    #[error("the provider refused: {status}: {message}")]
    Refused { status: u16, message: String },
    /// The provider could not be reached, timed out or failed on its side; the outcome
    /// is unknown and the same request (same idempotency key) may be retried.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something this client cannot read.
    #[error("the provider's answer does not parse: {0}")]
    Malformed(String),
}

/// A payment provider. Implementations are cheap to share (`Arc<dyn PaymentProvider>`).
pub trait PaymentProvider: Send + Sync + 'static {
    /// The name recorded on payments (`stripe`).
    fn name(&self) -> &'static str;

    /// Open a payment the customer completes in the app with the client secret.
    fn create_intent(&self, request: CreateIntent) -> BoxFuture<'_, Result<Intent, ProviderError>>;

    /// Read a payment as the provider has it now (the source of truth for its status).
    fn get_intent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// Cancel a payment that has not succeeded (its hold lapsed).
    fn cancel_intent<'a>(
        &'a self,
        id: &'a str,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Intent, ProviderError>>;

    /// Create a customer to save cards on.
    fn create_customer<'a>(
        &'a self,
        metadata: &'a BTreeMap<String, String>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;

    /// Open a card setup for off-session use by `customer`.
    fn create_setup<'a>(
        &'a self,
        customer: &'a str,
        metadata: &'a BTreeMap<String, String>,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Setup, ProviderError>>;

    /// Read a card setup as the provider has it now.
    fn get_setup<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Setup, ProviderError>>;

    /// Charge a saved card off-session. A decline answers the payment with its
    /// `failure` (status `requires_payment`), not an error.
    fn charge_off_session(
        &self,
        charge: OffSessionCharge,
    ) -> BoxFuture<'_, Result<Intent, ProviderError>>;

    /// The payment made for `customer` whose metadata has `key` = `value`, created
    /// after `created_after` (Unix seconds), if there is one: how a charge whose answer
    /// was lost (a crash after the call) is found again without charging twice.
    fn find_charge<'a>(
        &'a self,
        customer: &'a str,
        key: &'a str,
        value: &'a str,
        created_after: i64,
    ) -> BoxFuture<'a, Result<Option<Intent>, ProviderError>>;

    /// Refund `amount_cents` of a succeeded payment.
    fn refund<'a>(
        &'a self,
        intent_id: &'a str,
        amount_cents: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<Refund, ProviderError>>;
}
