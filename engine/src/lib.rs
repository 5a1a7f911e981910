//! Navaro's engine: the booking domain and the establishment actors that own it.
//!
//! - [`domain`] is the pure decision code: settings and hours parsed at the edge,
//!   `decide(state, command) -> events`, `state.apply(event)`, availability, all over
//!   DST-aware local time. No tokio, no clock, no I/O: it is tested exhaustively with
//!   plain and property tests, and benchmarked in `benches/`.
//! - [`shell`] is the runtime around it: one ractor actor per establishment that
//!   serializes its commands, numbers events gap-free, applies them at once and hands
//!   them to the [`store::Journal`] without waiting (pipelining), releasing each reply
//!   when its events are durable; a supervisor that restarts a failed actor from the
//!   store; a registry that activates actors on first use and passivates idle ones; an
//!   immutable read view per establishment that readers use without queuing.
//! - [`store`] is the storage seam the persistence crate implements.
//!
//! `docs/engine.md` describes the runtime semantics (ordering, what a reply means, stop
//! versus crash).

pub mod clock;
pub mod domain;
pub mod shell;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::{AvailabilityQuery, Slot};
pub use shell::{Engine, EngineConfig, EngineError, Request, Subscription, View};
