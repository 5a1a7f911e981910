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

/// The event kinds that change a listing.
const KINDS: [&str; 5] = [
    "establishment.created",
    "establishment.updated",
    "service.added",
    "establishment.suspended",
    "establishment.reinstated",
];

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

/// Project the queued establishments' listings on Postgres; returns how many.
pub(crate) async fn pg(pool: &sqlx::PgPool) -> Result<usize, StoreError> {
    let pending: Vec<Uuid> = sqlx::query_scalar("SELECT establishment_id FROM listings_pending")
        .fetch_all(pool)
        .await
        .map_err(migrate_error)?;
    for id in &pending {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, payload FROM events WHERE establishment_id = $1 AND kind = ANY($2)
             ORDER BY seq",
        )
        .bind(id)
        .bind(&KINDS[..])
        .fetch_all(pool)
        .await
        .map_err(migrate_error)?;
        let mut tx = pool.begin().await.map_err(migrate_error)?;
        for change in changes(*id, rows) {
            pg_apply(&mut tx, &change).await.map_err(migrate_error)?;
        }
        sqlx::query("DELETE FROM listings_pending WHERE establishment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(migrate_error)?;
        tx.commit().await.map_err(migrate_error)?;
    }
    Ok(pending.len())
}

/// Project the queued establishments' listings on SQLite; returns how many.
pub(crate) async fn sqlite(pool: &sqlx::SqlitePool) -> Result<usize, StoreError> {
    let pending: Vec<Uuid> = sqlx::query_scalar("SELECT establishment_id FROM listings_pending")
        .fetch_all(pool)
        .await
        .map_err(migrate_error)?;
    for id in &pending {
        let mut rows: Vec<(i64, Vec<u8>)> = Vec::new();
        for kind in KINDS {
            rows.extend(
                sqlx::query_as::<_, (i64, Vec<u8>)>(
                    "SELECT seq, payload FROM events WHERE establishment_id = ?1 AND kind = ?2",
                )
                .bind(id)
                .bind(kind)
                .fetch_all(pool)
                .await
                .map_err(migrate_error)?,
            );
        }
        rows.sort_by_key(|(seq, _)| *seq);
        let mut tx = pool.begin().await.map_err(migrate_error)?;
        for change in changes(*id, rows) {
            sqlite_apply(&mut tx, &change)
                .await
                .map_err(migrate_error)?;
        }
        sqlx::query("DELETE FROM listings_pending WHERE establishment_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(migrate_error)?;
        tx.commit().await.map_err(migrate_error)?;
    }
    Ok(pending.len())
}
