//! Shared test fixtures: a fresh Postgres database (migrated by the persistence crate),
//! a scripted HTTP receiver, and building journal records.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use navaro_notify::Db;
use sqlx::Connection;

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, migrated Postgres database; dropped on drop.
pub struct FreshDb {
    admin: String,
    name: String,
    pub url: String,
}

impl FreshDb {
    pub async fn create() -> FreshDb {
        let admin =
            std::env::var("NAVARO_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let name = format!("navaro_notify_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("the test Postgres is reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        navaro_persistence::migrate(&url)
            .await
            .expect("migrations apply");
        FreshDb { admin, name, url }
    }

    pub async fn db(&self) -> Db {
        Db::connect(&self.url).await.unwrap()
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.admin,
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

/// What a receiver saw: (headers, body) per request.
pub type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An HTTP server on 127.0.0.1 answering each POST with the next scripted
/// (status, Retry-After) (the last one repeats).
pub async fn receiver(script: Vec<(u16, Option<u64>)>) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let script = Arc::new(Mutex::new(script));
    let app = Router::new().fallback({
        let seen = seen.clone();
        move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let script = script.clone();
            async move {
                seen.lock().unwrap().push((headers, body));
                let (status, retry_after) = {
                    let mut s = script.lock().unwrap();
                    if s.len() > 1 { s.remove(0) } else { s[0] }
                };
                let mut h = HeaderMap::new();
                if let Some(r) = retry_after {
                    h.insert("retry-after", r.to_string().parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), h, "receiver says so").into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// Insert a pending delivery directly (the consumer's job in production).
pub async fn enqueue(
    db: &Db,
    channel: &str,
    target: uuid::Uuid,
    kind: &str,
    payload: &str,
    due_us: i64,
) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    let Db::Pg(pool) = db else { panic!("postgres") };
    sqlx::query(
        "INSERT INTO notify_outbox (id, establishment_id, channel, target, event_type, payload, \
         due_at, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $7)",
    )
    .bind(id)
    .bind(uuid::Uuid::now_v7())
    .bind(channel)
    .bind(target)
    .bind(kind)
    .bind(payload)
    .bind(due_us)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// (status, attempts, due_at, last_error) of a delivery.
pub async fn row(db: &Db, id: uuid::Uuid) -> (String, i32, i64, Option<String>) {
    let Db::Pg(pool) = db else { panic!("postgres") };
    sqlx::query_as("SELECT status, attempts, due_at, last_error FROM notify_outbox WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}
