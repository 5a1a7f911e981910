//! The metrics recorder drains its histograms without a scrape: samples recorded and
//! never scraped are given back within a few upkeep intervals. Its own test binary,
//! because it counts the process's live heap bytes with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use navaro_gateway::telemetry::{METRICS_UPKEEP_INTERVAL, install_metrics};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// side effect that allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SAMPLES: usize = 1_000_000;

#[test]
fn unscraped_histogram_samples_are_given_back() {
    install_metrics();
    let histogram = metrics::histogram!("http_request_duration_seconds", "method" => "GET", "route" => "/healthz");
    histogram.record(0.001); // the handle's own first allocations
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for i in 0..SAMPLES {
        histogram.record(i as f64 * 1e-9);
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert!(
        held >= (SAMPLES * 8) as isize,
        "a million samples should be held until drained, {held} bytes are"
    );

    // Wait for the upkeep (no scrape happens here); a generous deadline, not a timing.
    // The drained blocks go back through crossbeam's epochs, which advance as threads
    // record (a collection every 128 records or so), as a live server's requests do; up
    // to 63 batches of them can wait in the upkeep thread's own bag, so not all of it
    // comes back.
    let deadline = Instant::now() + METRICS_UPKEEP_INTERVAL * 6;
    loop {
        for _ in 0..256 {
            histogram.record(0.001);
        }
        let still = LIVE_BYTES.load(Ordering::Relaxed) - before;
        if still < held / 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{still} of {held} bytes still held after {:?}: the histograms are not drained",
            METRICS_UPKEEP_INTERVAL * 6
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
