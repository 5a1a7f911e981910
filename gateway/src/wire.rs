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

/// Whether the answer goes in MessagePack: asked for by `Accept`, or without an `Accept`,
/// by a MessagePack request body.
fn wants_msgpack(headers: &HeaderMap) -> bool {
    is_msgpack(headers.get(header::ACCEPT))
        || (headers.get(header::ACCEPT).is_none() && is_msgpack(headers.get(header::CONTENT_TYPE)))
}

/// Set by [`negotiate`] on a request whose answer goes in MessagePack (a request
/// extension, only on those, so other requests pay nothing for it). The headers alone
/// can no longer tell when a MessagePack body without `Accept` was turned into JSON.
#[derive(Clone, Copy, Debug)]
struct AnswerInMsgPack;

/// Middleware: MessagePack in and out, and one error shape.
pub async fn negotiate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let wants_msgpack = wants_msgpack(request.headers());
    if wants_msgpack {
        request.extensions_mut().insert(AnswerInMsgPack);
    }
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
    // Every JSON answer would have been MessagePack for an `Accept` that asked for it,
    // so each says it varies with `Accept` (a shared cache must not hand a JSON answer
    // to a MessagePack client). Other answers (`/metrics`' text, an upgrade) do not.
    let negotiable = is_json(response.headers());
    // A compressed body is the handler's final answer: it only compresses JSON answers
    // (see [`AcceptsGzip`]).
    let mut response = if wants_msgpack
        && negotiable
        && !response.headers().contains_key(header::CONTENT_ENCODING)
    {
        to_msgpack(response).await
    } else {
        response
    };
    if negotiable {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept"));
    }
    response
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
        // Every body is a JSON object; serde would also take a struct written as an
        // array of its fields in order (`[null, null]`), which the document does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                None,
                "the body must be a JSON object",
            ));
        }
        serde_json::from_slice(&bytes)
            .or_else(|e| whole_numbers_as_integers(&bytes).ok_or(e))
            .map(ApiJson)
            .map_err(|e| {
                let message = e.to_string();
                ApiError::bad_request(field_of(&message), message)
            })
    }
}

/// The body again, with every number that is whole (`15.0`, `1e3`) written as an
/// integer: to JSON Schema those are integers, so a client generated from the document
/// may send them where an integer is due. Only tried when the body did not parse as it
/// is (the common case pays nothing); `None` if it still does not, and the first error
/// is answered.
fn whole_numbers_as_integers<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    fn normalize(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Exactly representable whole numbers only (|f| < 2^53).
                let whole = f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0;
                if whole {
                    *value = serde_json::Value::from(f as i64);
                }
                whole
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().fold(false, |c, v| normalize(v) | c)
            }
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, v| normalize(v) | c),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if !normalize(&mut value) {
        return None;
    }
    serde_json::from_value(value).ok()
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

/// Whether the client takes a gzip body (RFC 9110 12.5.3): `gzip` or `x-gzip` named in
/// its `Accept-Encoding` with a weight above 0 (the higher of the two if both are), or
/// else `*` with one. A weight that does
/// not parse counts as 0: the plain body is always acceptable.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let elements = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for element in elements {
        let mut params = element.split(';');
        let coding = params.next().unwrap_or("").trim();
        let weight = params
            .find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
            })
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // Two names of one coding: the higher weight counts.
            gzip = Some(gzip.map_or(weight, |w: f32| w.max(weight)));
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|weight| weight > 0.0)
}

/// Whether this request's answer may be sent gzip-compressed: the client accepts gzip
/// ([`accepts_gzip`]) and is answered in JSON. A MessagePack answer is re-encoded from
/// the handler's JSON after the handler ([`negotiate`]), so it is never compressed.
pub struct AcceptsGzip(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for AcceptsGzip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The rewrite of a MessagePack body only ever turns a `true` into `false`, so the
        // headers' answer is right whenever the marker is absent.
        let msgpack =
            parts.extensions.get::<AnswerInMsgPack>().is_some() || wants_msgpack(&parts.headers);
        Ok(AcceptsGzip(!msgpack && accepts_gzip(&parts.headers)))
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

    #[test]
    fn accept_encoding_parsing() {
        let accepts = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            accepts_gzip(&headers)
        };
        // What browsers, OkHttp and NSURLSession send.
        assert!(accepts(&["gzip, deflate, br, zstd"]));
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br;q=1.0, gzip;q=0.8, *;q=0.1"]));
        assert!(accepts(&["GZIP"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["br", "gzip"]), "split over two header lines");
        assert!(accepts(&["gzip ; Q=0.5"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;q=0.000"]));
        assert!(!accepts(&["gzip;q=0, *"]), "gzip named with 0 wins over *");
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=high"]), "a weight that does not parse");
        assert!(!accepts(&["gzipped"]));
        assert!(accepts(&["*;q=0, gzip"]), "gzip named wins over *");
        assert!(accepts(&["gzip, x-gzip;q=0"]), "either name of gzip");
        assert!(accepts(&["identity;q=0, *"]));
        assert!(!accepts(&["identity;q=0"]));
    }
}
