//! Journal benchmarks on Postgres and SQLite (a plain binary, not criterion: what we want
//! are durable appends per second under concurrency, which criterion's per-iteration
//! model does not express well).
//!
//! `cargo bench -p navaro-persistence --bench journal [-- postgres|sqlite]`
//!
//! Postgres: `NAVARO_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each run creates and drops its own databases. SQLite: files in the temp directory.
//!
//! 1. append throughput of one caller awaiting each batch, batch sizes 1, 16, 256;
//! 2. group commit: many establishments, many concurrent callers, one booking each
//!    append, with and without the overlap constraint (Postgres), against a baseline of
//!    one transaction per event;
//! 3. recovery of 10,000 establishments (snapshot + tail).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use navaro_engine::store::{AppendBatch, Journal, Snapshot};
use navaro_persistence::{StoreOptions, Stores};
use navaro_protocol::*;
use sqlx::Connection;
use uuid::Uuid;

/// How long each throughput measurement runs.
const RUN: Duration = Duration::from_secs(3);
const ESTABLISHMENTS: usize = 1_000;
const CALLERS: usize = 256;

/// Concurrent callers of the group-commit and baseline runs: `NAVARO_BENCH_CALLERS` or
/// [`CALLERS`]. Each caller awaits its append before the next, so this bounds group size.
fn callers() -> usize {
    std::env::var("NAVARO_BENCH_CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CALLERS)
        .clamp(1, ESTABLISHMENTS)
}
const RECOVERY_ESTABLISHMENTS: usize = 10_000;
/// Events per establishment in the recovery set; the snapshot covers the first half.
const RECOVERY_EVENTS: u64 = 10;
const RECOVERY_SNAPSHOT_BYTES: usize = 2_048;
const RECOVERY_CONCURRENCY: usize = 32;

fn pg_base() -> String {
    std::env::var("NAVARO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn base_time() -> jiff::Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

/// A booking confirmation: seq `seq` of `est`, for staff `staff`, in its own slot.
fn booking_record(est: EstablishmentId, staff: StaffId, seq: u64) -> EventRecord {
    let start = base_time()
        .checked_add(jiff::SignedDuration::from_mins(seq as i64 * 30))
        .unwrap();
    let booking = Booking {
        id: BookingId(Uuid::now_v7()),
        establishment_id: est,
        service_id: ServiceId(Uuid::nil()),
        staff_id: staff,
        customer_id: UserId(Uuid::now_v7()),
        start,
        end: start
            .checked_add(jiff::SignedDuration::from_mins(25))
            .unwrap(),
        buffer_after_minutes: 5,
        status: BookingStatus::Confirmed,
        seq,
        created_at: base_time(),
        promotion: None,
        payment_policy: None,
    };
    EventRecord {
        seq,
        at: base_time(),
        idempotency: Some(IdempotencyRecord {
            user_id: booking.customer_id,
            key: "bench-key-0123456789".into(),
            fingerprint: seq,
        }),
        event: Event::BookingConfirmed {
            booking,
            from_hold: None,
        },
    }
}

fn batch(est: EstablishmentId, staff: StaffId, from: u64, n: u64) -> AppendBatch {
    AppendBatch {
        establishment_id: est,
        records: (from..from + n)
            .map(|s| booking_record(est, staff, s))
            .collect(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Postgres,
    Sqlite,
}

/// A database that lives for one measurement.
struct Db {
    kind: Kind,
    url: String,
    name: String,
}

impl Db {
    async fn create(kind: Kind) -> Db {
        let name = format!("navaro_bench_{}", Uuid::now_v7().simple());
        let url = match kind {
            Kind::Postgres => {
                let mut admin = sqlx::PgConnection::connect(&pg_base())
                    .await
                    .expect("postgres");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let base = pg_base();
                let prefix = base.rsplit_once('/').unwrap().0;
                format!("{prefix}/{name}")
            }
            Kind::Sqlite => format!(
                "sqlite://{}/{name}/navaro.db",
                std::env::temp_dir().display()
            ),
        };
        navaro_persistence::migrate(&url).await.expect("migrate");
        Db { kind, url, name }
    }

    async fn open(&self) -> Stores {
        self.open_sharded(1).await
    }

    async fn open_sharded(&self, writer_shards: usize) -> Stores {
        let options = StoreOptions {
            max_connections: 10,
            writer_shards,
            // A measurement, not a server: on a busy box a seeding burst may wait for a
            // connection, and for an answer, longer than the server's 2 s defaults.
            acquire_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(30),
            ..StoreOptions::default()
        };
        navaro_persistence::open(&self.url, options)
            .await
            .expect("open")
    }

    async fn execute(&self, sql: &'static str) {
        match self.kind {
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    async fn drop_db(self) {
        match self.kind {
            Kind::Postgres => {
                let mut admin = sqlx::PgConnection::connect(&pg_base()).await.unwrap();
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
            Kind::Sqlite => {
                let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&self.name));
            }
        }
    }
}

/// One caller, one establishment, awaiting each batch of `size` events.
async fn append_throughput(kind: Kind, size: u64) {
    let db = Db::create(kind).await;
    let stores = db.open().await;
    let (est, staff) = (EstablishmentId(Uuid::now_v7()), StaffId(Uuid::now_v7()));
    let started = Instant::now();
    let (mut seq, mut batches) = (1, 0u64);
    while started.elapsed() < RUN {
        stores
            .journal
            .append(batch(est, staff, seq, size))
            .await
            .expect("append");
        seq += size;
        batches += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<8} append, 1 caller, batch {size:>3}: {:>9.0} events/s ({:>7.0} batches/s, {:.2} ms/batch)",
        name(kind),
        (seq - 1) as f64 / secs,
        batches as f64 / secs,
        secs * 1000.0 / batches as f64
    );
    drop(stores);
    db.drop_db().await;
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "postgres",
        Kind::Sqlite => "sqlite",
    }
}

/// `callers()` tasks over `ESTABLISHMENTS` establishments, one booking per append, each
/// caller awaiting its append before the next: durable appends per second.
async fn group_commit(kind: Kind, constraint: bool, shards: usize) {
    let db = Db::create(kind).await;
    if !constraint {
        db.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap")
            .await;
    }
    let stores = db.open_sharded(shards).await;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers())
        .map(|caller| {
            let journal = stores.journal.clone();
            let done = done.clone();
            tokio::spawn(async move { caller_loop(journal, caller, started, done).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
    let secs = started.elapsed().as_secs_f64();
    let label = match (kind, constraint) {
        (Kind::Postgres, true) => "with overlap constraint",
        (Kind::Postgres, false) => "without overlap constraint",
        (Kind::Sqlite, _) => "",
    };
    println!(
        "{:<8} group commit, {shards} writer(s), {} callers, {ESTABLISHMENTS} establishments: {:>9.0} durable appends/s {label}",
        name(kind),
        callers(),
        done.load(Ordering::Relaxed) as f64 / secs
    );
    drop(stores);
    db.drop_db().await;
}

async fn caller_loop(
    journal: Arc<dyn Journal>,
    caller: usize,
    started: Instant,
    done: Arc<AtomicU64>,
) {
    let mine: Vec<(EstablishmentId, StaffId)> = (caller..ESTABLISHMENTS)
        .step_by(callers())
        .map(|_| (EstablishmentId(Uuid::now_v7()), StaffId(Uuid::now_v7())))
        .collect();
    let mut seqs = vec![1u64; mine.len()];
    let mut i = 0;
    while started.elapsed() < RUN {
        let (est, staff) = mine[i];
        journal
            .append(batch(est, staff, seqs[i], 1))
            .await
            .expect("append");
        seqs[i] += 1;
        done.fetch_add(1, Ordering::Relaxed);
        i = (i + 1) % mine.len();
    }
}

/// The baseline: the same load, one transaction per event (event row + read-model row),
/// straight on a pool of the same size.
async fn one_tx_per_event(kind: Kind) {
    let db = Db::create(kind).await;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    match kind {
        Kind::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(&db.url)
                .await
                .unwrap();
            run_baseline(callers(), started, done.clone(), move |est, seq, payload| {
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin().await?;
                    sqlx::query("INSERT INTO events (establishment_id, seq, kind, payload) VALUES ($1, $2, 'booking.confirmed', $3)")
                        .bind(est).bind(seq).bind(payload.clone()).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO bookings (id, establishment_id, kind, staff_id, customer_id, start_at, end_at, busy_until, status, seq, data) VALUES ($1, $2, 'booking', $1, $1, navaro_ts($3), navaro_ts($3 + 1), navaro_ts($3 + 1), 'confirmed', $4, $5)")
                        .bind(Uuid::now_v7()).bind(est).bind(seq * 3_600_000_000).bind(seq).bind(payload).execute(&mut *tx).await?;
                    tx.commit().await
                }
            })
            .await;
        }
        Kind::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = db.url.parse().unwrap();
            let options = options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(10)
                .connect_with(options)
                .await
                .unwrap();
            run_baseline(callers(), started, done.clone(), move |est, seq, payload| {
                let pool = pool.clone();
                async move {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                    sqlx::query("INSERT INTO events (establishment_id, seq, kind, payload, recorded_at) VALUES (?1, ?2, 'booking.confirmed', ?3, 0)")
                        .bind(est).bind(seq).bind(payload.clone()).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO bookings (id, establishment_id, kind, staff_id, customer_id, start_at, end_at, busy_until, status, seq, data) VALUES (?1, ?2, 'booking', ?1, ?1, ?3, ?3, ?3, 'confirmed', ?4, ?5)")
                        .bind(Uuid::now_v7()).bind(est).bind(seq).bind(seq).bind(payload).execute(&mut *tx).await?;
                    tx.commit().await
                }
            })
            .await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<8} baseline, one transaction per event, {} callers: {:>9.0} durable appends/s",
        name(kind),
        callers(),
        done.load(Ordering::Relaxed) as f64 / secs
    );
    db.drop_db().await;
}

async fn run_baseline<F, Fut>(callers: usize, started: Instant, done: Arc<AtomicU64>, write: F)
where
    F: Fn(Uuid, i64, Vec<u8>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>> + Send,
{
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (write, done) = (write.clone(), done.clone());
            tokio::spawn(async move {
                let (est, staff) = (EstablishmentId(Uuid::now_v7()), StaffId(Uuid::now_v7()));
                let mut seq = 1u64;
                while started.elapsed() < RUN {
                    let payload =
                        encode(Encoding::MsgPack, &booking_record(est, staff, seq)).unwrap();
                    write(est.0, seq as i64, payload)
                        .await
                        .expect("baseline write");
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

/// Seed 10,000 establishments (events through the journal, snapshots beside), then load
/// them all from a cold store.
async fn recovery(kind: Kind) {
    let db = Db::create(kind).await;
    let stores = db.open().await;
    let ests: Vec<EstablishmentId> = (0..RECOVERY_ESTABLISHMENTS)
        .map(|_| EstablishmentId(Uuid::now_v7()))
        .collect();
    let seeding = Instant::now();
    let journal = stores.journal.clone();
    futures::stream::iter(ests.clone())
        .map(|est| journal.append(batch(est, StaffId(Uuid::now_v7()), 1, RECOVERY_EVENTS)))
        .buffer_unordered(CALLERS)
        .for_each(|r| async move { r.expect("seed append") })
        .await;
    let state = vec![7u8; RECOVERY_SNAPSHOT_BYTES];
    futures::stream::iter(ests.clone())
        .map(|est| {
            let snapshot = Snapshot {
                seq: RECOVERY_EVENTS / 2,
                state: state.clone(),
            };
            let journal = journal.clone();
            async move { journal.save_snapshot(est, snapshot).await }
        })
        .buffer_unordered(RECOVERY_CONCURRENCY)
        .for_each(|r| async move { r.expect("seed snapshot") })
        .await;
    let seeded = seeding.elapsed();
    drop((stores, journal));

    let cold = db.open().await;
    let started = Instant::now();
    let events = futures::stream::iter(ests)
        .map(|est| {
            let journal = cold.journal.clone();
            async move { journal.load(est).await }
        })
        .buffer_unordered(RECOVERY_CONCURRENCY)
        .fold(0usize, |n, r| async move {
            let recovered = r.expect("load").expect("stored");
            assert!(recovered.snapshot.is_some());
            n + recovered.events.len()
        })
        .await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:<8} recovery of {RECOVERY_ESTABLISHMENTS} establishments (snapshot {RECOVERY_SNAPSHOT_BYTES} B + {} events each, {RECOVERY_CONCURRENCY} concurrent loads): {:.2} s ({:.0} establishments/s; seeding took {:.1} s)",
        name(kind),
        events / RECOVERY_ESTABLISHMENTS,
        secs,
        RECOVERY_ESTABLISHMENTS as f64 / secs,
        seeded.as_secs_f64()
    );
    drop(cold);
    db.drop_db().await;
}

/// `-- [postgres|sqlite] [append|group|baseline|recovery]`: run only those (all by default).
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let backends = ["postgres", "sqlite"];
    let pick = |word: &str, set: &[&str]| {
        let chosen: Vec<&String> = args.iter().filter(|a| set.contains(&a.as_str())).collect();
        chosen.is_empty() || chosen.iter().any(|a| *a == word)
    };
    let scenarios = ["append", "group", "baseline", "recovery"];
    for kind in [Kind::Postgres, Kind::Sqlite] {
        if !pick(name(kind), &backends) {
            continue;
        }
        if pick("append", &scenarios) {
            for size in [1, 16, 256] {
                append_throughput(kind, size).await;
            }
        }
        if pick("group", &scenarios) {
            group_commit(kind, true, 1).await;
            if kind == Kind::Postgres {
                group_commit(kind, false, 1).await;
                group_commit(kind, true, 2).await;
                group_commit(kind, false, 2).await;
            }
        }
        if pick("baseline", &scenarios) {
            one_tx_per_event(kind).await;
        }
        if pick("recovery", &scenarios) {
            recovery(kind).await;
        }
    }
}
