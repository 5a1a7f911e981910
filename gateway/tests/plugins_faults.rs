//! A plugin that panics or hangs on an event, on the real binary: bookings go on as if
//! nothing happened; the failure is counted and retried; once the plugin recovers it
//! catches up and counts every event exactly once, also across a kill -9 and restart.
//!
//! The fault is injected through `plugins.fault_file` (dev mode only): the analytics
//! consumer reads it before each batch and panics (`analytics panic`) or never returns
//! (`analytics hang`, cut off by `plugins.derive_timeout_ms`).

mod common;

use std::time::Duration;

use common::Server;
use common::plugins::{establishment, every_day, install, poll};
use jiff::ToSpan;
use reqwest::{Method, StatusCode};
use serde_json::json;

const NY: &str = "America/New_York";

/// The value of a counter line of `/metrics` with these labels (0 if absent).
fn counter(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn book(server: &Server, id: &str, token: &str, service: &str, start: &str) {
    let (status, _, b) = server
        .call(
            Method::POST,
            &format!("/v1/establishments/{id}/bookings"),
            Some(token),
            Some(json!({"service_id": service, "start": start})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
}

async fn a_failing_plugin_never_affects_bookings(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let faults = dir.path().join("faults");
    let faults_env = faults.display().to_string();
    let env = [
        ("NAVARO_DEV_MODE", "true"),
        ("NAVARO_PLUGINS__FAULT_FILE", faults_env.as_str()),
        ("NAVARO_PLUGINS__DERIVE_TIMEOUT_MS", "300"),
    ];
    let server = if postgres {
        Server::start_postgres_with(&env)
    } else {
        Server::start_with(&env).unwrap()
    };
    let (owner, id, _, service) =
        establishment(&server, NY, every_day("00:00", "24:00"), json!({})).await;
    let (customer, _) = server.register("customer").await;
    install(&server, &owner, &id, "analytics").await;
    let zone = jiff::tz::TimeZone::get(NY).unwrap();
    let day = jiff::Timestamp::now()
        .to_zoned_datetime(zone.clone())
        .date()
        + 2.days();
    let start = |hour: i8| {
        day.at(hour, 0, 0, 0)
            .to_zoned_datetime(zone.clone())
            .unwrap()
            .timestamp()
            .to_string()
    };
    let report = format!("/v1/establishments/{id}/plugins/analytics/report?from={day}&to={day}");
    let failures = |m: &str, kind: &str| {
        counter(
            m,
            "navaro_consumer_failures_total",
            &["consumer=\"plugin.analytics\"", &format!("kind=\"{kind}\"")],
        )
    };

    // Panicking: bookings still succeed; the failure is counted; nothing is counted twice.
    std::fs::write(&faults, "analytics panic\n").unwrap();
    for hour in [8, 9, 10] {
        book(&server, &id, &customer, &service, &start(hour)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while failures(&server.metrics().await, "panic") < 2.0 {
        assert!(std::time::Instant::now() < deadline, "no panic was retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, stuck) = server.call(Method::GET, &report, Some(&owner), None).await;
    assert_eq!(
        stuck["rows"][0]["bookings"], 0,
        "the failing plugin counted: {stuck}"
    );

    // Hanging: the same, cut off by the time limit.
    std::fs::write(&faults, "analytics hang\n").unwrap();
    for hour in [11, 12] {
        book(&server, &id, &customer, &service, &start(hour)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while failures(&server.metrics().await, "timeout") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no hang was cut off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other plugins kept going meanwhile, untouched.
    let metrics = server.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "navaro_consumer_failures_total",
            &["consumer=\"plugin.marketing\""]
        ),
        0.0
    );

    // Recovered: every booking counted once.
    std::fs::remove_file(&faults).unwrap();
    poll(&server, &report, &owner, Duration::from_secs(30), |b| {
        b["rows"][0]["bookings"] == 5
    })
    .await;
    book(&server, &id, &customer, &service, &start(13)).await;
    poll(&server, &report, &owner, Duration::from_secs(30), |b| {
        b["rows"][0]["bookings"] == 6
    })
    .await;

    // Killed and restarted: the checkpoint moved with the counters, so nothing is counted
    // again (the restart rescans every journal at once).
    let server = server.crash_and_restart_with(&env).unwrap();
    book(&server, &id, &customer, &service, &start(14)).await;
    let after = poll(&server, &report, &owner, Duration::from_secs(30), |b| {
        b["rows"][0]["bookings"] == 7
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, later) = server.call(Method::GET, &report, Some(&owner), None).await;
    assert_eq!(
        later["rows"], after["rows"],
        "counted twice after the restart"
    );
    assert_eq!(later["rows"][0]["busy_minutes"], 7 * 30);
}

#[tokio::test]
async fn a_failing_plugin_never_affects_bookings_and_catches_up_once_on_sqlite() {
    a_failing_plugin_never_affects_bookings(false).await;
}

#[tokio::test]
async fn a_failing_plugin_never_affects_bookings_and_catches_up_once_on_postgres() {
    a_failing_plugin_never_affects_bookings(true).await;
}
