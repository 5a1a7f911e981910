//! Memory and snapshot size of one establishment over simulated months of bookings, with
//! the history window and without it.
//!
//! The domain runs alone (decide, number, apply; no actor, no journal) on an injected
//! clock, so that the heap this test's thread holds is the state's: a counting allocator
//! tracks the bytes each thread has allocated and not freed. Each simulated day books a
//! day two weeks ahead full (a few cancelled), then moves the clock a day and evicts what
//! left the window, as the actor does each minute.
//!
//! `the_state_stays_flat` simulates three months in CI (a few seconds); `NAVARO_LONG=1`
//! makes it a year, the run whose table BENCHMARKS.md records:
//! `NAVARO_LONG=1 cargo test --release -p navaro-engine --test history_memory -- --nocapture`

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use jiff::ToSpan;
use navaro_engine::domain::window::{DEFAULT_HISTORY_DAYS, window_start};
use navaro_protocol::{Booking, Command, WeeklyHours};
use support::*;

/// Counts, per thread, the bytes allocated and not yet freed (a free on another thread
/// than the allocation's would be misattributed; the simulation runs on one thread).
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    // `try_with`: during thread teardown the slot may be gone.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE.with(Cell::get)
}

/// What one simulated month left.
#[derive(Debug, Clone, Copy)]
struct Month {
    day: u32,
    bookings_taken: usize,
    bookings_held: usize,
    state_bytes: i64,
    snapshot_bytes: usize,
}

/// Simulate `days` days of an establishment booked full two weeks ahead, evicting with
/// a window of `window_days` (`None`: never), and measure it every 30 days.
fn simulate(days: u32, window_days: Option<u32>) -> Vec<Month> {
    // Loading the zone's rules once (a cache for the process) is not the state's.
    drop(Sim::new(
        settings("America/Sao_Paulo"),
        "2026-01-01T06:00:00Z",
    ));
    let start_bytes = live_bytes();
    let mut sim = Sim::new(
        EstablishmentSettings {
            horizon_days: 30,
            ..settings("America/Sao_Paulo")
        },
        "2026-01-01T06:00:00Z",
    );
    let hours = WeeklyHours::every_day(&[("09:00", "19:00")]);
    let staff: Vec<_> = (0..4)
        .map(|n| sim.add_staff(&format!("s{n}"), hours.clone()))
        .collect();
    let service = sim.add_service("Corte", 45, 15, &staff);
    let mut taken = 0;
    let mut months = Vec::new();
    for day in 1..=days {
        // Local 09:00 two weeks ahead, every hour until 19:00, for each staff member:
        // 40 bookings, one in ten cancelled.
        let first = sim.now + (14 * 24 + 6).hours();
        let mut made: Vec<Booking> = Vec::new();
        for hour in 0..10 {
            for &staff_id in &staff {
                let start = first + hour.hours();
                let command = Command::Book {
                    service_id: service,
                    start,
                    staff_id: Some(staff_id),
                    customer_id: None,
                };
                let who = customer(u128::from(day) * 100 + made.len() as u128);
                if let Ok(navaro_protocol::Reply::Booking(b)) = sim.exec(who, command) {
                    made.push(b);
                }
            }
        }
        taken += made.len();
        for b in made.iter().step_by(10) {
            sim.exec(staff_member(), Command::Cancel { booking_id: b.id })
                .expect("cancel");
        }
        drop(made);
        sim.now += 24.hours();
        if let (Some(days), Some(state)) = (window_days, sim.state.as_mut()) {
            state.evict_history(window_start(sim.now.as_second().div_euclid(60), days));
        }
        if day % 30 == 0 {
            let state_bytes = live_bytes() - start_bytes;
            let snapshot = rmp_serde::to_vec_named(&sim.est().to_snapshot()).unwrap();
            months.push(Month {
                day,
                bookings_taken: taken,
                bookings_held: sim.est().booking_count(),
                state_bytes,
                snapshot_bytes: snapshot.len(),
            });
        }
    }
    months
}

use navaro_protocol::EstablishmentSettings;

/// Whether the long runs were asked for (`NAVARO_LONG=1`; README, "Test it").
fn long_run() -> bool {
    std::env::var("NAVARO_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The months measured, as the table BENCHMARKS.md records.
fn print_table(windowed: &[Month], kept: &[Month]) {
    println!(
        "| day | bookings taken | held (window) | state KB (window) | snapshot KB (window) | held (no window) | state KB (no window) | snapshot KB (no window) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (w, k) in windowed.iter().zip(kept) {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {:.0} | {:.0} |",
            w.day,
            w.bookings_taken,
            w.bookings_held,
            w.state_bytes as f64 / 1024.0,
            w.snapshot_bytes as f64 / 1024.0,
            k.bookings_held,
            k.state_bytes as f64 / 1024.0,
            k.snapshot_bytes as f64 / 1024.0,
        );
    }
}

/// Three months, or a year with `NAVARO_LONG=1`: with the window the state and its
/// snapshot stay flat; without it they grow with every booking taken.
#[test]
fn the_state_stays_flat() {
    let days = if long_run() { 360 } else { 90 };
    let windowed = simulate(days, Some(DEFAULT_HISTORY_DAYS));
    let kept = simulate(days, None);
    print_table(&windowed, &kept);
    let months = windowed.len();
    let (first, last) = (windowed[0], windowed[months - 1]);
    assert!(
        last.bookings_taken >= months * first.bookings_taken - 40,
        "{windowed:?}"
    );
    // The window holds the same bookings each month: 14 days ahead, 7 behind, today.
    assert_eq!(first.bookings_held, last.bookings_held, "{windowed:?}");
    assert!(
        last.state_bytes * 10 <= first.state_bytes * 12,
        "memory grew over the months: {windowed:?}"
    );
    assert!(
        last.snapshot_bytes * 10 <= first.snapshot_bytes * 11,
        "snapshots grew over the months: {windowed:?}"
    );
    // Without the window the same months grow with every booking taken: the
    // measurement can tell.
    let last_kept = kept[kept.len() - 1];
    assert_eq!(last_kept.bookings_held, last_kept.bookings_taken);
    assert!(
        last_kept.state_bytes > 2 * last.state_bytes,
        "{kept:?} vs {windowed:?}"
    );
    assert!(last_kept.snapshot_bytes > 2 * last.snapshot_bytes);
}
