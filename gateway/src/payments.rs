//! Payments between the engine and the provider: opening a checkout's payment at the
//! provider, turning what the provider says into [`Command::SettlePayment`], refunding a
//! payment whose slot was lost, and the sweeper for lapsed checkouts.
//!
//! The engine decides; this module only calls the provider (outside any actor) and
//! journals the provider's answer through the establishment's actor. Every provider
//! write carries an idempotency key derived from (payment, action), so a retry after a
//! timeout or a crash is the same request to the provider. The provider's word is read
//! back from the provider itself (a re-read of the PaymentIntent), never taken from a
//! client, and events are re-read rather than trusted for state, since they arrive out
//! of order.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use navaro_payments::{CreateIntent, Intent, IntentStatus, PaymentProvider, ProviderError};
use navaro_protocol::{
    Caller, Command, ErrorCode, EstablishmentId, Payment, PaymentId, PaymentOutcome, PaymentStatus,
    Rejection, Reply, Role, UserId,
};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::engine_api::{Engine, Request};
use crate::error::ApiError;

/// The metadata keys a provider object carries back to us (webhooks find the payment
/// by them).
pub const META_ESTABLISHMENT: &str = "navaro_establishment_id";
pub const META_PAYMENT: &str = "navaro_payment_id";

/// How many webhook event ids are remembered to skip a re-read on a duplicate delivery.
/// A duplicate beyond them is still harmless: the payment is already settled.
const RECENT_EVENTS: usize = 4096;

/// Payments per sweep at most, so one sweep cannot hold the provider for long.
const SWEEP_BATCH: usize = 256;

/// Who records payment outcomes: the server itself, never a client.
pub fn system_caller() -> Caller {
    Caller {
        user_id: UserId(Uuid::nil()),
        role: Role::Admin,
    }
}

/// The provider, the engine, and what the webhook remembers.
pub struct PaymentService {
    pub engine: Engine,
    pub provider: Arc<dyn PaymentProvider>,
    recent_events: Mutex<(VecDeque<String>, HashSet<String>)>,
    /// How long a fee's provider attempt may stay in flight before it counts as ended
    /// (its process crashed, or its call timed out): longer than one provider call.
    pub fee_lease_seconds: u32,
    /// Tests only: abort right after a fee's charge, before it is journaled.
    pub abort_after_fee_charge: bool,
}

/// The idempotency key of one provider write for one payment.
pub fn provider_key(payment_id: PaymentId, action: &str) -> String {
    format!("navaro-{payment_id}-{action}")
}

pub(crate) fn provider_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(m) => {
            let mut error = ApiError::new(
                ErrorCode::Unavailable,
                format!("the payment provider is unavailable: {m}"),
            );
            error.retry_after = Some(Duration::from_secs(1));
            error
        }
        other => ApiError::new(ErrorCode::PaymentProvider, other.to_string()),
    }
}

impl PaymentService {
    pub fn new(engine: Engine, provider: Arc<dyn PaymentProvider>) -> PaymentService {
        PaymentService {
            engine,
            provider,
            recent_events: Mutex::default(),
            fee_lease_seconds: 30,
            abort_after_fee_charge: false,
        }
    }

    pub(crate) async fn command(
        &self,
        est: EstablishmentId,
        command: Command,
    ) -> Result<Reply, Rejection> {
        self.engine
            .execute(
                est,
                Request {
                    caller: system_caller(),
                    command,
                    idempotency_key: None,
                },
            )
            .await
    }

    /// The payment as the establishment has it now.
    pub async fn current(&self, est: EstablishmentId, id: PaymentId) -> Result<Payment, ApiError> {
        let view = self.engine.view(est).await.map_err(ApiError::from)?;
        view.state()
            .payments
            .get(&id)
            .map(|p| (**p).clone())
            .ok_or_else(|| ApiError::not_found("payment"))
    }

    /// Open (or find again) the provider's payment for a checkout, and answer the client
    /// secret the app pays with. Creation carries the key `navaro-{payment}-create`, so a
    /// retry (the client's, or after a crash between the provider call and the journal)
    /// gets the same PaymentIntent from Stripe.
    pub async fn open_intent(
        &self,
        est: EstablishmentId,
        payment: &Payment,
    ) -> Result<(Payment, Option<String>), ApiError> {
        if let Some(reference) = &payment.provider_ref {
            let intent = self
                .provider
                .get_intent(reference)
                .await
                .map_err(provider_error)?;
            return Ok((payment.clone(), intent.client_secret));
        }
        let metadata = BTreeMap::from([
            (META_ESTABLISHMENT.to_owned(), est.to_string()),
            (META_PAYMENT.to_owned(), payment.id.to_string()),
        ]);
        let intent = self
            .provider
            .create_intent(CreateIntent {
                amount_cents: payment.amount_cents,
                currency: payment.currency.clone(),
                idempotency_key: provider_key(payment.id, "create"),
                metadata,
            })
            .await
            .map_err(provider_error)?;
        let attach = Command::AttachPayment {
            payment_id: payment.id,
            provider_ref: intent.id.clone(),
        };
        let payment = match self.command(est, attach).await {
            Ok(Reply::Payment(p)) => p,
            // Attached by a concurrent retry in the meantime: take what is recorded.
            Err(r) if r.code == ErrorCode::Conflict => self.current(est, payment.id).await?,
            Ok(_) => return Err(ApiError::internal("unexpected reply to attach_payment")),
            Err(r) => return Err(r.into()),
        };
        Ok((payment, intent.client_secret))
    }

    /// Fail a checkout whose payment the provider could not open, releasing its hold.
    pub async fn give_up(&self, est: EstablishmentId, payment: &Payment, reason: &str) {
        if payment.status != PaymentStatus::RequiresPayment || payment.provider_ref.is_some() {
            return;
        }
        let fail = Command::SettlePayment {
            payment_id: payment.id,
            outcome: PaymentOutcome::Failed {
                reason: format!("the payment could not be opened: {reason}"),
            },
        };
        if let Err(r) = self.command(est, fail).await {
            warn!(establishment_id = %est, payment_id = %payment.id, error = %r.message, "could not release a checkout the provider refused; it lapses at its expiry");
        }
    }

    /// Re-read the payment at the provider and record what it says.
    pub async fn sync(&self, est: EstablishmentId, id: PaymentId) -> Result<Payment, ApiError> {
        let payment = self.current(est, id).await?;
        let Some(reference) = payment.provider_ref.clone() else {
            return Ok(payment);
        };
        let intent = self
            .provider
            .get_intent(&reference)
            .await
            .map_err(provider_error)?;
        self.apply_intent(est, payment, &intent).await
    }

    /// Record the provider's state of a payment: success confirms the booking (or books
    /// the slot again, or leaves a refund due), a decline ends the hold. Anything else
    /// (still waiting for the customer, processing) changes nothing. A payment already
    /// in that state is left as it is: a duplicate webhook has no second effect.
    pub async fn apply_intent(
        &self,
        est: EstablishmentId,
        payment: Payment,
        intent: &Intent,
    ) -> Result<Payment, ApiError> {
        if intent.metadata.get(META_PAYMENT) != Some(&payment.id.to_string())
            || !intent.currency.eq_ignore_ascii_case(&payment.currency)
        {
            warn!(payment_id = %payment.id, intent = %intent.id, "provider object does not match the payment");
            return Err(ApiError::new(
                ErrorCode::PaymentProvider,
                "the provider's payment does not match this payment",
            ));
        }
        if payment.kind.fee().is_some()
            && payment.status == PaymentStatus::Succeeded
            && intent.status == IntentStatus::Succeeded
            && payment.provider_ref.as_deref() != Some(intent.id.as_str())
        {
            return self.refund_duplicate(payment, intent).await;
        }
        if payment.kind.fee().is_some() && intent.status != IntentStatus::Succeeded {
            // A fee's decline is recorded by the attempt that made it: an older attempt's
            // late event must not end a newer attempt still in flight.
            return Ok(payment);
        }
        let outcome = match (intent.status, payment.status) {
            (IntentStatus::Succeeded, _) => PaymentOutcome::Succeeded {
                provider_ref: intent.id.clone(),
                amount_cents: intent.amount_cents,
            },
            (IntentStatus::RequiresPayment, PaymentStatus::RequiresPayment)
                if intent.failure.is_some() =>
            {
                PaymentOutcome::Failed {
                    reason: intent.failure.clone().unwrap_or_default(),
                }
            }
            (IntentStatus::Canceled, PaymentStatus::RequiresPayment) => PaymentOutcome::Expired,
            _ => return self.refund_if_due(est, payment).await,
        };
        let settle = Command::SettlePayment {
            payment_id: payment.id,
            outcome,
        };
        let payment = match self.command(est, settle).await {
            Ok(Reply::Payment(p)) => p,
            Err(r) if r.code == ErrorCode::Conflict => self.current(est, payment.id).await?,
            Ok(_) => return Err(ApiError::internal("unexpected reply to settle_payment")),
            Err(r) => return Err(r.into()),
        };
        self.refund_if_due(est, payment).await
    }

    /// Refund what a payment is due (`refund_due_cents`: all of it when its slot was
    /// taken first, or what the policy gives back on a cancellation), with the key
    /// `navaro-{payment}-refund`, and record the refund.
    pub async fn refund_if_due(
        &self,
        est: EstablishmentId,
        payment: Payment,
    ) -> Result<Payment, ApiError> {
        let left = payment.refund_due_cents - payment.refunded_cents;
        if payment.status != PaymentStatus::Succeeded || left <= 0 {
            return Ok(payment);
        }
        let Some(reference) = payment.provider_ref.clone() else {
            return Ok(payment);
        };
        let refund = self
            .provider
            .refund(&reference, left, &provider_key(payment.id, "refund"))
            .await
            .map_err(provider_error)?;
        info!(payment_id = %payment.id, refund = %refund.id, amount_cents = refund.amount_cents, "payment refunded");
        let record = Command::SettlePayment {
            payment_id: payment.id,
            outcome: PaymentOutcome::Refunded {
                refund_ref: refund.id,
                amount_cents: refund.amount_cents,
            },
        };
        match self.command(est, record).await {
            Ok(Reply::Payment(p)) => Ok(p),
            Err(r) if r.code == ErrorCode::Conflict => self.current(est, payment.id).await,
            Ok(_) => Err(ApiError::internal("unexpected reply to settle_payment")),
            Err(r) => Err(r.into()),
        }
    }

    /// A second charge for a fee already charged (a provider that ignored the key, or an
    /// attempt nobody could find in time): refunded in full at once, never kept.
    async fn refund_duplicate(
        &self,
        payment: Payment,
        intent: &Intent,
    ) -> Result<Payment, ApiError> {
        warn!(payment_id = %payment.id, intent = %intent.id, "a second charge for a fee: refunding it");
        self.provider
            .refund(
                &intent.id,
                intent.amount_cents,
                &format!("navaro-{}-duplicate-refund", intent.id),
            )
            .await
            .map_err(provider_error)?;
        Ok(payment)
    }

    /// After a booking was cancelled: refund its payment what the policy gives back, or
    /// charge its late-cancellation fee to the card on file. A provider failure is left
    /// to the sweeper, which retries.
    pub async fn refund_cancelled(
        &self,
        est: EstablishmentId,
        booking: navaro_protocol::BookingId,
    ) {
        let payment = match self.engine.view(est).await {
            Ok(view) => view
                .state()
                .booking_payments
                .get(&booking)
                .and_then(|id| view.state().payments.get(id))
                .map(|p| (**p).clone()),
            Err(_) => None,
        };
        if let Some(payment) = payment {
            let id = payment.id;
            if let Err(e) = self.refund_if_due(est, payment).await {
                warn!(establishment_id = %est, payment_id = %id, error = %e.rejection.message, "refund after a cancellation failed; the sweeper retries it");
            }
        }
        // A late cancellation's fee the policy charges at once (not one waiting for a
        // member's confirmation).
        let fee = self
            .fee(est, booking, navaro_protocol::FeeKind::LateCancel)
            .await
            .ok()
            .flatten()
            .filter(|f| f.status == PaymentStatus::RequiresPayment);
        if let Some(fee) = fee {
            let id = fee.id;
            if let Err(e) = self.settle_fee(est, fee).await {
                warn!(establishment_id = %est, payment_id = %id, error = %e.rejection.message, "late-cancellation fee not charged now; the sweeper retries it");
            }
        }
    }

    /// Whether this webhook event id was handled recently (and remember it if not).
    pub fn seen_event(&self, event_id: &str) -> bool {
        let mut guard = self.recent_events.lock().unwrap_or_else(|e| e.into_inner());
        let (order, set) = &mut *guard;
        if set.contains(event_id) {
            return true;
        }
        set.insert(event_id.to_owned());
        order.push_back(event_id.to_owned());
        if order.len() > RECENT_EVENTS
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        false
    }

    /// Forget an event id whose handling failed, so Stripe's retry is handled again.
    pub fn forget_event(&self, event_id: &str) {
        let mut guard = self.recent_events.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.remove(event_id);
    }

    /// One pass over the active establishments: each checkout whose hold lapsed is
    /// re-read at the provider once more; a payment that succeeded confirms (or books
    /// again, or is refunded), any other is cancelled at the provider and recorded
    /// `expired`, which frees the slot. Payments left with a refund due are retried.
    /// Returns how many payments it settled. Time is the engine's clock.
    pub async fn sweep_once(&self) -> usize {
        let now = self.engine.now();
        let mut due: Vec<(EstablishmentId, Payment)> = Vec::new();
        for est in self.engine.active_establishment_ids() {
            let Ok(view) = self.engine.view(est).await else {
                continue;
            };
            let state = view.state();
            due.extend(
                state
                    .open_payments
                    .iter()
                    .filter_map(|id| state.payments.get(id))
                    .filter(|p| {
                        (p.status == PaymentStatus::RequiresPayment && p.expires_at <= now)
                            || (p.status == PaymentStatus::Succeeded
                                && p.refund_due_cents > p.refunded_cents)
                    })
                    .map(|p| (est, (**p).clone())),
            );
            if due.len() >= SWEEP_BATCH {
                break;
            }
        }
        let mut settled = 0;
        for (est, payment) in due.into_iter().take(SWEEP_BATCH) {
            let id = payment.id;
            match self.sweep_payment(est, payment).await {
                Ok(()) => settled += 1,
                Err(e) => {
                    warn!(establishment_id = %est, payment_id = %id, error = %e.rejection.message, "sweep of a payment failed; retried next sweep")
                }
            }
        }
        settled
    }

    async fn sweep_payment(&self, est: EstablishmentId, payment: Payment) -> Result<(), ApiError> {
        if payment.kind.fee().is_some() {
            // A fee to charge (automatic), or one whose attempt was left in flight by a
            // crash: charged, or its charge found, once no attempt is in flight.
            if !navaro_engine::domain::fees::attempt_in_flight(
                &payment,
                self.engine.now(),
                self.fee_lease_seconds,
            ) {
                self.settle_fee(est, payment).await?;
            }
            return Ok(());
        }
        if payment.status == PaymentStatus::Succeeded {
            self.refund_if_due(est, payment).await?;
            return Ok(());
        }
        if let Some(reference) = payment.provider_ref.clone() {
            let intent = self
                .provider
                .get_intent(&reference)
                .await
                .map_err(provider_error)?;
            if matches!(
                intent.status,
                IntentStatus::Succeeded | IntentStatus::Processing | IntentStatus::RequiresCapture
            ) {
                // Paid at the last second (or still settling: leave it for the webhook).
                if intent.status == IntentStatus::Succeeded {
                    self.apply_intent(est, payment, &intent).await?;
                }
                return Ok(());
            }
            if intent.status != IntentStatus::Canceled {
                match self
                    .provider
                    .cancel_intent(&reference, &provider_key(payment.id, "cancel"))
                    .await
                {
                    Ok(_) => {}
                    // Refused: it moved meanwhile (succeeded at this very moment?).
                    Err(ProviderError::Refused { .. }) => {
                        let intent = self
                            .provider
                            .get_intent(&reference)
                            .await
                            .map_err(provider_error)?;
                        if intent.status != IntentStatus::Canceled {
                            self.apply_intent(est, payment, &intent).await?;
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(provider_error(e)),
                }
            }
        }
        let expire = Command::SettlePayment {
            payment_id: payment.id,
            outcome: PaymentOutcome::Expired,
        };
        match self.command(est, expire).await {
            Ok(_) => Ok(()),
            Err(r) if r.code == ErrorCode::Conflict => Ok(()),
            Err(r) => Err(r.into()),
        }
    }

    /// Sweep every `interval` until shutdown.
    pub fn spawn_sweeper(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        self.sweep_once().await;
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            break;
                        }
                    }
                }
            }
        });
    }
}
