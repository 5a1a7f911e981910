//! Payments: the establishment's payment policy, checkouts (a held slot plus a payment),
//! reading and refreshing a payment, and Stripe's webhook (`docs/payments.md`).
//!
//! Authorization: owners set the policy; anyone reads it. A customer opens checkouts for
//! themselves and reads or refreshes only their own payments (someone else's answers
//! 404, as bookings do); members read every payment of their establishment. Nobody can
//! settle a payment over HTTP: outcomes come from the provider (the signed webhook, or
//! the server's own re-read on refresh).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use navaro_payments::webhook;
use navaro_protocol::{
    Caller, Command, ErrorCode, Payment, PaymentId, PaymentKind, PaymentMode, PaymentPolicy,
    PaymentStatus, PolicyAudience, Reply,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::establishments::{execute_rendered, resolve, view_of};
use crate::auth::{AuthUser, MaybeAuth};
use crate::dto::{est, render, service, staff};
use crate::engine_api::View;
use crate::error::{ApiError, ErrorBody};
use crate::payments::{META_ESTABLISHMENT, META_PAYMENT, PaymentService};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, IdempotencyKey};

/// What customers pay when they book. `deposit` takes exactly one of `deposit_percent`
/// and `deposit_cents`; a late-cancellation fee is at most one of
/// `late_cancel_fee_percent` and `late_cancel_fee_cents`, and only with a deposit or
/// prepayment. Its schema ([`policy_schema`]) states each allowed combination.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentPolicyDto {
    pub mode: PaymentMode,
    /// For `deposit`: this percent of the price (1 to 100), rounded to the minor unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_percent: Option<u8>,
    /// For `deposit`: this fixed amount in minor units (the price, if lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_cents: Option<i64>,
    /// A customer who cancels less than this long before the start pays the
    /// late-cancellation fee out of what they paid (0: never late; at most 30 days).
    #[serde(default)]
    pub cancel_window_minutes: u32,
    /// The late-cancellation fee as a percent of the price (1 to 100)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cancel_fee_percent: Option<u8>,
    /// ... or as a fixed amount in minor units; never more than what was paid (with
    /// `card_on_file`: than the price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_cancel_fee_cents: Option<i64>,
    /// With `card_on_file`: a late cancellation's fee waits for a member to charge or
    /// waive it (`requires_confirmation`) instead of being charged at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_cancel_fee_needs_confirmation: bool,
    /// With `card_on_file`: the no-show fee as a percent of the price (1 to 100)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_fee_percent: Option<u8>,
    /// ... or as a fixed amount in minor units (never more than the price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_fee_cents: Option<i64>,
    /// Which customers the policy applies to (`all` by default); the others book as
    /// with mode `none`.
    #[serde(default, skip_serializing_if = "PolicyAudience::is_all")]
    pub applies_to: PolicyAudience,
}

/// Which customers a payment policy applies to: everyone, customers with no completed
/// visit here yet, or customers marked no-show here before.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PolicyAudienceName {
    All,
    NewCustomers,
    PastNoShows,
}

impl utoipa::PartialSchema for PaymentPolicyDto {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::OneOf(policy_schema()))
    }
}

impl ToSchema for PaymentPolicyDto {
    fn name() -> std::borrow::Cow<'static, str> {
        "PaymentPolicyDto".into()
    }
}

/// [`PaymentPolicyDto`] as one of its valid shapes: the mode, with a deposit's amount
/// (percent or cents) when it is `deposit`, and a fee (none, percent or cents) when it
/// is not `none`. The engine's `validate_policy` refuses every other shape.
fn policy_schema() -> utoipa::openapi::schema::OneOf {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let integer = |min: i64, max: Option<i64>| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min as f64))
            .maximum(max.map(|m| m as f64))
    };
    let percent = || integer(1, Some(100)).description(Some("1 to 100"));
    let cents = || {
        integer(1, None)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .description(Some("minor units, more than 0"))
    };
    let amounts = ["deposit_percent", "deposit_cents"];
    let fees = [
        None,
        Some("late_cancel_fee_percent"),
        Some("late_cancel_fee_cents"),
    ];
    let mut shapes: Vec<(&str, Option<&str>, Option<&str>)> = vec![("none", None, None)];
    for fee in fees {
        for amount in amounts {
            shapes.push(("deposit", Some(amount), fee));
        }
        shapes.push(("prepayment", None, fee));
    }
    let mut one_of = OneOfBuilder::new().description(Some(
        "What customers pay when they book; one of these shapes.",
    ));
    let no_show_fees = [None, Some("no_show_fee_percent"), Some("no_show_fee_cents")];
    let mut card_shapes = Vec::new();
    for fee in fees {
        for no_show in no_show_fees {
            card_shapes.push((fee, no_show));
        }
    }
    let shapes = shapes
        .into_iter()
        .map(|(mode, amount, fee)| (mode, amount, fee, None))
        .chain(
            card_shapes
                .into_iter()
                .map(|(fee, no_show)| ("card_on_file", None, fee, no_show)),
        );
    for (mode, amount, fee, no_show) in shapes {
        let mut shape = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "mode",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([mode])),
            )
            .required("mode")
            .property(
                "cancel_window_minutes",
                integer(0, Some(43_200)).description(Some(
                    "a customer who cancels less than this long before the start pays the \
                     fee out of what they paid (0, the default: never late)",
                )),
            )
            .property(
                "applies_to",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all", "new_customers", "past_no_shows"]))
                    .description(Some(
                        "which customers the policy applies to (`all` by default); the \
                         others book as with mode `none`",
                    )),
            )
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        if mode == "card_on_file" {
            shape = shape.property(
                "late_cancel_fee_needs_confirmation",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some(
                        "a late cancellation's fee waits for a member to charge or waive it",
                    )),
            );
        }
        if let Some(no_show) = no_show {
            let schema = if no_show.ends_with("percent") {
                percent()
            } else {
                cents()
            };
            shape = shape.property(no_show, schema).required(no_show);
        }
        if let Some(amount) = amount {
            let schema = if amount.ends_with("percent") {
                percent()
            } else {
                cents()
            };
            shape = shape.property(amount, schema).required(amount);
        }
        if let Some(fee) = fee {
            let schema = if fee.ends_with("percent") {
                percent()
            } else {
                cents()
            };
            shape = shape.property(fee, schema).required(fee);
        }
        one_of = one_of.item(shape);
    }
    one_of.build()
}

/// The payment modes.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentModeName {
    None,
    Deposit,
    Prepayment,
    CardOnFile,
}

/// What a payment is for.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentKindName {
    Deposit,
    Prepayment,
    NoShowFee,
    LateCancelFee,
}

/// Where a payment stands: `requires_payment` until the provider reports it
/// `succeeded` (the booking is confirmed), `failed` (declined: the slot is free again)
/// or `expired` (the hold lapsed unpaid); `refunded` when refunded in full. A fee:
/// `requires_confirmation` (waiting for a member to charge or waive it),
/// `requires_payment` (being charged), `succeeded`, `failed` (declined), `waived`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentStatusName {
    RequiresPayment,
    Succeeded,
    Failed,
    Expired,
    Refunded,
    RequiresConfirmation,
    Waived,
}

impl From<PaymentPolicy> for PaymentPolicyDto {
    fn from(p: PaymentPolicy) -> Self {
        PaymentPolicyDto {
            mode: p.mode,
            deposit_percent: p.deposit_percent,
            deposit_cents: p.deposit_cents,
            cancel_window_minutes: p.cancel_window_minutes,
            late_cancel_fee_percent: p.late_cancel_fee_percent,
            late_cancel_fee_cents: p.late_cancel_fee_cents,
            late_cancel_fee_needs_confirmation: p.late_cancel_fee_needs_confirmation,
            no_show_fee_percent: p.no_show_fee_percent,
            no_show_fee_cents: p.no_show_fee_cents,
            applies_to: p.applies_to,
        }
    }
}

impl From<PaymentPolicyDto> for PaymentPolicy {
    fn from(p: PaymentPolicyDto) -> Self {
        PaymentPolicy {
            mode: p.mode,
            deposit_percent: p.deposit_percent,
            deposit_cents: p.deposit_cents,
            cancel_window_minutes: p.cancel_window_minutes,
            late_cancel_fee_percent: p.late_cancel_fee_percent,
            late_cancel_fee_cents: p.late_cancel_fee_cents,
            late_cancel_fee_needs_confirmation: p.late_cancel_fee_needs_confirmation,
            no_show_fee_percent: p.no_show_fee_percent,
            no_show_fee_cents: p.no_show_fee_cents,
            applies_to: p.applies_to,
        }
    }
}

/// A payment, as answers and `payment.updated` frames carry it.
#[derive(Serialize, ToSchema)]
pub struct PaymentDto {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub customer_id: Uuid,
    /// The hold keeping the slot while the customer pays (a fee keeps no slot: its
    /// hold id names no hold).
    pub hold_id: Uuid,
    /// The booking, once the payment confirmed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<Uuid>,
    pub service_id: Uuid,
    pub staff_id: Uuid,
    pub start: String,
    #[schema(value_type = PaymentKindName)]
    pub kind: PaymentKind,
    /// Integer minor units of `currency`.
    pub amount_cents: i64,
    /// The service's price when the payment was made.
    pub price_cents: i64,
    pub currency: String,
    #[schema(value_type = PaymentStatusName)]
    pub status: PaymentStatus,
    /// `stripe`.
    pub provider: String,
    /// The provider's object (a Stripe PaymentIntent id), once created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<String>,
    pub refunded_cents: i64,
    /// What is to be refunded in all: the whole payment when its slot was lost, or what
    /// the policy gives back when the booking was cancelled.
    pub refund_due_cents: i64,
    /// The provider's refund objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refund_refs: Vec<String>,
    /// Why it failed, or why a succeeded payment has no booking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The payment policy in force when the payment was made.
    pub policy: PaymentPolicyDto,
    /// When the held slot is given up if the payment has not succeeded.
    pub expires_at: String,
    pub created_at: String,
    pub seq: u64,
    /// A fee's provider attempts so far (each with its own idempotency key).
    #[serde(skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// While a fee's attempt is in flight: when it was claimed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_started_at: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PaymentDto {
    pub fn new(p: Payment, tz: &TimeZone) -> Self {
        PaymentDto {
            id: p.id.0,
            establishment_id: p.establishment_id.0,
            customer_id: p.customer_id.0,
            hold_id: p.hold_id.0,
            booking_id: p.booking_id.map(|b| b.0),
            service_id: p.service_id.0,
            staff_id: p.staff_id.0,
            start: render(p.start, tz),
            kind: p.kind,
            amount_cents: p.amount_cents,
            price_cents: p.price_cents,
            currency: p.currency,
            status: p.status,
            provider: p.provider,
            provider_ref: p.provider_ref,
            refunded_cents: p.refunded_cents,
            refund_due_cents: p.refund_due_cents,
            refund_refs: p.refund_refs,
            failure: p.failure,
            policy: p.policy.into(),
            expires_at: render(p.expires_at, tz),
            created_at: render(p.created_at, tz),
            seq: p.seq,
            attempt: p.attempt,
            attempt_started_at: p.attempt_started_at.map(|at| render(at, tz)),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub service_id: Uuid,
    /// RFC 3339, any offset.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Omitted: any free staff member.
    pub staff_id: Option<Uuid>,
}

/// A checkout: the payment (its hold keeps the slot until `expires_at`) and what the
/// app pays with.
#[derive(Serialize, ToSchema)]
pub struct CheckoutDto {
    pub payment: PaymentDto,
    /// The provider's client secret (Stripe: the PaymentIntent's), for the app's payment
    /// sheet. Absent once the payment is no longer payable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// The webhook's answer.
#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
}

pub(crate) fn service_of(state: &AppState) -> Result<&PaymentService, ApiError> {
    state.payments.as_deref().ok_or_else(|| {
        // Not a provider failure (502): there is no provider to fail, as for the
        // webhook's 404 when Stripe is not this server's provider.
        ApiError::new(
            ErrorCode::NotFound,
            "payments are not configured on this server",
        )
    })
}

/// The payment, if this caller may see it.
fn visible_payment(view: &View, caller: &Caller, id: Uuid) -> Result<Payment, ApiError> {
    view.state()
        .payments
        .get(&PaymentId(id))
        .filter(|p| caller.role.is_member() || p.customer_id == caller.user_id)
        .map(|p| (**p).clone())
        .ok_or_else(|| ApiError::not_found("payment"))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/payment-policy", tag = "payments",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentPolicyDto), (status = 404, body = ErrorBody)))]
pub async fn get_payment_policy(
    State(state): State<AppState>,
    _auth: MaybeAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PaymentPolicyDto>, ApiError> {
    let view = view_of(&state, est(id)).await?;
    Ok(Json((*view.state().payment_policy).clone().into()))
}

#[utoipa::path(put, path = "/v1/establishments/{id}/payment-policy", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PaymentPolicyDto,
    responses((status = 200, body = PaymentPolicyDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_payment_policy(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PaymentPolicyDto>,
) -> Result<Json<PaymentPolicyDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.can_manage() {
        return Err(ApiError::forbidden());
    }
    let command = Command::SetPaymentPolicy {
        policy: body.into(),
        service_id: None,
    };
    execute_rendered(
        &state,
        est(id),
        caller,
        command,
        key,
        &view,
        |reply, _| match reply {
            Reply::PaymentPolicy(p) => Some(p.into()),
            _ => None,
        },
    )
    .await
    .map(Json)
}

#[utoipa::path(get, path = "/v1/establishments/{id}/services/{service_id}/payment-policy", tag = "payments",
    params(("id" = Uuid, Path), ("service_id" = Uuid, Path)),
    responses((status = 200, body = PaymentPolicyDto, description = "the policy this service follows: its own, or the establishment's"),
        (status = 404, body = ErrorBody)))]
pub async fn get_service_payment_policy(
    State(state): State<AppState>,
    _auth: MaybeAuth,
    ApiPath((id, service_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<PaymentPolicyDto>, ApiError> {
    let view = view_of(&state, est(id)).await?;
    let state = view.state();
    if state.service(service(service_id)).is_none() {
        return Err(ApiError::not_found("service"));
    }
    let policy = state
        .service_policies
        .get(&service(service_id))
        .unwrap_or(&state.payment_policy);
    Ok(Json((**policy).clone().into()))
}

#[utoipa::path(put, path = "/v1/establishments/{id}/services/{service_id}/payment-policy", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("service_id" = Uuid, Path)), request_body = PaymentPolicyDto,
    responses((status = 200, body = PaymentPolicyDto, description = "the service's own policy, in force for its bookings from now on"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_service_payment_policy(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, service_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PaymentPolicyDto>,
) -> Result<Json<PaymentPolicyDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.can_manage() {
        return Err(ApiError::forbidden());
    }
    let command = Command::SetPaymentPolicy {
        policy: body.into(),
        service_id: Some(service(service_id)),
    };
    execute_rendered(
        &state,
        est(id),
        caller,
        command,
        key,
        &view,
        |reply, _| match reply {
            Reply::PaymentPolicy(p) => Some(p.into()),
            _ => None,
        },
    )
    .await
    .map(Json)
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/services/{service_id}/payment-policy", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("service_id" = Uuid, Path)),
    responses((status = 200, body = PaymentPolicyDto, description = "the service follows the establishment's policy again (answered)"),
        (status = 403, body = ErrorBody), (status = 404, description = "no such service, or it has no policy of its own", body = ErrorBody)))]
pub async fn clear_service_payment_policy(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, service_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<PaymentPolicyDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.can_manage() {
        return Err(ApiError::forbidden());
    }
    let command = Command::ClearServicePaymentPolicy {
        service_id: service(service_id),
    };
    execute_rendered(
        &state,
        est(id),
        caller,
        command,
        key,
        &view,
        |reply, _| match reply {
            Reply::PaymentPolicy(p) => Some(p.into()),
            _ => None,
        },
    )
    .await
    .map(Json)
}

#[utoipa::path(post, path = "/v1/establishments/{id}/checkouts", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CheckoutRequest,
    responses((status = 201, body = CheckoutDto, description = "the slot is held and the payment opened; the booking is confirmed when the provider reports the payment succeeded"),
        (status = 409, description = "slot_unavailable (with alternatives), or conflict: no payment is asked for this service", body = ErrorBody),
        (status = 502, description = "payment_provider: the provider refused or could not be reached (404 `not_found` when payments are not configured)", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_checkout(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CheckoutRequest>,
) -> Result<(StatusCode, Json<CheckoutDto>), ApiError> {
    let payments = service_of(&state)?;
    state.limits.check_booking(auth.user_id)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let command = Command::Checkout {
        service_id: service(body.service_id),
        start: body.start,
        staff_id: body.staff_id.map(staff),
        ttl_seconds: state.settings.payments.hold_seconds,
        provider: payments.provider.name().to_owned(),
    };
    let payment =
        execute_rendered(
            &state,
            est(id),
            caller,
            command,
            key,
            &view,
            |reply, _| match reply {
                Reply::Payment(p) => Some(p),
                _ => None,
            },
        )
        .await?;
    // A retry (same key) answers the first payment: take it as it is now.
    let payment = payments.current(est(id), payment.id).await?;
    let (payment, secret) = match payments.open_intent(est(id), &payment).await {
        Ok(opened) => opened,
        Err(e) => {
            // The provider could not open the payment: give the slot back now rather
            // than at the hold's expiry (nobody can have paid: the app never got a
            // client secret), and let the customer try again.
            payments
                .give_up(est(id), &payment, &e.rejection.message)
                .await;
            return Err(e);
        }
    };
    let client_secret = secret.filter(|_| payment.status == PaymentStatus::RequiresPayment);
    let tz = view.timezone();
    Ok((
        StatusCode::CREATED,
        Json(CheckoutDto {
            payment: PaymentDto::new(payment, tz),
            client_secret,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/payments/{payment_id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("payment_id" = Uuid, Path)),
    responses((status = 200, body = PaymentDto), (status = 404, body = ErrorBody)))]
pub async fn get_payment(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, payment_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<PaymentDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let payment = visible_payment(&view, &caller, payment_id)?;
    Ok(Json(PaymentDto::new(payment, view.timezone())))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/payments/{payment_id}/refresh", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("payment_id" = Uuid, Path)),
    responses((status = 200, body = PaymentDto, description = "the payment after the server re-read it at the provider (the app calls this when its payment sheet says done; the client's word alone changes nothing)"),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn refresh_payment(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, payment_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<PaymentDto>, ApiError> {
    let payments = service_of(&state)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let payment = visible_payment(&view, &caller, payment_id)?;
    let payment = payments.sync(est(id), payment.id).await?;
    Ok(Json(PaymentDto::new(payment, view.timezone())))
}

fn bad_signature(e: webhook::SignatureError) -> ApiError {
    ApiError::bad_request(Some("Stripe-Signature".to_owned()), e.to_string())
}

#[utoipa::path(post, path = "/v1/payments/stripe/webhook", tag = "payments",
    request_body(content = String, description = "a Stripe event, signed in `Stripe-Signature`", content_type = "application/json"),
    responses((status = 200, body = WebhookAck, description = "the event's effect is durable (or it needs none)"),
        (status = 400, description = "the signature is missing, does not match a configured secret, or its timestamp is outside the tolerance; or the body is not a Stripe event", body = ErrorBody),
        (status = 404, description = "Stripe is not this server's provider", body = ErrorBody),
        (status = 503, description = "the effect could not be made durable now; Stripe retries", body = ErrorBody)))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let settings = &state.settings.payments;
    let payments = match state.payments.as_deref() {
        Some(p) if p.provider.name() == "stripe" => p,
        _ => return Err(ApiError::not_found("webhook")),
    };
    let secrets: Vec<&str> = settings
        .stripe
        .webhook_secrets
        .iter()
        .map(|s| s.expose())
        .collect();
    let header = headers
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or(""));
    webhook::verify(
        header,
        &body,
        &secrets,
        i64::from(settings.stripe.webhook_tolerance_seconds),
        payments.engine.now().as_second(),
    )
    .map_err(bad_signature)?;
    let event: webhook::Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(None, format!("not a Stripe event: {e}")))?;
    let object = &event.data.object;
    let (Some(est_id), Some(payment_id)) = (
        object.metadata.get(META_ESTABLISHMENT),
        object.metadata.get(META_PAYMENT),
    ) else {
        return Ok(Json(WebhookAck { received: true }));
    };
    if object.object != "payment_intent" || payments.seen_event(&event.id) {
        return Ok(Json(WebhookAck { received: true }));
    }
    let (Ok(est_id), Ok(payment_id)) = (est_id.parse::<Uuid>(), payment_id.parse::<Uuid>()) else {
        return Ok(Json(WebhookAck { received: true }));
    };
    let result = async {
        let payment = payments.current(est(est_id), PaymentId(payment_id)).await?;
        if payment.provider_ref.as_deref() != Some(object.id.as_str()) {
            // Not the object this payment recorded (a duplicate creation): re-read it
            // anyway, since it may have been paid; `apply_intent` checks its metadata.
            tracing::info!(payment_id = %payment.id, intent = %object.id, "webhook for an unrecorded provider object");
        }
        let intent = payments
            .provider
            .get_intent(&object.id)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
        payments.apply_intent(est(est_id), payment, &intent).await
    }
    .await;
    match result {
        Ok(_) => Ok(Json(WebhookAck { received: true })),
        Err(e) if e.rejection.code == ErrorCode::NotFound => {
            Ok(Json(WebhookAck { received: true }))
        }
        Err(mut e) => {
            payments.forget_event(&event.id);
            // Stripe retries anything but 2xx: make sure a failure is not a 4xx it
            // would give up on for good.
            if e.status().is_client_error() {
                e.status = Some(StatusCode::SERVICE_UNAVAILABLE);
            }
            Err(e)
        }
    }
}
