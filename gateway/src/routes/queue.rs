//! The walk-in queue: join, list, read, leave, call-next, start, finish, no-show.
//!
//! Authorization: members (and admins) act on the whole queue; a customer joins for
//! themselves and acts on their own ticket only. A customer listing the queue sees every
//! place and estimate but other people's tickets without who they are; someone else's
//! ticket by id answers 404, so ticket ids cannot be probed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::tz::TimeZone;
use navaro_protocol::{Caller, Command, EstablishmentId, Reply, Ticket, TicketId, TicketStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::establishments::{execute_rendered, resolve};
use crate::auth::AuthUser;
use crate::dto::{est, render, service, staff};
use crate::engine_api::View;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, IdempotencyKey};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinQueueRequest {
    pub service_id: Uuid,
    /// A preferred staff member; absent: whoever is free first.
    pub staff_id: Option<Uuid>,
    /// For a walk-in added by a member: the person's name, 1 to 200 printable
    /// characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallNextRequest {
    pub staff_id: Uuid,
}

/// Where a ticket stands: [`TicketStatus`]'s wire names, for the document (a test
/// checks the two name the same states).
#[derive(ToSchema)]
#[schema(as = TicketStatus, rename_all = "snake_case")]
pub enum TicketStatusName {
    Waiting,
    Called,
    InService,
    Done,
    NoShow,
    Left,
}

/// A ticket as API.md describes it.
#[derive(Serialize, ToSchema)]
pub struct TicketDto {
    pub id: Uuid,
    pub number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub service_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<Uuid>,
    #[schema(value_type = TicketStatusName)]
    pub status: TicketStatus,
    /// 1-based place among waiting tickets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// Estimated start of service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    pub joined_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl TicketDto {
    pub fn new(t: Ticket, tz: &TimeZone) -> Self {
        TicketDto {
            id: t.id.0,
            number: t.number,
            customer_id: t.customer_id.map(|c| c.0),
            name: t.name,
            service_id: t.service_id.0,
            staff_id: t.staff_id.map(|s| s.0),
            status: t.status,
            position: t.position,
            eta: t.eta.map(|e| render(e, tz)),
            joined_at: render(t.joined_at, tz),
            called_at: t.called_at.map(|e| render(e, tz)),
            started_at: t.started_at.map(|e| render(e, tz)),
            ended_at: t.ended_at.map(|e| render(e, tz)),
        }
    }

    /// Someone else's ticket as a customer sees it: its place, not who holds it.
    fn anonymous(self) -> Self {
        TicketDto {
            customer_id: None,
            name: None,
            ..self
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QueueResponse {
    /// The establishment event the list reflects (resume the live feed after it).
    pub seq: u64,
    pub tickets: Vec<TicketDto>,
}

fn mine(caller: &Caller, ticket: &Ticket) -> bool {
    caller.role.is_member() || ticket.customer_id == Some(caller.user_id)
}

/// The ticket, if this caller may act on it.
fn visible_ticket(
    state: &AppState,
    view: &View,
    caller: &Caller,
    ticket_id: Uuid,
) -> Result<Ticket, ApiError> {
    view.ticket(TicketId(ticket_id), state.engine.now())
        .filter(|t| mine(caller, t))
        .ok_or_else(|| ApiError::not_found("ticket"))
}

async fn ticket_command(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    command: Command,
    key: Option<String>,
    view: &View,
) -> Result<TicketDto, ApiError> {
    execute_rendered(
        state,
        id,
        caller,
        command,
        key,
        view,
        |reply, tz| match reply {
            Reply::Ticket(t) => Some(TicketDto::new(t, tz)),
            _ => None,
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/establishments/{id}/queue", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = JoinQueueRequest,
    responses((status = 201, body = TicketDto),
        (status = 409, description = "already in the queue (conflict), or the queue is full (limit_reached)", body = ErrorBody),
        (status = 422, description = "the staff member does not perform the service", body = ErrorBody)))]
pub async fn join_queue(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<JoinQueueRequest>,
) -> Result<(StatusCode, Json<TicketDto>), ApiError> {
    state.limits.check_booking(auth.user_id)?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let command = Command::JoinQueue {
        service_id: service(body.service_id),
        staff_id: body.staff_id.map(staff),
        name: body.name,
    };
    let ticket = ticket_command(&state, est(id), caller, command, key, &view).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/queue", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = QueueResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_queue(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<QueueResponse>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let tickets = view
        .queue(state.engine.now())
        .into_iter()
        .map(|t| {
            let own = mine(&caller, &t);
            let dto = TicketDto::new(t, view.timezone());
            if own { dto } else { dto.anonymous() }
        })
        .collect();
    Ok(Json(QueueResponse {
        seq: view.seq(),
        tickets,
    }))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/queue/{ticket_id}", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses((status = 200, body = TicketDto), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, ticket_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<TicketDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    let ticket = visible_ticket(&state, &view, &caller, ticket_id)?;
    Ok(Json(TicketDto::new(ticket, view.timezone())))
}

#[utoipa::path(delete, path = "/v1/establishments/{id}/queue/{ticket_id}", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses((status = 200, description = "the ticket, `left`", body = TicketDto), (status = 404, body = ErrorBody),
        (status = 409, description = "no longer waiting", body = ErrorBody)))]
pub async fn leave_queue(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, ticket_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<TicketDto>, ApiError> {
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    visible_ticket(&state, &view, &caller, ticket_id)?;
    let command = Command::LeaveQueue {
        ticket_id: TicketId(ticket_id),
    };
    ticket_command(&state, est(id), caller, command, key, &view)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/establishments/{id}/queue/call-next", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = CallNextRequest,
    responses((status = 200, description = "the ticket, `called`", body = TicketDto),
        (status = 403, body = ErrorBody),
        (status = 404, description = "nobody waits for that staff member", body = ErrorBody),
        (status = 409, description = "the staff member is already serving", body = ErrorBody)))]
pub async fn call_next(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CallNextRequest>,
) -> Result<Json<TicketDto>, ApiError> {
    let (view, caller) = member(&state, &auth, est(id)).await?;
    let command = Command::CallNext {
        staff_id: staff(body.staff_id),
    };
    ticket_command(&state, est(id), caller, command, key, &view)
        .await
        .map(Json)
}

async fn member(
    state: &AppState,
    auth: &AuthUser,
    id: EstablishmentId,
) -> Result<(std::sync::Arc<View>, Caller), ApiError> {
    let (view, caller) = resolve(state, auth, id).await?;
    if !caller.role.is_member() {
        return Err(ApiError::forbidden());
    }
    Ok((view, caller))
}

/// Start, finish or no-show: members only.
async fn step(
    state: AppState,
    auth: AuthUser,
    id: Uuid,
    key: Option<String>,
    command: Command,
) -> Result<Json<TicketDto>, ApiError> {
    let (view, caller) = member(&state, &auth, est(id)).await?;
    ticket_command(&state, est(id), caller, command, key, &view)
        .await
        .map(Json)
}

#[utoipa::path(post, path = "/v1/establishments/{id}/queue/{ticket_id}/start", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses((status = 200, body = TicketDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, ticket_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<TicketDto>, ApiError> {
    step(
        state,
        auth,
        id,
        key,
        Command::StartTicket {
            ticket_id: TicketId(ticket_id),
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/establishments/{id}/queue/{ticket_id}/finish", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses((status = 200, body = TicketDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn finish_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, ticket_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<TicketDto>, ApiError> {
    step(
        state,
        auth,
        id,
        key,
        Command::FinishTicket {
            ticket_id: TicketId(ticket_id),
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/establishments/{id}/queue/{ticket_id}/no-show", tag = "queue", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("ticket_id" = Uuid, Path)),
    responses((status = 200, body = TicketDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn no_show_ticket(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, ticket_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Json<TicketDto>, ApiError> {
    step(
        state,
        auth,
        id,
        key,
        Command::NoShowTicket {
            ticket_id: TicketId(ticket_id),
        },
    )
    .await
}
