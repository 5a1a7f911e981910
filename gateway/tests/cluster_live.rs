//! Live feeds across a cluster of real `navaro` processes (docs/cluster.md, "Live
//! feeds"): WebSocket subscribers on every node, under booking load, through a kill -9
//! of the establishments' owner and a cut of the nodes' Redis pub/sub connections
//! (`CLIENT KILL` of exactly those connections). Every subscriber's stream must be
//! every seq of the establishment's journal, once each and in order; subscribers on
//! the surviving nodes must not even have been disconnected.

mod cluster_support;
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::*;
use common::{SharedDatabase, psql_rows};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    seqs: Vec<u64>,
    /// Times its connection ended and it connected again (to the next node, with since).
    reconnects: usize,
    reloads: usize,
}

/// A subscriber of `id` as its owner (who sees every event), starting on `bases[start]`
/// from seq 0, reconnecting with `since` to the next node when its connection ends,
/// until `stop` is set.
fn subscribe(
    bases: Vec<String>,
    start: usize,
    id: String,
    token: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut pick = start;
        let stopped = || stop.load(std::sync::atomic::Ordering::Acquire);
        while !stopped() {
            let since = seen.lock().unwrap().seqs.last().copied().unwrap_or(0);
            let url = format!(
                "{}/v1/establishments/{id}/live?since={since}",
                bases[pick % bases.len()].replacen("http", "ws", 1)
            );
            let mut request = url.into_client_request().unwrap();
            let auth = format!("Bearer {token}").parse().unwrap();
            request.headers_mut().insert("authorization", auth);
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
                pick += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            while !stopped() {
                let frame = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
                let text = match frame {
                    Err(_) => continue,
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => break,
                    Ok(Some(Ok(_))) => continue,
                };
                let frame: Value = serde_json::from_str(&text).unwrap();
                let mut seen = seen.lock().unwrap();
                match frame["type"].as_str().unwrap() {
                    "hello" => {}
                    "reload" => seen.reloads += 1,
                    _ => seen.seqs.push(frame["seq"].as_u64().unwrap()),
                }
            }
            if !stopped() {
                seen.lock().unwrap().reconnects += 1;
                pick += 1;
            }
        }
    });
    (out, task)
}

fn journal_last_seq(db: &SharedDatabase, id: &str) -> u64 {
    psql_rows(
        db.url(),
        &format!("SELECT coalesce(max(seq), 0) FROM events WHERE establishment_id = '{id}'"),
    )
    .trim()
    .parse()
    .unwrap()
}

/// Kill the Redis pub/sub connections of these processes, and only theirs (other tests
/// may share the Redis): their local ports from `ss`, then `CLIENT KILL ADDR`.
fn kill_pubsub_connections(pids: &[u32]) -> usize {
    let ss = std::process::Command::new("ss")
        .args(["-tnpH", "dst 127.0.0.1:6379"])
        .output()
        .expect("ss runs");
    let ss = String::from_utf8_lossy(&ss.stdout);
    let ours: Vec<String> = ss
        .lines()
        .filter(|l| pids.iter().any(|p| l.contains(&format!("pid={p},"))))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .collect();
    let list = std::process::Command::new("redis-cli")
        .args(["-u", REDIS_URL, "CLIENT", "LIST", "TYPE", "pubsub"])
        .output()
        .expect("redis-cli runs");
    let mut killed = 0;
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let Some(addr) = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("addr="))
        else {
            continue;
        };
        if ours.iter().any(|a| a == addr) {
            let ok = std::process::Command::new("redis-cli")
                .args(["-u", REDIS_URL, "CLIENT", "KILL", "ADDR", addr])
                .output()
                .expect("redis-cli runs");
            assert!(ok.status.success());
            killed += 1;
        }
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_every_node_see_every_event_once_and_in_order_across_a_kill_and_a_bus_cut() {
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let mut nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    // Owned by n0, which is killed.
    let shops = shops(&nodes[0], &nodes[1], 2).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut subscribers = Vec::new();
    for (e, (owner, id, _, _)) in shops.iter().enumerate() {
        for node in 0..3 {
            let (seen, task) =
                subscribe(bases.clone(), node, id.clone(), owner.clone(), stop.clone());
            subscribers.push((e, node, seen, task));
        }
    }
    let (acked, tasks) = load(&[&nodes[1], &nodes[2]], &shops, 4, Duration::from_secs(9)).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    nodes[0].kill9();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let cut = kill_pubsub_connections(&[nodes[1].pid(), nodes[2].pid()]);
    assert_eq!(cut, 2, "one bus connection per surviving node");
    for task in tasks {
        task.await.expect("a client lane panicked");
    }
    assert!(acked.lock().unwrap().len() > 20, "the load went through");
    // Every subscriber reaches the journal's last seq.
    let last: HashMap<usize, u64> = shops
        .iter()
        .enumerate()
        .map(|(e, (_, id, _, _))| (e, journal_last_seq(&db, id)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    for (e, _, seen, _) in &subscribers {
        while seen.lock().unwrap().seqs.last() != Some(&last[e]) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for (e, node, seen, task) in subscribers {
        task.await.expect("a subscriber panicked");
        let seen = seen.lock().unwrap();
        let expected: Vec<u64> = (1..=last[&e]).collect();
        assert_eq!(seen.reloads, 0, "subscriber on n{node}");
        assert!(
            seen.seqs == expected,
            "subscriber of shop {e} on n{node}: {} events, expected 1..={}; first differences: {:?}",
            seen.seqs.len(),
            last[&e],
            seen.seqs
                .iter()
                .zip(&expected)
                .filter(|(a, b)| a != b)
                .take(3)
                .collect::<Vec<_>>()
        );
        if node != 0 {
            assert_eq!(seen.reconnects, 0, "n{node}'s subscriber was never cut off");
        }
        println!(
            "shop {e}, subscriber on n{node}: {} events in order, {} reconnects",
            seen.seqs.len(),
            seen.reconnects
        );
    }
    for node in &nodes[1..] {
        let text = node.metrics().await;
        println!(
            "{}: {} bus reconnects, {} gaps filled from the journal ({} events)",
            node.base,
            metric(&text, "navaro_cluster_bus_reconnects_total"),
            metric(&text, "navaro_live_relay_gaps_total"),
            metric(&text, "navaro_live_relay_filled_total"),
        );
        assert!(metric(&text, "navaro_cluster_bus_reconnects_total") >= 1.0);
    }
}
