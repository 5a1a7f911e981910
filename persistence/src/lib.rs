//! Navaro's durable stores.
//!
//! (Being built: the Postgres and SQLite journal, snapshots, the bookings read model and
//! the group-commit writer land in the following commits.) [`accounts`] holds the users
//! and memberships the gateway authenticates and authorizes against.

pub mod accounts;
