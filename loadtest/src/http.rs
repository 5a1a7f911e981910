//! A lean HTTP/1.1 client: hyper's pooled keep-alive client, one connection per request
//! in flight, no JSON on the read path (only the status is looked at).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

tokio::task_local! {
    /// Response body bytes received within the current [`counting_bytes`] scope.
    static RECEIVED: Cell<u64>;
}

/// Run `operation`, and count the response body bytes its requests received.
pub async fn counting_bytes<F: Future>(operation: F) -> (F::Output, u64) {
    RECEIVED
        .scope(Cell::new(0), async {
            let output = operation.await;
            (output, RECEIVED.with(Cell::get))
        })
        .await
}

/// How long an idle pooled connection is kept; longer than any pause between steps.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A status and the body, read to the end (so the connection goes back to the pool);
/// the body is empty for a 200 from [`Http::get_status`].
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    /// The machine-readable `error.code` of an error body, or `-` when there is none.
    pub fn error_code(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            code: String,
        }
        serde_json::from_slice::<Body>(&self.body)
            .map(|b| b.error.code)
            .unwrap_or_else(|_| "-".to_owned())
    }

    /// The body as JSON (for the few answers whose content matters).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("reply body is not JSON")
    }
}

type Pooled = Client<HttpConnector, Full<Bytes>>;

/// The client, cheap to clone; every clone shares one pool.
#[derive(Clone)]
pub struct Http {
    client: Arc<ArcSwap<Pooled>>,
    base: String,
    /// The `Accept-Encoding` of [`Http::get_status`]'s requests, if any.
    read_encoding: Option<HeaderValue>,
}

/// A client with an empty pool. It keeps every connection it opens: an open-loop
/// generator needs as many as it has requests in flight.
fn pooled() -> Pooled {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

impl Http {
    /// A client for `base` (`http://host:port`, no trailing slash needed).
    pub fn new(base: &str) -> anyhow::Result<Http> {
        let base = base.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://"),
            "only http:// URLs are supported: {base}"
        );
        Ok(Http {
            client: Arc::new(ArcSwap::from_pointee(pooled())),
            base,
            read_encoding: None,
        })
    }

    /// The same client (and pool) whose [`Http::get_status`] reads ask for `encoding`
    /// (`Accept-Encoding`), as the apps' HTTP stacks do on every request. The bodies are
    /// counted as they arrive, compressed, and not decoded: the generator plays many
    /// clients, and what it measures is the server and the wire.
    pub fn reading(mut self, encoding: Option<&'static str>) -> Http {
        self.read_encoding = encoding.map(HeaderValue::from_static);
        self
    }

    /// Start every clone over with an empty pool; the old pool's idle connections close.
    /// A workload's overloaded last step can leave thousands of connections open (one
    /// per request that was in flight), and a workload measured after it would pay for
    /// them: at 12,383 mix req/s the step after a `/healthz` search that left 4,100 open
    /// had p99 147-220 ms, against 10 ms when the mix ran first.
    pub fn reset_pool(&self) {
        self.client.store(Arc::new(pooled()));
    }

    /// The base URL, e.g. `http://127.0.0.1:8080`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send one request and read the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<String>,
    ) -> anyhow::Result<Reply> {
        self.exchange(method, path, auth, body, Keep::Always).await
    }

    /// A GET without credentials.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None, None).await
    }

    /// A GET (with `auth`, if any) whose answer is looked at only when it is not a 200
    /// (with the `Accept-Encoding` of [`Http::reading`]; errors are never compressed):
    /// a 200's body is read to the end and counted, but not kept (`Reply::body` is
    /// empty). A week of availability is 66 KB; gathering it into one buffer was a
    /// copy per read that nothing looked at.
    pub async fn get_status(
        &self,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> anyhow::Result<Reply> {
        self.exchange(Method::GET, path, auth, None, Keep::UnlessOk)
            .await
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        auth: Option<&HeaderValue>,
        body: Option<String>,
        keep: Keep,
    ) -> anyhow::Result<Reply> {
        let uri: Uri = format!("{}{path}", self.base).parse().context("uri")?;
        let mut request = Request::builder().method(method).uri(uri);
        if let (Keep::UnlessOk, Some(encoding)) = (keep, &self.read_encoding) {
            request = request.header(ACCEPT_ENCODING, encoding.clone());
        }
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let client = Pooled::clone(&self.client.load());
        let response = client.request(request.body(body)?).await?;
        let status = response.status().as_u16();
        let mut incoming = response.into_body();
        let (body, received) = if keep == Keep::UnlessOk && status == 200 {
            let mut received = 0;
            while let Some(frame) = incoming.frame().await {
                if let Some(data) = frame?.data_ref() {
                    received += data.len();
                }
            }
            (Bytes::new(), received)
        } else {
            let body = incoming.collect().await?.to_bytes();
            let received = body.len();
            (body, received)
        };
        // Outside a counting scope (provisioning, verification) nothing is counted.
        let _ = RECEIVED.try_with(|counted| counted.set(counted.get() + received as u64));
        Ok(Reply { status, body })
    }
}

/// Which answers' bodies [`Http::exchange`] keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Always,
    UnlessOk,
}

/// `Bearer <token>` as a header value, built once per account.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).context("token is not a header value")
}
