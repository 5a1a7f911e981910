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

mod cluster_support;
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::*;
use common::{Server, SharedDatabase, ahead, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The tests of this file run one at a time (see each test's first line).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
        Arc::default(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_the_establishments_over_and_clients_on_other_nodes_see_no_error() {
    // Three nodes under load each: one such test at a time.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let mut nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], 3).await;
    // Clients on n1 and n2, forwarding to n0 until it leaves.
    let retried: Retried = Arc::default();
    let bases = Arc::new(Mutex::new(vec![
        nodes[1].base.clone(),
        nodes[2].base.clone(),
    ]));
    let (acked, tasks) = load_over(
        &nodes[1],
        bases,
        &shops,
        4,
        Duration::from_secs(8),
        Duration::from_millis(40),
        retried.clone(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = acked.lock().unwrap().len();
    assert!(before > 0, "bookings went through before the stop");
    let stopped_at = Instant::now();
    let status = nodes[0]
        .sigterm_and_wait(Duration::from_secs(20))
        .expect("n0 stops within 20 s");
    let exited_after = stopped_at.elapsed();
    assert!(status.success(), "n0 exits cleanly: {status}");
    for task in tasks {
        task.await.expect("a client lane panicked");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let retried = std::mem::take(&mut *retried.lock().unwrap());
    if !retried.is_empty() {
        for node in &nodes {
            for line in node.log_text().lines() {
                if line.contains("WARN") || line.contains("ERROR") {
                    println!("{}: {line}", node.base);
                }
            }
        }
    }
    assert!(
        retried.is_empty(),
        "clients saw {} retriable errors, first: {:?}",
        retried.len(),
        retried.first().map(|r| &r.0)
    );
    let handoff_ms = nodes[0]
        .logged("took_ms")
        .expect("n0 logs its handoff")
        .parse::<u64>()
        .unwrap();
    // The slowest answer to a request sent while n0 was leaving.
    let slowest = acked
        .iter()
        .filter(|a| a.sent >= stopped_at && a.sent <= stopped_at + exited_after)
        .map(|a| a.at - a.sent)
        .max()
        .unwrap_or_default();
    println!(
        "SIGTERM handoff of {} establishments: {handoff_ms} ms on n0, exited after {exited_after:?}; slowest client answer meanwhile {slowest:?}; {} bookings acknowledged ({before} before), 0 errors",
        shops.len(),
        acked.len()
    );
    for (e, (owner, id, _, free)) in shops.iter().enumerate() {
        let (node, epoch) = owner_in_postgres(&db, id);
        assert_ne!(node, "n0", "handed over");
        assert_eq!(epoch, 2, "claimed once, by the successor");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_from_redis_stops_writing_within_the_ttl_and_its_establishments_move() {
    // Three nodes under load each: one such test at a time.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    // n0 reaches Redis through a proxy this test freezes (a partition: silence, not
    // resets), and Postgres directly.
    let proxy = common::proxy::Proxy::start("127.0.0.1:6379").await.unwrap();
    let via_proxy = format!("redis://127.0.0.1:{}", proxy.port);
    let mut env = node_env(db.url(), "n0", &prefix);
    env.push(("NAVARO_CLUSTER__REDIS_URL", &via_proxy));
    let nodes = [
        Server::start_with(&env).expect("n0 starts"),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], 3).await;
    let run_for = Duration::from_secs(9);
    // The third establishment gets requests through n0 alone: nobody claims it while
    // n0 is cut, so only n0's lease (not the epoch fence) can stop n0 writing it.
    let (acked, tasks) = load(&[&nodes[1], &nodes[2]], &shops[..2], 4, run_for).await;
    // Clients of n0 alone: what n0 acknowledges after its lease lapsed would be a
    // write it made without a lease.
    let (acked_n0, tasks_n0) = load(&[&nodes[0]], &shops, 1, run_for).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cut_at = Instant::now();
    proxy.freeze();
    let ttl = Duration::from_millis(TTL_MS.parse().unwrap());
    tokio::time::sleep(ttl * 3).await;
    let restored_at = Instant::now();
    proxy.restore();
    for task in tasks.into_iter().chain(tasks_n0) {
        task.await.expect("a client lane panicked");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let acked_n0 = std::mem::take(&mut *acked_n0.lock().unwrap());
    let late: Vec<Duration> = acked_n0
        .iter()
        .filter(|a| a.at > cut_at + ttl && a.sent < restored_at)
        .map(|a| a.at - cut_at)
        .collect();
    assert!(
        late.is_empty(),
        "n0 acknowledged writes after its lease must have lapsed: {late:?}"
    );
    let last_n0 = acked_n0
        .iter()
        .filter(|a| a.at < restored_at)
        .map(|a| a.at.saturating_duration_since(cut_at))
        .max()
        .unwrap_or_default();
    // The longest pause in acknowledged writes through n1/n2 while n0 was cut: the
    // failover (n0's lease lapsing, its key expiring, the claim and the load).
    let pauses: Vec<Duration> = (0..2)
        .map(|e| {
            let mut at: Vec<Instant> = acked
                .iter()
                .filter(|a| a.establishment == e && a.at > cut_at && a.at < restored_at)
                .map(|a| a.at)
                .collect();
            at.insert(0, cut_at);
            at.sort();
            at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
        })
        .collect();
    println!(
        "n0 cut from Redis: its last acknowledged write {last_n0:?} after the cut (TTL {ttl:?}); longest pause in writes through n1/n2: {pauses:?}"
    );
    let all: Vec<Acked> = acked.into_iter().chain(acked_n0).collect();
    check_all(&db, &nodes[1], &shops[..2], &all, "n0").await;
    let (owner, id, _, free) = &shops[2];
    check_bookings(
        &nodes[1],
        owner,
        id,
        free,
        all.iter().filter(|a| a.establishment == 2),
    )
    .await;
    check_journal(&db, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_requests_for_cold_establishments_make_one_owner_and_one_booking() {
    // Three nodes under load each: one such test at a time.
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let mut nodes = vec![
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
        start_node(&db, "n2", &prefix),
    ];
    let shops = shops(&nodes[0], &nodes[1], 3).await;
    // Their owner dies: once its key expired, every establishment is cold (no live
    // owner, no actor anywhere). A fourth node joins meanwhile.
    nodes[0].kill9();
    nodes.push(start_node(&db, "n3", &prefix));
    tokio::time::sleep(Duration::from_millis(TTL_MS.parse::<u64>().unwrap() + 300)).await;
    let live = &nodes[1..];
    let mut customers = Vec::new();
    for i in 0..9 {
        customers.push(live[0].register(&format!("racer{i}")).await.0);
    }
    for (_, id, service, free) in &shops {
        let slot = free[0]["start"].clone();
        // Nine first requests at once, three per node, for the same start.
        let racers = customers.iter().enumerate().map(|(i, token)| {
            let node = &live[i % live.len()];
            let body = json!({"service_id": service, "start": slot});
            async move {
                loop {
                    let (status, _, answer) = node
                        .call_with(
                            Method::POST,
                            &format!("/v1/establishments/{id}/bookings"),
                            Some(token),
                            Some(body.clone()),
                            &[("idempotency-key", "race")],
                        )
                        .await;
                    if status != StatusCode::SERVICE_UNAVAILABLE {
                        return (status, answer);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        let answers = futures::future::join_all(racers).await;
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "exactly one booking of the start: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
            "{answers:?}"
        );
        let (node, epoch) = owner_in_postgres(&db, id);
        assert_ne!(node, "n0");
        assert_eq!(epoch, 2, "exactly one claim after n0's");
        check_journal(&db, id);
        // Redis and Postgres name the same owner.
        assert_eq!(redis_get(&format!("{prefix}:owner:{id}")), node);
    }
}

/// `count` GETs of `path` on `node`, `concurrency` at a time; each answer's latency,
/// sorted. Every answer must be a 200.
async fn timed_gets(node: &Server, path: &str, count: usize, concurrency: usize) -> Vec<Duration> {
    let url = node.url(path);
    let per_task = count / concurrency;
    let tasks = (0..concurrency).map(|_| {
        let (client, url) = (node.client.clone(), url.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let sent = Instant::now();
                let response = client.get(&url).send().await.expect("an answer");
                assert_eq!(response.status(), StatusCode::OK);
                response.bytes().await.unwrap();
                latencies.push(sent.elapsed());
            }
            latencies
        })
    });
    let mut all: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|t| t.unwrap())
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_of_a_forwarded_request_against_a_local_one_is_measured() {
    // Three nodes under load each: one such test at a time.
    let _serial = SERIAL.lock().await;
    let long = std::env::var("NAVARO_CLUSTER_LONG").is_ok();
    let count = if long { 40_000 } else { 4_000 };
    let db = SharedDatabase::create();
    let prefix = prefix();
    let nodes = [
        start_node(&db, "n0", &prefix),
        start_node(&db, "n1", &prefix),
    ];
    let (_owner, id, _staff, _service) = setup(&nodes[0], 100).await;
    let path = format!("/v1/establishments/{id}");
    // Warm both paths (connections, caches).
    timed_gets(&nodes[0], &path, 400, 8).await;
    timed_gets(&nodes[1], &path, 400, 8).await;
    let mut cpu_us = Vec::new();
    for (label, node) in [("local", &nodes[0]), ("forwarded", &nodes[1])] {
        let before: Vec<Duration> = nodes.iter().map(Server::cpu_time).collect();
        let latencies = timed_gets(node, &path, count, 16).await;
        let spent: Duration = nodes
            .iter()
            .zip(&before)
            .map(|(n, b)| n.cpu_time() - *b)
            .sum();
        let per_request = spent.as_secs_f64() * 1e6 / latencies.len() as f64;
        println!(
            "{label}: {} GET {path}: {per_request:.1} us server CPU per request (both nodes), latency p50 {:?} p99 {:?}",
            latencies.len(),
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 99 / 100],
        );
        cpu_us.push(per_request);
    }
    println!(
        "a forwarded request costs {:.1} us of server CPU more than a local one",
        cpu_us[1] - cpu_us[0]
    );
    let forwarded = metric(&nodes[1].metrics().await, "navaro_cluster_forwarded_total");
    assert!(
        forwarded >= count as f64,
        "n1 forwarded every request: {forwarded}"
    );
}

/// Poll `GET /v1/me` on `node` with `token` until it answers `expected` (at most
/// `within`); how long that took.
async fn me_answers(
    node: &Server,
    token: &str,
    expected: StatusCode,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, body) = node.call(Method::GET, "/v1/me", Some(token), None).await;
        if status == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "GET /v1/me still answers {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_disables_reach_every_node_and_bookings_render_in_their_zone_anywhere() {
    let _serial = SERIAL.lock().await;
    let db = SharedDatabase::create();
    let prefix = prefix();
    let admin_env = [("NAVARO_AUTH__ADMIN_EMAILS", "[\"root@navaro.test\"]")];
    let start = |name: &str| {
        let mut env = node_env(db.url(), name, &prefix);
        env.extend(admin_env);
        Server::start_with(&env).expect("cluster node starts")
    };
    let nodes = [start("n0"), start("n1")];
    // Every token is first used on n1, so n1 caches its session as live; the change is
    // made on n0 and must reach n1 well before n1 would read the session again (30 s).
    let within = Duration::from_secs(3);
    let (token, _) = nodes[0].register("leaver").await;
    me_answers(&nodes[1], &token, StatusCode::OK, within).await;
    let (status, _, _) = nodes[0]
        .call(Method::POST, "/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let logout = me_answers(&nodes[1], &token, StatusCode::UNAUTHORIZED, within).await;

    let (token, _) = nodes[0].register("everywhere").await;
    me_answers(&nodes[1], &token, StatusCode::OK, within).await;
    let (status, _, _) = nodes[0]
        .call(Method::POST, "/v1/auth/logout-all", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let logout_all = me_answers(&nodes[1], &token, StatusCode::UNAUTHORIZED, within).await;

    let (status, _, admin) = nodes[0]
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": "root@navaro.test", "password": "correct horse battery", "name": "root"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let admin = admin["token"].as_str().unwrap().to_owned();
    let (victim, victim_id) = nodes[0].register("victim").await;
    me_answers(&nodes[1], &victim, StatusCode::OK, within).await;
    let (status, _, body) = nodes[0]
        .call(
            Method::POST,
            &format!("/v1/admin/users/{victim_id}/disable"),
            Some(&admin),
            Some(json!({"reason": "abuse"})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let disabled = me_answers(&nodes[1], &victim, StatusCode::FORBIDDEN, within).await;
    println!(
        "reached the other node after: logout {logout:?}, logout-all {logout_all:?}, disable {disabled:?}"
    );

    // A booking of an establishment n0 owns, listed through n1: in the establishment's
    // offset (America/Sao_Paulo, -03:00), not UTC.
    let (_owner, id, _staff, service) = setup(&nodes[0], 100).await;
    let free = slots(&nodes[1], &id, &service, ahead(3)).await;
    let (customer, _) = nodes[1].register("zoned").await;
    let (status, _, booking) = nodes[1]
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(&customer),
            Some(json!({"service_id": service, "start": free[0]["start"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    for node in &nodes {
        let (status, _, mine) = node
            .call(Method::GET, "/v1/me/bookings", Some(&customer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        let start = mine["bookings"][0]["start"].as_str().unwrap().to_owned();
        assert!(start.ends_with("-03:00"), "{} renders {start}", node.base);
        assert_eq!(start, booking["start"].as_str().unwrap());
    }
}
