//! The request id and the timeout as tower layers: each answers without boxing a
//! future or cloning the services below it, which an axum `from_fn` middleware does on
//! every request. With the per-route metrics (`telemetry::Track`) they replaced two
//! `from_fn` middlewares and tower-http's two request-id layers: about 3 µs of a 42 µs
//! `/healthz` (BENCHMARKS.md).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use navaro_protocol::ErrorCode;
use tokio::time::Sleep;
use tower::{Layer, Service};
use uuid::Uuid;

use crate::error::ApiError;

/// The request id's header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an `x-request-id` (the client's, or a new UUID) and its answer
/// the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestId;

impl<S> Layer<S> for RequestId {
    type Service = WithRequestId<S>;

    fn layer(&self, inner: S) -> WithRequestId<S> {
        WithRequestId { inner }
    }
}

/// The service [`RequestId`] wraps around the rest.
#[derive(Clone, Debug)]
pub struct WithRequestId<S> {
    inner: S,
}

impl<S> Service<Request> for WithRequestId<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = match request.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = HeaderValue::from_str(&Uuid::new_v4().to_string())
                    .expect("a UUID is a valid header value");
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer, given the request's id when it is ready.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut result, this.id.take()) {
            response.headers_mut().entry(X_REQUEST_ID).or_insert(id);
        }
        Poll::Ready(result)
    }
}

/// Answers 503 `unavailable` (with `Retry-After: 1`) for a request still running after
/// `limit`, dropping its work.
#[derive(Clone, Copy, Debug)]
pub struct Timeout {
    /// How long a request may run.
    pub limit: Duration,
}

impl<S> Layer<S> for Timeout {
    type Service = WithTimeout<S>;

    fn layer(&self, inner: S) -> WithTimeout<S> {
        WithTimeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`Timeout`] wraps around the rest.
#[derive(Clone, Debug)]
pub struct WithTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for WithTimeout<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        TimeoutFuture {
            inner: self.inner.call(request),
            deadline: tokio::time::sleep(self.limit),
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer, or 503 at the deadline, whichever comes first.
    pub struct TimeoutFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        deadline: Sleep,
    }
}

impl<F, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        ready!(this.deadline.poll(cx));
        let timed_out = ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..ApiError::new(ErrorCode::Unavailable, "request timed out")
        };
        Poll::Ready(Ok(timed_out.into_response()))
    }
}
