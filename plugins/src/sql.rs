//! Running one statement on whichever database the server uses. The statements are the
//! same text on both (see `navaro_notify::store`).

/// Run `$body` with `$pool` bound to the pool `$db` (a [`navaro_notify::Db`]) holds.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            navaro_notify::Db::Pg($pool) => $body,
            navaro_notify::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The nil UUID stands for "every staff member" in per-staff tables.
pub const EVERYONE: uuid::Uuid = uuid::Uuid::nil();
