//! Helpers for the plugin tests: installing a plugin, an establishment in a given zone,
//! and writing past events into a stopped server's journal the way the server writes
//! them (a booking cannot be made in the past, and the binary runs on the system clock).

use std::time::{Duration, Instant};

use navaro_engine::store::AppendBatch;
use navaro_persistence::StoreOptions;
use navaro_protocol::{EstablishmentId, Event, EventRecord};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Server;

/// Install plugin `name` with no settings; panics unless 200.
pub async fn install(server: &Server, token: &str, id: &str, name: &str) -> Value {
    let (status, _, body) = server
        .call(
            Method::PUT,
            &format!("/v1/establishments/{id}/plugins/{name}"),
            Some(token),
            Some(json!({"settings": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// An establishment in `timezone` (extra create fields in `extra`), one staff member
/// with `hours` and a 30-minute service at 50.00; (owner token, id, staff id, service id).
pub async fn establishment(
    server: &Server,
    timezone: &str,
    hours: Value,
    extra: Value,
) -> (String, String, String, String) {
    let (owner, _) = server.register("owner").await;
    let mut body = json!({"name": "Plugins Shop", "timezone": timezone, "slot_minutes": 15,
        "max_future_bookings_per_customer": 20});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, _, est) = server
        .call(Method::POST, "/v1/establishments", Some(&owner), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{est}");
    let id = est["id"].as_str().unwrap().to_owned();
    let (status, _, staff) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/staff"),
            Some(&owner),
            Some(json!({"name": "Ana", "hours": hours})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    let staff_id = staff["id"].as_str().unwrap().to_owned();
    let (status, _, service) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/services"),
            Some(&owner),
            Some(
                json!({"name": "Corte", "duration_minutes": 30, "price_cents": 5000,
                "currency": "USD", "staff_ids": [staff_id]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let service_id = service["id"].as_str().unwrap().to_owned();
    (owner, id, staff_id, service_id)
}

/// The same hours on all seven days.
pub fn every_day(from: &str, to: &str) -> Value {
    let day = json!([[from, to]]);
    json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

/// Append `events` (in order, numbered after the journal's last) to an establishment's
/// journal at `database_url`, each recorded at `at`; the server must be stopped.
pub async fn append(
    database_url: &str,
    establishment: Uuid,
    events: Vec<(jiff::Timestamp, Event)>,
) {
    let stores = navaro_persistence::open(database_url, StoreOptions::default())
        .await
        .expect("the server's database opens");
    let id = EstablishmentId(establishment);
    let last = stores.journal.read_after(id, 0, 1_000_000).await.unwrap();
    let mut seq = last.last().expect("the establishment's events").seq;
    let records = events
        .into_iter()
        .map(|(at, event)| {
            seq += 1;
            EventRecord {
                seq,
                at,
                idempotency: None,
                event,
            }
        })
        .collect();
    stores
        .journal
        .append(AppendBatch {
            establishment_id: id,
            records,
        })
        .await
        .expect("the events are journaled");
}

/// The journal's next seq for an establishment (the server must be stopped).
pub async fn next_seq(database_url: &str, establishment: Uuid) -> u64 {
    let stores = navaro_persistence::open(database_url, StoreOptions::default())
        .await
        .expect("the server's database opens");
    let events = stores
        .journal
        .read_after(EstablishmentId(establishment), 0, 1_000_000)
        .await
        .unwrap();
    events.last().map_or(1, |e| e.seq + 1)
}

/// GET `path` as `token` until `done` holds of the body (200), or panic after `within`.
pub async fn poll(
    server: &Server,
    path: &str,
    token: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, _, body) = server.call(Method::GET, path, Some(token), None).await;
        if status != StatusCode::OK {
            let logs = server.log_text();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            panic!("{path}: {status} {body}; the server's last log lines: {tail:#?}");
        }
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
