//! The request id, the timeout, the body guard and the admission limit as tower layers: each answers without boxing a
//! future or cloning the services below it, which an axum `from_fn` middleware does on
//! every request. With the per-route metrics (`telemetry::Track`) they replaced two
//! `from_fn` middlewares and tower-http's two request-id layers: about 3 µs of a 42 µs
//! `/healthz` (docs/benchmarks-history.md, 2026-11-30).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Answers 503 `overloaded` (with `Retry-After: 1`) at once, without running it, for a
/// request that finds `max` requests already in progress. What it counts is requests
/// dispatched and not yet answered: those waiting on an actor or on the store. Without
/// it they grow with whatever clients send while the store is slow (with 100k live
/// connections, up to 100k requests and their memory), each waiting behind the rest;
/// bounded, the rest learn at once to come back. Requests not yet read from their
/// sockets (a CPU-bound overload) are not counted: in the overload runs of
/// docs/benchmarks-history.md (2026-12-01) it never refused one, as most answers are computed
/// within one poll.
#[derive(Clone, Debug)]
pub struct Admission {
    in_flight: Arc<AtomicUsize>,
    max: usize,
}

impl Admission {
    /// At most `max` requests in progress; 0 admits every request.
    pub fn new(max: usize) -> Admission {
        Admission {
            in_flight: Arc::default(),
            max: if max == 0 { usize::MAX } else { max },
        }
    }
}

impl<S> Layer<S> for Admission {
    type Service = Admitting<S>;

    fn layer(&self, inner: S) -> Admitting<S> {
        Admitting {
            inner,
            admission: self.clone(),
        }
    }
}

/// The service [`Admission`] wraps around the rest; its clones share the count.
#[derive(Clone, Debug)]
pub struct Admitting<S> {
    inner: S,
    admission: Admission,
}

/// A request in progress, counted until its answer is ready or it is dropped (a client
/// that went away).
#[derive(Debug)]
pub struct InProgress(Arc<AtomicUsize>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> Service<Request> for Admitting<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AdmittedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let counter = &self.admission.in_flight;
        if counter.fetch_add(1, Ordering::Relaxed) >= self.admission.max {
            counter.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("navaro_http_shed_total").increment(1);
            return AdmittedFuture {
                inner: None,
                in_progress: None,
            };
        }
        AdmittedFuture {
            inner: Some(self.inner.call(request)),
            in_progress: Some(InProgress(counter.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of an admitted request, or at once 503 `overloaded` for a refused one.
    pub struct AdmittedFuture<F> {
        #[pin]
        inner: Option<F>,
        in_progress: Option<InProgress>,
    }
}

impl<F, E> Future for AdmittedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let answer = ready!(inner.poll(cx));
                // Counted until the answer is ready, not until its body is written.
                this.in_progress.take();
                Poll::Ready(answer)
            }
            None => {
                let refused = ApiError {
                    retry_after: Some(Duration::from_secs(1)),
                    ..ApiError::new(
                        ErrorCode::Overloaded,
                        "the server is at its limit of requests in progress; retry shortly",
                    )
                };
                Poll::Ready(Ok(refused.into_response()))
            }
        }
    }
}

/// Guards request bodies: a request whose `Content-Length` is over `limit_bytes` is
/// answered 413 `payload_too_large` at once, without reading a byte of its body (else a
/// client declaring 4 MiB and sending it slowly would hold the request until the
/// timeout); a body still incomplete `read_timeout` after the head is answered 408
/// `request_timeout`. Both answers close the connection (`Connection: close`): the rest
/// of the body is never read, so the connection cannot carry another request, and a
/// 503 "retry" would only invite the same body again. Bodies without a declared length
/// (chunked) are held to `limit_bytes` by axum's `DefaultBodyLimit` as they are read.
#[derive(Clone, Copy, Debug)]
pub struct BodyGuard {
    /// The largest body accepted (`http.body_limit_bytes`).
    pub limit_bytes: usize,
    /// How long after its head a body may take to arrive (`http.body_read_timeout_ms`).
    pub read_timeout: Duration,
}

impl<S> Layer<S> for BodyGuard {
    type Service = Guarding<S>;

    fn layer(&self, inner: S) -> Guarding<S> {
        Guarding {
            inner,
            guard: *self,
        }
    }
}

/// The service [`BodyGuard`] wraps around the rest.
#[derive(Clone, Debug)]
pub struct Guarding<S> {
    inner: S,
    guard: BodyGuard,
}

/// An answer that ends the connection after it is written.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    response
}

fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl<S> Service<Request> for Guarding<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if declared_length(&request).is_some_and(|n| n > self.guard.limit_bytes as u64) {
            metrics::counter!("navaro_http_body_refused_total", "reason" => "too_large")
                .increment(1);
            let refused = ApiError::new(ErrorCode::PayloadTooLarge, "request body too large");
            return GuardedFuture {
                inner: None,
                refused: Some(closing(refused)),
                timed_out: None,
            };
        }
        let (request, timed_out) = if http_body::Body::is_end_stream(request.body()) {
            (request, None)
        } else {
            let timed_out = Arc::new(AtomicBool::new(false));
            let request = request.map(|body| {
                axum::body::Body::new(DeadlineBody {
                    inner: body,
                    deadline: Box::pin(tokio::time::sleep(self.guard.read_timeout)),
                    timed_out: timed_out.clone(),
                })
            });
            (request, Some(timed_out))
        };
        GuardedFuture {
            inner: Some(self.inner.call(request)),
            refused: None,
            timed_out,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, replaced by 408 when the body timed out; or a refusal at once.
    pub struct GuardedFuture<F> {
        #[pin]
        inner: Option<F>,
        refused: Option<Response>,
        timed_out: Option<Arc<AtomicBool>>,
    }
}

impl<F, E> Future for GuardedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            let refused = this.refused.take().expect("polled after completion");
            return Poll::Ready(Ok(refused));
        };
        let answer = ready!(inner.poll(cx));
        if this
            .timed_out
            .as_ref()
            .is_some_and(|t| t.load(Ordering::Relaxed))
        {
            metrics::counter!("navaro_http_body_refused_total", "reason" => "too_slow")
                .increment(1);
            let slow = ApiError::new(
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time",
            );
            return Poll::Ready(Ok(closing(slow)));
        }
        Poll::Ready(answer)
    }
}

pin_project_lite::pin_project! {
    /// A request body that fails once its deadline passes before its end, and says so
    /// in `timed_out` (whoever reads it maps the read error as they like; [`BodyGuard`]
    /// then answers 408 whatever they answered).
    struct DeadlineBody {
        #[pin]
        inner: axum::body::Body,
        deadline: Pin<Box<Sleep>>,
        timed_out: Arc<AtomicBool>,
    }
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(this.deadline.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new("request body read timed out"))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::http::StatusCode;
    use tokio::sync::Semaphore;
    use tower::ServiceExt;

    use super::*;

    /// A service whose every request waits for a permit of `gate`, then answers 200.
    fn gated(
        gate: &Arc<Semaphore>,
    ) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
        let gate = gate.clone();
        tower::service_fn(move |_: Request| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.expect("open").forget();
                Ok::<_, Infallible>(StatusCode::OK.into_response())
            }
        })
    }

    fn request() -> Request {
        Request::new(axum::body::Body::empty())
    }

    async fn status(answer: impl Future<Output = Result<Response, Infallible>>) -> StatusCode {
        answer.await.expect("infallible").status()
    }

    #[tokio::test]
    async fn past_its_limit_a_request_is_refused_at_once_and_an_ended_one_frees_its_place() {
        let gate = Arc::new(Semaphore::new(0));
        let mut service = Admission::new(2).layer(gated(&gate));
        let first = service.ready().await.unwrap().call(request());
        let second = service.ready().await.unwrap().call(request());

        // Two in progress: the third is answered at once, without waiting for them.
        let third = service
            .ready()
            .await
            .unwrap()
            .call(request())
            .await
            .unwrap();
        assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(third.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(third.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        // A clone (another connection) counts against the same limit.
        let mut other = service.clone();
        let refused = other.ready().await.unwrap().call(request());
        assert_eq!(status(refused).await, StatusCode::SERVICE_UNAVAILABLE);

        // One answered: its place is free again.
        gate.add_permits(1);
        assert_eq!(status(first).await, StatusCode::OK);
        let fourth = service.ready().await.unwrap().call(request());
        // One dropped unanswered (its client went away): its place too.
        drop(second);
        let fifth = other.ready().await.unwrap().call(request());
        let sixth = service.ready().await.unwrap().call(request());
        assert_eq!(status(sixth).await, StatusCode::SERVICE_UNAVAILABLE);
        gate.add_permits(2);
        assert_eq!(status(fourth).await, StatusCode::OK);
        assert_eq!(status(fifth).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_limit_of_zero_admits_every_request() {
        let gate = Arc::new(Semaphore::new(0));
        let mut service = Admission::new(0).layer(gated(&gate));
        let waiting: Vec<_> = (0..100).map(|_| service.call(request())).collect();
        gate.add_permits(100);
        for answer in waiting {
            assert_eq!(status(answer).await, StatusCode::OK);
        }
    }
}
