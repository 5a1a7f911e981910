//! Who is calling: passwords, access tokens, and the extractors that turn a request's
//! credentials into an [`AuthUser`] and, per establishment, into a protocol [`Caller`].
//!
//! Passwords are hashed with argon2id at OWASP's recommended parameters (19 MiB, two
//! passes, one lane) on the blocking pool, at most [`MAX_CONCURRENT_HASHES`] at once so
//! a burst of logins costs bounded memory. Tokens are HS256 JWTs; the algorithm is
//! pinned, and `exp`, `iss` and `aud` are checked. Each token names its key with `kid`,
//! so keys rotate by adding the new signing key and keeping the old one for verification
//! until the old tokens have expired. A verified token is remembered (at most
//! [`VERIFIED_TOKENS`] of them) until it expires, so a client's later requests skip the
//! signature and the claims' parsing.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jiff::Timestamp;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use navaro_config::Settings;
use navaro_persistence::accounts::MemberRole;
use navaro_protocol::{Caller, EstablishmentId, Role, UserId};
use password_hash::rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Argon2id hashes running at once. Each takes 19 MiB and a core for tens of
/// milliseconds; more than the core count in parallel only adds memory and latency.
pub const MAX_CONCURRENT_HASHES: usize = 4;

/// Password length bounds: NIST SP 800-63B asks for at least 8; the upper bound keeps a
/// megabyte "password" from being hashed.
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// Why credentials were refused (all are 401 for the client, without telling which).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token key id unknown or missing")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Password hashing and verification.
pub struct Passwords {
    permits: Semaphore,
    /// A hash of a random password, verified against when the email is unknown, so
    /// that a login's duration does not reveal whether the account exists.
    dummy_hash: String,
}

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Passwords {
    pub fn new() -> Result<Self, AuthError> {
        Ok(Passwords {
            permits: Semaphore::new(MAX_CONCURRENT_HASHES),
            dummy_hash: hash_blocking(&Uuid::new_v4().to_string())?,
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// Verify `password` against `hash`, or against the dummy hash when there is no user,
    /// so both cases cost the same.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let _permit = self.permits.acquire().await.expect("never closed");
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .unwrap_or(false);
        ok && known
    }
}

/// The claims of a Navaro access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// Carried so that admins named by email in the configuration are recognised
    /// without a store lookup per request.
    pub email: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The sign-in session the token belongs to (see [`crate::sessions`]): revoking it
    /// revokes the token. Absent from tokens issued before sessions existed, which
    /// stay good until they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Verified tokens remembered, each with its claims: a few hundred bytes apiece, so a
/// few megabytes in all. Only tokens that passed verification (so signed with one of
/// this server's keys) are kept; a flood of forged ones costs a verification each and
/// takes no room.
pub const VERIFIED_TOKENS: usize = 16_384;

/// Seconds a token is still accepted after its `exp` (jsonwebtoken's `leeway`).
const EXPIRY_LEEWAY_SECONDS: u64 = 30;

/// Signing and verification keys, from the configuration.
pub struct TokenKeys {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_seconds: i64,
    /// Tokens that passed [`TokenKeys::verify`], by their whole text. The keys, issuer
    /// and audience are fixed for the process, so a remembered token stays good until
    /// it expires; its session is checked on every use (see [`crate::sessions`]).
    verified: quick_cache::sync::Cache<String, Arc<Claims>>,
}

impl TokenKeys {
    pub fn from_settings(settings: &Settings) -> Self {
        let auth = &settings.auth;
        let verifying = std::iter::once(&auth.signing_key)
            .chain(&auth.verification_keys)
            .map(|k| {
                let key = DecodingKey::from_secret(k.secret.expose().as_bytes());
                (k.kid.clone(), key)
            })
            .collect();
        // The algorithm is pinned: a token whose header names another (`none`, RS256
        // with our secret as a "public key") is refused.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[&auth.issuer]);
        validation.set_audience(&[&auth.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = EXPIRY_LEEWAY_SECONDS;
        TokenKeys {
            signing_kid: auth.signing_key.kid.clone(),
            signing: EncodingKey::from_secret(auth.signing_key.secret.expose().as_bytes()),
            verifying,
            validation,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            ttl_seconds: i64::from(auth.token_ttl_minutes) * 60,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        }
    }

    /// Issue a token for a user's session; returns it with its expiry.
    pub fn issue(
        &self,
        user_id: UserId,
        email: &str,
        sid: Option<Uuid>,
        now: Timestamp,
    ) -> (String, Timestamp) {
        let iat = now.as_second();
        let exp = iat + self.ttl_seconds;
        let claims = Claims {
            sub: user_id.as_uuid(),
            email: email.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            exp,
            sid,
        };
        let header = Header {
            kid: Some(self.signing_kid.clone()),
            ..Header::new(jsonwebtoken::Algorithm::HS256)
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .expect("HMAC signing of a small claims object cannot fail");
        let expires = Timestamp::from_second(exp).unwrap_or(Timestamp::MAX);
        (token, expires)
    }

    /// Verify a token: known `kid`, pinned algorithm, signature, expiry, issuer, audience.
    /// A token verified before answers from memory, its expiry checked again.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`TokenKeys::verify`] with the clock read by the caller, for the remembered
    /// tokens' expiry (a token met for the first time is judged by jsonwebtoken's
    /// clock).
    fn verify_at(&self, token: &str, now_s: u64) -> Result<Arc<Claims>, AuthError> {
        if let Some(claims) = self.verified.get(token) {
            // jsonwebtoken's own rule: expired once `exp` is more than the leeway ago.
            let exp = u64::try_from(claims.exp).unwrap_or(0);
            if exp.saturating_add(EXPIRY_LEEWAY_SECONDS) >= now_s {
                return Ok(claims);
            }
            self.verified.remove(token);
            let expired = jsonwebtoken::errors::ErrorKind::ExpiredSignature;
            return Err(AuthError::Invalid(expired.into()));
        }
        let header = jsonwebtoken::decode_header(token)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(AuthError::UnknownKey)?;
        let claims = Arc::new(jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims);
        self.verified.insert(token.to_owned(), Arc::clone(&claims));
        Ok(claims)
    }
}

/// An authenticated user.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: UserId,
    pub email: String,
    /// A platform admin, by configuration.
    pub admin: bool,
    /// The token's sign-in session (`None` for tokens from before sessions).
    pub session_id: Option<Uuid>,
}

impl AuthUser {
    /// Authenticate a bearer token (its signature, expiry and session) and apply the
    /// per-user rate limit.
    pub async fn from_token(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
        let claims = state.tokens.verify(token).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            ApiError::unauthorized("invalid or expired token")
        })?;
        if state.disabled.contains(UserId(claims.sub)) {
            return Err(ApiError::from(navaro_protocol::Rejection::new(
                navaro_protocol::ErrorCode::AccountDisabled,
                "this account has been disabled by the platform",
            )));
        }
        let user = AuthUser {
            user_id: UserId(claims.sub),
            admin: state.settings.is_admin(claims.sub, &claims.email),
            email: claims.email.clone(),
            session_id: claims.sid,
        };
        if let Some(sid) = user.session_id
            && !state.sessions.is_live(sid, user.user_id).await
        {
            return Err(ApiError::unauthorized(
                "signed out: the session was revoked",
            ));
        }
        state.limits.check_user(user.user_id)?;
        Ok(user)
    }

    /// This user's capacity at one establishment: owner or staff by membership, else
    /// admin by configuration, else customer.
    pub async fn caller_at(
        &self,
        state: &AppState,
        establishment_id: EstablishmentId,
    ) -> Result<Caller, ApiError> {
        let membership = state
            .stores
            .accounts
            .role_at(self.user_id, establishment_id)
            .await
            .map_err(ApiError::store)?;
        let role = match membership {
            Some(MemberRole::Owner) => Role::Owner,
            Some(MemberRole::Staff) => Role::Staff,
            None if self.admin => Role::Admin,
            None => Role::Customer,
        };
        Ok(Caller {
            user_id: self.user_id,
            role,
        })
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// The bearer token in `Authorization`, if there is one; the scheme's name is matched
/// without regard to case, as HTTP's are.
pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("bearer token required"))?;
        AuthUser::from_token(state, token).await
    }
}

/// A caller who may be anonymous (public reads). A token that is present but invalid is
/// still refused, so a client with a stale token learns it.
pub struct MaybeAuth(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) => AuthUser::from_token(state, token)
                .await
                .map(|u| MaybeAuth(Some(u))),
            None => Ok(MaybeAuth(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use navaro_config::{KeySettings, Secret};

    fn settings_with(kid: &str, secret: &str) -> Settings {
        let mut s = Settings::default();
        s.auth.signing_key = KeySettings {
            kid: kid.to_owned(),
            secret: Secret::new(secret),
        };
        s
    }

    #[test]
    fn round_trip_and_rotation() {
        let old =
            TokenKeys::from_settings(&settings_with("k1", "old-secret-old-secret-old-secret!"));
        let (token, _) = old.issue(UserId(Uuid::now_v7()), "a@b.c", None, Timestamp::now());
        assert!(old.verify(&token).is_ok());

        // Rotated: k2 signs, k1 still verifies.
        let mut rotated = settings_with("k2", "new-secret-new-secret-new-secret!");
        rotated.auth.verification_keys.push(KeySettings {
            kid: "k1".to_owned(),
            secret: Secret::new("old-secret-old-secret-old-secret!"),
        });
        let rotated = TokenKeys::from_settings(&rotated);
        assert!(rotated.verify(&token).is_ok());
        // Retired: k1 gone.
        let retired =
            TokenKeys::from_settings(&settings_with("k2", "new-secret-new-secret-new-secret!"));
        assert!(matches!(retired.verify(&token), Err(AuthError::UnknownKey)));
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_and_only_whole() {
        let keys = TokenKeys::from_settings(&Settings::default());
        let (token, expires) = keys.issue(UserId(Uuid::now_v7()), "a@b.c", None, Timestamp::now());
        let first = keys.verify(&token).unwrap();
        assert!(Arc::ptr_eq(&first, &keys.verify(&token).unwrap()));

        // Another token's signature on this token's header and claims: not a hit.
        let (other, _) = keys.issue(UserId(Uuid::now_v7()), "d@e.f", None, Timestamp::now());
        let (signed, _) = token.rsplit_once('.').unwrap();
        let (_, other_signature) = other.rsplit_once('.').unwrap();
        assert!(keys.verify(&format!("{signed}.{other_signature}")).is_err());

        // Refused tokens take no room.
        let long_ago = Timestamp::from_second(1_000_000_000).unwrap();
        let (expired, _) = keys.issue(UserId(Uuid::now_v7()), "a@b.c", None, long_ago);
        assert!(keys.verify(&expired).is_err());
        assert_eq!(keys.verified.len(), 1);

        // Good through the leeway after `exp`, then refused and forgotten.
        let exp = u64::try_from(expires.as_second()).unwrap();
        assert!(keys.verify_at(&token, exp + EXPIRY_LEEWAY_SECONDS).is_ok());
        let late = keys.verify_at(&token, exp + EXPIRY_LEEWAY_SECONDS + 1);
        assert!(matches!(
            late,
            Err(AuthError::Invalid(e)) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature
        ));
        assert!(keys.verified.get(token.as_str()).is_none());
    }

    #[test]
    fn expired_wrong_audience_wrong_issuer_and_alg_none_are_refused() {
        let keys = TokenKeys::from_settings(&Settings::default());
        let long_ago = Timestamp::from_second(1_000_000_000).unwrap();
        let (expired, _) = keys.issue(UserId(Uuid::now_v7()), "a@b.c", None, long_ago);
        assert!(keys.verify(&expired).is_err());

        let mut other = Settings::default();
        other.auth.audience = "someone-else".to_owned();
        let (token, _) = TokenKeys::from_settings(&other).issue(
            UserId(Uuid::now_v7()),
            "a@b.c",
            None,
            Timestamp::now(),
        );
        assert!(keys.verify(&token).is_err());

        let mut other = Settings::default();
        other.auth.issuer = "evil".to_owned();
        let (token, _) = TokenKeys::from_settings(&other).issue(
            UserId(Uuid::now_v7()),
            "a@b.c",
            None,
            Timestamp::now(),
        );
        assert!(keys.verify(&token).is_err());

        // alg=none with our kid: the header names an algorithm we do not accept.
        let (good, _) = keys.issue(UserId(Uuid::now_v7()), "a@b.c", None, Timestamp::now());
        let payload = good.split('.').nth(1).unwrap();
        let none_header = "eyJhbGciOiJub25lIiwia2lkIjoiZGV2In0"; // {"alg":"none","kid":"dev"}
        assert!(keys.verify(&format!("{none_header}.{payload}.")).is_err());
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let passwords = Passwords::new().unwrap();
        let hash = passwords.hash("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse".to_owned(), Some(hash.clone()))
                .await
        );
        assert!(!passwords.verify("wrong".to_owned(), Some(hash)).await);
        assert!(!passwords.verify("anything".to_owned(), None).await);
    }
}
