//! Sign-in sessions: one per signed-in device, each the family of refresh tokens that
//! device has been given. Only a hash of the current refresh token is stored (the
//! gateway makes and hashes tokens; this store never sees one), so a copy of the
//! database signs nobody in. A session ends when it is revoked (sign out, sign out
//! everywhere, a password change, a reused refresh token) or its refresh token expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use navaro_protocol::UserId;
use uuid::Uuid;

use crate::accounts::AccountError;

/// One session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Named by access tokens (`sid`), so that revoking the session revokes them.
    pub id: Uuid,
    pub user_id: UserId,
    /// Random, in every refresh token of the session (never in access tokens): finds
    /// the session from a refresh token, and only a holder of one of its refresh tokens
    /// knows it.
    pub family_key: String,
    /// SHA-256 of the current refresh token's secret.
    pub refresh_hash: Vec<u8>,
    /// Microseconds since the epoch.
    pub created_at_us: i64,
    /// Seconds since the epoch: when the current refresh token stops being accepted.
    pub expires_at_s: i64,
    /// Seconds since the epoch; `None` while the session is live.
    pub revoked_at_s: Option<i64>,
}

/// Sessions, by id and by family key.
pub trait SessionStore: Send + Sync + 'static {
    fn insert_session(&self, session: Session) -> BoxFuture<'_, Result<(), AccountError>>;
    fn session_by_family(
        &self,
        family_key: &str,
    ) -> BoxFuture<'_, Result<Option<Session>, AccountError>>;
    fn session_by_id(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Session>, AccountError>>;
    /// Replace the refresh hash `old` by `new` (and the expiry) if it is still current
    /// and the session live: false when another refresh won the race, or the session
    /// was revoked meanwhile.
    fn rotate_session(
        &self,
        id: Uuid,
        old: Vec<u8>,
        new: Vec<u8>,
        expires_at_s: i64,
    ) -> BoxFuture<'_, Result<bool, AccountError>>;
    /// Revoke one session (no-op if already revoked).
    fn revoke_session(&self, id: Uuid, now_s: i64) -> BoxFuture<'_, Result<(), AccountError>>;
    /// Revoke every live session of a user; returns their ids.
    fn revoke_sessions_of(
        &self,
        user_id: UserId,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>>;
    /// Every session of a user, newest first (for the user's data export).
    fn sessions_of(&self, user_id: UserId) -> BoxFuture<'_, Result<Vec<Session>, AccountError>>;
    /// Set a user's password hash and revoke every live session of theirs, in one
    /// transaction (a password change must not leave a session the old password
    /// opened); returns the revoked sessions' ids. `NoSuchUser` when there is none.
    fn change_password(
        &self,
        user_id: UserId,
        password_hash: String,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>>;
    /// Erase an account's personal data (LGPD Art. 18), in one transaction: its
    /// sessions, memberships and creation keys are deleted, and the `users` row becomes
    /// a tombstone: email `tombstone_email` (unique, so the real address is free to
    /// register again), no name, and a password hash no password matches. The row
    /// itself stays so that the opaque id in journal payloads and the bookings read
    /// model stays an id of nobody. `NoSuchUser` when there is none.
    fn erase_account(
        &self,
        user_id: UserId,
        tombstone_email: String,
    ) -> BoxFuture<'_, Result<(), AccountError>>;
}

/// Sessions in process memory, for tests; passwords are changed in `accounts`.
#[derive(Clone, Default)]
pub struct MemorySessions {
    inner: Arc<Mutex<HashMap<Uuid, Session>>>,
    accounts: crate::accounts::MemoryAccounts,
}

impl MemorySessions {
    /// Sessions of the users in `accounts`.
    pub fn new(accounts: crate::accounts::MemoryAccounts) -> MemorySessions {
        MemorySessions {
            inner: Arc::default(),
            accounts,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Session>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SessionStore for MemorySessions {
    fn insert_session(&self, session: Session) -> BoxFuture<'_, Result<(), AccountError>> {
        self.lock().insert(session.id, session);
        Box::pin(async { Ok(()) })
    }

    fn session_by_family(
        &self,
        family_key: &str,
    ) -> BoxFuture<'_, Result<Option<Session>, AccountError>> {
        let found = self
            .lock()
            .values()
            .find(|s| s.family_key == family_key)
            .cloned();
        Box::pin(async move { Ok(found) })
    }

    fn session_by_id(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Session>, AccountError>> {
        let found = self.lock().get(&id).cloned();
        Box::pin(async move { Ok(found) })
    }

    fn rotate_session(
        &self,
        id: Uuid,
        old: Vec<u8>,
        new: Vec<u8>,
        expires_at_s: i64,
    ) -> BoxFuture<'_, Result<bool, AccountError>> {
        let mut sessions = self.lock();
        let rotated = match sessions.get_mut(&id) {
            Some(s) if s.refresh_hash == old && s.revoked_at_s.is_none() => {
                s.refresh_hash = new;
                s.expires_at_s = expires_at_s;
                true
            }
            _ => false,
        };
        Box::pin(async move { Ok(rotated) })
    }

    fn revoke_session(&self, id: Uuid, now_s: i64) -> BoxFuture<'_, Result<(), AccountError>> {
        if let Some(s) = self.lock().get_mut(&id) {
            s.revoked_at_s.get_or_insert(now_s);
        }
        Box::pin(async { Ok(()) })
    }

    fn revoke_sessions_of(
        &self,
        user_id: UserId,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>> {
        let mut ids = Vec::new();
        for s in self.lock().values_mut() {
            if s.user_id == user_id && s.revoked_at_s.is_none() {
                s.revoked_at_s = Some(now_s);
                ids.push(s.id);
            }
        }
        Box::pin(async move { Ok(ids) })
    }

    fn sessions_of(&self, user_id: UserId) -> BoxFuture<'_, Result<Vec<Session>, AccountError>> {
        let mut list: Vec<Session> = self
            .lock()
            .values()
            .filter(|s| s.user_id == user_id)
            .cloned()
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.created_at_us));
        Box::pin(async move { Ok(list) })
    }

    fn change_password(
        &self,
        user_id: UserId,
        password_hash: String,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>> {
        Box::pin(async move {
            if !self.accounts.set_password_hash(user_id, password_hash) {
                return Err(AccountError::NoSuchUser);
            }
            self.revoke_sessions_of(user_id, now_s).await
        })
    }

    fn erase_account(
        &self,
        user_id: UserId,
        tombstone_email: String,
    ) -> BoxFuture<'_, Result<(), AccountError>> {
        self.lock().retain(|_, s| s.user_id != user_id);
        let erased = self.accounts.erase(user_id, tombstone_email);
        Box::pin(async move {
            if erased {
                Ok(())
            } else {
                Err(AccountError::NoSuchUser)
            }
        })
    }
}

/// The pool a [`SqlSessions`] runs on. The statements are written once, with `$n`
/// placeholders, which both databases accept.
#[derive(Clone)]
pub(crate) enum SessionPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A `sessions` row: (id, user_id, family_key, refresh_hash, created_at µs, expires_at
/// s, revoked_at s).
type SessionRow = (Uuid, Uuid, String, Vec<u8>, i64, i64, Option<i64>);

/// The columns of a [`SessionRow`], in its order (a macro, for `concat!`).
macro_rules! session_columns {
    () => {
        "id, user_id, family_key, refresh_hash, created_at, expires_at, revoked_at"
    };
}

fn session(row: SessionRow) -> Session {
    let (id, user_id, family_key, refresh_hash, created_at_us, expires_at_s, revoked_at_s) = row;
    Session {
        id,
        user_id: UserId(user_id),
        family_key,
        refresh_hash,
        created_at_us,
        expires_at_s,
        revoked_at_s,
    }
}

/// [`SessionStore`] on Postgres or SQLite. Its calls are not behind the journal's
/// breaker (they are few: sign-in, refresh, sign-out, and the gateway's cached checks);
/// each is bounded by `call_timeout` instead, so an unreachable database answers
/// `unavailable` rather than holding a request.
pub(crate) struct SqlSessions {
    pub pool: SessionPool,
    pub call_timeout: std::time::Duration,
}

/// Run one query on whichever pool: `$q` is an expression building the query from
/// `sqlx::query*` functions, `$run` the executor method applied to the pool.
macro_rules! on_pool {
    ($self:ident, |$pool:ident| $body:expr) => {{
        let call = async {
            match &$self.pool {
                SessionPool::Postgres($pool) => $body,
                SessionPool::Sqlite($pool) => $body,
            }
        };
        match tokio::time::timeout($self.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(crate::backend::overloaded_or(
                &e,
                AccountError::Overloaded,
                AccountError::Unavailable,
            )),
            Err(_) => Err(AccountError::Unavailable(
                "session store call timed out".into(),
            )),
        }
    }};
}

impl SessionStore for SqlSessions {
    fn insert_session(&self, s: Session) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(async move {
            let sql = concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            );
            on_pool!(self, |pool| {
                sqlx::query(sql)
                    .bind(s.id)
                    .bind(s.user_id.0)
                    .bind(&s.family_key)
                    .bind(&s.refresh_hash)
                    .bind(s.created_at_us)
                    .bind(s.expires_at_s)
                    .bind(s.revoked_at_s)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
    }

    fn session_by_family(
        &self,
        family_key: &str,
    ) -> BoxFuture<'_, Result<Option<Session>, AccountError>> {
        let family_key = family_key.to_owned();
        Box::pin(async move {
            let sql = concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE family_key = $1"
            );
            let row: Option<SessionRow> = on_pool!(self, |pool| {
                sqlx::query_as(sql)
                    .bind(&family_key)
                    .fetch_optional(pool)
                    .await
            })?;
            Ok(row.map(session))
        })
    }

    fn session_by_id(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Session>, AccountError>> {
        Box::pin(async move {
            let sql = concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE id = $1"
            );
            let row: Option<SessionRow> = on_pool!(self, |pool| {
                sqlx::query_as(sql).bind(id).fetch_optional(pool).await
            })?;
            Ok(row.map(session))
        })
    }

    fn rotate_session(
        &self,
        id: Uuid,
        old: Vec<u8>,
        new: Vec<u8>,
        expires_at_s: i64,
    ) -> BoxFuture<'_, Result<bool, AccountError>> {
        Box::pin(async move {
            let sql = "UPDATE sessions SET refresh_hash = $1, expires_at = $2
                WHERE id = $3 AND refresh_hash = $4 AND revoked_at IS NULL";
            let rows = on_pool!(self, |pool| {
                sqlx::query(sql)
                    .bind(&new)
                    .bind(expires_at_s)
                    .bind(id)
                    .bind(&old)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })?;
            Ok(rows == 1)
        })
    }

    fn revoke_session(&self, id: Uuid, now_s: i64) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(async move {
            let sql = "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
            on_pool!(self, |pool| {
                sqlx::query(sql)
                    .bind(now_s)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
    }

    fn revoke_sessions_of(
        &self,
        user_id: UserId,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>> {
        Box::pin(async move {
            let sql = "UPDATE sessions SET revoked_at = $1
                WHERE user_id = $2 AND revoked_at IS NULL RETURNING id";
            on_pool!(self, |pool| {
                sqlx::query_scalar(sql)
                    .bind(now_s)
                    .bind(user_id.0)
                    .fetch_all(pool)
                    .await
            })
        })
    }

    fn change_password(
        &self,
        user_id: UserId,
        password_hash: String,
        now_s: i64,
    ) -> BoxFuture<'_, Result<Vec<Uuid>, AccountError>> {
        Box::pin(async move {
            let set = "UPDATE users SET password_hash = $1 WHERE id = $2";
            let revoke = "UPDATE sessions SET revoked_at = $1
                WHERE user_id = $2 AND revoked_at IS NULL RETURNING id";
            let outcome: Option<Vec<Uuid>> = on_pool!(self, |pool| {
                async {
                    let mut tx = pool.begin().await?;
                    let found = sqlx::query(set)
                        .bind(&password_hash)
                        .bind(user_id.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if found == 0 {
                        return Ok(None);
                    }
                    let ids: Vec<Uuid> = sqlx::query_scalar(revoke)
                        .bind(now_s)
                        .bind(user_id.0)
                        .fetch_all(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(Some(ids))
                }
                .await
            })?;
            outcome.ok_or(AccountError::NoSuchUser)
        })
    }

    fn erase_account(
        &self,
        user_id: UserId,
        tombstone_email: String,
    ) -> BoxFuture<'_, Result<(), AccountError>> {
        Box::pin(async move {
            let found = on_pool!(self, |pool| {
                async {
                    let mut tx = pool.begin().await?;
                    for sql in [
                        "DELETE FROM sessions WHERE user_id = $1",
                        "DELETE FROM memberships WHERE user_id = $1",
                        "DELETE FROM creation_keys WHERE user_id = $1",
                    ] {
                        sqlx::query(sql).bind(user_id.0).execute(&mut *tx).await?;
                    }
                    let found = sqlx::query(
                        "UPDATE users SET email = $1, name = '', password_hash = '!' WHERE id = $2",
                    )
                    .bind(&tombstone_email)
                    .bind(user_id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    Ok(found)
                }
                .await
            })?;
            if found == 0 {
                return Err(AccountError::NoSuchUser);
            }
            Ok(())
        })
    }

    fn sessions_of(&self, user_id: UserId) -> BoxFuture<'_, Result<Vec<Session>, AccountError>> {
        Box::pin(async move {
            let sql = concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = $1 ORDER BY created_at DESC"
            );
            let rows: Vec<SessionRow> = on_pool!(self, |pool| {
                sqlx::query_as(sql).bind(user_id.0).fetch_all(pool).await
            })?;
            Ok(rows.into_iter().map(session).collect())
        })
    }
}
