//! Durable bookings per second through the whole actor path on Postgres: many
//! establishments, many concurrent callers, each reply released only after its events
//! are committed. Compared with the same path when every booking commits on its own (a
//! group of one event), which is what a one-transaction-per-booking design pays.
//!
//! `cargo bench -p navaro-benches --bench durable` measures (a few seconds per run);
//! under `cargo test` it makes a short smoke run of both configurations, so the path
//! stays exercised. `DURABLE_CALLERS=N` (default 400) sets the concurrent callers and
//! `DURABLE_WRITER_SHARDS=K` the group-commit writers (default: the server's, two on
//! Postgres), `DURABLE_MAX_WAIT_MS=W` their linger (default: the store's; 0: never
//! wait). Postgres: `NAVARO_TEST_POSTGRES_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); a fresh database per run, dropped after.

use std::process::{Command as Shell, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use navaro_benches::{BENCH_STAFF, bookable_from, customer, open_shops};
use navaro_engine::{Engine, EngineConfig, Request};
use navaro_persistence::StoreOptions;
use navaro_protocol::{Command, EstablishmentId, ServiceId};
use uuid::Uuid;

/// The allocator the `navaro` binary runs on, so the engine's side of this path costs
/// what it costs in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ESTABLISHMENTS: usize = 200;
const STAFF: u64 = BENCH_STAFF;

fn admin_url() -> String {
    std::env::var("NAVARO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) {
    let ok = Shell::new("psql")
        .args([url, "-q", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql failed ({sql}); is Postgres running at {url}?");
}

/// A fresh database, dropped on drop.
struct Database {
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let admin = admin_url();
        let name = format!("navaro_bench_{}", Uuid::now_v7().simple());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(
            &admin_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

async fn setup(engine: &Engine) -> Vec<(EstablishmentId, ServiceId)> {
    open_shops(engine, ESTABLISHMENTS).await
}

/// Book `total` distinct slots with `callers` concurrent callers; returns bookings/s.
async fn run(
    group_max_events: usize,
    group_max_wait: Duration,
    shards: usize,
    callers: usize,
    total: u64,
) -> f64 {
    let database = Database::create();
    let options = StoreOptions {
        group_max_events,
        group_max_wait,
        writer_shards: shards,
        ..StoreOptions::default()
    };
    let stores = navaro_persistence::open(&database.url, options)
        .await
        .expect("Postgres opens");
    // No journal-lag limit: every caller waits for its own commit, so the load cannot
    // run away from the journal; this measures what the journal makes durable at
    // saturation, and a refusal would fail the run.
    let config = EngineConfig {
        max_journal_lag: Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Engine::start(stores.journal.clone(), config)
        .await
        .expect("engine starts");
    let shops = Arc::new(setup(&engine).await);
    let base = bookable_from();
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let (engine, shops, counter) = (engine.clone(), shops.clone(), counter.clone());
            tokio::spawn(async move {
                let mut failures = 0u64;
                loop {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return failures;
                    }
                    let (id, service) = shops[(n % ESTABLISHMENTS as u64) as usize];
                    let slot = n / ESTABLISHMENTS as u64;
                    let start = base
                        .checked_add(SignedDuration::from_mins(30 * (slot / STAFF) as i64))
                        .expect("in range");
                    let command = Command::Book {
                        service_id: service,
                        start,
                        staff_id: None,
                        customer_id: None,
                        promotion: None,
                    };
                    let request = Request {
                        caller: customer(n as u128 % 50_000 + caller as u128),
                        command,
                        idempotency_key: None,
                    };
                    if engine.execute(id, request).await.is_err() {
                        failures += 1;
                    }
                }
            })
        })
        .collect();
    let mut failures = 0;
    for task in tasks {
        failures += task.await.expect("caller task");
    }
    let elapsed = started.elapsed();
    assert_eq!(failures, 0, "every booking is a distinct free slot");
    engine.shutdown().await;
    total as f64 / elapsed.as_secs_f64()
}

/// Activation of one establishment from a snapshot plus `tail` events after it: the
/// first engine books and snapshots (shutdown), the second books `tail` more and stops
/// without a snapshot (as a crash would), the third activates it from the store.
async fn activation(tail: u64) -> Duration {
    let database = Database::create();
    let stores = navaro_persistence::open(&database.url, StoreOptions::default())
        .await
        .expect("Postgres opens");
    let config = EngineConfig {
        snapshot_every_events: u64::MAX,
        ..EngineConfig::default()
    };
    let first = Engine::start(stores.journal.clone(), config.clone())
        .await
        .expect("engine");
    let (id, service) = setup_one(&first).await;
    let base = bookable_from();
    let book = |engine: Engine, from: u64, count: u64| async move {
        for n in from..from + count {
            let start = base
                .checked_add(SignedDuration::from_mins(30 * (n / STAFF) as i64))
                .expect("in range");
            let command = Command::Book {
                service_id: service,
                start,
                staff_id: None,
                customer_id: None,
                promotion: None,
            };
            engine
                .execute(
                    id,
                    Request {
                        caller: customer(n as u128 % 500),
                        command,
                        idempotency_key: None,
                    },
                )
                .await
                .expect("free slot");
        }
    };
    book(first.clone(), 0, 1000).await;
    first.shutdown().await;
    let second = Engine::start(stores.journal.clone(), config.clone())
        .await
        .expect("engine");
    book(second.clone(), 1000, tail).await;
    drop(second);
    let third = Engine::start(stores.journal.clone(), config)
        .await
        .expect("engine");
    let started = Instant::now();
    let view = third.view(id).await.expect("activates");
    let elapsed = started.elapsed();
    assert_eq!(view.state().bookings.len() as u64, 1000 + tail);
    elapsed
}

async fn setup_one(engine: &Engine) -> (EstablishmentId, ServiceId) {
    open_shops(engine, 1).await[0]
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let (callers, total, baseline_total) = if measuring {
        (setting("DURABLE_CALLERS", 400), 60_000, 4_000)
    } else {
        (16, 400, 100)
    };
    let shards = setting(
        "DURABLE_WRITER_SHARDS",
        navaro_persistence::POSTGRES_WRITERS,
    );
    // The writers' linger (0 allowed: never wait).
    let max_wait = std::env::var("DURABLE_MAX_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(
            StoreOptions::default().group_max_wait,
            Duration::from_millis,
        );
    let grouped = runtime.block_on(run(
        StoreOptions::default().group_max_events,
        max_wait,
        shards,
        callers,
        total,
    ));
    let single = runtime.block_on(run(1, max_wait, shards, callers, baseline_total));
    println!(
        "durable bookings/s on Postgres through the actor path ({ESTABLISHMENTS} establishments, {callers} callers, {shards} writer(s), linger {max_wait:?}): group commit {grouped:.0}/s; one commit per booking {single:.0}/s ({:.1}x)",
        grouped / single
    );
    let tail = if measuring { 1000 } else { 50 };
    let activate = runtime.block_on(activation(tail));
    println!(
        "activating one establishment from a snapshot of 1000 bookings plus {tail} tail events: {activate:?}"
    );
}
