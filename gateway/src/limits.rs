//! Rate limits: token buckets per client IP (every request), per user (every
//! authenticated request), per IP for login and register (strict: each attempt costs an
//! argon2 hash and guessing is the attack), and per user for booking creation (so one
//! client cannot hoard an agenda). A refused request gets 429 with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use navaro_config::{LimitSettings, Settings};
use navaro_protocol::UserId;

use crate::error::ApiError;
use crate::listener::ClientAddr;
use crate::state::AppState;

/// How often idle buckets are dropped, so that the maps hold recent clients only.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// All the limiters.
pub struct Limiters {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<UserId>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    bookings: DefaultKeyedRateLimiter<UserId>,
    clock: DefaultClock,
}

fn nz(n: u32) -> NonZeroU32 {
    // Settings::validate refuses zeros; clamp anyway rather than panic.
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limiters {
    pub fn new(limits: &LimitSettings) -> Self {
        Limiters {
            per_ip: RateLimiter::keyed(
                Quota::per_second(nz(limits.per_ip_per_second))
                    .allow_burst(nz(limits.per_ip_burst)),
            ),
            per_user: RateLimiter::keyed(
                Quota::per_second(nz(limits.per_user_per_second))
                    .allow_burst(nz(limits.per_user_burst)),
            ),
            login: RateLimiter::keyed(
                Quota::per_minute(nz(limits.login_per_minute)).allow_burst(nz(limits.login_burst)),
            ),
            bookings: RateLimiter::keyed(
                Quota::per_minute(nz(limits.bookings_per_minute))
                    .allow_burst(nz(limits.bookings_burst)),
            ),
            clock: DefaultClock::default(),
        }
    }

    fn refuse(&self, not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
        metrics::counter!("navaro_rate_limited_total").increment(1);
        ApiError::rate_limited(not_until.wait_time_from(self.clock.now()))
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip.check_key(&ip).map_err(|n| self.refuse(n))
    }

    pub fn check_user(&self, user: UserId) -> Result<(), ApiError> {
        self.per_user.check_key(&user).map_err(|n| self.refuse(n))
    }

    pub fn check_login(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.login.check_key(&ip).map_err(|n| self.refuse(n))
    }

    pub fn check_booking(&self, user: UserId) -> Result<(), ApiError> {
        self.bookings.check_key(&user).map_err(|n| self.refuse(n))
    }

    /// Drop buckets that are full again (clients not seen lately), every minute.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.per_ip.retain_recent();
                limits.per_user.retain_recent();
                limits.login.retain_recent();
                limits.bookings.retain_recent();
            }
        });
    }
}

/// The client's IP: the peer address, or the first `X-Forwarded-For` entry when the
/// configuration says a proxy sets it.
pub fn client_ip(settings: &Settings, request_parts: &axum::http::request::Parts) -> IpAddr {
    if settings.http.trust_forwarded_for
        && let Some(ip) = request_parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    request_parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip())
}

/// Middleware: the per-IP limit on every API request.
pub async fn per_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A request another node forwarded was counted there, against the client's IP.
    if request
        .extensions()
        .get::<crate::cluster::Forwarded>()
        .is_some()
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let ip = client_ip(&state.settings, &parts);
    if let Err(e) = state.limits.check_ip(ip) {
        return axum::response::IntoResponse::into_response(e);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The client's IP as an extractor (see [`client_ip`]).
pub struct ClientIp(pub IpAddr);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(&state.settings, parts)))
    }
}
