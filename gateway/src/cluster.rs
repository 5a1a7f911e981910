//! The gateway's side of the cluster (docs/cluster.md): [`route`] sends a request for
//! an establishment this node does not own to its owner, once, over the persistent
//! internal connection; [`RouterHandler`] serves the requests other nodes forward here,
//! through the same router as any other request.
//!
//! One hop at most: a forwarded request carries the [`Forwarded`] extension (set only
//! by the internal server, never from a header a client could send), and a node that
//! receives one for an establishment it does not own answers 503 `unavailable` with
//! `Retry-After` and the [`NOT_OWNER`] header instead of forwarding it again. The
//! forwarding node then forgets what it cached of the owner and tries once more; so
//! does it when the owner could not be reached at all (nothing was sent). When the
//! owner was reached but did not answer, the outcome is unknown: the client gets 503
//! `unavailable` and retries with the same `Idempotency-Key`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_cluster::{ForwardError, RequestHead, ResponseHead, Route};
use navaro_protocol::EstablishmentId;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::listener::ClientAddr;
use crate::state::AppState;

/// Set on a request that another node forwarded here.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded;

/// Response header of a node refusing a forwarded request it does not own.
pub const NOT_OWNER: &str = "x-navaro-not-owner";

/// Headers not carried across a hop (hop-by-hop, or recomputed on the other side).
fn carried(name: &str) -> bool {
    !matches!(
        name,
        "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "content-length" | "host"
    )
}

/// The establishment a path is about: `/v1/establishments/{id}` and below.
pub fn establishment_in_path(path: &str) -> Option<EstablishmentId> {
    let rest = path.strip_prefix("/v1/establishments/")?;
    let id = rest.split('/').next()?;
    uuid::Uuid::parse_str(id).ok().map(EstablishmentId)
}

fn unavailable(message: &str) -> Response {
    let mut error = ApiError::new(navaro_protocol::ErrorCode::Unavailable, message);
    error.retry_after = Some(std::time::Duration::from_secs(1));
    error.into_response()
}

fn not_owner() -> Response {
    metrics::counter!("navaro_cluster_forwards_refused_total").increment(1);
    let mut response = unavailable("this node does not own the establishment; retry shortly");
    response
        .headers_mut()
        .insert(NOT_OWNER, HeaderValue::from_static("1"));
    response
}

/// Middleware on the API routes: serve here, or forward to the owner.
pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = &state.cluster else {
        return next.run(request).await;
    };
    let Some(id) = establishment_in_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let forwarded = request.extensions().get::<Forwarded>().is_some();
    if !forwarded && request.uri().path().ends_with("/live") {
        // A WebSocket stays on this node: the live handler relays the owner's events
        // (`crate::relay`).
        return next.run(request).await;
    }
    let mut route = cluster.route(id).await;
    if forwarded && matches!(route, Route::Forward { .. }) {
        // Another node thinks this one owns it: what this node cached may be stale (it
        // may just have been handed the establishment). Read the directory again
        // before refusing.
        cluster.directory.forget(id);
        route = cluster.route(id).await;
    }
    if route == Route::Local {
        if let Some(_inside) = state.handoff.enter(id) {
            return next.run(request).await;
        }
        // Moving to another node (this one is leaving): hold it, then route again.
        state.handoff.wait(id).await;
        route = cluster.route(id).await;
    }
    let (node, addr) = match route {
        Route::Local => return next.run(request).await,
        // Not served here (this node left, or its lease lapsed): the forwarding node
        // routes again.
        Route::Unavailable(_) if forwarded => return not_owner(),
        Route::Unavailable(why) => {
            tracing::warn!(establishment_id = %id, reason = %why, "cannot route");
            return unavailable("the cluster cannot place this establishment now; retry shortly");
        }
        Route::Forward { .. } if forwarded => return not_owner(),
        Route::Forward { node, addr } => (node, addr),
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0.to_string());
    let (parts, body) = request.into_parts();
    let limit = state.settings.http.body_limit_bytes;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return ApiError::new(
            navaro_protocol::ErrorCode::PayloadTooLarge,
            "request body too large",
        )
        .into_response();
    };
    let head = RequestHead {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| carried(name.as_str()))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        client,
    };
    let mut target = (node, addr);
    for attempt in 0..2 {
        let started = std::time::Instant::now();
        let sent = cluster
            .peers
            .send(&target.1, head.clone(), body.to_vec())
            .await;
        metrics::histogram!("navaro_cluster_forward_seconds")
            .record(started.elapsed().as_secs_f64());
        let retry = match sent {
            Ok((head, body)) => {
                let refused = head.headers.iter().any(|(n, _)| n == NOT_OWNER);
                if !(refused && attempt == 0) {
                    metrics::counter!("navaro_cluster_forwarded_total").increment(1);
                    return response_of(head, body);
                }
                tracing::info!(establishment_id = %id, node = %target.0, "owner refused a forwarded request; routing again");
                // It may be leaving: read who is live before routing again.
                if let Ok(members) = cluster.membership.refresh_members().await {
                    cluster.directory.members_changed(&members);
                }
                true
            }
            Err(ForwardError::NotSent(addr)) if attempt == 0 => {
                tracing::warn!(establishment_id = %id, node = %target.0, %addr, "owner unreachable; reading the members again");
                if let Ok(members) = cluster.membership.refresh_members().await {
                    cluster.directory.members_changed(&members);
                    let live: Vec<&str> = members.values().map(String::as_str).collect();
                    cluster.peers.retain(&live);
                }
                true
            }
            Err(e) => {
                tracing::warn!(establishment_id = %id, node = %target.0, error = %e, "forwarded request got no answer");
                return unavailable(
                    "the establishment's node did not answer; retry with the same Idempotency-Key",
                );
            }
        };
        debug_assert!(retry);
        cluster.directory.forget(id);
        match cluster.route(id).await {
            Route::Forward { node, addr } => target = (node, addr),
            Route::Local => {
                let request = Request::from_parts(parts, Body::from(body));
                return next.run(request).await;
            }
            Route::Unavailable(_) => break,
        }
    }
    unavailable("the cluster cannot place this establishment now; retry shortly")
}

pub(crate) fn response_of(head: ResponseHead, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in head.headers {
        if !carried(&name) || name == NOT_OWNER {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// Send a request about `id` to its owner over the internal connection, routing again
/// once if the owner refused it (not the owner any more) or could not be reached.
/// `Ok(None)`: this node owns `id` (or is the one to claim it): serve it here.
pub async fn ask_owner(
    state: &AppState,
    id: EstablishmentId,
    head: RequestHead,
) -> Result<Option<(ResponseHead, Vec<u8>)>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let retriable = |message: &str| {
        let mut error = ApiError::new(navaro_protocol::ErrorCode::Unavailable, message);
        error.retry_after = Some(std::time::Duration::from_secs(1));
        error
    };
    for attempt in 0..2 {
        let addr = match cluster.route(id).await {
            Route::Local => return Ok(None),
            Route::Forward { addr, .. } => addr,
            Route::Unavailable(_) => break,
        };
        match cluster.peers.send(&addr, head.clone(), Vec::new()).await {
            Ok((head, _)) if head.headers.iter().any(|(n, _)| n == NOT_OWNER) => {}
            Ok(answer) => return Ok(Some(answer)),
            Err(ForwardError::NotSent(_)) => {
                if let Ok(members) = cluster.membership.refresh_members().await {
                    cluster.directory.members_changed(&members);
                }
            }
            Err(ForwardError::Lost(_)) if attempt == 0 => {}
            Err(ForwardError::Lost(_)) => {
                return Err(retriable(
                    "the establishment's node did not answer; retry shortly",
                ));
            }
        }
        cluster.directory.forget(id);
    }
    Err(retriable(
        "the cluster cannot place this establishment now; retry shortly",
    ))
}

/// Serves forwarded requests through the node's own router.
pub struct RouterHandler {
    pub router: axum::Router,
}

impl navaro_cluster::Handler for RouterHandler {
    fn handle(
        &self,
        head: RequestHead,
        body: Vec<u8>,
    ) -> BoxFuture<'static, (ResponseHead, Vec<u8>)> {
        let router = self.router.clone();
        async move {
            let response = match request_of(head, body) {
                Ok(request) => router.oneshot(request).await.unwrap_or_else(|e| match e {}),
                Err(response) => *response,
            };
            let (parts, body) = response.into_parts();
            // Our responses are bounded (availability of a month is the largest).
            let body = axum::body::to_bytes(body, navaro_cluster::wire::MAX_FRAME_BYTES / 2)
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default();
            let head = ResponseHead {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
            };
            (head, body)
        }
        .boxed()
    }
}

fn request_of(head: RequestHead, body: Vec<u8>) -> Result<Request, Box<Response>> {
    let bad =
        || Box::new(ApiError::bad_request(None, "malformed forwarded request").into_response());
    let method = Method::from_bytes(head.method.as_bytes()).map_err(|_| bad())?;
    let uri: Uri = head.uri.parse().map_err(|_| bad())?;
    let mut request = Request::new(Body::from(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    let client: SocketAddr = head
        .client
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    request
        .extensions_mut()
        .insert(ConnectInfo(ClientAddr(client)));
    request.extensions_mut().insert(Forwarded);
    Ok(request)
}

/// The handler as the cluster crate takes it.
pub fn handler(router: axum::Router) -> Arc<dyn navaro_cluster::Handler> {
    Arc::new(RouterHandler { router })
}
