//! The engine as the gateway sees it: `navaro_engine`'s public API, re-exported so the
//! gateway names it in one place.

pub use navaro_engine::{
    AvailabilityQuery, Engine, EngineConfig, EngineError, Request, Slot, Subscription, View,
};
