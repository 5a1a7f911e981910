//! Several real `navaro` processes as one cluster on loopback, on the machine's Postgres
//! (one fresh database they share) and Redis (a fresh key prefix per test). A missing
//! Postgres or Redis fails these tests.
//!
//! - a node refuses to start without Redis, with a live node id, or on SQLite;
//! - any node serves any establishment: requests reaching a non-owner are forwarded to
//!   the owner, and a forwarded request is never forwarded again;
//! - kill -9 of the owner of busy establishments under booking load from clients on the
//!   other nodes: every acknowledged booking is there and confirmed, no two overlap,
//!   every journal is gap-free, the establishments are owned again elsewhere (epoch
//!   bumped), and the time until each took writes again is printed;
//! - Redis losing every key of the cluster under load: the same three properties, and
//!   every establishment and node is registered again;
//! - a rolling restart (SIGTERM, start again) of all three nodes under load: clients see
//!   no error but retriable 503s with `Retry-After`, no key books twice, nothing
//!   acknowledged is lost;
//! - SIGSTOP of the owner for four times the lease TTL under load from every node, then
//!   SIGCONT: the same three properties (its late commits are refused by the epoch
//!   fence, so none was acknowledged), and it serves its clients by forwarding.
//!
//! `NAVARO_CLUSTER_LONG=1` runs the kill test longer (more establishments and load).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, SharedDatabase, ahead, psql_rows, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The tests of this file run one at a time (see each test's first line).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Short leases so a failover takes about 2 s here (the default is 3 s).
const TTL_MS: &str = "1500";
const MARGIN_MS: &str = "400";

fn prefix() -> String {
    format!("navaro-test-{}", uuid::Uuid::new_v4().simple())
}

fn node_env<'a>(db: &'a str, node: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
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

fn start_node(db: &SharedDatabase, node: &str, prefix: &str) -> Server {
    Server::start_with(&node_env(db.url(), node, prefix)).expect("cluster node starts")
}

/// Run `navaro serve` to its exit (it must refuse to start) and return its output.
fn refused_start(env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_navaro"));
    command.arg("serve");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("NAVARO_")) {
        command.env_remove(k);
    }
    command
        .env("NAVARO_HTTP__LISTEN", "127.0.0.1:0")
        .env("NAVARO_DATA_DIR", data.path());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("navaro runs");
    assert!(!output.status.success(), "navaro must refuse to start");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_without_redis_with_a_live_id_or_on_sqlite() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();

    let mut no_redis = node_env(db.url(), "n1", &prefix);
    no_redis.push(("NAVARO_CLUSTER__REDIS_URL", "redis://127.0.0.1:1"));
    let out = refused_start(&no_redis);
    assert!(
        out.contains("cannot reach Redis at cluster.redis_url"),
        "{out}"
    );

    let _first = start_node(&db, "n1", &prefix);
    let out = refused_start(&node_env(db.url(), "n1", &prefix));
    assert!(out.contains("\"n1\" is already live"), "{out}");

    let out = refused_start(&[
        ("NAVARO_CLUSTER__ENABLED", "true"),
        ("NAVARO_CLUSTER__NODE_ID", "n9"),
        ("NAVARO_CLUSTER__REDIS_URL", REDIS_URL),
    ]);
    assert!(
        out.contains("cluster.enabled") && out.contains("SQLite"),
        "{out}"
    );

    let out = refused_start(&[
        ("NAVARO_DATABASE_URL", db.url()),
        ("NAVARO_CLUSTER__ENABLED", "true"),
        ("NAVARO_CLUSTER__NODE_ID", "bad id"),
        ("NAVARO_CLUSTER__REDIS_URL", REDIS_URL),
    ]);
    assert!(out.contains("cluster.node_id"), "{out}");
}

/// The node recorded as owner in Postgres, and its epoch.
fn owner_in_postgres(db: &SharedDatabase, id: &str) -> (String, i64) {
    let row = psql_rows(
        db.url(),
        &format!("SELECT node, epoch FROM owners WHERE establishment_id = '{id}'"),
    );
    let (node, epoch) = row.trim().split_once('|').expect("an owners row");
    (node.to_owned(), epoch.parse().unwrap())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_establishment_and_a_forward_never_hops_twice() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    // Created through n0, which claims it.
    let (_owner, id, _staff, service) = setup(&nodes[0], 100).await;
    let (owner_node, epoch) = owner_in_postgres(&db, &id);
    assert_eq!((owner_node.as_str(), epoch), ("n0", 1));
    let free = slots(&nodes[1], &id, &service, ahead(3)).await;
    assert!(free.len() >= 12);
    // Every node books and reads it.
    for (i, node) in nodes.iter().enumerate() {
        let (token, _) = node.register(&format!("c{i}")).await;
        let (status, _, booking) = node
            .call_with(
                Method::POST,
                &format!("/v1/establishments/{id}/bookings"),
                Some(&token),
                Some(json!({"service_id": service, "start": free[i * 4]["start"]})),
                &[("idempotency-key", "k1")],
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "via n{i}: {booking}");
        // The same key again through another node: the same booking, not a second one.
        let other = &nodes[(i + 1) % 3];
        let (status, _, again) = other
            .call_with(
                Method::POST,
                &format!("/v1/establishments/{id}/bookings"),
                Some(&token),
                Some(json!({"service_id": service, "start": free[i * 4]["start"]})),
                &[("idempotency-key", "k1")],
            )
            .await;
        assert!(status.is_success(), "{again}");
        assert_eq!(again["id"], booking["id"]);
        let (status, _, est) = node
            .call(Method::GET, &format!("/v1/establishments/{id}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{est}");
    }
    // Still owned by n0, at the same epoch: nothing moved.
    assert_eq!(owner_in_postgres(&db, &id), ("n0".to_owned(), 1));
    for node in &nodes[1..] {
        let forwarded = metric(&node.metrics().await, "navaro_cluster_forwarded_total");
        assert!(forwarded >= 3.0, "n1 and n2 forwarded to n0: {forwarded}");
    }

    // A forwarded request that reaches a node not owning the establishment (a stale
    // view, made here by sending straight to n1's internal port) is refused, not sent on.
    let internal = nodes[1]
        .logged("internal")
        .expect("n1 logs its internal address");
    let peers = navaro_cluster::Peers::new(Duration::from_secs(5));
    let (head, body) = peers
        .send(
            &internal,
            navaro_cluster::RequestHead {
                method: "GET".into(),
                uri: format!("/v1/establishments/{id}"),
                headers: vec![],
                client: None,
            },
            Vec::new(),
        )
        .await
        .expect("n1 answers");
    assert_eq!(head.status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(head.headers.iter().any(|(n, _)| n == "x-navaro-not-owner"));
    assert!(head.headers.iter().any(|(n, _)| n == "retry-after"));
    let refused = metric(
        &nodes[1].metrics().await,
        "navaro_cluster_forwards_refused_total",
    );
    assert_eq!(refused, 1.0);
    let n0_forwarded = metric(&nodes[0].metrics().await, "navaro_cluster_forwarded_total");
    assert_eq!(n0_forwarded, 0.0, "the owner forwards nothing");
}

/// One booking client: books the given starts in turn through `node`, recording each
/// 201 and when it came.
struct Acked {
    booking: Value,
    establishment: usize,
    /// When the request that got the 201 was sent, and when the 201 came.
    sent: Instant,
    at: Instant,
}

type Shop = (String, String, String, Vec<Value>);

/// `count` establishments, all created through `creator` (which so owns them all), each
/// with two weeks of free starts.
async fn shops(creator: &Server, reader: &Server, count: usize) -> Vec<Shop> {
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
async fn load(
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
    )
    .await
}

/// [`load`] over base URLs that may change meanwhile (a node restarted on a new port):
/// a lane starts on its own node and moves to the next one after a lost connection or
/// a 503, as a load balancer would.
async fn load_over(
    registrar: &Server,
    bases: Arc<Mutex<Vec<String>>>,
    shops: &[Shop],
    lanes: usize,
    run_for: Duration,
    pace: Duration,
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
            let (acked, service) = (acked.clone(), service.clone());
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
fn resumed_after(acked: &[Acked], establishments: usize, fault: Instant) -> Vec<Duration> {
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
async fn check_all(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_under_load_loses_no_acknowledged_booking() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let long = std::env::var("NAVARO_CLUSTER_LONG").is_ok();
    let establishments = if long { 6 } else { 3 };
    let db = SharedDatabase::create();
    let prefix = prefix();
    let mut nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], establishments).await;
    for (_, id, _, _) in &shops {
        assert_eq!(owner_in_postgres(&db, id).0, "n0");
    }
    // Clients on n1 and n2 only (n0 is killed).
    let run_for = Duration::from_secs(if long { 30 } else { 9 });
    let (acked, tasks) = load(
        &[&nodes[1], &nodes[2]],
        &shops,
        if long { 6 } else { 4 },
        run_for,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "bookings went through before the kill");
    let killed_at = Instant::now();
    nodes[0].kill9();
    for task in tasks {
        task.await.expect("a client lane panicked");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let resumed = resumed_after(&acked, establishments, killed_at);
    println!(
        "writes resumed after kill -9 of the owner (lease TTL {TTL_MS} ms): min {:?}, p50 {:?}, max {:?}; {} bookings acknowledged ({before} before the kill)",
        resumed[0],
        resumed[resumed.len() / 2],
        resumed[resumed.len() - 1],
        acked.len()
    );
    check_all(&db, &nodes[1], &shops, &acked, "n0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_is_fenced_and_never_acknowledges_a_late_commit() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], 2).await;
    // Clients on every node, the paused one included: what it had in flight when it
    // stopped is answered after it resumes, and must not be a 201 it cannot back.
    let (acked, tasks) = load(
        &[&nodes[0], &nodes[1], &nodes[2]],
        &shops,
        6,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let pid = nodes[0].pid().to_string();
    let signal = |name: &str| {
        let ok = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {name}");
    };
    let paused_at = Instant::now();
    signal("-STOP");
    // Four times the lease TTL (the issue asks for at least twice; the slack is for a
    // CI box running other tests at once): its establishments are claimed elsewhere
    // meanwhile.
    tokio::time::sleep(Duration::from_millis(4 * TTL_MS.parse::<u64>().unwrap())).await;
    signal("-CONT");
    for task in tasks {
        task.await.expect("a client lane panicked");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let resumed = resumed_after(&acked, shops.len(), paused_at);
    println!(
        "writes resumed after SIGSTOP of the owner: min {:?}, max {:?}; {} bookings acknowledged",
        resumed[0],
        resumed[resumed.len() - 1],
        acked.len()
    );
    check_all(&db, &nodes[1], &shops, &acked, "n0").await;
    // The resumed node found its lease lapsed, and serves its clients by forwarding.
    assert!(
        nodes[0].log_text().contains("lease re-established"),
        "{}",
        nodes[0].log_text()
    );
    let n0 = nodes[0].metrics().await;
    let logs = nodes[0].log_text();
    println!(
        "paused node afterwards: {} forwarded, {} batches refused by the epoch fence, {} refused for the lease, {} rejoins",
        metric(&n0, "navaro_cluster_forwarded_total"),
        logs.matches("journal append lost to another writer")
            .count(),
        logs.matches("cluster lease not current").count(),
        metric(&n0, "navaro_cluster_rejoins_total"),
    );
    assert!(metric(&n0, "navaro_cluster_forwarded_total") > 0.0);
}

/// Every acknowledged booking is stored and confirmed; no two confirmed bookings of a
/// staff member overlap.
async fn check_bookings<'a>(
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

fn check_journal(db: &SharedDatabase, id: &str) {
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
fn lose_redis_data(prefix: &str) -> i64 {
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

fn redis_get(key: &str) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-u", REDIS_URL, "GET", key])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_losing_its_data_under_load_loses_nothing_and_every_establishment_is_owned_again() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], 2).await;
    let (acked, tasks) = load(
        &[&nodes[0], &nodes[1], &nodes[2]],
        &shops,
        6,
        Duration::from_secs(7),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let lost_at = Instant::now();
    let deleted = lose_redis_data(&prefix);
    assert!(deleted >= 5, "three node keys and two owners: {deleted}");
    for task in tasks {
        task.await.expect("a client lane panicked");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let resumed = resumed_after(&acked, shops.len(), lost_at);
    println!(
        "writes resumed after Redis lost its data: min {:?}, max {:?}; {} bookings acknowledged",
        resumed[0],
        resumed[resumed.len() - 1],
        acked.len()
    );
    for (e, (owner, id, _, free)) in shops.iter().enumerate() {
        // Owned again, in Redis and in Postgres, by the same node.
        let (node, _epoch) = owner_in_postgres(&db, id);
        assert_eq!(redis_get(&format!("{prefix}:owner:{id}")), node);
        check_bookings(
            &nodes[1],
            owner,
            id,
            free,
            acked.iter().filter(|a| a.establishment == e),
        )
        .await;
        check_journal(&db, id);
    }
    // Every node is live again.
    for n in ["n0", "n1", "n2"] {
        assert!(
            !redis_get(&format!("{prefix}:node:{n}")).is_empty(),
            "{n} is live"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_answers_only_retriable_errors_and_books_once() {
    // Three nodes under load each: one such test at a time, or a busy box starves
    // the leases' renewals and claims of every test at once.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let mut nodes: Vec<Option<Server>> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| Some(start_node(&db, n, &prefix)))
        .collect();
    let shops = {
        let first = nodes[0].as_ref().unwrap();
        shops(first, nodes[1].as_ref().unwrap(), 2).await
    };
    let bases = Arc::new(Mutex::new(
        nodes
            .iter()
            .map(|n| n.as_ref().unwrap().base.clone())
            .collect::<Vec<_>>(),
    ));
    // A client of its own, so the lanes outlive every node.
    let registrar = start_node(&db, "registrar", &prefix);
    let (acked, tasks) = load_over(
        &registrar,
        bases.clone(),
        &shops,
        6,
        Duration::from_secs(12),
        Duration::from_millis(150),
    )
    .await;
    // Every node in turn: SIGTERM (it drains, flushes, releases its establishments and
    // leaves), then started again under the same id.
    for (i, name) in ["n0", "n1", "n2"].iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let status = nodes[i]
            .take()
            .unwrap()
            .terminate(Duration::from_secs(20))
            .expect("the node stops within the grace period");
        assert!(status.success(), "{name} exits cleanly: {status}");
        let again = start_node(&db, name, &prefix);
        bases.lock().unwrap()[i] = again.base.clone();
        nodes[i] = Some(again);
    }
    let restarted = Instant::now();
    for task in tasks {
        task.await
            .expect("a client lane saw an error other than a retriable 503");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let last = acked.iter().map(|a| a.at).max().unwrap();
    assert!(last > restarted, "the load went on past the last restart");
    println!(
        "{} bookings acknowledged over a rolling restart",
        acked.len()
    );
    let reader = nodes[1].as_ref().unwrap();
    for (e, (owner, id, _, free)) in shops.iter().enumerate() {
        // The overlap check also catches a key that booked twice (one staff member).
        check_bookings(
            reader,
            owner,
            id,
            free,
            acked.iter().filter(|a| a.establishment == e),
        )
        .await;
        check_journal(&db, id);
    }
}
