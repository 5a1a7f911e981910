//! Bytes on the wire: content negotiation, body parsing, the idempotency key.
//!
//! Handlers speak JSON only. [`negotiate`] is the one place that knows MessagePack: it
//! turns a MessagePack request body into JSON before the handler, and a JSON response
//! into MessagePack after it when the client's `Accept` asks for it, so both encodings
//! carry exactly the same fields. It also gives every error produced outside our
//! handlers (unknown route, wrong method, body over the limit) our error shape.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use navaro_protocol::{Encoding, ErrorCode, decode, encode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, from_bare_status};
use crate::state::AppState;

/// The longest `Idempotency-Key` accepted (API.md).
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 128;

/// Largest response body re-encoded to MessagePack; our responses are a few KiB (a day's
/// agenda, a month of slots), so this only guards against a surprise.
const MAX_TRANSCODE_BYTES: usize = 16 * 1024 * 1024;

fn is_msgpack(value: Option<&HeaderValue>) -> bool {
    value.and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            matches!(
                media,
                "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack"
            )
        })
    })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Middleware: MessagePack in and out, and one error shape.
pub async fn negotiate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let wants_msgpack = is_msgpack(request.headers().get(header::ACCEPT))
        || (request.headers().get(header::ACCEPT).is_none()
            && is_msgpack(request.headers().get(header::CONTENT_TYPE)));
    let request = if is_msgpack(request.headers().get(header::CONTENT_TYPE)) {
        match msgpack_to_json(request, state.settings.http.body_limit_bytes).await {
            Ok(request) => request,
            Err(e) => return finish(e.into_response(), wants_msgpack).await,
        }
    } else {
        request
    };
    let response = next.run(request).await;
    finish(response, wants_msgpack).await
}

async fn msgpack_to_json(request: Request, limit: usize) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, "request body too large"))?;
    let value: serde_json::Value = decode(Encoding::MsgPack, &bytes)
        .map_err(|e| ApiError::bad_request(None, format!("body is not valid MessagePack: {e}")))?;
    let json = serde_json::to_vec(&value).map_err(ApiError::internal)?;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(json)))
}

async fn finish(response: Response, wants_msgpack: bool) -> Response {
    let status = response.status();
    let response = if status.is_client_error() || status.is_server_error() {
        if is_json(response.headers()) {
            response
        } else {
            match from_bare_status(status) {
                Some(e) => e.into_response(),
                None => response,
            }
        }
    } else {
        response
    };
    if wants_msgpack && is_json(response.headers()) {
        to_msgpack(response).await
    } else {
        response
    }
}

async fn to_msgpack(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let transcoded = async {
        let bytes = axum::body::to_bytes(body, MAX_TRANSCODE_BYTES).await.ok()?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        encode(Encoding::MsgPack, &value).ok()
    }
    .await;
    match transcoded {
        Some(bytes) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/msgpack"),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes))
        }
        None => {
            ApiError::internal("response could not be re-encoded as MessagePack").into_response()
        }
    }
}

/// A JSON body (MessagePack bodies arrive here as JSON, see [`negotiate`]), parsed into
/// `T` with our error shape: 400 naming the field where serde names one, 413 over the
/// size limit.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let has_type = request.headers().contains_key(header::CONTENT_TYPE);
        if has_type && !is_json(request.headers()) {
            return Err(ApiError {
                status: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                ..ApiError::bad_request(None, "use application/json or application/msgpack")
            });
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body too large")
            } else {
                ApiError::bad_request(None, "could not read the request body")
            }
        })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let message = e.to_string();
            ApiError::bad_request(field_of(&message), message)
        })
    }
}

/// The field serde's message names (``missing field `name` ``, ``unknown field `x` ``).
fn field_of(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    let field = &message[start..start + len];
    (message.contains("field")).then(|| field.to_owned())
}

/// The `Idempotency-Key` header, checked: at most 128 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= IDEMPOTENCY_KEY_MAX_CHARS
                    && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::bad_request(
                    Some("Idempotency-Key".to_owned()),
                    "Idempotency-Key must be 1 to 128 visible ASCII characters",
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// A path parameter, with our error shape when it does not parse (400).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|e| ApiError::bad_request(None, e.body_text()))
    }
}

/// Query parameters, with our error shape when they do not parse (400).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(t)| ApiQuery(t))
            .map_err(|e| {
                let text = e.body_text();
                ApiError::bad_request(field_of(&text), text)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field() {
        assert_eq!(
            field_of("missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(field_of("expected value at line 1 column 1"), None);
    }

    #[test]
    fn accept_parsing() {
        assert!(is_msgpack(Some(&HeaderValue::from_static(
            "application/msgpack"
        ))));
        assert!(is_msgpack(Some(&HeaderValue::from_static(
            "text/html, application/x-msgpack;q=0.9"
        ))));
        assert!(!is_msgpack(Some(&HeaderValue::from_static(
            "application/json"
        ))));
        assert!(!is_msgpack(None));
    }
}
