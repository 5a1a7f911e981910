//! Cards on file and the fees charged to them (`docs/payments.md`).
//!
//! Saving a card: the server opens a provider customer and a card setup (a Stripe
//! SetupIntent) and answers its client secret; the app completes it; the server reads
//! the setup back at the provider (never the client's word) and journals the card.
//!
//! Charging a fee, exactly once: the engine keeps at most one fee per (booking, fee).
//! Before each provider call the server journals a claim of the next attempt, which
//! the engine refuses while another attempt is in flight: two concurrent requests never
//! both call the provider. The call carries the key `navaro-{booking}-{fee}-{attempt}`
//! (Stripe then answers a retry of the same attempt with the same PaymentIntent), and
//! its metadata names the fee. An attempt left in flight (the process died between the
//! provider's answer and the journal append, or the call timed out) is looked up at the
//! provider by that metadata once its lease has passed, and recorded if it charged:
//! only an attempt known to have charged nothing is followed by another, so even a
//! provider that ignores idempotency keys (localstripe does) is charged once.

use std::collections::BTreeMap;
use std::time::Duration;

use navaro_engine::domain::fees::{attempt_in_flight, fee_of};
use navaro_payments::{Intent, IntentStatus, OffSessionCharge, ProviderError, Setup};
use navaro_protocol::{
    BookingId, Caller, Command, ErrorCode, EstablishmentId, FeeKind, Payment, PaymentOutcome,
    PaymentStatus, Reply, SavedCard,
};
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::engine_api::Request;
use crate::error::ApiError;
use crate::payments::{META_ESTABLISHMENT, META_PAYMENT, PaymentService, provider_error};

/// The metadata key naming the customer a card setup is for.
pub const META_CUSTOMER: &str = "navaro_customer_id";
/// The metadata key naming the booking a fee is for.
pub const META_BOOKING: &str = "navaro_booking_id";

/// How often a request waiting for another's attempt looks again.
const WAIT_STEP: Duration = Duration::from_millis(100);

impl PaymentService {
    /// Open a card setup for this customer here: a provider customer (the one of the
    /// saved card, if any) and a SetupIntent the app completes with its client secret.
    pub async fn start_card_setup(
        &self,
        est: EstablishmentId,
        customer: navaro_protocol::UserId,
        request_key: &str,
    ) -> Result<Setup, ApiError> {
        let metadata = BTreeMap::from([
            (META_ESTABLISHMENT.to_owned(), est.to_string()),
            (META_CUSTOMER.to_owned(), customer.to_string()),
        ]);
        let view = self.engine.view(est).await.map_err(ApiError::from)?;
        let known = view
            .state()
            .cards
            .get(&customer)
            .map(|c| c.customer_ref.clone());
        let customer_ref = match known {
            Some(reference) => reference,
            None => self
                .provider
                .create_customer(&metadata, &format!("navaro-{est}-{customer}-customer"))
                .await
                .map_err(provider_error)?,
        };
        self.provider
            .create_setup(
                &customer_ref,
                &metadata,
                &format!("navaro-{est}-{customer}-setup-{request_key}"),
            )
            .await
            .map_err(provider_error)
    }

    /// Read a card setup back at the provider and, once it succeeded, journal the card.
    /// A setup of another customer or establishment is `not_found`.
    pub async fn finish_card_setup(
        &self,
        est: EstablishmentId,
        customer: navaro_protocol::UserId,
        setup_id: &str,
    ) -> Result<SavedCard, ApiError> {
        let setup = match self.provider.get_setup(setup_id).await {
            Ok(setup) => setup,
            Err(ProviderError::Refused { status: 404, .. }) => {
                return Err(ApiError::not_found("card setup"));
            }
            Err(e) => return Err(provider_error(e)),
        };
        let ours = setup.metadata.get(META_ESTABLISHMENT) == Some(&est.to_string())
            && setup.metadata.get(META_CUSTOMER) == Some(&customer.to_string());
        if !ours {
            return Err(ApiError::not_found("card setup"));
        }
        let (true, Some(customer_ref), Some(payment_method_ref)) =
            (setup.succeeded, setup.customer, setup.payment_method)
        else {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the card setup is not complete: finish it in the app, then try again",
            ));
        };
        let save = Command::SaveCard {
            customer_id: customer,
            customer_ref,
            payment_method_ref,
            setup_ref: setup.id,
        };
        match self.command(est, save).await {
            Ok(Reply::Card(card)) => Ok(card),
            Ok(_) => Err(ApiError::internal("unexpected reply to save_card")),
            Err(r) if r.code == ErrorCode::Conflict => self.card(est, customer).await,
            Err(r) => Err(r.into()),
        }
    }

    /// This customer's saved card here.
    pub async fn card(
        &self,
        est: EstablishmentId,
        customer: navaro_protocol::UserId,
    ) -> Result<SavedCard, ApiError> {
        let view = self.engine.view(est).await.map_err(ApiError::from)?;
        view.state()
            .cards
            .get(&customer)
            .map(|c| (**c).clone())
            .ok_or_else(|| ApiError::not_found("card"))
    }

    /// Open (or confirm) a booking's fee as `caller` (a member), then charge it: the
    /// same answer, and a single charge, however often and concurrently it is asked.
    pub async fn charge_fee(
        &self,
        est: EstablishmentId,
        caller: Caller,
        booking: BookingId,
        fee: FeeKind,
    ) -> Result<Payment, ApiError> {
        let existing = self.fee(est, booking, fee).await?;
        let needs_open = existing
            .as_ref()
            .is_none_or(|p| p.status == PaymentStatus::RequiresConfirmation);
        let payment = if needs_open {
            let open = Request {
                caller,
                command: Command::OpenFee {
                    booking_id: booking,
                    fee,
                },
                idempotency_key: None,
            };
            match self.engine.execute(est, open).await {
                Ok(Reply::Payment(p)) => p,
                Ok(_) => return Err(ApiError::internal("unexpected reply to open_fee")),
                // Opened (or confirmed) by a concurrent request meanwhile.
                Err(r) if r.code == ErrorCode::Conflict => match self.fee(est, booking, fee).await?
                {
                    Some(p) if p.status != PaymentStatus::RequiresConfirmation => p,
                    _ => return Err(r.into()),
                },
                Err(r) => return Err(r.into()),
            }
        } else {
            existing.ok_or_else(|| ApiError::internal("fee vanished"))?
        };
        self.settle_fee(est, payment).await
    }

    /// The booking's fee of this kind, as the establishment has it now.
    pub async fn fee(
        &self,
        est: EstablishmentId,
        booking: BookingId,
        fee: FeeKind,
    ) -> Result<Option<Payment>, ApiError> {
        let view = self.engine.view(est).await.map_err(ApiError::from)?;
        Ok(fee_of(view.state(), booking, fee).cloned())
    }

    /// Bring an open fee to its end: wait for an attempt in flight elsewhere, find the
    /// charge of one that crashed, or claim and make a new attempt.
    pub async fn settle_fee(
        &self,
        est: EstablishmentId,
        mut payment: Payment,
    ) -> Result<Payment, ApiError> {
        loop {
            if !matches!(
                payment.status,
                PaymentStatus::RequiresPayment | PaymentStatus::Failed
            ) {
                return Ok(payment);
            }
            if payment.attempt_started_at.is_some() {
                if attempt_in_flight(&payment, self.engine.now(), self.fee_lease_seconds) {
                    payment = self.wait_for_attempt(est, payment).await?;
                    continue;
                }
                // Its lease passed: the attempt ended without being recorded.
                if let Some(found) = self.find_fee_charge(est, &payment).await? {
                    return Ok(found);
                }
            }
            return self.new_attempt(est, payment).await;
        }
    }

    async fn wait_for_attempt(
        &self,
        est: EstablishmentId,
        payment: Payment,
    ) -> Result<Payment, ApiError> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(u64::from(self.fee_lease_seconds));
        loop {
            tokio::time::sleep(WAIT_STEP).await;
            let now = self.current(est, payment.id).await?;
            if now.attempt_started_at != payment.attempt_started_at
                || now.status != payment.status
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(now);
            }
        }
    }

    /// Look up, at the provider, a charge made by an attempt whose answer was lost, and
    /// record it. `None`: the attempt charged nothing (or was declined and is recorded
    /// so): a new attempt may follow.
    async fn find_fee_charge(
        &self,
        est: EstablishmentId,
        payment: &Payment,
    ) -> Result<Option<Payment>, ApiError> {
        let card = self.card(est, payment.customer_id).await?;
        let since = payment
            .attempt_started_at
            .map_or(0, |at| at.as_second() - 300);
        let found = self
            .provider
            .find_charge(
                &card.customer_ref,
                META_PAYMENT,
                &payment.id.to_string(),
                since,
            )
            .await
            .map_err(provider_error)?;
        match found {
            Some(intent) if intent.status == IntentStatus::Succeeded => {
                info!(payment_id = %payment.id, intent = %intent.id, "a fee's lost charge was found at the provider and is recorded");
                self.record_fee(est, payment, Ok(intent)).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn new_attempt(
        &self,
        est: EstablishmentId,
        payment: Payment,
    ) -> Result<Payment, ApiError> {
        let claim = Command::ClaimFeeAttempt {
            payment_id: payment.id,
            lease_seconds: self.fee_lease_seconds,
        };
        let payment = match self.command(est, claim).await {
            Ok(Reply::Payment(p)) => p,
            Ok(_) => return Err(ApiError::internal("unexpected reply to claim_fee_attempt")),
            // Claimed by a concurrent request (or settled meanwhile): follow it.
            Err(r) if r.code == ErrorCode::Conflict => {
                let now = self.current(est, payment.id).await?;
                return Box::pin(self.settle_fee(est, now)).await;
            }
            Err(r) => return Err(r.into()),
        };
        let card = self.card(est, payment.customer_id).await?;
        let fee = payment.kind.fee().map_or("fee", FeeKind::as_str);
        let booking = payment
            .booking_id
            .map(|b| b.to_string())
            .unwrap_or_default();
        let charge = OffSessionCharge {
            customer: card.customer_ref.clone(),
            payment_method: card.payment_method_ref.clone(),
            amount_cents: payment.amount_cents,
            currency: payment.currency.clone(),
            idempotency_key: format!("navaro-{booking}-{fee}-{}", payment.attempt),
            metadata: BTreeMap::from([
                (META_ESTABLISHMENT.to_owned(), est.to_string()),
                (META_PAYMENT.to_owned(), payment.id.to_string()),
                (META_BOOKING.to_owned(), booking),
            ]),
        };
        let answer = self.provider.charge_off_session(charge).await;
        if self.abort_after_fee_charge && answer.is_ok() {
            error!(payment_id = %payment.id, "dev_abort_after_fee_charge: aborting between the provider's charge and the journal");
            std::process::abort();
        }
        self.record_fee(est, &payment, answer).await
    }

    /// Journal what the provider answered an attempt. An unknown outcome (unreachable,
    /// timed out) leaves the attempt in flight: after its lease it is looked up.
    async fn record_fee(
        &self,
        est: EstablishmentId,
        payment: &Payment,
        answer: Result<Intent, ProviderError>,
    ) -> Result<Payment, ApiError> {
        let outcome = match answer {
            Ok(intent) if intent.status == IntentStatus::Succeeded => PaymentOutcome::Succeeded {
                provider_ref: intent.id,
                amount_cents: intent.amount_cents,
            },
            Ok(intent) if intent.failure.is_some() => PaymentOutcome::Failed {
                reason: intent.failure.unwrap_or_default(),
            },
            // Processing, or waiting for authentication the customer is not here for:
            // left in flight; the webhook or, after the lease, the lookup records it.
            Ok(intent) => {
                warn!(payment_id = %payment.id, intent = %intent.id, status = ?intent.status, "a fee's charge is not final yet");
                return Ok(payment.clone());
            }
            Err(ProviderError::Refused { message, .. }) => {
                PaymentOutcome::Failed { reason: message }
            }
            Err(e) => return Err(provider_error(e)),
        };
        let settle = Command::SettlePayment {
            payment_id: payment.id,
            outcome,
        };
        match self.command(est, settle).await {
            Ok(Reply::Payment(p)) => Ok(p),
            Ok(_) => Err(ApiError::internal("unexpected reply to settle_payment")),
            Err(r) if r.code == ErrorCode::Conflict => self.current(est, payment.id).await,
            Err(r) => Err(r.into()),
        }
    }

    /// A member waives a fee nobody charged.
    pub async fn waive_fee(
        &self,
        est: EstablishmentId,
        caller: Caller,
        payment: &Payment,
    ) -> Result<Payment, ApiError> {
        let waive = Request {
            caller,
            command: Command::WaiveFee {
                payment_id: payment.id,
            },
            idempotency_key: None,
        };
        match self.engine.execute(est, waive).await {
            Ok(Reply::Payment(p)) => Ok(p),
            Ok(_) => Err(ApiError::internal("unexpected reply to waive_fee")),
            Err(r) => Err(r.into()),
        }
    }
}

/// A request key for provider idempotency when the client sent none: a fresh setup.
pub fn fresh_key() -> String {
    Uuid::new_v4().to_string()
}
