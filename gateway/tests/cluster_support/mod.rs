//! What the cluster tests share: starting nodes, booking load from clients spread over
//! them, and the checks every fault test ends with (no acknowledged booking lost, no
//! overlap, journals gap-free).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Server, SharedDatabase, ahead, psql_rows, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Short leases so a failover takes about 2 s here (the default is 3 s).
pub const TTL_MS: &str = "1500";
pub const MARGIN_MS: &str = "400";

pub fn prefix() -> String {
    format!("navaro-test-{}", uuid::Uuid::new_v4().simple())
}

pub fn node_env<'a>(db: &'a str, node: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("NAVARO_DATABASE_URL", db),
        ("NAVARO_CLUSTER__ENABLED", "true"),
        ("NAVARO_CLUSTER__NODE_ID", node),
        ("NAVARO_CLUSTER__REDIS_URL", REDIS_URL),
        ("NAVARO_CLUSTER__REDIS_PREFIX", prefix),
        ("NAVARO_CLUSTER__LEASE_TTL_MS", TTL_MS),
        ("NAVARO_CLUSTER__LEASE_MARGIN_MS", MARGIN_MS),
        ("NAVARO_STORE__MAX_CONNECTIONS", "6"),
    ]
}

pub fn start_node(db: &SharedDatabase, node: &str, prefix: &str) -> Server {
    Server::start_with(&node_env(db.url(), node, prefix)).expect("cluster node starts")
}

/// The node recorded as owner in Postgres, and its epoch.
pub fn owner_in_postgres(db: &SharedDatabase, id: &str) -> (String, i64) {
    let row = psql_rows(
        db.url(),
        &format!("SELECT node, epoch FROM owners WHERE establishment_id = '{id}'"),
    );
    let (node, epoch) = row.trim().split_once('|').expect("an owners row");
    (node.to_owned(), epoch.parse().unwrap())
}

pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One booking client: books the given starts in turn through `node`, recording each
/// 201 and when it came.
pub struct Acked {
    pub booking: Value,
    pub establishment: usize,
    /// When the request that got the 201 was sent, and when the 201 came.
    pub sent: Instant,
    pub at: Instant,
}

pub type Shop = (String, String, String, Vec<Value>);

/// `count` establishments, all created through `creator` (which so owns them all), each
/// with two weeks of free starts.
pub async fn shops(creator: &Server, reader: &Server, count: usize) -> Vec<Shop> {
    let mut shops = Vec::new();
    for _ in 0..count {
        let (owner, id, _staff, service) = setup(creator, 1000).await;
        let mut free = Vec::new();
        for day in 2..16 {
            free.extend(slots(reader, &id, &service, ahead(day)).await);
        }
        shops.push((owner, id, service, free));
    }
    shops
}

/// Booking clients: `lanes` per establishment, spread over `nodes`, each booking its
/// own starts in turn (paced) until `run_for` has passed, retrying a 503 or a lost
/// connection with the same Idempotency-Key, and recording every 201.
pub async fn load(
    nodes: &[&Server],
    shops: &[Shop],
    lanes: usize,
    run_for: Duration,
) -> (Arc<Mutex<Vec<Acked>>>, Vec<tokio::task::JoinHandle<()>>) {
    let bases = Arc::new(Mutex::new(nodes.iter().map(|n| n.base.clone()).collect()));
    load_over(
        nodes[0],
        bases,
        shops,
        lanes,
        run_for,
        Duration::from_millis(40),
        Arc::default(),
    )
    .await
}

/// What a client saw that was not a 201 or a 4xx: retriable 503s and lost connections,
/// with the node and when.
pub type Retried = Arc<Mutex<Vec<(String, Instant)>>>;

/// [`load`] over base URLs that may change meanwhile (a node restarted on a new port):
/// a lane starts on its own node and moves to the next one after a lost connection or
/// a 503, as a load balancer would.
pub async fn load_over(
    registrar: &Server,
    bases: Arc<Mutex<Vec<String>>>,
    shops: &[Shop],
    lanes: usize,
    run_for: Duration,
    pace: Duration,
    retried: Retried,
) -> (Arc<Mutex<Vec<Acked>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let mut tasks = Vec::new();
    for (e, (_, id, service, free)) in shops.iter().enumerate() {
        for lane in 0..lanes {
            let (token, _) = registrar.register(&format!("c{e}-{lane}")).await;
            let (client, path, bases) = (
                registrar.client.clone(),
                format!("/v1/establishments/{id}/bookings"),
                bases.clone(),
            );
            let (acked, service, retried) = (acked.clone(), service.clone(), retried.clone());
            // Each lane its own starts (the grid is 15 minutes, a booking 30), so most
            // bookings succeed and writes are visible.
            let starts: Vec<Value> = free
                .iter()
                .skip(lane * 2)
                .step_by(lanes * 2)
                .map(|s| s["start"].clone())
                .collect();
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + run_for;
                for (i, start) in starts.into_iter().enumerate() {
                    if Instant::now() > deadline {
                        return;
                    }
                    // Paced, so the load spans the fault and the failover.
                    tokio::time::sleep(pace).await;
                    let mut pick = lane;
                    for _attempt in 0..200 {
                        let url = {
                            let bases = bases.lock().unwrap();
                            format!("{}{path}", bases[pick % bases.len()])
                        };
                        let sent = Instant::now();
                        let response = client
                            .post(&url)
                            .bearer_auth(&token)
                            .header("idempotency-key", format!("{lane}-{i}"))
                            .json(&json!({"service_id": service, "start": start}))
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        let Ok(response) = response else {
                            retried
                                .lock()
                                .unwrap()
                                .push((format!("{url}: no answer"), Instant::now()));
                            pick += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let status = response.status();
                        if status == StatusCode::CREATED {
                            let booking = response.json::<Value>().await.unwrap();
                            acked.lock().unwrap().push(Acked {
                                booking,
                                establishment: e,
                                sent,
                                at: Instant::now(),
                            });
                            break;
                        }
                        if status == StatusCode::SERVICE_UNAVAILABLE {
                            assert!(response.headers().contains_key("retry-after"));
                            let body = response.text().await.unwrap_or_default();
                            retried
                                .lock()
                                .unwrap()
                                .push((format!("{url}: 503 {body}"), Instant::now()));
                            pick += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        // A 4xx (the slot went meanwhile): next start. Nothing else.
                        assert!(status.is_client_error(), "unexpected {status}");
                        break;
                    }
                }
            }));
        }
    }
    (acked, tasks)
}

/// Per establishment, from `fault` to the first acknowledged write sent after it
/// (answers already under way do not count); sorted.
pub fn resumed_after(acked: &[Acked], establishments: usize, fault: Instant) -> Vec<Duration> {
    let mut resumed: Vec<Duration> = (0..establishments)
        .map(|e| {
            acked
                .iter()
                .filter(|a| a.establishment == e && a.sent > fault)
                .map(|a| a.at - fault)
                .min()
                .expect("every establishment takes writes again after the fault")
        })
        .collect();
    resumed.sort();
    resumed
}

/// The three properties, for every establishment, and that each moved off `from`.
pub async fn check_all(
    db: &SharedDatabase,
    reader: &Server,
    shops: &[Shop],
    acked: &[Acked],
    from: &str,
) {
    for (e, (owner, id, _, free)) in shops.iter().enumerate() {
        let (node, epoch) = owner_in_postgres(db, id);
        assert_ne!(node, from, "owned again elsewhere");
        assert!(epoch >= 2, "the claim bumped the epoch");
        check_bookings(
            reader,
            owner,
            id,
            free,
            acked.iter().filter(|a| a.establishment == e),
        )
        .await;
        check_journal(db, id);
    }
}

/// Every acknowledged booking is stored and confirmed; no two confirmed bookings of a
/// staff member overlap.
pub async fn check_bookings<'a>(
    node: &Server,
    owner: &str,
    id: &str,
    free: &[Value],
    acked: impl Iterator<Item = &'a Acked>,
) {
    let mut dates: Vec<String> = free
        .iter()
        .map(|s| s["start"].as_str().unwrap()[..10].to_owned())
        .collect();
    dates.dedup();
    let mut stored: Vec<Value> = Vec::new();
    for date in dates {
        let (status, _, day) = node
            .call(
                Method::GET,
                &format!("/v1/establishments/{id}/bookings?date={date}"),
                Some(owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{day}");
        stored.extend(day["bookings"].as_array().unwrap().iter().cloned());
    }
    for a in acked {
        let found = stored.iter().find(|b| b["id"] == a.booking["id"]);
        assert!(
            found.is_some_and(|b| b["status"] == "confirmed"),
            "acknowledged booking {} is lost",
            a.booking["id"]
        );
    }
    let mut spans: Vec<(String, jiff::Timestamp, jiff::Timestamp)> = stored
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .map(|b| {
            (
                b["staff_id"].as_str().unwrap().to_owned(),
                b["start"].as_str().unwrap().parse().unwrap(),
                b["end"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(pair[0].2 <= pair[1].1, "overlapping bookings {pair:?}");
        }
    }
}

pub fn check_journal(db: &SharedDatabase, id: &str) {
    let counts = psql_rows(
        db.url(),
        &format!(
            "SELECT count(*), coalesce(max(seq), 0), coalesce(min(seq), 0) FROM events WHERE establishment_id = '{id}'"
        ),
    );
    let parts: Vec<&str> = counts.trim().split('|').collect();
    assert_eq!(parts[0], parts[1], "seqs have a gap ({counts})");
    assert_eq!(parts[2], "1");
}

/// Delete every key of this cluster in Redis, as a Redis restarted without persistence
/// (or a FLUSHALL) would: only this test's prefix, so other tests sharing the Redis are
/// not disturbed.
pub fn lose_redis_data(prefix: &str) -> i64 {
    let output = std::process::Command::new("redis-cli")
        .args([
            "-u",
            REDIS_URL,
            "EVAL",
            "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n",
            "0",
            &format!("{prefix}:*"),
        ])
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a count of keys")
}

pub fn redis_get(key: &str) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-u", REDIS_URL, "GET", key])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
