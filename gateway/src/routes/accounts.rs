//! Register, login, and the caller's own account and bookings.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use navaro_persistence::accounts::{AccountError, User};
use navaro_protocol::{ErrorCode, UserId};
use uuid::Uuid;

use crate::auth::{AuthUser, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
use crate::dto::*;
use crate::error::{ApiError, ErrorBody};
use crate::limits::ClientIp;
use crate::state::AppState;
use crate::wire::{ApiJson, IdempotencyKey};

/// The most bookings `GET /v1/me/bookings` returns (most recent first).
pub const MY_BOOKINGS_LIMIT: usize = 200;

/// Longest display name accepted.
const NAME_MAX_CHARS: usize = 100;

/// An email as RFC 5321 bounds it, with an `@` between non-empty parts; the real check
/// is the confirmation mail a later issue sends.
fn parse_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid("email", "not a valid email address"))
    }
}

fn parse_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if (PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "password",
            format!("must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"),
        ))
    }
}

fn parse_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {NAME_MAX_CHARS} characters"),
        ));
    }
    Ok(name.to_owned())
}

#[utoipa::path(post, path = "/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse, description = "registered, or, with an Idempotency-Key, the account this body registered earlier"),
        (status = 409, description = "email taken", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    state.limits.check_login(ip)?;
    let email = parse_email(&body.email)?;
    parse_password(&body.password)?;
    let name = parse_name(&body.name)?;
    let password = body.password;
    let password_hash = state
        .passwords
        .hash(password.clone())
        .await
        .map_err(ApiError::internal)?;
    let now = Timestamp::now();
    let user = User {
        id: UserId(Uuid::now_v7()),
        email: email.clone(),
        name: name.clone(),
        password_hash,
        created_at: now,
    };
    let user = match state.stores.accounts.create_user(user).await {
        Ok(user) => user,
        Err(AccountError::EmailTaken) => {
            let earlier = match key {
                Some(_) => registered_by(&state, &email, password, &name).await?,
                None => None,
            };
            match earlier {
                Some(user) => user,
                None => {
                    return Err(ApiError::from(navaro_protocol::Rejection::field(
                        ErrorCode::Conflict,
                        "email",
                        "email already registered",
                    )));
                }
            }
        }
        Err(e) => return Err(ApiError::store(e)),
    };
    let issued = state.sessions.start(&state.tokens, &user, now).await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user: UserDto {
                id: user.id.0,
                email: user.email,
                name: user.name,
            },
            token: issued.access_token,
            expires_at: issued.expires_at.to_string(),
            refresh_token: issued.refresh_token,
            refresh_expires_at: issued.refresh_expires_at.to_string(),
            session_id: issued.session_id,
        }),
    ))
}

/// The account under `email` if this same body (password and name) registered it: a
/// keyed registration whose answer was lost is retried, and gets that account (with a
/// new token) instead of 409. Users keep no keys, so any key does: what it proves is
/// the password, as a login does, under the same rate limit.
async fn registered_by(
    state: &AppState,
    email: &str,
    password: String,
    name: &str,
) -> Result<Option<User>, ApiError> {
    let Some(user) = state
        .stores
        .accounts
        .user_by_email(email)
        .await
        .map_err(ApiError::store)?
    else {
        return Ok(None);
    };
    let verified = state
        .passwords
        .verify(password, Some(user.password_hash.clone()))
        .await;
    Ok((verified && user.name == name).then_some(user))
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    state.limits.check_login(ip)?;
    let user = state
        .stores
        .accounts
        .user_by_email(&body.email)
        .await
        .map_err(ApiError::store)?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = body.password.chars().take(PASSWORD_MAX_CHARS).collect();
    let verified = state.passwords.verify(password, hash).await;
    match user {
        Some(user) if verified && state.disabled.contains(user.id) => {
            Err(ApiError::from(navaro_protocol::Rejection::new(
                navaro_protocol::ErrorCode::AccountDisabled,
                "this account has been disabled by the platform",
            )))
        }
        Some(user) if verified => {
            let issued = state
                .sessions
                .start(&state.tokens, &user, Timestamp::now())
                .await?;
            Ok(Json(issued.into()))
        }
        _ => Err(ApiError::unauthorized("invalid email or password")),
    }
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = LoginResponse, description = "a new access token and a new refresh token; the one sent is retired"),
        (status = 401, body = ErrorBody, description = "unknown, expired or revoked refresh token; a retired one (used before) also revokes its session")))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let issued = state
        .sessions
        .refresh(
            &state.tokens,
            state.stores.accounts.as_ref(),
            &body.refresh_token,
            Timestamp::now(),
        )
        .await?;
    Ok(Json(issued.into()))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "this device's session is revoked: its access and refresh tokens no longer work")))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    if let Some(sid) = auth.session_id {
        state
            .sessions
            .revoke(sid, auth.user_id, Timestamp::now())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "every session of the caller is revoked (sign out everywhere), this one included")))]
pub async fn logout_all(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, ApiError> {
    state
        .sessions
        .revoke_all(auth.user_id, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/me/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses((status = 200, body = LoginResponse, description = "changed: every session is revoked, and a new one starts for this device"),
        (status = 401, body = ErrorBody, description = "the current password is wrong, or the token is not good")))]
pub async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // Guessing the current password from a stolen token is a login attempt.
    state.limits.check_login(ip)?;
    parse_password(&body.new_password).map_err(|_| {
        ApiError::invalid(
            "new_password",
            format!("must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"),
        )
    })?;
    let user = state
        .stores
        .accounts
        .user_by_id(auth.user_id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    let current = body
        .current_password
        .chars()
        .take(PASSWORD_MAX_CHARS)
        .collect();
    if !state
        .passwords
        .verify(current, Some(user.password_hash.clone()))
        .await
    {
        return Err(ApiError::unauthorized("the current password is wrong"));
    }
    let hash = state
        .passwords
        .hash(body.new_password)
        .await
        .map_err(ApiError::internal)?;
    let now = Timestamp::now();
    state
        .stores
        .sessions
        .change_password(auth.user_id, hash, now.as_second())
        .await
        .map_err(ApiError::store)?;
    state.sessions.forget_user(auth.user_id);
    tracing::info!(user_id = %auth.user_id, "password changed; every session revoked");
    let issued = state.sessions.start(&state.tokens, &user, now).await?;
    Ok(Json(issued.into()))
}

#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
pub async fn me(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<MeResponse>, ApiError> {
    let accounts = &state.stores.accounts;
    let user = accounts
        .user_by_id(auth.user_id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    let memberships = accounts
        .memberships_of(auth.user_id)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(MeResponse {
        id: user.id.0,
        email: user.email,
        name: user.name,
        admin: auth.admin,
        memberships: memberships
            .into_iter()
            .map(|m| MembershipDto {
                establishment_id: m.establishment_id.0,
                role: m.role.as_str().to_owned(),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/v1/me/bookings", tag = "bookings", security(("bearer" = [])),
    responses((status = 200, body = BookingsResponse), (status = 401, body = ErrorBody)))]
pub async fn my_bookings(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<BookingsResponse>, ApiError> {
    let bookings = state
        .stores
        .bookings
        .bookings_of_customer(auth.user_id, MY_BOOKINGS_LIMIT)
        .await
        .map_err(ApiError::store)?;
    let mut zones: HashMap<_, TimeZone> = HashMap::new();
    let mut out = Vec::with_capacity(bookings.len());
    for booking in bookings {
        let id = booking.establishment_id;
        let tz = match zones.get(&id) {
            Some(tz) => tz.clone(),
            None => {
                // Another node may own it: asked there (UTC only if nobody can tell
                // now: the same instant, in another offset).
                let tz = crate::live_remote::zone_of(&state, id)
                    .await
                    .unwrap_or(TimeZone::UTC);
                zones.insert(id, tz.clone());
                tz
            }
        };
        out.push(BookingDto::new(booking, &tz));
    }
    Ok(Json(BookingsResponse { bookings: out }))
}

#[utoipa::path(get, path = "/v1/me/export", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = ExportResponse, description = "everything Navaro holds about the caller (LGPD Art. 18)")))]
pub async fn export_me(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ExportResponse>, ApiError> {
    Ok(Json(crate::personal::export(&state, auth.user_id).await?))
}

#[utoipa::path(delete, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses((status = 204, description = "the account is erased: every session ends, the email and name are gone, and bookings stay with their establishments under an id that no longer names anyone"),
        (status = 401, body = ErrorBody, description = "wrong password"),
        (status = 409, body = ErrorBody, description = "conflict: the caller owns an establishment; close it or hand it over first")))]
pub async fn delete_me(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    ApiJson(body): ApiJson<DeleteAccountRequest>,
) -> Result<StatusCode, ApiError> {
    state.limits.check_login(ip)?;
    let accounts = &state.stores.accounts;
    let user = accounts
        .user_by_id(auth.user_id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    let password = body.password.chars().take(PASSWORD_MAX_CHARS).collect();
    if !state
        .passwords
        .verify(password, Some(user.password_hash.clone()))
        .await
    {
        return Err(ApiError::unauthorized("wrong password"));
    }
    let memberships = accounts
        .memberships_of(auth.user_id)
        .await
        .map_err(ApiError::store)?;
    if memberships
        .iter()
        .any(|m| m.role == navaro_persistence::MemberRole::Owner)
    {
        return Err(ApiError::from(navaro_protocol::Rejection::new(
            ErrorCode::Conflict,
            "you own an establishment: close it or hand it over before deleting your account",
        )));
    }
    crate::personal::erase(&state, auth.user_id).await?;
    tracing::info!(user_id = %auth.user_id, "account erased");
    Ok(StatusCode::NO_CONTENT)
}
