//! The booking domain as pure code: parse ([`rules`]), decide ([`decide`]), apply
//! ([`state`]), and find free slots ([`slots`]), over DST-aware local time ([`time`]);
//! the state keeps a bounded window of its history ([`window`]).
//! Nothing here touches tokio, a clock or a store.

pub mod day_cache;
pub mod decide;
pub mod fees;
pub mod idempotency;
pub mod payments;
pub mod plugins;
pub mod queue;
pub mod rules;
pub mod slots;
pub mod state;
pub mod time;
pub mod window;

pub use decide::{Context, Events, decide, decide_create, expire_holds};
pub use slots::{Availability, AvailabilityQuery, Slot, availability, availability_uncached};
pub use state::{ApplyError, Establishment, SnapshotState};

use jiff::Timestamp;
use navaro_protocol::{Event, EventRecord, IdempotencyRecord, Reply};

/// Number a command's events from `after + 1`, stamping them with `now` and putting the
/// command's idempotency key on the last one.
pub fn number(
    after: u64,
    events: Events,
    now: Timestamp,
    idempotency: Option<IdempotencyRecord>,
) -> Vec<EventRecord> {
    let count = events.len();
    let mut idempotency = idempotency;
    events
        .into_iter()
        .enumerate()
        .map(|(i, event): (usize, Event)| EventRecord {
            seq: after + i as u64 + 1,
            at: now,
            idempotency: if i + 1 == count {
                idempotency.take()
            } else {
                None
            },
            event,
        })
        .collect()
}

/// Apply numbered records to a state (creating it from `establishment.created`), and
/// return the reply their command gets.
pub fn apply_all(
    state: &mut Option<Establishment>,
    records: &[EventRecord],
) -> Result<Reply, ApplyError> {
    for record in records {
        match state.as_mut() {
            None => *state = Some(Establishment::from_created(record)?),
            Some(est) => est.apply(record)?,
        }
    }
    match (state.as_ref(), records.last()) {
        (Some(est), Some(last)) => Ok(est.reply_for(&last.event)),
        _ => Err(ApplyError {
            seq: 0,
            reason: "nothing to apply".into(),
        }),
    }
}
