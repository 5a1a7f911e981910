//! Test databases (a fresh Postgres database or SQLite file per test), a TCP proxy that
//! can make Postgres go away, and builders of journal records.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use navaro_engine::store::AppendBatch;
use navaro_persistence::{StoreOptions, Stores};
use navaro_protocol::*;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The Postgres the tests run against; a missing server fails the test.
pub fn pg_base_url() -> String {
    std::env::var("NAVARO_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// `url` with its database (and optionally host and port) replaced.
pub fn pg_url_with(url: &str, database: &str, addr: Option<SocketAddr>) -> String {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let authority = match addr {
        None => authority.to_string(),
        Some(addr) => match authority.rsplit_once('@') {
            Some((user, _)) => format!("{user}@{addr}"),
            None => addr.to_string(),
        },
    };
    format!("{scheme}://{authority}/{database}")
}

/// Options small enough for many tests at once on a 2-core box.
pub fn test_options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
        ..StoreOptions::default()
    }
}

/// A database that exists for one test.
pub trait TestDb: Sized {
    const POSTGRES: bool;
    async fn create() -> Self;
    fn url(&self) -> String;
    async fn open(&self) -> Stores {
        navaro_persistence::open(&self.url(), test_options())
            .await
            .expect("open stores")
    }
    /// Store a raw events row, bypassing the journal (to plant corruption).
    async fn insert_raw_event(&self, establishment: Uuid, seq: i64, payload: Vec<u8>);
    /// The status column of a bookings row.
    async fn item_status(&self, id: Uuid) -> Option<String>;
    /// Every stored seq of an establishment, in order.
    async fn stored_seqs(&self, establishment: Uuid) -> Vec<i64>;
    /// Run a statement directly.
    async fn execute(&self, sql: &str);
    /// Run a statement directly; its error as text.
    async fn try_execute(&self, sql: &str) -> Result<(), String>;
    /// Run `{insert} (<id>)` with the id bound.
    async fn execute_with_id(&self, insert: &str, id: Uuid);
}

pub struct PgDb {
    name: String,
}

impl PgDb {
    async fn admin() -> PgConnection {
        PgConnection::connect(&pg_base_url())
            .await
            .expect("Postgres must be reachable at NAVARO_TEST_POSTGRES_URL")
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url())
            .await
            .expect("connect test db")
    }
}

impl TestDb for PgDb {
    async fn try_execute(&self, sql: &str) -> Result<(), String> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connect().await)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn execute(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connect().await)
            .await
            .expect("execute");
    }

    async fn execute_with_id(&self, insert: &str, id: Uuid) {
        sqlx::query(sqlx::AssertSqlSafe(format!("{insert} ($1)")))
            .bind(id)
            .execute(&mut self.connect().await)
            .await
            .expect("execute");
    }

    const POSTGRES: bool = true;

    async fn create() -> Self {
        let name = format!("navaro_t_{}", Uuid::now_v7().simple());
        let mut admin = Self::admin().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let db = PgDb { name };
        navaro_persistence::migrate(&db.url())
            .await
            .expect("migrate");
        db
    }

    fn url(&self) -> String {
        pg_url_with(&pg_base_url(), &self.name, None)
    }

    async fn insert_raw_event(&self, establishment: Uuid, seq: i64, payload: Vec<u8>) {
        sqlx::query(
            "INSERT INTO events (establishment_id, seq, kind, payload) VALUES ($1, $2, 'x', $3)",
        )
        .bind(establishment)
        .bind(seq)
        .bind(payload)
        .execute(&mut self.connect().await)
        .await
        .expect("insert raw event");
    }

    async fn item_status(&self, id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut self.connect().await)
            .await
            .expect("read status")
    }

    async fn stored_seqs(&self, establishment: Uuid) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM events WHERE establishment_id = $1 ORDER BY seq")
            .bind(establishment)
            .fetch_all(&mut self.connect().await)
            .await
            .expect("read seqs")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a fresh one on its own thread can block.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut admin = PgDb::admin().await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .map(|_| ())
                .map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

pub struct SqliteDb {
    dir: std::path::PathBuf,
}

impl SqliteDb {
    async fn connect(&self) -> sqlx::SqliteConnection {
        sqlx::SqliteConnection::connect(&self.url())
            .await
            .expect("connect sqlite")
    }
}

impl TestDb for SqliteDb {
    async fn try_execute(&self, sql: &str) -> Result<(), String> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connect().await)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn execute(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.connect().await)
            .await
            .expect("execute");
    }

    async fn execute_with_id(&self, insert: &str, id: Uuid) {
        sqlx::query(sqlx::AssertSqlSafe(format!("{insert} (?1)")))
            .bind(id)
            .execute(&mut self.connect().await)
            .await
            .expect("execute");
    }

    const POSTGRES: bool = false;

    async fn create() -> Self {
        let dir = std::env::temp_dir().join(format!("navaro_t_{}", Uuid::now_v7().simple()));
        // A missing directory is created by open/migrate.
        let db = SqliteDb { dir };
        navaro_persistence::migrate(&db.url())
            .await
            .expect("migrate");
        db
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.dir.join("navaro.db").display())
    }

    async fn insert_raw_event(&self, establishment: Uuid, seq: i64, payload: Vec<u8>) {
        sqlx::query("INSERT INTO events (establishment_id, seq, kind, payload, recorded_at) VALUES (?1, ?2, 'x', ?3, 0)")
            .bind(establishment)
            .bind(seq)
            .bind(payload)
            .execute(&mut self.connect().await)
            .await
            .expect("insert raw event");
    }

    async fn item_status(&self, id: Uuid) -> Option<String> {
        sqlx::query_scalar("SELECT status FROM bookings WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut self.connect().await)
            .await
            .expect("read status")
    }

    async fn stored_seqs(&self, establishment: Uuid) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM events WHERE establishment_id = ?1 ORDER BY seq")
            .bind(establishment)
            .fetch_all(&mut self.connect().await)
            .await
            .expect("read seqs")
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy in front of Postgres that can be switched off (every connection cut, new
/// ones closed at once) and on again: the database "goes away" and comes back.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let base = PgConnectOptions::from_str(&pg_base_url()).expect("pg url");
        let target = format!("{}:{}", base.get_host(), base.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().unwrap().push(task);
            }
        });
        Proxy { addr, up, conns }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for task in self.conns.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

// ---- records ----

pub fn base_time() -> Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

pub fn at_minutes(minutes: i64) -> Timestamp {
    base_time()
        .checked_add(SignedDuration::from_mins(minutes))
        .unwrap()
}

pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

pub struct Item {
    pub establishment: EstablishmentId,
    pub staff: StaffId,
    pub customer: UserId,
    pub start_minutes: i64,
    pub duration_minutes: i64,
    pub buffer_minutes: u32,
}

impl Item {
    pub fn new(
        establishment: EstablishmentId,
        staff: StaffId,
        customer: UserId,
        start_minutes: i64,
    ) -> Item {
        Item {
            establishment,
            staff,
            customer,
            start_minutes,
            duration_minutes: 30,
            buffer_minutes: 0,
        }
    }

    pub fn booking(&self, id: BookingId, status: BookingStatus, seq: u64) -> Booking {
        Booking {
            id,
            establishment_id: self.establishment,
            service_id: ServiceId(Uuid::nil()),
            staff_id: self.staff,
            customer_id: self.customer,
            start: at_minutes(self.start_minutes),
            end: at_minutes(self.start_minutes + self.duration_minutes),
            buffer_after_minutes: self.buffer_minutes,
            status,
            seq,
            created_at: base_time(),
            promotion: None,
            payment_policy: None,
        }
    }

    pub fn hold(&self, id: HoldId, seq: u64) -> Hold {
        Hold {
            id,
            establishment_id: self.establishment,
            service_id: ServiceId(Uuid::nil()),
            staff_id: self.staff,
            customer_id: self.customer,
            start: at_minutes(self.start_minutes),
            end: at_minutes(self.start_minutes + self.duration_minutes),
            buffer_after_minutes: self.buffer_minutes,
            expires_at: at_minutes(self.start_minutes - 60),
            seq,
        }
    }
}

pub fn record(seq: u64, event: Event) -> EventRecord {
    EventRecord {
        seq,
        at: base_time(),
        idempotency: None,
        event,
    }
}

/// A harmless event for tests that only care about sequence numbers.
pub fn filler(establishment: EstablishmentId, seq: u64) -> EventRecord {
    let item = Item::new(
        establishment,
        StaffId(new_id()),
        UserId(new_id()),
        seq as i64 * 60,
    );
    record(
        seq,
        Event::HoldPlaced {
            hold: item.hold(HoldId(new_id()), seq),
        },
    )
}

/// A batch of filler events with seqs `from..=to`.
pub fn batch(establishment: EstablishmentId, from: u64, to: u64) -> AppendBatch {
    AppendBatch {
        establishment_id: establishment,
        records: (from..=to).map(|s| filler(establishment, s)).collect(),
    }
}

pub fn one(establishment: EstablishmentId, record: EventRecord) -> AppendBatch {
    AppendBatch {
        establishment_id: establishment,
        records: vec![record],
    }
}

pub fn new_establishment() -> EstablishmentId {
    EstablishmentId(new_id())
}
