//! Kill -9 during load, on the real binary and a real Postgres: concurrent bookings race
//! for slots, the process is killed at a seeded random moment, restarted on the same
//! database, and then every booking that got a 201 must be there and confirmed, no two
//! bookings of a staff member may overlap, and the establishment's journal must hold
//! gap-free sequence numbers.
//!
//! CI runs three seeds. For a longer nightly run: `NAVARO_KILL9_SEEDS=50 cargo test -p
//! navaro-gateway --test crash`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, ahead, psql_rows, setup, slots};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A small deterministic generator: the seed decides the kill moment and the slots.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seeds() -> Vec<u64> {
    let count = std::env::var("NAVARO_KILL9_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u64);
    (1..=count).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_bookings_survive_kill_9_under_load() {
    for seed in seeds() {
        one_round(seed).await;
    }
}

async fn one_round(seed: u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let server = Server::start_postgres();
    let (owner, id, _staff, service) = setup(&server, 1000).await;
    // A week of free starts, so that writes keep succeeding until the kill.
    let mut free = Vec::new();
    for day in 2..9 {
        free.extend(slots(&server, &id, &service, ahead(day)).await);
    }
    assert!(free.len() >= 50, "the fixture offers slots");
    let mut customers = Vec::new();
    for n in 0..6 {
        customers.push(server.register(&format!("racer{n}")).await.0);
    }
    let confirmed: Arc<Mutex<Vec<Value>>> = Arc::default();
    let url = server.url(&format!("/v1/establishments/{id}/bookings"));
    let mut tasks = Vec::new();
    for (n, token) in customers.iter().enumerate() {
        for lane in 0..4 {
            let (client, url, token, confirmed, service) = (
                server.client.clone(),
                url.clone(),
                token.clone(),
                confirmed.clone(),
                service.clone(),
            );
            let picks: Vec<Value> = (0..200)
                .map(|_| free[rng.below(free.len() as u64) as usize]["start"].clone())
                .collect();
            tasks.push(tokio::spawn(async move {
                for (i, start) in picks.into_iter().enumerate() {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("idempotency-key", format!("{seed}-{n}-{lane}-{i}"))
                        .json(&json!({"service_id": service, "start": start}))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let Ok(response) = response else { return }; // the server is gone
                    if response.status() == StatusCode::CREATED
                        && let Ok(body) = response.json::<Value>().await
                    {
                        confirmed.lock().unwrap().push(body);
                    }
                }
            }));
        }
    }
    // Kill at a seeded moment while the bookings are in flight.
    tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
    let database = server.database_url().expect("a Postgres server").to_owned();
    let server = server
        .crash_and_restart()
        .expect("restarts on the same database");
    for task in tasks {
        let _ = task.await;
    }
    let confirmed = confirmed.lock().unwrap().clone();

    // Every 201 is still there, confirmed. (Instants are rendered in the establishment's
    // offset, so an instant's first ten characters are its local date.)
    let mut dates: Vec<String> = free
        .iter()
        .map(|s| s["start"].as_str().unwrap()[..10].to_owned())
        .collect();
    dates.dedup();
    let mut stored: Vec<Value> = Vec::new();
    for date in dates {
        let (status, _, day) = server
            .call(
                reqwest::Method::GET,
                &format!("/v1/establishments/{id}/bookings?date={date}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{day}");
        stored.extend(day["bookings"].as_array().unwrap().iter().cloned());
    }
    for booking in &confirmed {
        let found = stored.iter().find(|b| b["id"] == booking["id"]);
        assert!(
            found.is_some_and(|b| b["status"] == "confirmed"),
            "seed {seed}: booking {} confirmed with 201 is lost",
            booking["id"]
        );
    }
    // No two bookings of one staff member overlap.
    let mut spans: Vec<(String, String, String)> = stored
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .map(|b| {
            (
                b["staff_id"].as_str().unwrap().to_owned(),
                instant(&b["start"]),
                instant(&b["end"]),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        if pair[0].0 == pair[1].0 {
            assert!(
                pair[0].2 <= pair[1].1,
                "seed {seed}: overlapping bookings {pair:?}"
            );
        }
    }
    // The journal's seqs are gap-free.
    let counts = psql_rows(
        &database,
        &format!(
            "SELECT count(*), coalesce(max(seq), 0), coalesce(min(seq), 0) FROM events WHERE establishment_id = '{id}'"
        ),
    );
    let parts: Vec<&str> = counts.trim().split('|').collect();
    assert_eq!(
        parts[0], parts[1],
        "seed {seed}: seqs have a gap ({counts})"
    );
    assert_eq!(parts[2], "1");
    println!(
        "seed {seed}: {} bookings confirmed before the kill, all present",
        confirmed.len()
    );
}

/// An RFC 3339 instant normalised to UTC, comparable as a string.
fn instant(value: &Value) -> String {
    value
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .to_string()
}
