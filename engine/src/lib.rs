//! Navaro's engine: the booking domain and the establishment actors that own it.
//!
//! (Being built: the domain and the actor shell land in the following commits; the
//! storage seam in [`store`] is settled first so the persistence layer can be built
//! against it in parallel.)

pub mod store;
