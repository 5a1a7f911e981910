//! Users and establishment memberships: who may log in, and who is a member where.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use jiff::Timestamp;
use navaro_protocol::{EstablishmentId, UserId};
use serde::{Deserialize, Serialize};

/// A registered user. Every user is a customer; memberships make some of them pros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// Stored lowercased and trimmed; unique.
    pub email: String,
    pub name: String,
    /// An argon2id PHC string; never leaves the server.
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// A member's role at one establishment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Owner,
    Staff,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Staff => "staff",
        }
    }
}

/// A user's membership of one establishment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub user_id: UserId,
    pub establishment_id: EstablishmentId,
    pub role: MemberRole,
}

/// Why an account operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("email already registered")]
    EmailTaken,
    #[error("no such user")]
    NoSuchUser,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Every connection stayed busy for the whole acquire timeout: the database is up
    /// but overloaded, and a retry after a moment is expected to succeed.
    #[error("store overloaded: {0}")]
    Overloaded(String),
}

/// How long a creation key names its establishment: as long as the engine keeps the
/// establishment's own keys, so that a retry within it is replayed by the establishment
/// and a key reused after it makes a new one.
pub const CREATION_KEY_TTL_SECONDS: i64 = navaro_engine::domain::idempotency::KEY_TTL_SECONDS;

/// Users and memberships.
pub trait AccountStore: Send + Sync + 'static {
    /// Insert a user; `EmailTaken` if the (normalized) email exists.
    fn create_user(&self, user: User) -> BoxFuture<'_, Result<User, AccountError>>;
    fn user_by_email(&self, email: &str) -> BoxFuture<'_, Result<Option<User>, AccountError>>;
    fn user_by_id(&self, id: UserId) -> BoxFuture<'_, Result<Option<User>, AccountError>>;
    /// Add a membership, or change the role of an existing one. `NoSuchUser` when the
    /// user does not exist.
    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, Result<(), AccountError>>;
    fn memberships_of(
        &self,
        user_id: UserId,
    ) -> BoxFuture<'_, Result<Vec<Membership>, AccountError>>;
    fn role_at(
        &self,
        user_id: UserId,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<MemberRole>, AccountError>>;
    /// The establishment that `user_id`'s creation keyed `key` makes: `candidate` on the
    /// first claim, the first claim's establishment on every later one (concurrent
    /// claims included) until [`CREATION_KEY_TTL_SECONDS`] after it, when `candidate`
    /// replaces it. `NoSuchUser` when the user does not exist.
    fn claim_creation_key(
        &self,
        user_id: UserId,
        key: &str,
        candidate: EstablishmentId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<EstablishmentId, AccountError>>;
}

/// Accounts in process memory, for tests.
#[derive(Clone, Default)]
pub struct MemoryAccounts {
    inner: Arc<Mutex<MemoryAccountsInner>>,
}

#[derive(Default)]
struct MemoryAccountsInner {
    users: HashMap<UserId, User>,
    by_email: HashMap<String, UserId>,
    memberships: HashMap<(UserId, EstablishmentId), MemberRole>,
    creation_keys: HashMap<(UserId, String), (EstablishmentId, i64)>,
}

impl MemoryAccounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replace a user's password hash; false when there is no such user.
    pub fn set_password_hash(&self, user_id: UserId, password_hash: String) -> bool {
        match self.lock().users.get_mut(&user_id) {
            Some(user) => {
                user.password_hash = password_hash;
                true
            }
            None => false,
        }
    }

    /// Make a user a tombstone (see `SessionStore::erase_account`); false when there is
    /// no such user.
    pub fn erase(&self, user_id: UserId, tombstone_email: String) -> bool {
        let mut inner = self.lock();
        let Some(user) = inner.users.get_mut(&user_id) else {
            return false;
        };
        let old_email = std::mem::replace(&mut user.email, tombstone_email.clone());
        user.name = String::new();
        user.password_hash = "!".to_owned();
        inner.by_email.remove(&old_email);
        inner.by_email.insert(tombstone_email, user_id);
        inner.memberships.retain(|(user, _), _| *user != user_id);
        inner.creation_keys.retain(|(user, _), _| *user != user_id);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryAccountsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The canonical form of an email for uniqueness and lookup.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl AccountStore for MemoryAccounts {
    fn create_user(&self, mut user: User) -> BoxFuture<'_, Result<User, AccountError>> {
        user.email = normalize_email(&user.email);
        let mut inner = self.lock();
        let result = if inner.by_email.contains_key(&user.email) {
            Err(AccountError::EmailTaken)
        } else {
            inner.by_email.insert(user.email.clone(), user.id);
            inner.users.insert(user.id, user.clone());
            Ok(user)
        };
        Box::pin(async move { result })
    }

    fn user_by_email(&self, email: &str) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        let inner = self.lock();
        let user = inner
            .by_email
            .get(&normalize_email(email))
            .and_then(|id| inner.users.get(id))
            .cloned();
        Box::pin(async move { Ok(user) })
    }

    fn user_by_id(&self, id: UserId) -> BoxFuture<'_, Result<Option<User>, AccountError>> {
        let user = self.lock().users.get(&id).cloned();
        Box::pin(async move { Ok(user) })
    }

    fn upsert_membership(&self, membership: Membership) -> BoxFuture<'_, Result<(), AccountError>> {
        let mut inner = self.lock();
        let result = if inner.users.contains_key(&membership.user_id) {
            inner.memberships.insert(
                (membership.user_id, membership.establishment_id),
                membership.role,
            );
            Ok(())
        } else {
            Err(AccountError::NoSuchUser)
        };
        Box::pin(async move { result })
    }

    fn memberships_of(
        &self,
        user_id: UserId,
    ) -> BoxFuture<'_, Result<Vec<Membership>, AccountError>> {
        let mut list: Vec<Membership> = self
            .lock()
            .memberships
            .iter()
            .filter(|((user, _), _)| *user == user_id)
            .map(|((user_id, establishment_id), role)| Membership {
                user_id: *user_id,
                establishment_id: *establishment_id,
                role: *role,
            })
            .collect();
        list.sort_by_key(|m| m.establishment_id);
        Box::pin(async move { Ok(list) })
    }

    fn role_at(
        &self,
        user_id: UserId,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<MemberRole>, AccountError>> {
        let role = self
            .lock()
            .memberships
            .get(&(user_id, establishment_id))
            .copied();
        Box::pin(async move { Ok(role) })
    }

    fn claim_creation_key(
        &self,
        user_id: UserId,
        key: &str,
        candidate: EstablishmentId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<EstablishmentId, AccountError>> {
        let now_s = now.as_second();
        let mut inner = self.lock();
        let result = if inner.users.contains_key(&user_id) {
            let claim = inner
                .creation_keys
                .entry((user_id, key.to_string()))
                .or_insert((candidate, now_s));
            if claim.1 < now_s - CREATION_KEY_TTL_SECONDS {
                *claim = (candidate, now_s);
            }
            Ok(claim.0)
        } else {
            Err(AccountError::NoSuchUser)
        };
        Box::pin(async move { result })
    }
}
