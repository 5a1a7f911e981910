//! Correctness after the run, through the API: every establishment's bookings on every
//! day the run touched are listed (as the owner), no staff member may have overlapping
//! confirmed bookings, and every booking that got a 201 must still be there as the run
//! left it (confirmed at its latest start, or cancelled if the run cancelled it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::StreamExt;
use hyper::Method;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::world::{Expect, World};

/// Booking lists fetched at once.
const CONCURRENCY: usize = 16;
/// Findings listed in the report per kind; the counts are always complete.
const MAX_LISTED: usize = 10;
/// A list answered 503 (right after an overload the server may still be reloading an
/// establishment from the store) is asked again this many times, this far apart, before
/// it counts as a list error; its bookings would otherwise all count as missing. All
/// lists together get at most `LIST_RETRY_BUDGET` retries, so that a server that stays
/// down fails verification in seconds, not minutes.
const LIST_RETRIES: u32 = 10;
const LIST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
const LIST_RETRY_BUDGET: u32 = 200;

/// What verification found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    /// Establishment days listed.
    pub days_listed: u64,
    /// Bookings seen in those lists.
    pub bookings_listed: u64,
    /// Bookings the run got a 201 for.
    pub created: u64,
    /// Of those, expected confirmed / cancelled / unknown at the end.
    pub expected_confirmed: u64,
    pub expected_cancelled: u64,
    pub unknown: u64,
    pub overlaps: u64,
    pub missing: u64,
    pub list_errors: u64,
    /// The first few findings, for a person to look at.
    pub findings: Vec<String>,
}

#[derive(Deserialize)]
struct List {
    bookings: Vec<Listed>,
}

#[derive(Clone, Deserialize)]
struct Listed {
    id: String,
    staff_id: String,
    start: Timestamp,
    end: Timestamp,
    status: String,
}

/// Check the world's bookings against the ledger.
pub async fn verify(world: &World) -> Verification {
    let mut report = Verification::default();
    let mut queries = Vec::new();
    for (n, est) in world.establishments.iter().enumerate() {
        for day in est.days.lock().unwrap().iter() {
            queries.push((n, world.date(*day)));
        }
    }
    let budget = AtomicU32::new(LIST_RETRY_BUDGET);
    // One retry from the shared budget, if any is left.
    let spend = || {
        budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    };
    let spend = &spend;
    let lists: Vec<_> = futures::stream::iter(queries)
        .map(|(n, date)| async move {
            let est = &world.establishments[n];
            let path = format!("{}?date={date}", est.bookings_path);
            let mut tries = 0;
            loop {
                let reply = world
                    .http
                    .send(Method::GET, &path, Some(&est.owner.auth), None)
                    .await;
                let list = match reply {
                    Ok(reply) if reply.status == 200 => serde_json::from_slice::<List>(&reply.body)
                        .map_err(|e| format!("{path}: {e}")),
                    Ok(reply) if reply.status == 503 && tries < LIST_RETRIES && spend() => {
                        // Still working off the load (an establishment reloading from
                        // the store): ask again after a pause.
                        tries += 1;
                        tokio::time::sleep(LIST_RETRY_PAUSE).await;
                        continue;
                    }
                    Ok(reply) => Err(format!("{path}: status {}", reply.status)),
                    Err(e) => Err(format!("{path}: {e}")),
                };
                return (n, list);
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut seen: HashMap<String, Listed> = HashMap::new();
    for (n, list) in lists {
        report.days_listed += 1;
        match list {
            Ok(list) => {
                report.bookings_listed += list.bookings.len() as u64;
                check_overlaps(n, &list.bookings, &mut report);
                seen.extend(list.bookings.into_iter().map(|b| (b.id.clone(), b)));
            }
            Err(e) => {
                report.list_errors += 1;
                note(&mut report, e);
            }
        }
    }
    check_ledger(world, &seen, &mut report);
    report.passed = report.overlaps == 0 && report.missing == 0 && report.list_errors == 0;
    report
}

fn check_overlaps(establishment: usize, bookings: &[Listed], report: &mut Verification) {
    let mut by_staff: HashMap<&str, Vec<&Listed>> = HashMap::new();
    for booking in bookings.iter().filter(|b| b.status == "confirmed") {
        by_staff.entry(&booking.staff_id).or_default().push(booking);
    }
    for (staff, mut list) in by_staff {
        list.sort_by_key(|b| b.start);
        for pair in list.windows(2) {
            if pair[0].end > pair[1].start {
                report.overlaps += 1;
                let finding = format!(
                    "establishment {establishment}: staff {staff} has {} ({}..{}) overlapping {} ({}..{})",
                    pair[0].id, pair[0].start, pair[0].end, pair[1].id, pair[1].start, pair[1].end
                );
                note(report, finding);
            }
        }
    }
}

fn check_ledger(world: &World, seen: &HashMap<String, Listed>, report: &mut Verification) {
    let entries = world.ledger.entries.lock().unwrap();
    report.created = entries.len() as u64;
    for (id, (establishment, expect)) in entries.iter() {
        let listed = seen.get(id);
        let ok = match expect {
            Expect::Confirmed { staff, start } => {
                report.expected_confirmed += 1;
                listed.is_some_and(|b| {
                    b.status == "confirmed" && &b.staff_id == staff && b.start == *start
                })
            }
            // A cancelled booking may be listed as cancelled or left out of the list.
            Expect::Cancelled => {
                report.expected_cancelled += 1;
                listed.is_none_or(|b| b.status == "cancelled")
            }
            Expect::Unknown => {
                report.unknown += 1;
                true
            }
        };
        if !ok {
            report.missing += 1;
            let found = listed.map_or("not listed".to_owned(), |b| {
                format!(
                    "listed as {} at {} with staff {}",
                    b.status, b.start, b.staff_id
                )
            });
            note(
                report,
                format!("establishment {establishment}: booking {id} expected {expect:?}, {found}"),
            );
        }
    }
}

fn note(report: &mut Verification, finding: String) {
    if report.findings.len() < MAX_LISTED {
        report.findings.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: &str, staff: &str, start: &str, end: &str, status: &str) -> Listed {
        Listed {
            id: id.into(),
            staff_id: staff.into(),
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            status: status.into(),
        }
    }

    #[test]
    fn overlaps_of_one_staff_member_are_found_and_nothing_else() {
        let day = [
            // Back to back: no overlap.
            listed(
                "a",
                "s1",
                "2026-12-01T12:00:00Z",
                "2026-12-01T12:30:00Z",
                "confirmed",
            ),
            listed(
                "b",
                "s1",
                "2026-12-01T12:30:00Z",
                "2026-12-01T13:00:00Z",
                "confirmed",
            ),
            // Same time, another staff member: no overlap.
            listed(
                "c",
                "s2",
                "2026-12-01T12:00:00Z",
                "2026-12-01T12:30:00Z",
                "confirmed",
            ),
            // Over a cancelled one: no overlap.
            listed(
                "d",
                "s2",
                "2026-12-01T12:00:00Z",
                "2026-12-01T12:30:00Z",
                "cancelled",
            ),
        ];
        let mut report = Verification::default();
        check_overlaps(0, &day, &mut report);
        assert_eq!(report.overlaps, 0, "{:?}", report.findings);

        // A long booking that starts before another ends, listed out of order.
        let mut clash = day.to_vec();
        clash.push(listed(
            "e",
            "s1",
            "2026-12-01T11:00:00Z",
            "2026-12-01T12:10:00Z",
            "confirmed",
        ));
        let mut report = Verification::default();
        check_overlaps(0, &clash, &mut report);
        assert_eq!(report.overlaps, 1);
        assert!(
            report.findings[0].contains("staff s1"),
            "{:?}",
            report.findings
        );
    }
}
