//! Measurements, not assertions (a timing never belongs in a test's verdict): run with
//! `cargo bench -p navaro-gateway --bench fanout`. Under `cargo test` it makes a smoke
//! run with 50 subscribers (over 5 establishments), so the path stays exercised.
//!
//! - `MEASURE_SUBSCRIBERS=N` (default 10000) idle live subscribers (members, JSON),
//! - `MEASURE_ESTABLISHMENTS=E` (default 1) establishments they are spread over, round
//!   robin,
//! - `MEASURE_ROUNDS=R` (default 5) queue changes per establishment, one round after the
//!   other; the latencies of every round go into one distribution (and a profiler
//!   attached to the server sees the fan-out, not only the connection setup).
//!
//! Reports the server's resident memory per idle subscriber, then makes one queue change
//! (a customer joins the walk-in queue) in every establishment at once, 64 in flight, and
//! reports how long each subscriber waited for its establishment's frame: from just
//! before that establishment's POST (so the durable write is included) to the frame's
//! arrival, p50/p99/max. The open-file limit bounds N: client and server each hold one
//! socket per subscriber.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::Server;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let setting = |name: &str, measured: usize, smoke: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if measuring { measured } else { smoke })
    };
    let subscribers = setting("MEASURE_SUBSCRIBERS", 10_000, 50);
    let establishments = setting("MEASURE_ESTABLISHMENTS", 1, 5).clamp(1, subscribers);
    let rounds = setting("MEASURE_ROUNDS", 5, 2).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(idle_subscribers_memory_and_fanout_latency(
            subscribers,
            establishments,
            rounds,
        ));
}

/// One establishment: its id and a service to queue for.
struct Shop {
    id: String,
    service: String,
}

/// `count` establishments owned by one owner, each with one staff member and a service.
async fn provision(server: &Server, owner: &str, count: usize) -> Vec<Shop> {
    let day = json!([["00:00", "24:00"]]);
    let hours =
        json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day});
    futures::stream::iter(0..count)
        .map(|n| {
            let hours = hours.clone();
            async move {
                let created = |path: String, body: Value| async move {
                    let (status, _, body) = server
                        .call(Method::POST, &path, Some(owner), Some(body))
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
                    body["id"].as_str().unwrap().to_owned()
                };
                let id = created(
                    "/v1/establishments".into(),
                    json!({"name": format!("Shop {n}"), "timezone": "UTC"}),
                )
                .await;
                let staff = created(
                    format!("/v1/establishments/{id}/staff"),
                    json!({"name": "Carlos", "hours": hours}),
                )
                .await;
                let service = created(
                    format!("/v1/establishments/{id}/services"),
                    json!({"name": "Corte", "duration_minutes": 30, "price_cents": 5000, "staff_ids": [staff]}),
                )
                .await;
                Shop { id, service }
            }
        })
        .buffered(16)
        .collect()
        .await
}

async fn idle_subscribers_memory_and_fanout_latency(
    n: usize,
    establishments: usize,
    rounds: usize,
) {
    let server = Server::start();
    let (owner, _) = server.register("owner").await;
    let shops = provision(&server, &owner, establishments).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kib = server.rss_kib();

    // Each subscriber's socket is read by one task for the whole run, which notes when
    // its establishment's `queue.joined` arrives (tasks spawned per round cost the
    // clients, on the same two cores as the server, more than the server's fan-out).
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let connect_started = Instant::now();
    for i in 0..n {
        let shop = i % shops.len();
        let url = format!(
            "ws://127.0.0.1:{}/v1/establishments/{}/live",
            server.port, shops[shop].id
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {owner}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let _hello = socket.next().await.unwrap().unwrap();
        tokio::spawn(read_feed(shop, socket, arrived_tx.clone()));
    }
    let connect_elapsed = connect_started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_kib = server.rss_kib();
    let per_sub = (after_kib.saturating_sub(before_kib) * 1024) as f64 / n as f64;
    println!(
        "subscribers={n} establishments={establishments} connect_time={connect_elapsed:?} rss_before={before_kib}KiB rss_after={after_kib}KiB per_subscriber={per_sub:.0}B projected_100k={:.2}GiB",
        per_sub * 100_000.0 / (1024.0 * 1024.0 * 1024.0)
    );

    // A fresh customer per round (one active ticket per customer per establishment),
    // registered before the measured window: password hashing is not fan-out work.
    let mut customers = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        customers.push(server.register("fanout").await.0);
    }
    let cpu_before = server.cpu_time();
    let clients_before = common::process_cpu_time("self");
    let mut latencies = Vec::with_capacity(n * rounds);
    let mut changes_took = Vec::with_capacity(rounds);
    for customer in customers {
        let took =
            one_change_each(&server, &customer, &shops, n, &mut arrived, &mut latencies).await;
        changes_took.push(took);
    }
    let server_cpu = server.cpu_time().saturating_sub(cpu_before);
    // The subscribers' side (this process: its sockets, frame parsing, the POSTs).
    let clients_cpu = common::process_cpu_time("self").saturating_sub(clients_before);
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    changes_took.sort();
    println!(
        "fanout subscribers={n} establishments={establishments} rounds={rounds} deliveries={} changes_took_median={:?} min={:?} p50={:?} p99={:?} max={:?} server_cpu={server_cpu:?} ({:.1}us per delivered frame) clients_cpu={clients_cpu:?} ({:.1}us per frame) (from before each establishment's POST, durable write included)",
        latencies.len(),
        changes_took[changes_took.len() / 2],
        latencies[0],
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
        server_cpu.as_secs_f64() * 1e6 / latencies.len() as f64,
        clients_cpu.as_secs_f64() * 1e6 / latencies.len() as f64,
    );
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// When a subscriber of establishment `.0` read its `queue.joined` frame.
type Arrival = (usize, Instant);

/// Read one subscriber's feed until it ends, noting each `queue.joined` (anything else,
/// such as an estimates refresh, is skipped). A read error ends it quietly: the server
/// stops while the feeds are open at the end of a run, and one that broke mid-run shows
/// as its round's missing arrival.
async fn read_feed(shop: usize, mut socket: Socket, arrived: mpsc::UnboundedSender<Arrival>) {
    while let Some(Ok(frame)) = socket.next().await {
        if frame.to_text().is_ok_and(|t| t.contains("queue.joined")) {
            let _ = arrived.send((shop, Instant::now()));
        }
    }
}

/// One queue change (a join by `customer`) in every establishment, 64 in flight; each
/// of the `subscribers`' wait for its establishment's `queue.joined` goes into
/// `latencies`. Returns how long the changes took.
async fn one_change_each(
    server: &Server,
    customer: &str,
    shops: &[Shop],
    subscribers: usize,
    arrived: &mut mpsc::UnboundedReceiver<Arrival>,
    latencies: &mut Vec<Duration>,
) -> Duration {
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..shops.len()).map(|_| OnceLock::new()).collect());
    let started = Instant::now();
    futures::stream::iter(shops.iter().enumerate())
        .for_each_concurrent(64, |(i, shop)| {
            let sent = sent.clone();
            async move {
                let _ = sent[i].set(Instant::now());
                let (status, _, body) = server
                    .call(
                        Method::POST,
                        &format!("/v1/establishments/{}/queue", shop.id),
                        Some(customer),
                        Some(json!({"service_id": shop.service})),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        })
        .await;
    let took = started.elapsed();
    for _ in 0..subscribers {
        let (shop, at) = tokio::time::timeout(Duration::from_secs(60), arrived.recv())
            .await
            .expect("every subscriber gets its queue.joined within a minute")
            .expect("the feeds' readers are running");
        latencies.push(at.saturating_duration_since(*sent[shop].get().unwrap()));
    }
    took
}
