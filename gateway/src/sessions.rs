//! Sign-in sessions: short-lived access tokens and rotating refresh tokens.
//!
//! Signing in (register, login, a password change) starts a session: one device's
//! family of refresh tokens. A refresh token is `<family_key>.<secret>`, both random;
//! the store keeps only the SHA-256 of the current secret. `POST /v1/auth/refresh`
//! trades the current refresh token for a new pair and retires it; presenting a retired
//! one again means two parties hold the family (the OAuth 2.0 Security Best Current
//! Practice, RFC 9700 §4.14.2), so the whole session is revoked, the legitimate device
//! included, which then signs in again.
//!
//! Access tokens name their session (`sid`), so revoking a session (sign out, sign out
//! everywhere, a password change, a reuse) revokes them too. The check is on the hot
//! path of every authenticated request, so it reads a [`DashMap`] of sessions seen
//! lately; a session is read from the store at most once per [`SESSION_RECHECK`] per
//! node. Revocations on this node take effect at once; on another node within
//! [`SESSION_RECHECK`]. Should the store be unreachable when a session is not in the
//! cache, the token is accepted (its signature and expiry are checked): a revoked
//! token then works on a node that never saw it only for as long as the outage and its
//! own expiry (15 minutes by default) both last, while an outage does not sign every
//! user out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use dashmap::DashMap;
use jiff::Timestamp;
use navaro_persistence::sessions::{Session, SessionStore};
use navaro_persistence::{AccountStore, User};
use navaro_protocol::UserId;
use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::TokenKeys;
use crate::error::ApiError;

/// How long a session's state read from the store is trusted: the longest another
/// node keeps accepting the access tokens of a session revoked elsewhere.
pub const SESSION_RECHECK: Duration = Duration::from_secs(30);

/// How often cache entries past [`SESSION_RECHECK`] are dropped (they would be read
/// again anyway), so the cache holds the sessions active lately and no more.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Random bytes in a family key (128 bits: unguessable, and short in a token).
const FAMILY_KEY_BYTES: usize = 16;
/// Random bytes in a refresh token's secret (256 bits).
const SECRET_BYTES: usize = 32;
/// The longest refresh token looked at: two base64url parts and a dot (others are
/// refused before any work).
const MAX_REFRESH_TOKEN_CHARS: usize = 128;

/// A new pair of tokens, as the sign-in and refresh routes answer them.
#[derive(Debug)]
pub struct Issued {
    pub session_id: Uuid,
    pub access_token: String,
    pub expires_at: Timestamp,
    pub refresh_token: String,
    pub refresh_expires_at: Timestamp,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    user_id: UserId,
    live: bool,
    read_at: Instant,
}

/// Sessions: start, refresh, revoke, and the per-request check.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    refresh_ttl_seconds: i64,
    seen: DashMap<Uuid, Entry>,
}

fn random_part(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn refused(message: &'static str) -> ApiError {
    ApiError::unauthorized(message)
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, refresh_ttl_days: u32) -> Sessions {
        Sessions {
            store,
            refresh_ttl_seconds: i64::from(refresh_ttl_days) * 86_400,
            seen: DashMap::new(),
        }
    }

    fn remember(&self, id: Uuid, user_id: UserId, live: bool) {
        self.seen.insert(
            id,
            Entry {
                user_id,
                live,
                read_at: Instant::now(),
            },
        );
    }

    fn pair(
        &self,
        tokens: &TokenKeys,
        user: &User,
        session_id: Uuid,
        family_key: &str,
        secret: &str,
        now: Timestamp,
    ) -> Issued {
        let (access_token, expires_at) = tokens.issue(user.id, &user.email, Some(session_id), now);
        let refresh_expires_at = Timestamp::from_second(now.as_second() + self.refresh_ttl_seconds)
            .unwrap_or(Timestamp::MAX);
        Issued {
            session_id,
            access_token,
            expires_at,
            refresh_token: format!("{family_key}.{secret}"),
            refresh_expires_at,
        }
    }

    /// Start a session for `user` (a sign-in).
    pub async fn start(
        &self,
        tokens: &TokenKeys,
        user: &User,
        now: Timestamp,
    ) -> Result<Issued, ApiError> {
        let family_key = random_part(FAMILY_KEY_BYTES);
        let secret = random_part(SECRET_BYTES);
        let session = Session {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_key: family_key.clone(),
            refresh_hash: digest(&secret),
            created_at_us: now.as_microsecond(),
            expires_at_s: now.as_second() + self.refresh_ttl_seconds,
            revoked_at_s: None,
        };
        let id = session.id;
        self.store
            .insert_session(session)
            .await
            .map_err(ApiError::store)?;
        self.remember(id, user.id, true);
        metrics::counter!("navaro_sessions_started_total").increment(1);
        Ok(self.pair(tokens, user, id, &family_key, &secret, now))
    }

    /// Trade a refresh token for a new pair; a retired one revokes its session.
    pub async fn refresh(
        &self,
        tokens: &TokenKeys,
        accounts: &dyn AccountStore,
        refresh_token: &str,
        now: Timestamp,
    ) -> Result<Issued, ApiError> {
        let invalid = "invalid, expired or revoked refresh token";
        if refresh_token.len() > MAX_REFRESH_TOKEN_CHARS {
            return Err(refused(invalid));
        }
        let Some((family_key, secret)) = refresh_token.split_once('.') else {
            return Err(refused(invalid));
        };
        let session = self
            .store
            .session_by_family(family_key)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| refused(invalid))?;
        if session.revoked_at_s.is_some() || session.expires_at_s < now.as_second() {
            return Err(refused(invalid));
        }
        let presented = digest(secret);
        if presented != session.refresh_hash {
            return Err(self.reused(&session, now).await);
        }
        let user = accounts
            .user_by_id(session.user_id)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| refused(invalid))?;
        let next = random_part(SECRET_BYTES);
        let rotated = self
            .store
            .rotate_session(
                session.id,
                presented,
                digest(&next),
                now.as_second() + self.refresh_ttl_seconds,
            )
            .await
            .map_err(ApiError::store)?;
        if !rotated {
            // Another refresh with the same token won the race, or a revocation did:
            // the same token used twice either way.
            return Err(self.reused(&session, now).await);
        }
        self.remember(session.id, session.user_id, true);
        Ok(self.pair(tokens, &user, session.id, family_key, &next, now))
    }

    /// A retired refresh token was presented: revoke its session.
    async fn reused(&self, session: &Session, now: Timestamp) -> ApiError {
        tracing::warn!(
            user_id = %session.user_id,
            session_id = %session.id,
            "refresh token reused; session revoked"
        );
        metrics::counter!("navaro_sessions_reuse_revoked_total").increment(1);
        if let Err(e) = self.revoke(session.id, session.user_id, now).await {
            return e;
        }
        refused("refresh token already used; the session is revoked, sign in again")
    }

    /// Revoke one session (sign out on this device).
    pub async fn revoke(&self, id: Uuid, user_id: UserId, now: Timestamp) -> Result<(), ApiError> {
        self.remember(id, user_id, false);
        self.store
            .revoke_session(id, now.as_second())
            .await
            .map_err(ApiError::store)
    }

    /// Revoke every session of a user (sign out everywhere, a password change).
    pub async fn revoke_all(&self, user_id: UserId, now: Timestamp) -> Result<(), ApiError> {
        let ids = self
            .store
            .revoke_sessions_of(user_id, now.as_second())
            .await
            .map_err(ApiError::store)?;
        self.forget_user(user_id);
        for id in ids {
            self.remember(id, user_id, false);
        }
        Ok(())
    }

    /// Mark every cached session of a user revoked (after the store revoked them).
    pub fn forget_user(&self, user_id: UserId) {
        for mut entry in self.seen.iter_mut() {
            if entry.user_id == user_id {
                entry.live = false;
            }
        }
    }

    /// Whether the session an access token names is still live: from the cache when
    /// read within [`SESSION_RECHECK`], else from the store (see the module's note on
    /// an unreachable store).
    pub async fn is_live(&self, id: Uuid, user_id: UserId) -> bool {
        if let Some(entry) = self.seen.get(&id).map(|e| *e)
            && entry.read_at.elapsed() < SESSION_RECHECK
        {
            return entry.live && entry.user_id == user_id;
        }
        match self.store.session_by_id(id).await {
            Ok(found) => {
                let live = found.is_some_and(|s| s.revoked_at_s.is_none() && s.user_id == user_id);
                self.remember(id, user_id, live);
                live
            }
            Err(e) => {
                metrics::counter!("navaro_sessions_check_failed_total").increment(1);
                tracing::warn!(error = %e, session_id = %id, "session check failed; accepting the signed token");
                self.seen.get(&id).is_none_or(|e| e.live)
            }
        }
    }

    /// Drop entries past [`SESSION_RECHECK`] every minute.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(sessions) = weak.upgrade() else {
                    return;
                };
                sessions
                    .seen
                    .retain(|_, e| e.read_at.elapsed() < SESSION_RECHECK);
            }
        });
    }
}
