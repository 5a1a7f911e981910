//! A lean HTTP/1.1 client: hyper's pooled keep-alive client, one connection per request
//! in flight, no JSON on the read path (only the status is looked at).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long an idle pooled connection is kept; longer than any pause between steps.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A status and the body, read to the end (so the connection goes back to the pool).
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

/// The client, cheap to clone; every clone shares one pool.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for `base` (`http://host:port`, no trailing slash needed).
    pub fn new(base: &str) -> anyhow::Result<Http> {
        let base = base.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base.starts_with("http://"),
            "only http:// URLs are supported: {base}"
        );
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Http { client, base })
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
        let uri: Uri = format!("{}{path}", self.base).parse().context("uri")?;
        let mut request = Request::builder().method(method).uri(uri);
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
        let response = self.client.request(request.body(body)?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// A GET without credentials.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, None, None).await
    }
}

/// `Bearer <token>` as a header value, built once per account.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).context("token is not a header value")
}
