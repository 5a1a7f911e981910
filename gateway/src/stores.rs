//! The stores the gateway runs on: `navaro_persistence`'s (Postgres or SQLite, opened
//! and migrated from the configured URL; memory for tests), named here in one place.

pub use navaro_persistence::{BookingReadModel, StoreError, StoreOptions, Stores, migrate, open};
