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
//!
//! Then it measures a reference for the same deliveries, this machine's floor: as many
//! plain loopback TCP connections, the frame's bytes written to each by the least a
//! server could do (two plain threads) and read by one task each, as the subscribers
//! are. When server and subscribers share two cores, most of a delivered frame's cost is
//! the kernel's, on both sides, and the floor shows how much.

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
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

fn main() {
    if let Ok(spec) = std::env::var(FLOOR_WRITER_ENV) {
        return floor_writer(&spec);
    }
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
    let mut feeds = Vec::with_capacity(n);
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
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(client_config()), false)
                .await
                .unwrap();
        let _hello = socket.next().await.unwrap().unwrap();
        feeds.push(tokio::spawn(read_feed(shop, socket, arrived_tx.clone())));
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
    let mut frame_len = 0;
    for customer in customers {
        let took = one_change_each(
            &server,
            &customer,
            &shops,
            n,
            &mut arrived,
            &mut latencies,
            &mut frame_len,
        )
        .await;
        changes_took.push(took);
    }
    let server_cpu = server.cpu_time().saturating_sub(cpu_before);
    // The subscribers' side (this process: its sockets, frame parsing, the POSTs).
    let clients_cpu = common::process_cpu_time("self").saturating_sub(clients_before);
    latencies.sort();
    let pct = |p: f64| percentile(&latencies, p);
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
    drop(server);
    // The subscribers' sockets close as their readers see the server gone; the floor
    // needs their file descriptors.
    for feed in feeds {
        let _ = tokio::time::timeout(Duration::from_secs(60), feed).await;
    }

    // A reference for the same deliveries: this machine's floor.
    loopback_floor(n, frame_len, rounds).await;
}

/// The subscribers' WebSocket settings. tungstenite zero-fills its whole read buffer
/// before every read (128 KiB by default): with the default, that `memset` was 28% of
/// the clients' CPU, on the same two cores as the server. Frames here are under 1 KiB.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// When a subscriber of establishment `.0` read its `queue.joined` frame, and the
/// frame's length.
type Arrival = (usize, Instant, usize);

/// Read one subscriber's feed until it ends, noting each `queue.joined` (anything else,
/// such as an estimates refresh, is skipped). A read error ends it quietly: the server
/// stops while the feeds are open at the end of a run, and one that broke mid-run shows
/// as its round's missing arrival.
async fn read_feed(shop: usize, mut socket: Socket, arrived: mpsc::UnboundedSender<Arrival>) {
    while let Some(Ok(frame)) = socket.next().await {
        if let Ok(text) = frame.to_text()
            && text.contains("queue.joined")
        {
            let _ = arrived.send((shop, Instant::now(), text.len()));
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
    frame_len: &mut usize,
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
        let (shop, at, len) = tokio::time::timeout(Duration::from_secs(60), arrived.recv())
            .await
            .expect("every subscriber gets its queue.joined within a minute")
            .expect("the feeds' readers are running");
        latencies.push(at.saturating_duration_since(*sent[shop].get().unwrap()));
        *frame_len = (*frame_len).max(len);
    }
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A reference for the same fan-out on this machine, close to what the kernel alone
/// costs: `n` loopback TCP connections from a child process, the floor's "server",
/// which each round writes the frame's bytes (`frame_len` plus the 4-byte header a
/// server-to-client WebSocket frame of that size has) to every one of them from two
/// plain threads, started for the round (no WebSocket, no runtime, no engine: the least
/// a server could do); each is read by one task in this process's runtime, noted on a
/// channel as the subscribers above are. Reports the delay from the round's start to
/// each read, p50/p99/max, and both processes' CPU per delivered frame. Unlike the
/// fan-out's, these delays include no POST and no durable write: compare the CPU per
/// frame directly and the delays as a lower bound. The writer is another process
/// because one process cannot hold both ends of 10,000 connections under this machine's
/// 20,000 open-file limit.
async fn loopback_floor(n: usize, frame_len: usize, rounds: usize) {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    const WITHIN: Duration = Duration::from_secs(60);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let frame_bytes = frame_len + 4;
    let mut writer = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env(FLOOR_WRITER_ENV, format!("{address} {n} {frame_bytes}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut go = writer.stdin.take().unwrap();
    let mut done = tokio::io::BufReader::new(writer.stdout.take().unwrap()).lines();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<Instant>();
    let accept_all = async {
        for _ in 0..n {
            let (mut reader, _) = listener.accept().await.unwrap();
            reader.set_nodelay(true).unwrap();
            let arrived = arrived_tx.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; frame_bytes];
                while reader.read_exact(&mut buffer).await.is_ok() {
                    let _ = arrived.send(Instant::now());
                }
            });
        }
    };
    tokio::time::timeout(WITHIN, accept_all)
        .await
        .expect("the floor's writer connects within a minute");
    // Only the readers hold senders now: if they all end, `recv` says so.
    drop(arrived_tx);
    let connected = tokio::time::timeout(WITHIN, done.next_line()).await;
    assert!(
        matches!(connected, Ok(Ok(Some(ref line))) if line == "connected"),
        "the floor's writer did not connect: {connected:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writer_pid = writer.id().unwrap().to_string();
    let cpu_before = common::process_cpu_time("self");
    let writer_cpu_before = common::process_cpu_time(&writer_pid);
    let mut latencies = Vec::with_capacity(n * rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        go.write_all(b"go\n").await.unwrap();
        go.flush().await.unwrap();
        for _ in 0..n {
            let at = tokio::time::timeout(WITHIN, arrived.recv())
                .await
                .expect("every connection reads its frame within a minute")
                .expect("the readers are running");
            latencies.push(at.saturating_duration_since(started));
        }
    }
    let readers_cpu = common::process_cpu_time("self").saturating_sub(cpu_before);
    let writer_cpu = common::process_cpu_time(&writer_pid).saturating_sub(writer_cpu_before);
    drop(go);
    let _ = writer.wait().await;
    latencies.sort();
    let per_frame = |cpu: Duration| cpu.as_secs_f64() * 1e6 / latencies.len() as f64;
    println!(
        "floor connections={n} frame_bytes={frame_bytes} rounds={rounds} deliveries={} p50={:?} p99={:?} max={:?} writer_cpu={writer_cpu:?} ({:.1}us per delivered frame) readers_cpu={readers_cpu:?} ({:.1}us per frame) (plain loopback TCP, two writer threads, from the round's start: no POST)",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        per_frame(writer_cpu),
        per_frame(readers_cpu),
    );
}

/// Set on the child that plays the floor's server: "<address> <connections> <bytes>".
const FLOOR_WRITER_ENV: &str = "FANOUT_FLOOR_WRITER";

/// The floor's server: connect, say so, then for every line on stdin write the frame to
/// every connection from two threads; end at stdin's end.
fn floor_writer(spec: &str) {
    use std::io::{BufRead, Write};

    let mut parts = spec.split(' ');
    let mut next = || parts.next().expect("address, connections, bytes");
    let address: std::net::SocketAddr = next().parse().unwrap();
    let n: usize = next().parse().unwrap();
    let frame = vec![b'x'; next().parse().unwrap()];
    let sockets: Vec<std::net::TcpStream> = (0..n)
        .map(|_| {
            let socket = std::net::TcpStream::connect(address).unwrap();
            socket.set_nodelay(true).unwrap();
            socket
        })
        .collect();
    let (first, second) = sockets.split_at(n.div_ceil(2));
    println!("connected");
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        std::thread::scope(|scope| {
            for half in [first, second] {
                let frame = &frame;
                scope.spawn(move || {
                    for mut socket in half {
                        socket.write_all(frame).unwrap();
                    }
                });
            }
        });
    }
}
