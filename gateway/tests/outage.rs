//! The database goes away under the running binary: the connection to Postgres is cut
//! (through a proxy, so the Postgres other tests share keeps running). Writes must fail
//! fast with `503 unavailable`, nothing may be confirmed that was not stored, and the
//! service must come back by itself when the database does. Once one call has found the
//! database unreachable, the store's breaker answers the others at once (counted on
//! `/metrics`) until its probe reaches the database again. A database that is busy
//! rather than gone (every pooled connection in use) is an overload: `503 overloaded`,
//! and the breaker stays closed.

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Server, ahead, code, postgres_address, psql_rows, setup, slots};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// How long the test waits for recovery before it calls the server stuck. A hang guard,
/// not a measurement: the figure printed is what the run took.
const RECOVERY_GUARD: Duration = Duration::from_secs(60);
/// Longer than the store's `PING_AFTER_IDLE` (1 s): a writer's kept connection idle
/// this long goes back to the pool before the writer's next acquire.
const STALE_WRITER_CONNECTION: Duration = Duration::from_millis(1_200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_cut_answers_503_then_recovers_by_itself() {
    outage(Proxy::cut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_partition_answers_503_then_recovers_by_itself() {
    outage(Proxy::freeze).await;
}

/// The scenario, with the database taken away by `go_away`.
async fn outage(go_away: fn(&Proxy)) {
    let proxy = Proxy::start(&postgres_address())
        .await
        .expect("proxy binds");
    let server = Server::start_postgres_via(proxy.port).expect("server starts");
    let shop = Shop::open(&server, 4).await;
    let (owner, id, service, day, free, customer) = shop.parts();
    let book = |key: &'static str, slot: usize| shop.book(&server, key, slot);

    let (status, _, before) = book("before", 0).await;
    assert_eq!(status, StatusCode::CREATED, "{before}");

    go_away(&proxy);
    // Each write while the database is away: a prompt 503 `unavailable` with
    // Retry-After, never a confirmation and never a hang.
    for (key, slot) in [("outage-1", 1), ("outage-2", 2), ("outage-3", 3)] {
        let started = Instant::now();
        let (status, headers, body) = book(key, slot).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "{key}: {body}"
        );
        assert!(headers.contains_key("retry-after"), "{key}: {headers:?}");
        println!("{key}: 503 after {:?}", started.elapsed());
    }
    // Reads that need the database fail the same way.
    let started = Instant::now();
    let (status, _, body) = server
        .call(Method::GET, "/v1/me/bookings", Some(customer), None)
        .await;
    println!("read: {status} after {:?}", started.elapsed());
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    let started = Instant::now();
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "correct horse battery"})),
        )
        .await;
    println!("login: {status} after {:?}", started.elapsed());
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The store's breaker is open: calls that go to the database themselves are
    // refused without waiting for it (counted), and the server says it is unreachable.
    assert_eq!(metric(&server, "navaro_store_reachable").await, Some(0.0));
    let refused = metric(&server, "navaro_store_refused_total")
        .await
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "refused {refused}");
    let (status, _, body) = server
        .call(Method::GET, "/v1/me/bookings", Some(customer), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        metric(&server, "navaro_store_refused_total")
            .await
            .unwrap_or(0.0)
            > refused,
        "the second read was refused by the breaker, not by the database"
    );

    proxy.restore();
    // The client's retry with the same key succeeds once the database is back, with no
    // restart of the process.
    let restored = Instant::now();
    let retried: Value = loop {
        let (status, _, body) = book("outage-1", 1).await;
        if status == StatusCode::CREATED {
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            restored.elapsed() < RECOVERY_GUARD,
            "no recovery after {RECOVERY_GUARD:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "recovered {:?} after the database came back",
        restored.elapsed()
    );
    assert_eq!(metric(&server, "navaro_store_reachable").await, Some(1.0));
    // The same key again answers the same booking.
    let (status, _, again) = book("outage-1", 1).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], retried["id"]);

    // Exactly what was confirmed is stored: the booking from before and the retried one;
    // the two attempts that were never retried left nothing behind.
    let mut expected = vec![
        before["id"].as_str().unwrap().to_owned(),
        retried["id"].as_str().unwrap().to_owned(),
    ];
    expected.sort_unstable();
    assert_eq!(booking_ids_on(&server, owner, id, day).await, expected);
    let offered = slots(&server, id, service, day).await;
    for slot in [2, 3] {
        assert!(
            offered.iter().any(|s| s["start"] == free[slot]["start"]),
            "slot {slot} was never confirmed and is free"
        );
    }
    // The read model agrees with the journal, and the journal's seqs are gap-free.
    let database = server.database_url().expect("on Postgres");
    let stored = psql_rows(
        database,
        &format!(
            "SELECT count(*) FROM bookings WHERE establishment_id = '{id}' AND status = 'confirmed'"
        ),
    );
    assert_eq!(stored.trim(), "2");
    let seqs = psql_rows(
        database,
        &format!(
            "SELECT count(*) = max(seq) AND min(seq) = 1 FROM events WHERE establishment_id = '{id}'"
        ),
    );
    assert_eq!(seqs.trim(), "t", "the journal's seqs are gap-free");
    assert!(
        proxy.forwarded() > 1,
        "the server reconnected through the proxy"
    );
}

/// The database is busy, not gone. Another session holds `events` and `bookings`
/// locked, so both of the pool's connections wait on it: a customer's read, then the
/// journal writer's group of two bookings. A second read waits out the pool's
/// acquire timeout and is answered `503 overloaded` with Retry-After, not
/// `unavailable`. The breaker stays closed, because a busy database is not an
/// unreachable one. Once the lock is released the first read is answered and the
/// bookings behind it are confirmed, each stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_answers_503_overloaded_and_the_calls_behind_it_complete() {
    let server = Server::start_postgres_with(&[
        ("NAVARO_STORE__WRITERS", "1"),
        ("NAVARO_STORE__MAX_CONNECTIONS", "2"),
        ("NAVARO_STORE__ACQUIRE_TIMEOUT_MS", "1500"),
        // Longer than the lock is held: the calls holding the connections wait.
        ("NAVARO_STORE__CALL_TIMEOUT_MS", "60000"),
    ]);
    let shop = Shop::open(&server, 3).await;
    let (owner, id, _, day, _, customer) = shop.parts();
    let book = |key: &'static str, slot: usize| shop.book(&server, key, slot);
    let mine = || server.call(Method::GET, "/v1/me/bookings", Some(customer), None);
    let (status, _, before) = book("before", 0).await;
    assert_eq!(status, StatusCode::CREATED, "{before}");

    let database = server.database_url().expect("on Postgres").to_owned();
    // Past the second after which the writer's kept connection goes back to the pool
    // before its next group asks for one. Held across that acquire, with the other
    // connection taken by the read, it would leave the pool nothing to hand out.
    tokio::time::sleep(STALE_WRITER_CONNECTION).await;
    let lock = LockedTables::take(&database, &["events", "bookings"]);
    let first_read = mine();
    let held = async {
        waiting_on_locks(&database, 1).await;
        futures::future::join_all([book("held-1", 1), book("held-2", 2)]).await
    };
    let while_held = async {
        // The writer's group and the first read both wait: no connection is free.
        waiting_on_locks(&database, 2).await;
        let (status, headers, body) = mine().await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            "{body}"
        );
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        assert_eq!(metric(&server, "navaro_store_reachable").await, Some(1.0));
        assert!(
            metric(&server, "navaro_store_saturated_total")
                .await
                .is_some_and(|n| n >= 1.0)
        );
        lock.release();
    };
    let (held, (status, _, first), ()) = tokio::join!(held, first_read, while_held);
    assert_eq!(
        status,
        StatusCode::OK,
        "the read that held a connection: {first}"
    );
    let mut expected = vec![before["id"].as_str().unwrap().to_owned()];
    for (status, _, booking) in held {
        assert_eq!(status, StatusCode::CREATED, "{booking}");
        expected.push(booking["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(metric(&server, "navaro_store_reachable").await, Some(1.0));
    expected.sort_unstable();
    assert_eq!(booking_ids_on(&server, owner, id, day).await, expected);
    let stored = psql_rows(
        &database,
        &format!(
            "SELECT count(*) FROM bookings WHERE establishment_id = '{id}' AND status = 'confirmed'"
        ),
    );
    assert_eq!(stored.trim(), "3");
}

/// Tables another session holds in `ACCESS EXCLUSIVE` mode (reads and writes wait)
/// until [`LockedTables::release`] or drop.
struct LockedTables {
    session: std::process::Child,
}

impl LockedTables {
    /// Lock `tables` from a `psql` session and return once the locks are granted.
    fn take(database: &str, tables: &[&str]) -> LockedTables {
        use std::io::Write;
        let mut session = std::process::Command::new("psql")
            .args([database, "-q", "-v", "ON_ERROR_STOP=1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql runs");
        let stdin = session.stdin.as_mut().expect("piped");
        let names = tables.join(", ");
        writeln!(stdin, "BEGIN; LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE;").unwrap();
        stdin.flush().unwrap();
        let granted = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND c.relname IN ('{}') AND l.mode = 'AccessExclusiveLock' AND l.granted",
            tables.join("', '")
        );
        let since = Instant::now();
        while psql_rows(database, &granted).trim() != tables.len().to_string() {
            assert!(
                since.elapsed() < RECOVERY_GUARD,
                "the locks were never granted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        LockedTables { session }
    }

    /// End the session's transaction, and with it the locks.
    fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.session.stdin.take() {
            let _ = writeln!(stdin, "COMMIT;");
        }
        let _ = self.session.wait();
    }
}

impl Drop for LockedTables {
    fn drop(&mut self) {
        self.end();
    }
}

/// Wait until at least `n` of the database's sessions wait on a lock.
async fn waiting_on_locks(database: &str, n: usize) {
    let query = "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let since = Instant::now();
    loop {
        let database = database.to_owned();
        let rows = tokio::task::spawn_blocking(move || psql_rows(&database, query))
            .await
            .unwrap();
        if rows.trim().parse::<usize>().unwrap() >= n {
            return;
        }
        assert!(
            since.elapsed() < RECOVERY_GUARD,
            "{n} sessions never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A database that falls behind rather than goes away (here another session holds a
/// lock on the journal's table, so a commit waits) is an overload: once the oldest
/// unanswered append has waited past `max_journal_lag`, commands are refused at once
/// with `503 overloaded` and Retry-After, while reads are served from memory and the
/// breaker stays closed. When the database catches up, the write it held is confirmed
/// and commands are taken again. Before this, such a database took work until a call
/// passed the store's deadline, and then every establishment was unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_falls_behind_sheds_commands_and_keeps_serving_reads() {
    let server = Server::start_postgres_with(&[
        ("NAVARO_ENGINE__MAX_JOURNAL_LAG_MS", "200"),
        // The held commit must not pass the store's deadline while the test looks.
        ("NAVARO_STORE__CALL_TIMEOUT_MS", "60000"),
    ]);
    let shop = Shop::open(&server, 2).await;
    let (owner, id, service, day, _, _) = shop.parts();
    let lag = async || {
        metric(&server, "navaro_journal_lag_seconds")
            .await
            .unwrap_or(0.0)
    };
    let database = server.database_url().expect("on Postgres").to_owned();
    let lock = LockedTables::take(&database, &["events"]);

    let held = shop.book(&server, "held", 0);
    let meanwhile = async {
        let started = Instant::now();
        while lag().await <= 0.2 {
            assert!(
                started.elapsed() < RECOVERY_GUARD,
                "the journal never fell behind"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, headers, body) = shop.book(&server, "shed", 1).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            "{body}"
        );
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        assert!(!slots(&server, id, service, day).await.is_empty());
        assert_eq!(metric(&server, "navaro_store_reachable").await, Some(1.0));
        let refused = "navaro_engine_refused_total{reason=\"journal_lag\"}";
        assert_eq!(metric(&server, refused).await, Some(1.0));
        lock.release();
    };
    let ((status, _, held), ()) = tokio::join!(held, meanwhile);
    assert_eq!(status, StatusCode::CREATED, "{held}");
    // The writer clears its hold just after answering: wait for it.
    let started = Instant::now();
    while lag().await > 0.0 {
        assert!(started.elapsed() < RECOVERY_GUARD, "the lag never cleared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Taken again; the refused attempt left nothing behind, so its key is fresh.
    let (status, _, shed) = shop.book(&server, "shed", 1).await;
    assert_eq!(status, StatusCode::CREATED, "{shed}");
    let mut expected = [&held, &shed].map(|b| b["id"].as_str().unwrap().to_owned());
    expected.sort_unstable();
    assert_eq!(booking_ids_on(&server, owner, id, day).await, expected);
}

/// An establishment with a staff member and a service, a customer, and the free starts
/// three days ahead that do not overlap one another.
struct Shop {
    owner: String,
    id: String,
    service: String,
    day: jiff::civil::Date,
    free: Vec<Value>,
    customer: String,
}

impl Shop {
    /// Set it up on `server`, with at least `starts` free starts.
    async fn open(server: &Server, starts: usize) -> Shop {
        let (owner, id, _staff, service) = setup(server, 100).await;
        let day = ahead(3);
        // Every other start: the service takes 30 minutes on a 15-minute grid.
        let free: Vec<Value> = slots(server, &id, &service, day)
            .await
            .into_iter()
            .step_by(2)
            .collect();
        assert!(free.len() >= starts);
        let (customer, _) = server.register("customer").await;
        Shop {
            owner,
            id,
            service,
            day,
            free,
            customer,
        }
    }

    /// Owner, establishment id, service id, day, free starts and customer.
    fn parts(&self) -> (&str, &str, &str, jiff::civil::Date, &[Value], &str) {
        (
            &self.owner,
            &self.id,
            &self.service,
            self.day,
            &self.free,
            &self.customer,
        )
    }

    /// The customer books free start `slot` with an idempotency key.
    async fn book(
        &self,
        server: &Server,
        key: &str,
        slot: usize,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        server
            .call_with(
                Method::POST,
                &format!("/v1/establishments/{}/bookings", self.id),
                Some(&self.customer),
                Some(json!({"service_id": self.service, "start": self.free[slot]["start"]})),
                &[("idempotency-key", key)],
            )
            .await
    }
}

/// The ids of the establishment's bookings on `day`, as its owner lists them, sorted.
async fn booking_ids_on(
    server: &Server,
    owner: &str,
    id: &str,
    day: jiff::civil::Date,
) -> Vec<String> {
    let (status, _, list) = server
        .call(
            Method::GET,
            &format!("/v1/establishments/{id}/bookings?date={day}"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut ids: Vec<String> = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_unstable();
    ids
}

/// The value of an unlabelled metric on `/metrics`.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}
