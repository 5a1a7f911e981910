//! `/v1/admin/...`: the platform team's routes. Every one needs a platform admin (by
//! configuration: `auth.admin_emails`, `auth.admin_user_ids`); anyone else gets 403
//! (401 without a token).
//!
//! Every action (suspend, reinstate, disable) is recorded in the audit log before it is
//! carried out, so no action happens unrecorded; an action that then fails gets a second
//! entry saying so. The log is append-only in the database (triggers refuse UPDATE and
//! DELETE) and the API offers no route that changes it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use jiff::Timestamp;
use navaro_persistence::{AuditEntry, UserSummary};
use navaro_protocol::{Caller, Command, ErrorCode, EstablishmentId, Rejection, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::discovery::{SearchParams, admin_search};
use super::establishments::{execute, view_of};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::{ApiJson, ApiPath, ApiQuery};

/// Longest reason an admin may give (shown to the owner, kept forever).
pub const MAX_REASON_CHARS: usize = navaro_engine::domain::decide::MAX_REASON_CHARS;
/// Page size bounds of the admin's lists.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = navaro_persistence::directory::MAX_PAGE;

/// A platform admin, or the request is refused.
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.admin {
            return Err(ApiError::from(Rejection::new(
                ErrorCode::Forbidden,
                "platform admins only",
            )));
        }
        Ok(AdminUser(user))
    }
}

/// Why an admin acts; shown to whom it concerns and kept in the audit log.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// 1 to 500 printable characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

fn reason(body: ReasonRequest) -> Result<String, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty()
        || reason.chars().count() > MAX_REASON_CHARS
        || reason.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "reason",
            format!("reason must be 1 to {MAX_REASON_CHARS} printable characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// An establishment as the admin sees it.
#[derive(Serialize, ToSchema)]
pub struct AdminEstablishmentDto {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub category: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub timezone: String,
    pub services: Vec<String>,
    /// Why it is suspended; null while active.
    pub suspended_reason: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminEstablishmentPage {
    pub establishments: Vec<AdminEstablishmentDto>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/establishments", tag = "admin", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = AdminEstablishmentPage, description = "the discovery search's parameters and order, suspended establishments included"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_establishments(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<AdminEstablishmentPage>, ApiError> {
    let (hits, next_cursor) = admin_search(&state, params).await?;
    let establishments = hits
        .into_iter()
        .map(|hit| {
            let l = hit.listing;
            AdminEstablishmentDto {
                id: l.id,
                owner_id: l.owner_id.0,
                name: l.name,
                category: l.category,
                address: l.address,
                latitude: l.latitude,
                longitude: l.longitude,
                timezone: l.timezone,
                services: l.services,
                suspended_reason: l.suspended_reason,
                created_at: l.created_at.to_string(),
                distance_m: hit.distance_m,
            }
        })
        .collect();
    Ok(Json(AdminEstablishmentPage {
        establishments,
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    /// Text the email or the name contains (case-insensitive), 1 to 200 characters,
    /// not only spaces.
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
    pub q: Option<String>,
    /// From a previous page's `next_cursor` (a user id).
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserDto {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
}

impl From<UserSummary> for AdminUserDto {
    fn from(u: UserSummary) -> Self {
        AdminUserDto {
            id: u.id,
            email: u.email,
            name: u.name,
            created_at: u.created_at.to_string(),
            disabled: u.disabled_reason.is_some(),
            disabled_reason: u.disabled_reason,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserPage {
    /// By id.
    pub users: Vec<AdminUserDto>,
    pub next_cursor: Option<String>,
}

fn page_size(raw: &Option<String>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("limit must be 1 to {MAX_PAGE}"))),
    }
}

#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserParams),
    responses((status = 200, body = AdminUserPage), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<UserParams>,
) -> Result<Json<AdminUserPage>, ApiError> {
    let limit = page_size(&params.limit)?;
    let text = match params.q {
        Some(q) if q.trim().is_empty() || q.chars().count() > 200 => {
            return Err(ApiError::invalid("q", "q must be 1 to 200 characters"));
        }
        Some(q) => Some(q.trim().to_owned()),
        None => None,
    };
    let after = match params.cursor {
        Some(c) => Some(
            Uuid::try_parse(&c)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this list gave"))?,
        ),
        None => None,
    };
    let users = state
        .stores
        .directory
        .search_users(text, after, limit)
        .await
        .map_err(ApiError::store)?;
    let next_cursor = (users.len() == limit)
        .then(|| users.last().map(|u| u.id.to_string()))
        .flatten();
    Ok(Json(AdminUserPage {
        users: users.into_iter().map(AdminUserDto::from).collect(),
        next_cursor,
    }))
}

/// What an admin action answers.
#[derive(Serialize, ToSchema)]
pub struct AdminActionDto {
    /// The audit log entry that records the action.
    pub audit_id: i64,
    pub target_id: Uuid,
    /// `establishment.suspend`, `establishment.reinstate` or `user.disable`.
    pub action: String,
    pub reason: String,
}

/// Record an action before it is carried out.
async fn record(
    state: &AppState,
    admin: &AuthUser,
    action: &str,
    target_kind: &str,
    target: Uuid,
    reason: &str,
    detail: serde_json::Value,
) -> Result<AuditEntry, ApiError> {
    let entry = AuditEntry {
        id: 0,
        at: Timestamp::now(),
        admin_id: admin.user_id.0,
        action: action.to_owned(),
        target_kind: target_kind.to_owned(),
        target_id: Some(target),
        reason: reason.to_owned(),
        detail: detail.to_string(),
    };
    state
        .stores
        .directory
        .append_audit(entry)
        .await
        .map_err(ApiError::store)
}

/// Record that a recorded action then failed (best effort: the first entry stands).
async fn record_failure(state: &AppState, admin: &AuthUser, first: &AuditEntry, error: &ApiError) {
    let detail =
        serde_json::json!({"failed_entry": first.id, "code": error.rejection.code.as_str()});
    let failed = format!("{}.failed", first.action);
    let target = first.target_id.unwrap_or_default();
    if let Err(e) = record(
        state,
        admin,
        &failed,
        &first.target_kind,
        target,
        &first.reason,
        detail,
    )
    .await
    {
        tracing::error!(audit_id = first.id, error = %e.rejection.code, "admin action failure not recorded");
    }
}

async fn suspension(
    state: &AppState,
    admin: &AuthUser,
    id: Uuid,
    body: ReasonRequest,
    suspend: bool,
) -> Result<Json<AdminActionDto>, ApiError> {
    let reason = reason(body)?;
    let establishment = EstablishmentId(id);
    // Checked before recording, so that the log holds actions, not typos: the
    // establishment exists and is in the state the action changes.
    let view = view_of(state, establishment).await?;
    if view.suspended().is_some() == suspend {
        let message = if suspend {
            "the establishment is already suspended"
        } else {
            "the establishment is not suspended"
        };
        return Err(ApiError::from(Rejection::new(ErrorCode::Conflict, message)));
    }
    let action = if suspend {
        "establishment.suspend"
    } else {
        "establishment.reinstate"
    };
    let entry = record(
        state,
        admin,
        action,
        "establishment",
        id,
        &reason,
        serde_json::json!({}),
    )
    .await?;
    let caller = Caller {
        user_id: admin.user_id,
        role: Role::Admin,
    };
    let command = if suspend {
        Command::Suspend {
            reason: reason.clone(),
        }
    } else {
        Command::Reinstate {
            reason: reason.clone(),
        }
    };
    if let Err(e) = execute(state, establishment, caller, command, None).await {
        record_failure(state, admin, &entry, &e).await;
        return Err(e);
    }
    tracing::info!(establishment_id = %id, admin_id = %admin.user_id, action, "admin action");
    Ok(Json(AdminActionDto {
        audit_id: entry.id,
        target_id: id,
        action: action.to_owned(),
        reason,
    }))
}

#[utoipa::path(post, path = "/v1/admin/establishments/{id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AdminActionDto, description = "suspended: no new bookings, holds or walk-ins; hidden from search; the owner sees `establishment.suspended` with the reason on the live feed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already suspended", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn suspend_establishment(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<AdminActionDto>, ApiError> {
    suspension(&state, &admin, id, body, true).await
}

#[utoipa::path(post, path = "/v1/admin/establishments/{id}/reinstate", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AdminActionDto), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not suspended", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reinstate_establishment(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<AdminActionDto>, ApiError> {
    suspension(&state, &admin, id, body, false).await
}

#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonRequest,
    responses((status = 200, body = AdminActionDto, description = "disabled: the account's access tokens stop working (403 `account_disabled`), every session is revoked (refresh tokens refused) and it cannot sign in"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "already disabled, or an admin's own account", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReasonRequest>,
) -> Result<Json<AdminActionDto>, ApiError> {
    let reason = reason(body)?;
    if id == admin.user_id.0 {
        return Err(ApiError::from(Rejection::new(
            ErrorCode::Conflict,
            "an admin cannot disable their own account",
        )));
    }
    if state.disabled.contains(UserId(id)) {
        return Err(ApiError::from(Rejection::new(
            ErrorCode::Conflict,
            "the account is already disabled",
        )));
    }
    let exists = state
        .stores
        .accounts
        .user_by_id(UserId(id))
        .await
        .map_err(ApiError::store)?
        .is_some();
    if !exists {
        return Err(ApiError::from(Rejection::not_found("user")));
    }
    let action = "user.disable";
    let entry = record(
        &state,
        &admin,
        action,
        "user",
        id,
        &reason,
        serde_json::json!({}),
    )
    .await?;
    let done = state
        .stores
        .directory
        .disable_user(UserId(id), admin.user_id, reason.clone(), entry.at)
        .await
        .map_err(ApiError::store);
    match done {
        Ok(true) => {}
        Ok(false) => {
            let e = ApiError::from(Rejection::not_found("user"));
            record_failure(&state, &admin, &entry, &e).await;
            return Err(e);
        }
        Err(e) => {
            record_failure(&state, &admin, &entry, &e).await;
            return Err(e);
        }
    }
    state.disabled.insert(UserId(id));
    // Its sessions end too: the refresh tokens stop working everywhere, and another
    // node (which learns of the disabling only at its next start) refuses the access
    // tokens within `SESSION_RECHECK`, as for a sign-out everywhere.
    state.sessions.revoke_all(UserId(id), entry.at).await?;
    tracing::info!(user_id = %id, admin_id = %admin.user_id, action, "admin action");
    Ok(Json(AdminActionDto {
        audit_id: entry.id,
        target_id: id,
        action: action.to_owned(),
        reason,
    }))
}

/// The platform's counters.
#[derive(Serialize, ToSchema)]
pub struct PlatformStats {
    /// The UTC day the day counts are for, `YYYY-MM-DD`.
    pub day: String,
    /// Bookings (not cancelled) starting that day, across establishments.
    pub bookings_today: i64,
    pub active_establishments: i64,
    pub suspended_establishments: i64,
    pub users: i64,
    pub disabled_users: i64,
    /// Walk-in tickets waiting now, in the establishments this node has in memory
    /// (an establishment idle long enough to be passivated has no ticket waiting).
    pub queue_tickets_waiting: u64,
    /// Establishments this node has in memory.
    pub establishments_in_memory: u64,
    /// Answers with a 5xx status since this node started.
    pub server_errors: u64,
}

#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PlatformStats), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<PlatformStats>, ApiError> {
    let now = state.engine.now();
    let day = jiff::tz::TimeZone::UTC.to_datetime(now).date();
    let start = Timestamp::from_second(now.as_second().div_euclid(86_400) * 86_400)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let end = Timestamp::from_second(start.as_second() + 86_400).unwrap_or(start);
    let counts = state
        .stores
        .directory
        .counters(start, end)
        .await
        .map_err(ApiError::store)?;
    let views = state.engine.active_views();
    let waiting: usize = views.iter().map(|v| v.waiting_tickets()).sum();
    Ok(Json(PlatformStats {
        day: day.to_string(),
        bookings_today: counts.bookings_today,
        active_establishments: counts.active_establishments,
        suspended_establishments: counts.suspended_establishments,
        users: counts.users,
        disabled_users: counts.disabled_users,
        queue_tickets_waiting: waiting as u64,
        establishments_in_memory: views.len() as u64,
        server_errors: crate::telemetry::server_errors(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// From a previous page's `next_cursor`: entries older than it (a positive entry id).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// One audit log entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryDto {
    pub id: i64,
    pub at: String,
    pub admin_id: Uuid,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<Uuid>,
    pub reason: String,
    /// A JSON object (for a `.failed` entry: the entry that failed and the error code).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryDto>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditParams),
    responses((status = 200, body = AuditPage, description = "the append-only log of admin actions; no route changes it"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page_size(&params.limit)?;
    let before = match params.cursor {
        Some(c) => Some(
            c.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this log gave"))?,
        ),
        None => None,
    };
    let entries = state
        .stores
        .directory
        .audit(before, limit)
        .await
        .map_err(ApiError::store)?;
    let next_cursor = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.to_string()))
        .flatten();
    let entries = entries
        .into_iter()
        .map(|e| AuditEntryDto {
            id: e.id,
            at: e.at.to_string(),
            admin_id: e.admin_id,
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            reason: e.reason,
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// The accounts the platform disabled, kept in memory so that checking a token costs no
/// database round trip: loaded at start, updated when this node disables one. (Another
/// node's disabling is seen at this node's next start; one node serves until the
/// cluster work lands.)
#[derive(Default)]
pub struct DisabledUsers(dashmap::DashSet<UserId>);

impl DisabledUsers {
    pub fn new(ids: impl IntoIterator<Item = Uuid>) -> Arc<DisabledUsers> {
        Arc::new(DisabledUsers(ids.into_iter().map(UserId).collect()))
    }

    pub fn contains(&self, user: UserId) -> bool {
        !self.0.is_empty() && self.0.contains(&user)
    }

    pub fn insert(&self, user: UserId) {
        self.0.insert(user);
    }
}
