//! Slow and oversized requests against the real binary (issue 26): a declared body over
//! the limit is refused at once, a body that arrives too slowly gets 408 and a closed
//! connection, incomplete request heads and idle connections are closed by their
//! clocks, and hundreds of slow connections cannot keep a normal client out.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound on "at once" and "after its clock" on a shared 2-core box.
const PROMPT: Duration = Duration::from_secs(3);

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connects")
}

/// Read until the peer closes (or `within` passes): what was read, and whether it closed.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

fn status_and_body(response: &str) -> (u16, Value) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once_and_the_connection_closed() {
    let server = Server::start();
    let mut stream = connect(&server).await;
    let started = Instant::now();
    stream
        .write_all(head("/v1/auth/register", 4_194_304).as_bytes())
        .await
        .unwrap();
    stream.write_all(b"{\"email\":").await.unwrap();
    // The rest of the 4 MiB never comes: the answer must not wait for it.
    let (response, closed) = read_to_close(&mut stream, PROMPT).await;
    let (status, body) = status_and_body(&response);
    assert_eq!(status, 413, "{response}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(closed, "the connection is closed after the 413");
    assert!(started.elapsed() < PROMPT, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_body_arriving_too_slowly_is_408_not_503_and_the_connection_closed() {
    let server = Server::start_with(&[("NAVARO_HTTP__BODY_READ_TIMEOUT_MS", "1000")]).unwrap();
    let body = br#"{"email":"slow@example.com","password":"correct horse battery","name":"S"}"#;
    let mut stream = connect(&server).await;
    stream
        .write_all(head("/v1/auth/register", body.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    let started = Instant::now();
    let (response, closed) = read_to_close(&mut stream, PROMPT + Duration::from_secs(1)).await;
    let (status, answer) = status_and_body(&response);
    assert_eq!(status, 408, "{response}");
    assert_eq!(answer["error"]["code"], "request_timeout", "{response}");
    assert!(
        !response.contains("Idempotency-Key"),
        "no invitation to send it again: {response}"
    );
    assert!(closed, "the connection is closed after the 408");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < PROMPT + Duration::from_secs(1),
        "{waited:?}"
    );
    // Nothing was registered from the partial body.
    let (status, _, _) = server
        .call(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"email": "slow@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_incomplete_head_is_closed_after_the_header_timeout_and_an_idle_connection_after_its_own()
 {
    let server = Server::start_with(&[
        ("NAVARO_HTTP__HEADER_READ_TIMEOUT_MS", "1000"),
        ("NAVARO_HTTP__KEEP_ALIVE_IDLE_MS", "2500"),
    ])
    .unwrap();
    // Half a head, then nothing.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_to_close(&mut slow, PROMPT).await;
    assert!(closed, "an incomplete head is not kept");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A served keep-alive connection idle for less than its clock still works...
    let mut idle = connect(&server).await;
    let get = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    idle.write_all(get).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // (longer than the header clock: idle time between requests is not "a slow head")
    tokio::time::sleep(Duration::from_millis(1500)).await;
    idle.write_all(get).await.unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // ...and is closed once idle past it.
    let started = Instant::now();
    let (_, closed) = read_to_close(&mut idle, PROMPT + Duration::from_secs(1)).await;
    assert!(closed, "an idle connection is closed");
    assert!(started.elapsed() >= Duration::from_millis(2000));
}

/// Hundreds of connections that send part of a head and stall, more than the
/// connection cap: a normal client is still served, once their clock runs out, and at
/// once while they are under the cap.
#[tokio::test]
async fn hundreds_of_slow_connections_do_not_keep_a_normal_client_out() {
    const SLOW: usize = 400;
    let server = Server::start_with(&[
        ("NAVARO_HTTP__MAX_CONNECTIONS", "150"),
        ("NAVARO_HTTP__HEADER_READ_TIMEOUT_MS", "1000"),
    ])
    .unwrap();
    // Under the cap first: 100 stalled heads and 20 stalled bodies.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = connect(&server).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    for _ in 0..20 {
        let mut s = connect(&server).await;
        s.write_all(head("/v1/auth/register", 1000).as_bytes())
            .await
            .unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    let (status, _, _) = server
        .call(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Past the cap: the rest wait in the kernel's backlog, ahead of the normal client.
    for _ in slow.len()..SLOW {
        let mut s = connect(&server).await;
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").await;
        slow.push(s);
    }
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let answer = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("the normal client is served");
    assert_eq!(answer.status(), StatusCode::OK);
    let waited = started.elapsed();
    // 400 stalled heads through 150 slots at 1 s each: about three rounds.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Every stalled connection was closed by the server, none answered.
    let mut closed = 0;
    for mut s in slow {
        let (response, was_closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(
            !response.starts_with("HTTP/1.1 200"),
            "a stalled head is never answered as a request: {response}"
        );
        closed += usize::from(was_closed);
    }
    assert_eq!(closed, SLOW);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("navaro_connections_closed_total{reason=\"slow_head\"}"),
        "{metrics}"
    );
}
