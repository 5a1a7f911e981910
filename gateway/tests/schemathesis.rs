//! Schemathesis (4.x, `pip install schemathesis`; `.ci/run` installs it) against the
//! real binary: every request the document allows must be accepted, and no answer may
//! be a server error or disagree with the document. Fixed seed and a CI-sized number of
//! examples; `SCHEMATHESIS_EXAMPLES=N` runs more.
//!
//! Scope, for now: register, login, refresh, the caller's account and export, reading
//! an establishment and availability. Creating and changing an establishment state
//! their constraints too, but discovery's listing fields (merged since) do not yet, so
//! they are left out with the rest of the document that is not yet as strict as the
//! server (issue 26: search, the hours' shape, services, bookings, the queue, members,
//! devices, preferences, the live route's upgrade), nor has OpenAPI links for the
//! routes behind an id; they join this test as they are tightened. The operations that end the caller's session
//! (logout, logout-all, password change, account deletion) are left out: they would
//! sign the fuzzer out halfway; tests/sessions.rs and tests/personal.rs cover them.

mod common;

use std::process::Command;

use common::Server;

/// Examples per operation and phase: enough to reach the boundaries (empty strings,
/// the longest ones) in a few seconds.
const EXAMPLES: &str = "25";

#[tokio::test]
async fn schema_valid_requests_are_accepted_and_answers_match_the_document() {
    let server = Server::start();
    let (token, _) = server.register("fuzzer").await;
    let examples = std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_owned());
    let output = Command::new("schemathesis")
        .args([
            "run",
            &server.url("/openapi.json"),
            "--checks",
            "all",
            "--seed",
            "7",
            "--max-examples",
            &examples,
            "--no-color",
            "--include-path-regex",
            "^/v1/auth/|^/v1/me(/export)?$|^/v1/establishments/\\{id\\}$|/availability$",
            "--exclude-path-regex",
            "^/v1/auth/logout|^/v1/me/password$",
            "--exclude-method",
            "DELETE",
            "--exclude-method",
            "PATCH",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .output()
        .expect("schemathesis runs: `pip install 'schemathesis==4.*'` (.ci/run does)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    assert!(report.contains("Tested:"), "{report}");
    assert!(!report.contains("Server error"), "{report}");
}
