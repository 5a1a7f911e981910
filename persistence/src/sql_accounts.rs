//! [`SqlAccounts`]: the [`AccountStore`] on Postgres or SQLite.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_protocol::{EstablishmentId, UserId};

use crate::accounts::{
    AccountError, AccountStore, CREATION_KEY_TTL_SECONDS, MemberRole, Membership, User,
    normalize_email,
};
use crate::backend::{Backend, UserRow, overloaded_or, parse_role};

pub(crate) struct SqlAccounts {
    pub backend: Arc<dyn Backend>,
}

fn unavailable(e: sqlx::Error) -> AccountError {
    overloaded_or(&e, AccountError::Overloaded, AccountError::Unavailable)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

fn role(stored: &str) -> Result<MemberRole, AccountError> {
    parse_role(stored)
        .ok_or_else(|| AccountError::Unavailable(format!("stored role {stored:?} is unknown")))
}

/// A `users` row as a [`User`]. Instants are stored to the microsecond.
fn user(row: UserRow) -> Result<User, AccountError> {
    let (id, email, name, password_hash, created_us) = row;
    let created_at = jiff::Timestamp::from_microsecond(created_us)
        .map_err(|e| AccountError::Unavailable(format!("user {id}: stored created_at: {e}")))?;
    Ok(User {
        id: UserId(id),
        email,
        name,
        password_hash,
        created_at,
    })
}

/// The user as the store keeps it: normalized email, instant truncated to microseconds.
fn as_stored(mut u: User) -> Result<User, AccountError> {
    u.email = normalize_email(&u.email);
    u.created_at = jiff::Timestamp::from_microsecond(u.created_at.as_microsecond())
        .map_err(|e| AccountError::Unavailable(e.to_string()))?;
    Ok(u)
}

impl AccountStore for SqlAccounts {
    fn create_user(&self, user: User) -> BoxFuture<'_, Result<User, AccountError>> {
        async move {
            let user = as_stored(user)?;
            match self.backend.insert_user(&user).await {
                Ok(()) => Ok(user),
                Err(e) if is_unique_violation(&e) => Err(AccountError::EmailTaken),
                Err(e) => Err(unavailable(e)),
            }
        }
        .boxed()
    }

    fn user_by_email(&self, email: &str) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        let email = normalize_email(email);
        async move {
            let row = self
                .backend
                .user_by_email(&email)
                .await
                .map_err(unavailable)?;
            row.map(user).transpose()
        }
        .boxed()
    }

    fn user_by_id(&self, id: UserId) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        async move {
            let row = self.backend.user_by_id(id.0).await.map_err(unavailable)?;
            row.map(user).transpose()
        }
        .boxed()
    }

    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, Result<(), AccountError>> {
        async move {
            match self
                .backend
                .upsert_membership(membership)
                .await
                .map_err(unavailable)?
            {
                true => Ok(()),
                false => Err(AccountError::NoSuchUser),
            }
        }
        .boxed()
    }

    fn memberships_of(
        &self,
        user_id: UserId,
    ) -> BoxFuture<'_, Result<Vec<Membership>, AccountError>> {
        async move {
            let rows = self
                .backend
                .memberships_of(user_id.0)
                .await
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(est, r)| {
                    Ok(Membership {
                        user_id,
                        establishment_id: EstablishmentId(est),
                        role: role(&r)?,
                    })
                })
                .collect()
        }
        .boxed()
    }

    fn role_at(
        &self,
        user_id: UserId,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<MemberRole>, AccountError>> {
        async move {
            let stored = self
                .backend
                .role_at(user_id.0, establishment_id.0)
                .await
                .map_err(unavailable)?;
            stored.as_deref().map(role).transpose()
        }
        .boxed()
    }

    fn claim_creation_key(
        &self,
        user_id: UserId,
        key: &str,
        candidate: EstablishmentId,
        now: jiff::Timestamp,
    ) -> BoxFuture<'_, Result<EstablishmentId, AccountError>> {
        let key = key.to_string();
        let now_s = now.as_second();
        async move {
            match self
                .backend
                .claim_creation_key(
                    user_id.0,
                    &key,
                    candidate.0,
                    now_s,
                    now_s - CREATION_KEY_TTL_SECONDS,
                )
                .await
            {
                Ok(id) => Ok(EstablishmentId(id)),
                Err(e) if is_foreign_key_violation(&e) => Err(AccountError::NoSuchUser),
                Err(e) => Err(unavailable(e)),
            }
        }
        .boxed()
    }
}
