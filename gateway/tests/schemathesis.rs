//! Schemathesis (4.x, `pip install schemathesis`; `.ci/run` installs it) against the
//! real binary, over the whole API: every request the document allows must be
//! accepted, and no answer may be a server error. Fixed seed and a CI-sized number of
//! examples; `SCHEMATHESIS_EXAMPLES=N` runs more.
//!
//! The caller is the owner of a real establishment (with a staff member working every
//! hour and a service) and a platform admin, so that the admin routes and the routes
//! behind the establishment's id are reached with ids that exist (`schemathesis.toml`
//! below fixes the path's `id`, `staff_id` and the query's `service_id`); the stateful
//! phase follows the document's OpenAPI links from what it creates itself.
//!
//! Left out: `POST /v1/auth/logout` and `/logout-all`, which would sign the fuzzer out
//! halfway (tests/sessions.rs covers them). Password change and account deletion are
//! in: they need the account's password, which the fuzzer does not have (401).
//!
//! The rules the document states only in words (they depend on the establishment's
//! state or the clock, or tie two fields together) are listed in
//! `schemathesis_hooks.py`, whose check replaces `positive_data_acceptance`; any other
//! rejection of a schema-valid request fails this test.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Examples per operation and phase: enough to reach the boundaries (empty strings,
/// the longest ones) in a CI-sized run.
const EXAMPLES: &str = "12";
const OWNER: &str = "owner@schemathesis.test";

/// The owner's token and the ids the run is pointed at: (token, establishment, staff,
/// service).
async fn shop(server: &Server) -> (String, String, String, String) {
    let (status, _, body) = server
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": OWNER, "password": "correct horse battery", "name": "Owner"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let call = |path: String, body: Value| {
        let token = token.clone();
        async move {
            let (status, _, body) = server
                .call(Method::POST, &path, Some(&token), Some(body))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let id = call(
        "/v1/establishments".into(),
        json!({"name": "Fuzz Barbers", "timezone": "America/Sao_Paulo", "category": "barbershop",
               "latitude": -23.56, "longitude": -46.66, "address": "Rua Augusta, 1"}),
    )
    .await;
    let day = json!([["00:00", "24:00"]]);
    let hours =
        json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day});
    let staff = call(
        format!("/v1/establishments/{id}/staff"),
        json!({"name": "Ana", "hours": hours}),
    )
    .await;
    let service = call(
        format!("/v1/establishments/{id}/services"),
        json!({"name": "Corte", "duration_minutes": 30, "price_cents": 5000, "staff_ids": [staff]}),
    )
    .await;
    (token, id, staff, service)
}

/// The run's configuration: the ids to use, and the live route's upgrade, whose 101
/// answer is the feed's success, not a server error. (The document describes the
/// WebSocket frames as that answer's content, which an HTTP client cannot read from the
/// empty 101 body: Schemathesis's content checks report it, once, as "JSON
/// deserialization error" and "Missing Content-Type header"; `--checks all` overrides a
/// per-operation setting that would turn them off. This test asserts neither.)
fn config_toml(id: &str, staff: &str, service: &str) -> String {
    format!(
        r#"[parameters]
"path.id" = "{id}"
"path.staff_id" = "{staff}"
"query.service_id" = "{service}"

[checks.not_a_server_error]
expected-statuses = ["101", "2xx", "3xx", "4xx"]
"#
    )
}

/// Counts of the run's failures by kind, from its JSON report.
fn failures_by_kind(report: &Path) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(report).expect("schemathesis wrote its JSON report");
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    let mut counts = std::collections::BTreeMap::new();
    collect_failures(&report, &mut counts);
    counts
}

/// Every object with a `title` and a `severity` is a failure (the report's shape nests
/// them per operation and check).
fn collect_failures(value: &Value, counts: &mut std::collections::BTreeMap<String, u64>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(title)), Some(_)) = (map.get("title"), map.get("severity")) {
                *counts.entry(title.clone()).or_default() += 1;
            }
            map.values().for_each(|v| collect_failures(v, counts));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_failures(v, counts)),
        _ => {}
    }
}

#[tokio::test]
async fn every_schema_valid_request_is_accepted_and_none_is_a_server_error() {
    let admins = format!("[\"{OWNER}\"]");
    let server = Server::start_with(&[("NAVARO_AUTH__ADMIN_EMAILS", &admins)]).unwrap();
    let (token, id, staff, service) = shop(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, config_toml(&id, &staff, &service)).unwrap();
    let report = dir.path().join("report.json");
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis_hooks.py");
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_owned());
    let output = Command::new("schemathesis")
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &server.url("/openapi.json"),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--seed",
            "7",
            "--max-examples",
            &examples,
            "--no-color",
            "--exclude-path-regex",
            "^/v1/auth/logout",
            "--report",
            "json",
            "--report-json-path",
        ])
        .arg(&report)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .output()
        .expect("schemathesis runs: `pip install 'schemathesis==4.*'` (.ci/run does)");
    let out = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("Tested:") || out.contains("tested"), "{out}");
    let failures = failures_by_kind(&report);
    eprintln!("schemathesis failures by kind: {failures:?}\n{out}");
    for kind in ["Server error", "Schema-valid request rejected"] {
        assert_eq!(failures.get(kind), None, "{kind}: {out}");
    }
    assert!(
        !out.contains("Valid data should have been accepted"),
        "{out}"
    );
}
