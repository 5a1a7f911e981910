//! A person's own data (LGPD Art. 18: access and deletion): `GET /v1/me/export` and
//! `DELETE /v1/me` ask every [`PersonalData`] provider in [`providers`] in turn. A
//! module that keeps data about people (push devices, payments, discovery) adds its
//! provider to the list; the routes do not change.
//!
//! Erasure is by unlinking, not by rewriting history. Journal payloads and snapshots
//! refer to a customer only by their opaque user id (`customer_id`); what ties that id
//! to a person (email, name, password, sessions, memberships) lives in the accounts
//! tables, and erasure deletes it there, leaving the `users` row as a tombstone of the
//! id. This is crypto-shredding with the accounts row as the key: the journal stays
//! append-only, compressed and untouched (rewriting it would mean decoding and
//! re-encoding every event and snapshot of every establishment the person visited,
//! and replacing the state of live actors under their feet), and every establishment
//! keeps its booking counts and revenue, which are counted by id. What the journal
//! still holds in free text about a person is listed in docs/api.md ("Your data").

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use navaro_protocol::UserId;
use serde_json::{Value, json};

use crate::dto::ExportResponse;
use crate::error::ApiError;
use crate::state::AppState;

/// The most bookings an export lists (all of a person's bookings, in practice).
pub const EXPORT_BOOKINGS_LIMIT: usize = 10_000;

/// One kind of personal data: what the export shows and what erasure removes.
pub trait PersonalData: Send + Sync {
    /// The key of this provider's part of the export.
    fn name(&self) -> &'static str;
    /// Everything this provider holds about `user`, as JSON.
    fn export<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<Value, ApiError>>;
    /// Remove or anonymise it. Providers run in list order; the account's own row last.
    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Every provider, in erasure order.
pub fn providers() -> Vec<Box<dyn PersonalData>> {
    vec![
        Box::new(Bookings),
        Box::new(Notifications),
        Box::new(Sessions),
        Box::new(Account),
    ]
}

/// The most push messages an export lists (newest first).
pub const EXPORT_PUSHES_LIMIT: i64 = 1_000;

/// Push devices, notification preferences and the push messages sent to the person
/// (the notify crate's tables); erasure deletes them all, so that nothing is pushed to
/// a deleted account's phones.
struct Notifications;

impl PersonalData for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn export<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        async move {
            let Some(notify) = &state.notify else {
                return Ok(Value::Null);
            };
            let db = &notify.db;
            let devices = db.devices_of(user.0).await.map_err(ApiError::unavailable)?;
            let disabled = db.opt_outs(user.0).await.map_err(ApiError::unavailable)?;
            let pushes = db
                .pushes_to(user.0, EXPORT_PUSHES_LIMIT)
                .await
                .map_err(ApiError::unavailable)?;
            let instant = |us: i64| Timestamp::from_microsecond(us).map(|t| t.to_string()).ok();
            Ok(json!({
                "devices": devices.iter().map(|d| json!({
                    "token": d.token,
                    "platform": d.platform,
                    "active": d.active,
                    "created_at": instant(d.created_at_us),
                })).collect::<Vec<_>>(),
                "disabled_kinds": disabled,
                "pushes": pushes.into_iter().map(|(kind, payload, status, at)| json!({
                    "event_type": kind,
                    "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::String(payload)),
                    "status": status,
                    "created_at": instant(at),
                })).collect::<Vec<_>>(),
            }))
        }
        .boxed()
    }

    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        async move {
            if let Some(notify) = &state.notify {
                notify
                    .db
                    .erase_user(user.0)
                    .await
                    .map_err(ApiError::unavailable)?;
            }
            Ok(())
        }
        .boxed()
    }
}

/// The account: profile and memberships; erasure makes the row a tombstone and drops
/// memberships, sessions and creation keys in one transaction.
struct Account;

impl PersonalData for Account {
    fn name(&self) -> &'static str {
        "account"
    }

    fn export<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        async move {
            let accounts = &state.stores.accounts;
            let found = accounts
                .user_by_id(user)
                .await
                .map_err(ApiError::store)?
                .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
            let memberships = accounts
                .memberships_of(user)
                .await
                .map_err(ApiError::store)?;
            Ok(json!({
                "id": found.id.0,
                "email": found.email,
                "name": found.name,
                "created_at": found.created_at.to_string(),
                "memberships": memberships.iter().map(|m| json!({
                    "establishment_id": m.establishment_id.0,
                    "role": m.role.as_str(),
                })).collect::<Vec<_>>(),
            }))
        }
        .boxed()
    }

    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        async move {
            let tombstone = format!("erased-{}@erased.invalid", user.0.simple());
            state
                .stores
                .sessions
                .erase_account(user, tombstone)
                .await
                .map_err(ApiError::store)?;
            state.sessions.forget_user(user);
            Ok(())
        }
        .boxed()
    }
}

/// Sign-in sessions (devices); erased with the account.
struct Sessions;

impl PersonalData for Sessions {
    fn name(&self) -> &'static str {
        "sessions"
    }

    fn export<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        async move {
            let sessions = state
                .stores
                .sessions
                .sessions_of(user)
                .await
                .map_err(ApiError::store)?;
            let instant = |s: i64| Timestamp::from_second(s).map(|t| t.to_string()).ok();
            Ok(Value::Array(
                sessions
                    .iter()
                    .map(|s| {
                        json!({
                            "id": s.id,
                            "created_at": Timestamp::from_microsecond(s.created_at_us).map(|t| t.to_string()).ok(),
                            "expires_at": instant(s.expires_at_s),
                            "revoked_at": s.revoked_at_s.and_then(instant),
                        })
                    })
                    .collect(),
            ))
        }
        .boxed()
    }

    fn erase<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        async move {
            // Revoked here so that this node refuses the tokens at once; the rows go
            // with the account.
            state.sessions.revoke_all(user, Timestamp::now()).await
        }
        .boxed()
    }
}

/// Bookings made as a customer. They stay with their establishments (its agenda,
/// counts and revenue), under the now unlinked id; the export lists them.
struct Bookings;

impl PersonalData for Bookings {
    fn name(&self) -> &'static str {
        "bookings"
    }

    fn export<'a>(
        &'a self,
        state: &'a AppState,
        user: UserId,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        async move {
            let bookings = state
                .stores
                .bookings
                .bookings_of_customer(user, EXPORT_BOOKINGS_LIMIT)
                .await
                .map_err(ApiError::store)?;
            let rendered = bookings
                .into_iter()
                .map(|b| {
                    serde_json::to_value(crate::dto::BookingDto::new(b, &jiff::tz::TimeZone::UTC))
                        .map_err(ApiError::internal)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(rendered))
        }
        .boxed()
    }

    fn erase<'a>(
        &'a self,
        _state: &'a AppState,
        _user: UserId,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        futures::future::ready(Ok(())).boxed()
    }
}

/// The whole export: every provider's part under its name.
pub async fn export(state: &AppState, user: UserId) -> Result<ExportResponse, ApiError> {
    let mut data = serde_json::Map::new();
    for provider in providers() {
        data.insert(
            provider.name().to_owned(),
            provider.export(state, user).await?,
        );
    }
    Ok(ExportResponse {
        user_id: user.0,
        exported_at: Timestamp::now().to_string(),
        data,
    })
}

/// Erase through every provider, in order.
pub async fn erase(state: &AppState, user: UserId) -> Result<(), ApiError> {
    for provider in providers() {
        provider.erase(state, user).await?;
    }
    Ok(())
}
