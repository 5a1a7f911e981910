//! Time as an input. Every "now" of the notify crate comes from a [`Clock`]: the
//! system's, shifted by a development offset (`notify.dev_clock_offset_seconds`, refused
//! outside dev mode), or a [`ManualClock`] a test moves by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Microseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_us(&self) -> i64;
}

/// The system clock, plus a fixed offset (zero in production).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock {
    pub offset_us: i64,
}

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        jiff::Timestamp::now().as_microsecond() + self.offset_us
    }
}

/// A clock that only moves when told to.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_us: i64) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(now_us)))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1_000_000, Ordering::SeqCst);
    }

    pub fn set_us(&self, now_us: i64) {
        self.0.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
