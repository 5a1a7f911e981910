//! The engine as the gateway sees it.
//!
//! TEMPORARY: `navaro_engine`'s public API (Engine, Request, View, Subscription,
//! AvailabilityQuery, Slot) has not landed on main yet. This module declares the planned
//! shape so the gateway compiles and its engine-independent parts can be tested; every
//! call answers `unavailable`. When the engine lands this file becomes a list of
//! `pub use navaro_engine::...` lines.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use navaro_engine::store::Journal;
use navaro_protocol::{
    Booking, BookingId, Caller, Command, ErrorCode, EstablishmentId, EstablishmentSettings,
    EventRecord, Rejection, Reply, Service, ServiceId, Staff, StaffId, UserId,
};
use tokio::sync::broadcast;

/// Engine tuning; defaults are sensible.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {}

/// The engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("engine error: {0}")]
pub struct EngineError(String);

/// A command with who sent it and its idempotency key.
#[derive(Clone, Debug)]
pub struct Request {
    pub caller: Caller,
    pub command: Command,
    pub idempotency_key: Option<String>,
}

/// A live feed from `since`.
pub struct Subscription {
    pub hello_seq: u64,
    pub backlog: Vec<Arc<EventRecord>>,
    pub reload: bool,
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

/// Availability request.
#[derive(Clone, Debug)]
pub struct AvailabilityQuery {
    pub service_id: ServiceId,
    pub from: Date,
    pub days: u16,
    pub staff_id: Option<StaffId>,
}

/// A bookable start.
#[derive(Clone, Debug)]
pub struct Slot {
    pub start: Timestamp,
    pub staff_ids: Vec<StaffId>,
}

/// An establishment's published read view.
pub struct View {
    id: EstablishmentId,
    owner_id: UserId,
    settings: EstablishmentSettings,
    timezone: TimeZone,
}

impl View {
    pub fn id(&self) -> EstablishmentId {
        self.id
    }
    pub fn owner_id(&self) -> UserId {
        self.owner_id
    }
    pub fn settings(&self) -> &EstablishmentSettings {
        &self.settings
    }
    pub fn timezone(&self) -> &TimeZone {
        &self.timezone
    }
    pub fn staff(&self) -> Vec<Staff> {
        Vec::new()
    }
    pub fn services(&self) -> Vec<Service> {
        Vec::new()
    }
    pub fn seq(&self) -> u64 {
        0
    }
    pub fn availability(
        &self,
        _query: &AvailabilityQuery,
        _now: Timestamp,
    ) -> Result<Vec<Slot>, Rejection> {
        Err(not_yet())
    }
    pub fn bookings_on(&self, _date: Date, _customer: Option<UserId>) -> Vec<Booking> {
        Vec::new()
    }
    pub fn booking(&self, _id: BookingId) -> Option<Booking> {
        None
    }
}

fn not_yet() -> Rejection {
    Rejection::new(ErrorCode::Unavailable, "engine not built yet")
}

/// The engine handle.
#[derive(Clone)]
pub struct Engine {
    _journal: Arc<dyn Journal>,
}

impl Engine {
    pub async fn start(
        journal: Arc<dyn Journal>,
        _config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        Ok(Engine { _journal: journal })
    }
    pub async fn execute(
        &self,
        _establishment_id: EstablishmentId,
        _request: Request,
    ) -> Result<Reply, Rejection> {
        Err(not_yet())
    }
    pub async fn view(&self, _establishment_id: EstablishmentId) -> Result<Arc<View>, Rejection> {
        Err(Rejection::not_found("establishment"))
    }
    pub async fn subscribe(
        &self,
        _establishment_id: EstablishmentId,
        _since: u64,
    ) -> Result<Subscription, Rejection> {
        Err(Rejection::not_found("establishment"))
    }
    pub async fn shutdown(&self) {}
}
