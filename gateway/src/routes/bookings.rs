//! Bookings: create, list, read, cancel, reschedule.
//!
//! Authorization: members (and admins) see and act on the whole agenda; a customer only
//! on their own bookings. Someone else's booking answers 404, not 403, so that booking
//! ids cannot be probed.
//!
//! An establishment's actor keeps a window of its history (a week of past bookings by
//! default, `engine.history_days`); older bookings are read from the bookings read model,
//! which keeps every booking: a date before the window is listed from it, a booking by
//! id that left the window is found in it, and cancelling or rescheduling one is refused
//! with `booking_archived` (409). That is a choice: such a booking ended over a week ago,
//! and changing it would need the actor to decide about a booking it no longer holds
//! (its calendar, its customer's count); the owners' records of it stay as they were.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use navaro_protocol::{Booking, BookingId, Caller, Command, ErrorCode, EstablishmentId, Reply};
use uuid::Uuid;

use super::establishments::{execute_rendered, parse_date, resolve};
use crate::auth::AuthUser;
use crate::dto::*;
use crate::engine_api::View;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, ApiQuery, IdempotencyKey};

/// Where a booking was found.
enum Found {
    /// In the establishment's view: inside its history window.
    InWindow(Booking),
    /// In the bookings read model only: it left the window.
    Archived(Booking),
}

/// The booking, if this caller may see it: from the view, or from the read model once it
/// has left the history window.
async fn visible_booking(
    state: &AppState,
    view: &View,
    caller: &Caller,
    booking_id: Uuid,
) -> Result<Found, ApiError> {
    let may_see = |b: &Booking| caller.role.is_member() || b.customer_id == caller.user_id;
    if let Some(booking) = view.booking(BookingId(booking_id)) {
        return if may_see(&booking) {
            Ok(Found::InWindow(booking))
        } else {
            Err(ApiError::not_found("booking"))
        };
    }
    if view.history_from().is_none() {
        // Nothing has left this establishment's window: the view holds every booking.
        return Err(ApiError::not_found("booking"));
    }
    let archived = state
        .stores
        .bookings
        .booking(view.id(), BookingId(booking_id))
        .await
        .map_err(ApiError::store)?;
    match archived {
        Some(booking) if may_see(&booking) => Ok(Found::Archived(booking)),
        _ => Err(ApiError::not_found("booking")),
    }
}

/// A command on a booking the caller may see. One that left the history window is still
/// sent to the actor, which refuses it `not_found` unless it replays a keyed first
/// answer (a retry of a change made just before the booking left the window gets that
/// answer, as any retry does); the refusal is told as `booking_archived`.
pub(crate) async fn change_booking(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    booking_id: Uuid,
    command: Command,
    key: Option<String>,
    view: &View,
) -> Result<BookingDto, ApiError> {
    let archived = match visible_booking(state, view, &caller, booking_id).await? {
        Found::InWindow(_) => false,
        Found::Archived(_) => true,
    };
    match booking_command(state, id, caller, command, key, view).await {
        Err(refused) if archived && refused.code() == ErrorCode::NotFound => Err(ApiError::new(
            ErrorCode::BookingArchived,
            "the booking ended before the establishment's history window and can no longer be changed",
        )),
        answer => answer,
    }
}

async fn booking_command(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    command: Command,
    key: Option<String>,
    view: &View,
) -> Result<BookingDto, ApiError> {
    execute_rendered(
        state,
        id,
        caller,
        command,
        key,
        view,
        |reply, tz| match reply {
            Reply::Booking(b) => Some(BookingDto::new(b, tz)),
            _ => None,
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = BookRequest,
    responses((status = 201, body = BookingDto),
        (status = 409, description = "slot_unavailable, with alternatives; promotion_unavailable", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn create_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BookRequest>,
) -> Result<(StatusCode, Json<BookingDto>), ApiError> {
    state.limits.check_booking(auth.user_id)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    if body.customer_id.is_some_and(|c| c != auth.user_id.0) && !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    let promotion = match &body.promotion_code {
        Some(code) => Some(crate::routes::plugins::promotion_terms(&state, &view, code).await?),
        None => None,
    };
    let command = Command::Book {
        service_id: service(body.service_id),
        start: body.start,
        staff_id: body.staff_id.map(staff),
        customer_id: body.customer_id.map(user),
        promotion,
    };
    let booking = booking_command(&state, est(id), caller, command, key, &view).await?;
    Ok((StatusCode::CREATED, Json(booking)))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/bookings", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path), DateParams),
    responses((status = 200, body = BookingsResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_bookings(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<DateParams>,
) -> Result<Json<BookingsResponse>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let date = parse_date("date", &params.date)?;
    let only = (!caller.role.is_member()).then_some(caller.user_id);
    let listed = if view.holds_day(date) {
        view.bookings_on(date, only)
    } else {
        // The day starts before the history window: the read model has all of it.
        let (from, to) = view.day_span(date);
        state
            .stores
            .bookings
            .bookings_of_establishment(view.id(), from, to)
            .await
            .map_err(ApiError::store)?
    };
    let bookings = listed
        .into_iter()
        .filter(|b| only.is_none_or(|c| b.customer_id == c))
        .map(|b| BookingDto::new(b, view.timezone()))
        .collect();
    Ok(Json(BookingsResponse { bookings }))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/bookings/{booking_id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses((status = 200, body = BookingDto), (status = 404, body = ErrorBody)))]
pub async fn get_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<BookingDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let (Found::InWindow(booking) | Found::Archived(booking)) =
        visible_booking(&state, &view, &caller, booking_id).await?;
    Ok(Json(BookingDto::new(booking, view.timezone())))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings/{booking_id}/cancel", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses((status = 200, body = BookingDto), (status = 404, body = ErrorBody),
        (status = 409, description = "already cancelled, past the cancellation cutoff, or booking_archived (ended before the history window)", body = ErrorBody)))]
pub async fn cancel_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<BookingDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let command = Command::Cancel {
        booking_id: BookingId(booking_id),
    };
    let booking = change_booking(&state, est(id), caller, booking_id, command, key, &view).await?;
    // A paid booking's refund by policy (docs/payments.md); the sweeper retries it if
    // the provider fails now.
    if let Some(payments) = &state.payments {
        payments
            .refund_cancelled(est(id), BookingId(booking_id))
            .await;
    }
    Ok(Json(booking))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/bookings/{booking_id}/reschedule", tag = "bookings", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("booking_id" = Uuid, Path)), request_body = RescheduleRequest,
    responses((status = 200, body = BookingDto), (status = 404, body = ErrorBody),
        (status = 409, description = "slot_unavailable: the booking is unchanged; booking_archived: it ended before the history window", body = ErrorBody)))]
pub async fn reschedule_booking(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, booking_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RescheduleRequest>,
) -> Result<Json<BookingDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let command = Command::Reschedule {
        booking_id: BookingId(booking_id),
        start: body.start,
        staff_id: body.staff_id.map(staff),
    };
    change_booking(&state, est(id), caller, booking_id, command, key, &view)
        .await
        .map(Json)
}
