//! Measurements, not assertions (a timing never belongs in a test's verdict): run with
//! `cargo bench -p navaro-gateway --bench fanout`, optionally `MEASURE_SUBSCRIBERS=N`
//! (default 10000; the open-file limit bounds it). Under `cargo test` it makes a smoke
//! run with 50 subscribers, so the path stays exercised.
//!
//! Opens N idle live subscribers (members, JSON) to one establishment, reports the
//! server's resident memory per subscriber, then makes one booking and reports how long
//! the frame took to reach the subscribers (p50/p99/max, from just before the POST).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Server, ahead, setup, slots};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("MEASURE_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 10_000 } else { 50 });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(idle_subscribers_memory_and_fanout_latency(n));
}

async fn idle_subscribers_memory_and_fanout_latency(n: usize) {
    let server = Server::start();
    let (owner, id, _, service) = setup(&server, 10).await;
    let free = slots(&server, &id, &service, ahead(2)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kib = server.rss_kib();

    let url = format!("ws://127.0.0.1:{}/v1/establishments/{id}/live", server.port);
    let mut sockets = Vec::with_capacity(n);
    let connect_started = Instant::now();
    for _ in 0..n {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {owner}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let _hello = socket.next().await.unwrap().unwrap();
        sockets.push(socket);
    }
    let connect_elapsed = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_kib = server.rss_kib();
    let per_sub = (after_kib.saturating_sub(before_kib) * 1024) as f64 / n as f64;
    println!(
        "subscribers={n} connect_time={connect_elapsed:?} rss_before={before_kib}KiB rss_after={after_kib}KiB per_subscriber={per_sub:.0}B projected_100k={:.2}GiB",
        per_sub * 100_000.0 / (1024.0 * 1024.0 * 1024.0)
    );

    let started = Instant::now();
    let waiters: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let _ = socket.next().await;
                started.elapsed()
            })
        })
        .collect();
    let (customer, _) = server.register("fanout").await;
    let cpu_before = server.cpu_time();
    let started_post = Instant::now();
    let (status, _, _) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let post_elapsed = started_post.elapsed();
    let offset = started_post.duration_since(started);
    let mut latencies: Vec<Duration> = futures::future::join_all(waiters)
        .await
        .into_iter()
        .map(|r| r.unwrap().saturating_sub(offset))
        .collect();
    let server_cpu = server.cpu_time().saturating_sub(cpu_before);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "fanout subscribers={n} post={post_elapsed:?} min={:?} p50={:?} p99={:?} max={:?} server_cpu={server_cpu:?} (from before the POST, booking durable included)",
        latencies[0],
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
}
