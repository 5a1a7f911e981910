//! Listings of establishments created before the listings read model existed: the
//! migration queued their ids in `listings_pending`; [`pg`] and [`sqlite`] project each
//! one's listing from its journal (the creation, settings, service and suspension
//! events), one transaction per establishment, and dequeue it. Normally the queue is
//! empty and this is one cheap query at start.

use navaro_protocol::{Encoding, EventRecord};
use uuid::Uuid;

use crate::StoreError;
use crate::directory_sql::{pg_apply, sqlite_apply};
use crate::listing::{ListingChange, listing_change};

/// An establishment's events that change a listing (its creation, settings, services,
/// suspension), in order; `$n` placeholders, which both databases accept.
const LISTING_EVENTS: &str = "SELECT seq, payload FROM events WHERE establishment_id = $1
    AND kind IN ('establishment.created', 'establishment.updated', 'service.added',
                 'establishment.suspended', 'establishment.reinstated')
    ORDER BY seq";

fn migrate_error(e: sqlx::Error) -> StoreError {
    StoreError::Migrate(format!("projecting earlier establishments' listings: {e}"))
}

/// The listing changes of stored events; a payload that does not decode is skipped
/// (the establishment's actor reports it as corrupt when it loads).
fn changes(id: Uuid, rows: Vec<(i64, Vec<u8>)>) -> Vec<ListingChange> {
    rows.into_iter()
        .filter_map(|(seq, payload)| {
            match navaro_protocol::decode::<EventRecord>(Encoding::MsgPack, &payload) {
                Ok(record) => listing_change(id, &record),
                Err(e) => {
                    tracing::warn!(establishment_id = %id, seq, error = %e, "listing backfill skips an undecodable event");
                    None
                }
            }
        })
        .collect()
}

/// Project the queued establishments' listings on `$pool` with `$apply` (the backend's
/// listing statements), one transaction each; how many. The same for both databases.
macro_rules! backfill {
    ($pool:expr, $apply:path) => {{
        let pool = $pool;
        let pending: Vec<Uuid> =
            sqlx::query_scalar("SELECT establishment_id FROM listings_pending")
                .fetch_all(pool)
                .await
                .map_err(migrate_error)?;
        for id in &pending {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(LISTING_EVENTS)
                .bind(id)
                .fetch_all(pool)
                .await
                .map_err(migrate_error)?;
            let mut tx = pool.begin().await.map_err(migrate_error)?;
            for change in changes(*id, rows) {
                $apply(&mut tx, &change).await.map_err(migrate_error)?;
            }
            sqlx::query("DELETE FROM listings_pending WHERE establishment_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(migrate_error)?;
            tx.commit().await.map_err(migrate_error)?;
        }
        Ok(pending.len())
    }};
}

/// Project the queued establishments' listings on Postgres; returns how many.
pub(crate) async fn pg(pool: &sqlx::PgPool) -> Result<usize, StoreError> {
    backfill!(pool, pg_apply)
}

/// Project the queued establishments' listings on SQLite; returns how many.
pub(crate) async fn sqlite(pool: &sqlx::SqlitePool) -> Result<usize, StoreError> {
    backfill!(pool, sqlite_apply)
}
