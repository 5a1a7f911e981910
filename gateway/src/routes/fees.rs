//! Cards on file, no-shows and the fees charged to cards (`docs/payments.md`).
//!
//! Authorization: a customer saves and reads only their own card (a setup of someone
//! else answers 404). Marking a no-show, charging and waiving fees are for the
//! establishment's members: anyone else, a member of another establishment included,
//! gets 403 for their own establishment's role does not count here. A fee is read by
//! its customer and by members; anyone else gets 404, as for bookings and payments.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use navaro_protocol::{BookingId, Command, ErrorCode, FeeKind, PaymentMode, SavedCard};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bookings::change_booking;
use super::establishments::resolve;
use super::payments::{PaymentDto, service_of};
use crate::auth::AuthUser;
use crate::dto::{BookingDto, est, render};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::{ApiPath, IdempotencyKey};

/// A card setup: the app completes it with `client_secret` (Stripe's PaymentSheet or
/// Elements in setup mode), then calls `.../card-setups/{setup_id}/complete`.
#[derive(Serialize, ToSchema)]
pub struct CardSetupDto {
    /// The provider's setup (a Stripe SetupIntent id).
    pub setup_id: String,
    pub client_secret: String,
}

/// A customer's card on file here (what fees are charged to).
#[derive(Serialize, ToSchema)]
pub struct CardDto {
    pub customer_id: Uuid,
    /// `stripe`.
    pub provider: String,
    /// The provider's customer (a Stripe Customer id).
    pub customer_ref: String,
    /// The provider's payment method (a Stripe PaymentMethod id).
    pub payment_method_ref: String,
    /// The completed setup it came from.
    pub setup_ref: String,
    pub saved_at: String,
    /// The establishment event that saved it.
    pub seq: u64,
}

impl CardDto {
    pub fn new(c: SavedCard, tz: &jiff::tz::TimeZone) -> Self {
        CardDto {
            customer_id: c.customer_id.0,
            provider: c.provider,
            customer_ref: c.customer_ref,
            payment_method_ref: c.payment_method_ref,
            setup_ref: c.setup_ref,
            saved_at: render(c.saved_at, tz),
            seq: c.seq,
        }
    }
}

/// A no-show and its fee.
#[derive(Serialize, ToSchema)]
pub struct NoShowDto {
    pub booking: BookingDto,
    /// The no-show fee, when the booking's policy charges one to a card on file: as it
    /// stands after the charge (`succeeded`, or `failed` with the decline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee: Option<PaymentDto>,
}

/// The fees.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum FeeKindName {
    NoShow,
    LateCancel,
}

#[utoipa::path(post, path = "/v1/establishments/{id}/card-setups", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 201, body = CardSetupDto, description = "a card setup for the caller, for off-session fees"),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_card_setup(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<(StatusCode, Json<CardSetupDto>), ApiError> {
    let payments = service_of(&state)?;
    let (_view, caller) = resolve(&state, &auth, est(id)).await?;
    let key = key.unwrap_or_else(crate::fees::fresh_key);
    let setup = payments
        .start_card_setup(est(id), caller.user_id, &key)
        .await?;
    let client_secret = setup.client_secret.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PaymentProvider,
            "the provider gave no client secret",
        )
    })?;
    Ok((
        StatusCode::CREATED,
        Json(CardSetupDto {
            setup_id: setup.id,
            client_secret,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/card-setups/{setup_id}/complete", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("setup_id" = String, Path, description = "the provider's setup id (Stripe: `seti_...`)", pattern = "^[A-Za-z0-9_]{1,255}$")),
    responses((status = 200, body = CardDto, description = "the card, saved once the server read the completed setup at the provider"),
        (status = 404, description = "no such setup of the caller here", body = ErrorBody),
        (status = 409, description = "the setup is not complete yet", body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn complete_card_setup(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, setup_id)): ApiPath<(Uuid, String)>,
) -> Result<Json<CardDto>, ApiError> {
    let payments = service_of(&state)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let card = payments
        .finish_card_setup(est(id), caller.user_id, &setup_id)
        .await?;
    Ok(Json(CardDto::new(card, view.timezone())))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/card", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CardDto, description = "the caller's card on file here"), (status = 404, body = ErrorBody)))]
pub async fn get_card(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<CardDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let card = view
        .state()
        .cards
        .get(&caller.user_id)
        .map(|c| (**c).clone())
        .ok_or_else(|| ApiError::not_found("card"))?;
    Ok(Json(CardDto::new(card, view.timezone())))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings/{booking_id}/no-show", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses((status = 200, body = NoShowDto, description = "the booking is no_show; its no-show fee, if the booking's policy has one, is charged once to the card on file (marking again charges nothing more)"),
        (status = 403, description = "not a member of this establishment", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the booking has not started, or is cancelled or completed", body = ErrorBody)))]
pub async fn mark_no_show(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<NoShowDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    let command = Command::MarkNoShow {
        booking_id: BookingId(booking_id),
    };
    let marked = change_booking(&state, est(id), caller, booking_id, command, key, &view).await;
    // Marked already (a retry, or a concurrent mark): the fee is still made sure of.
    let booking = match marked {
        Ok(booking) => booking,
        Err(e) if e.rejection.code == ErrorCode::Conflict => {
            match marked_elsewhere(&state, id, booking_id).await? {
                Some(booking) => booking,
                None => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let fee = no_show_fee(&state, id, caller, booking_id).await?;
    Ok(Json(NoShowDto {
        booking,
        fee: fee.map(|p| PaymentDto::new(p, view.timezone())),
    }))
}

/// The no-show fee of a booking marked no-show, charged if its policy has one and the
/// customer has a card. A failed charge leaves the fee `failed` (or in flight, for the
/// sweeper) rather than failing the no-show, which is recorded.
/// The booking as another request marked it no-show, once that mark is durable. The
/// actor refuses a second mark as soon as it has decided the first, but the view (what
/// this reads) follows the first's commit, which may still be in flight: wait for it,
/// boundedly. `None` if the booking is not (or, its commit failing, never becomes)
/// no-show.
async fn marked_elsewhere(
    state: &AppState,
    id: Uuid,
    booking_id: Uuid,
) -> Result<Option<BookingDto>, ApiError> {
    /// A group commit answers within milliseconds; the request timeout (10 s) bounds
    /// a stalled one anyway.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = state.engine.view(est(id)).await.map_err(ApiError::from)?;
        if let Some(b) = now.booking(BookingId(booking_id))
            && b.status == navaro_protocol::BookingStatus::NoShow
        {
            return Ok(Some(BookingDto::new(b, now.timezone())));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn no_show_fee(
    state: &AppState,
    id: Uuid,
    caller: navaro_protocol::Caller,
    booking_id: Uuid,
) -> Result<Option<navaro_protocol::Payment>, ApiError> {
    let Some(payments) = state.payments.as_deref() else {
        return Ok(None);
    };
    let view = state.engine.view(est(id)).await.map_err(ApiError::from)?;
    let Some(booking) = view.booking(BookingId(booking_id)) else {
        return Ok(None);
    };
    let charges = booking
        .payment_policy
        .as_deref()
        .is_some_and(|p| p.mode == PaymentMode::CardOnFile && p.no_show_fee(1_000_000) > 0)
        && view.state().cards.contains_key(&booking.customer_id);
    if !charges {
        return Ok(None);
    }
    match payments
        .charge_fee(est(id), caller, BookingId(booking_id), FeeKind::NoShow)
        .await
    {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::warn!(booking_id = %booking_id, error = %e.rejection.message, "no-show fee not charged now; the sweeper retries it");
            payments
                .fee(est(id), BookingId(booking_id), FeeKind::NoShow)
                .await
        }
    }
}

#[utoipa::path(get, path = "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path), ("fee" = FeeKindName, Path)),
    responses((status = 200, body = PaymentDto), (status = 404, description = "no such fee, or not the caller's", body = ErrorBody)))]
pub async fn get_fee(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id, fee)): ApiPath<(Uuid, Uuid, FeeKind)>,
) -> Result<Json<PaymentDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let payment = navaro_engine::domain::fees::fee_of(view.state(), BookingId(booking_id), fee)
        .filter(|p| caller.role.is_member() || p.customer_id == caller.user_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("fee"))?;
    Ok(Json(PaymentDto::new(payment, view.timezone())))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}/charge", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path), ("fee" = FeeKindName, Path)),
    responses((status = 200, body = PaymentDto, description = "the fee after its charge: charged once, whatever the retries (a declined one is `failed` and may be charged again)"),
        (status = 403, description = "not a member of this establishment", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "no such fee is due: not a no-show, no late cancellation, no fee in the booking's policy, no card on file, or waived", body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn charge_fee(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id, fee)): ApiPath<(Uuid, Uuid, FeeKind)>,
) -> Result<Json<PaymentDto>, ApiError> {
    let payments = service_of(&state)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    let payment = payments
        .charge_fee(est(id), caller, BookingId(booking_id), fee)
        .await?;
    if payment.status == navaro_protocol::PaymentStatus::Waived {
        return Err(ApiError::new(ErrorCode::Conflict, "the fee was waived"));
    }
    Ok(Json(PaymentDto::new(payment, view.timezone())))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings/{booking_id}/fees/{fee}/waive", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path), ("fee" = FeeKindName, Path)),
    responses((status = 200, body = PaymentDto, description = "the fee, waived: it is never charged"),
        (status = 403, description = "not a member of this establishment", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "already charged, or being charged", body = ErrorBody)))]
pub async fn waive_fee(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id, fee)): ApiPath<(Uuid, Uuid, FeeKind)>,
) -> Result<Json<PaymentDto>, ApiError> {
    let payments = service_of(&state)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    let payment = navaro_engine::domain::fees::fee_of(view.state(), BookingId(booking_id), fee)
        .cloned()
        .ok_or_else(|| ApiError::not_found("fee"))?;
    let payment = payments.waive_fee(est(id), caller, &payment).await?;
    Ok(Json(PaymentDto::new(payment, view.timezone())))
}
