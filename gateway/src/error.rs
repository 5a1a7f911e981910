//! The one place where errors become HTTP responses.
//!
//! Every failure a client can see is an [`ApiError`]: an [`ErrorCode`], a message and
//! optional details (the offending field, alternatives for a taken slot). [`status_of`]
//! is the single table from code to HTTP status. Store and internal failures are logged
//! here with their cause and reach the client only as a generic message.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use navaro_protocol::{ErrorCode, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

use crate::dto::AlternativeDto;

/// The HTTP status for each error code. API.md names most of them; the engine's
/// booking-rule codes are 422 (the request cannot succeed as made) or 409 (it conflicts
/// with the current state, and might succeed later or elsewhere).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::SlotUnavailable => StatusCode::CONFLICT,
        ErrorCode::OutsideHours
        | ErrorCode::TooSoon
        | ErrorCode::TooFar
        | ErrorCode::NotOnGrid
        | ErrorCode::StaffCannotPerform
        | ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::LimitReached
        | ErrorCode::CancelCutoffPassed
        | ErrorCode::HoldExpired
        | ErrorCode::BookingArchived
        | ErrorCode::Conflict
        | ErrorCode::PromotionUnavailable
        | ErrorCode::EstablishmentSuspended => StatusCode::CONFLICT,
        ErrorCode::AccountDisabled => StatusCode::FORBIDDEN,
        ErrorCode::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::PaymentProvider => StatusCode::BAD_GATEWAY,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Overloaded | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer. Build it from a [`Rejection`] or with the constructors below.
#[derive(Debug)]
pub struct ApiError {
    pub rejection: Rejection,
    /// Overrides the table's status where API.md asks for another (400 for a body that
    /// does not parse, versus 422 for one that parses but is out of range).
    pub status: Option<StatusCode>,
    /// Sent as `Retry-After` (429 and 503).
    pub retry_after: Option<Duration>,
    /// The establishment's zone, to render alternatives' instants in its offset.
    pub timezone: Option<TimeZone>,
}

/// `{"error": {...}}`, the body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, machine-readable first.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A snake_case code from API.md (`invalid_request`, `slot_unavailable`, ...).
    pub code: String,
    /// Human-readable text; clients must not parse it.
    pub message: String,
    /// The request field at fault, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `slot_unavailable`: the nearest free starts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<AlternativeDto>,
    /// Seconds to wait before retrying (also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection::new(code, message).into()
    }

    /// A request body or parameter that does not parse: 400.
    pub fn bad_request(field: Option<String>, message: impl Into<String>) -> Self {
        let mut rejection = Rejection::new(ErrorCode::InvalidRequest, message);
        rejection.field = field;
        ApiError {
            rejection,
            status: Some(StatusCode::BAD_REQUEST),
            retry_after: None,
            timezone: None,
        }
    }

    /// A field that parses but is not acceptable: 422.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Rejection::invalid(field, message).into()
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden() -> Self {
        Self::new(
            ErrorCode::Forbidden,
            "you may not do this at this establishment",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Rejection::not_found(what).into()
    }

    pub fn rate_limited(wait: Duration) -> Self {
        ApiError {
            retry_after: Some(wait),
            ..Self::new(ErrorCode::RateLimited, "too many requests; slow down")
        }
    }

    /// A failure on our side: logged here with its cause, generic for the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The store is unreachable: logged with its cause, generic for the client.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "store unavailable");
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                ErrorCode::Unavailable,
                "temporarily unavailable; retry with the same Idempotency-Key",
            )
        }
    }

    /// A store's failure as the API answers it: `overloaded` when every connection
    /// stayed busy for the whole acquire timeout (the database is up; retry shortly),
    /// else [`ApiError::unavailable`].
    pub fn store(failure: impl StoreFailure) -> Self {
        if !failure.overloaded() {
            return Self::unavailable(failure);
        }
        tracing::warn!(error = %failure, "store overloaded");
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(ErrorCode::Overloaded, "the store is busy; retry shortly")
        }
    }

    /// Render alternatives in this zone.
    pub fn in_zone(mut self, timezone: &TimeZone) -> Self {
        self.timezone = Some(timezone.clone());
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.rejection.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
            .unwrap_or_else(|| status_of(self.rejection.code))
    }

    /// The body, with messages of internal failures replaced (the engine's message for
    /// `internal`/`unavailable` may name store details).
    pub fn body(&self) -> ErrorBody {
        let r = &self.rejection;
        let message = match r.code {
            ErrorCode::Internal => "internal error".to_owned(),
            ErrorCode::Unavailable => {
                "temporarily unavailable; retry with the same Idempotency-Key".to_owned()
            }
            _ => r.message.clone(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: r.code.as_str().to_owned(),
                message,
                field: r.field.clone(),
                alternatives: r
                    .alternatives
                    .iter()
                    .map(|a| {
                        AlternativeDto::new(a, self.timezone.as_ref().unwrap_or(&TimeZone::UTC))
                    })
                    .collect(),
                retry_after_seconds: self.retry_after.map(retry_seconds),
            },
        }
    }
}

/// A store error, for [`ApiError::store`].
pub trait StoreFailure: std::fmt::Display {
    /// Every connection stayed busy: an overload, not an outage.
    fn overloaded(&self) -> bool;
}

impl StoreFailure for navaro_persistence::AccountError {
    fn overloaded(&self) -> bool {
        matches!(self, navaro_persistence::AccountError::Overloaded(_))
    }
}

impl StoreFailure for navaro_persistence::StoreError {
    fn overloaded(&self) -> bool {
        matches!(self, navaro_persistence::StoreError::Overloaded(_))
    }
}

/// Whole seconds to wait, rounded up, at least one.
fn retry_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let retry_after = match rejection.code {
            ErrorCode::Overloaded | ErrorCode::Unavailable => Some(Duration::from_secs(1)),
            _ => None,
        };
        if matches!(rejection.code, ErrorCode::Internal | ErrorCode::Unavailable) {
            tracing::warn!(code = %rejection.code, message = %rejection.message, "engine failure");
        }
        ApiError {
            rejection,
            status: None,
            retry_after,
            timezone: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(wait)));
        }
        response.extensions_mut().insert(self.rejection.code);
        response
    }
}

/// A status produced outside our handlers (an unknown route, a wrong method, a body
/// over the limit) as our error body, so that every error a client sees has one shape.
pub fn from_bare_status(status: StatusCode) -> Option<ApiError> {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorCode::InvalidRequest, "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::InvalidRequest,
            "use application/json or application/msgpack",
        ),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::RequestTimeout, "request timed out"),
        s if s.is_client_error() => (ErrorCode::InvalidRequest, "invalid request"),
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => return None,
    };
    Some(ApiError {
        rejection: Rejection::new(code, message),
        status: Some(status),
        retry_after: None,
        timezone: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_md_statuses() {
        assert_eq!(status_of(ErrorCode::SlotUnavailable), StatusCode::CONFLICT);
        assert_eq!(status_of(ErrorCode::Conflict), StatusCode::CONFLICT);
        assert_eq!(
            status_of(ErrorCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status_of(ErrorCode::Overloaded),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(ErrorCode::PayloadTooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_of(ErrorCode::IdempotencyKeyReused),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let e: ApiError =
            Rejection::new(ErrorCode::Unavailable, "pool timed out: postgres://u:pw@db").into();
        let body = serde_json::to_string(&e.body()).unwrap();
        assert!(!body.contains("postgres"), "{body}");
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    /// A saturated pool is an overload (retry shortly), an unreachable store an outage;
    /// both 503 with `Retry-After`, told apart by the code, and neither leaks the cause.
    #[test]
    fn store_failures_say_overloaded_or_unavailable() {
        use navaro_persistence::{AccountError, StoreError};
        let cases = [
            (
                ApiError::store(AccountError::Overloaded("pool: postgres://db".into())),
                ErrorCode::Overloaded,
            ),
            (
                ApiError::store(StoreError::Overloaded("pool: postgres://db".into())),
                ErrorCode::Overloaded,
            ),
            (
                ApiError::store(AccountError::Unavailable("io: postgres://db".into())),
                ErrorCode::Unavailable,
            ),
            (
                ApiError::store(StoreError::Unavailable("io: postgres://db".into())),
                ErrorCode::Unavailable,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
            let body = serde_json::to_string(&error.body()).unwrap();
            assert!(!body.contains("postgres"), "{body}");
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_seconds(Duration::from_secs(3)), 3);
    }
}
