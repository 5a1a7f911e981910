//! [`Directory`] on Postgres and SQLite, and the listing projection's statements (run by
//! the backends inside a group's transaction).
//!
//! Postgres searches in SQL: the words through the trigram index on `search_text`, the
//! point through the GiST index on `point(longitude, latitude)` (a bounding box), then
//! the exact haversine distance, keyset order and limit. SQLite filters in SQL (instr,
//! the box on plain columns) and measures, orders and pages in Rust.

use futures::FutureExt;
use futures::future::BoxFuture;
use jiff::Timestamp;
use navaro_protocol::UserId;
use sqlx::{PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use crate::StoreError;
use crate::directory::{AuditEntry, Directory, StoreCounters, UserSummary};
use crate::listing::{
    Cursor, EARTH_RADIUS_M, ListingChange, ListingHit, ListingRecord, SearchQuery, bounding_box,
    page,
};

fn read_error(e: sqlx::Error) -> StoreError {
    crate::backend::overloaded_or(&e, StoreError::Overloaded, StoreError::Unavailable)
}

/// The columns of a listing, in [`ListingRow`]'s order.
const COLUMNS: &str = "id, owner_id, name, timezone, category, address, latitude, longitude, \
                       photo_url, description, services, suspended_reason, created_us, name_folded";

/// A listing as selected: the columns of [`COLUMNS`], then the distance (Postgres, near a
/// point) or the folded services (SQLite).
type ListingRow<X> = (
    Uuid,
    Uuid,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
    String,
    X,
);

fn record<X>(row: ListingRow<X>) -> (ListingRecord, X) {
    let services = row
        .10
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (
        ListingRecord {
            id: row.0,
            owner_id: UserId(row.1),
            name: row.2,
            timezone: row.3,
            category: row.4,
            address: row.5,
            latitude: row.6,
            longitude: row.7,
            photo_url: row.8,
            description: row.9,
            services,
            suspended_reason: row.11,
            created_at: Timestamp::from_microsecond(row.12).unwrap_or_default(),
            name_folded: row.13,
        },
        row.14,
    )
}

/// Push the haversine distance in metres from (`lat`, `lon`), the same formula as
/// [`crate::listing::haversine_m`].
fn push_distance(q: &mut QueryBuilder<Postgres>, lat: f64, lon: f64) {
    q.push(format!(
        "(2 * {EARTH_RADIUS_M}::float8 * asin(least(1, sqrt(power(sin(radians(latitude - "
    ));
    q.push_bind(lat).push("::float8) / 2), 2) + cos(radians(");
    q.push_bind(lat)
        .push("::float8)) * cos(radians(latitude)) * power(sin(radians(longitude - ");
    q.push_bind(lon).push("::float8) / 2), 2)))))");
}

/// The Postgres directory.
pub(crate) struct PgDirectory {
    pub pool: PgPool,
}

/// Apply one listing change on `$conn`, the statements written once for both backends
/// (both accept `$n` placeholders). `$ts` converts the creation instant's microseconds
/// to the stored column: `navaro_ts` on Postgres (a `timestamptz`), nothing on SQLite
/// (which stores the microseconds), leaving a bare parenthesis.
macro_rules! apply_listing_change {
    ($conn:expr, $change:expr, ts = $ts:literal) => {{
        match $change {
            ListingChange::Created {
                id,
                owner_id,
                created_us,
                seq,
                fields: f,
            } => {
                sqlx::query(concat!(
                    "INSERT INTO establishments (id, owner_id, name, timezone, category, address,
                         latitude, longitude, photo_url, description, name_folded, created_at, seq)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ",
                    $ts,
                    "($12), $13)
                     ON CONFLICT (id) DO NOTHING"
                ))
                .bind(id)
                .bind(owner_id)
                .bind(&f.name)
                .bind(&f.timezone)
                .bind(&f.category)
                .bind(&f.address)
                .bind(f.latitude)
                .bind(f.longitude)
                .bind(&f.photo_url)
                .bind(&f.description)
                .bind(&f.name_folded)
                .bind(created_us)
                .bind(seq)
                .execute($conn)
                .await?;
            }
            ListingChange::Updated { id, seq, fields: f } => {
                sqlx::query(
                    "UPDATE establishments SET name = $2, timezone = $3, category = $4, address = $5,
                         latitude = $6, longitude = $7, photo_url = $8, description = $9,
                         name_folded = $10, seq = $11
                     WHERE id = $1 AND seq < $11",
                )
                .bind(id)
                .bind(&f.name)
                .bind(&f.timezone)
                .bind(&f.category)
                .bind(&f.address)
                .bind(f.latitude)
                .bind(f.longitude)
                .bind(&f.photo_url)
                .bind(&f.description)
                .bind(&f.name_folded)
                .bind(seq)
                .execute($conn)
                .await?;
            }
            ListingChange::ServiceAdded {
                id,
                seq,
                name,
                folded,
            } => {
                // `services` is one name a line.
                sqlx::query(
                    "UPDATE establishments SET services = services || $2,
                         services_folded = services_folded || ' ' || $3, seq = $4
                     WHERE id = $1 AND seq < $4",
                )
                .bind(id)
                .bind(format!("{name}\n"))
                .bind(folded)
                .bind(seq)
                .execute($conn)
                .await?;
            }
            ListingChange::Suspension { id, seq, reason } => {
                sqlx::query(
                    "UPDATE establishments SET suspended_reason = $2, seq = $3 WHERE id = $1 AND seq < $3",
                )
                .bind(id)
                .bind(reason)
                .bind(seq)
                .execute($conn)
                .await?;
            }
        }
        Ok(())
    }};
}

/// Apply one listing change inside a Postgres transaction.
pub(crate) async fn pg_apply(
    conn: &mut sqlx::PgConnection,
    change: &ListingChange,
) -> sqlx::Result<()> {
    apply_listing_change!(&mut *conn, change, ts = "navaro_ts")
}

/// Apply one listing change inside a SQLite transaction.
pub(crate) async fn sqlite_apply(
    conn: &mut sqlx::SqliteConnection,
    change: &ListingChange,
) -> sqlx::Result<()> {
    apply_listing_change!(&mut *conn, change, ts = "")
}

/// A pattern for `LIKE`: the folded word (letters and digits only) between wildcards.
fn like(word: &str) -> String {
    debug_assert!(word.chars().all(char::is_alphanumeric));
    like_any(word)
}

fn pg_search_sql(query: &SearchQuery) -> QueryBuilder<Postgres> {
    // Text without a point: the words are filtered first (through the trigram index)
    // in a materialized CTE, then sorted by name. Left to itself the planner walks the
    // name index in order and filters every row (42 ms at 100,000 establishments for
    // words that match none, against a few ms this way; `benches/discovery.rs`).
    let text_first = query.near.is_none() && !query.words.is_empty();
    let mut q = QueryBuilder::<Postgres>::new(if text_first {
        "WITH s AS MATERIALIZED (SELECT "
    } else {
        "SELECT * FROM (SELECT "
    });
    q.push(COLUMNS.replace("created_us", "navaro_us(created_at) AS created_us"));
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    match query.near {
        Some(near) => {
            let (min_lat, min_lon, max_lat, max_lon) =
                bounding_box(near.latitude, near.longitude, near.radius_m);
            q.push(", ");
            push_distance(&mut q, near.latitude, near.longitude);
            q.push(
                " AS distance_m FROM establishments WHERE point(longitude, latitude) <@ box(point(",
            );
            q.push_bind(min_lon).push("::float8, ").push_bind(min_lat);
            q.push("::float8), point(")
                .push_bind(max_lon)
                .push("::float8, ");
            q.push_bind(max_lat).push("::float8))");
            push_filters(&mut q, query);
            q.push(") s WHERE distance_m <= ").push_bind(near.radius_m);
            if let Some(Cursor::Distance { meters, id }) = &query.after {
                q.push(" AND (distance_m, id) > (").push_bind(*meters);
                q.push("::float8, ").push_bind(*id).push(")");
            }
            q.push(" ORDER BY distance_m, id LIMIT ").push_bind(limit);
        }
        None => {
            q.push(", NULL::float8 AS distance_m FROM establishments WHERE true");
            push_filters(&mut q, query);
            if let Some(Cursor::Name { name_folded, id }) = &query.after {
                q.push(" AND (name_folded, id) > (")
                    .push_bind(name_folded.clone());
                q.push(", ").push_bind(*id).push(")");
            }
            q.push(if text_first {
                ") SELECT * FROM s ORDER BY name_folded, id LIMIT "
            } else {
                ") s ORDER BY name_folded, id LIMIT "
            })
            .push_bind(limit);
        }
    }
    q
}

fn push_filters(q: &mut QueryBuilder<Postgres>, query: &SearchQuery) {
    if !query.include_suspended {
        q.push(" AND suspended_reason IS NULL");
    }
    if let Some(category) = &query.category {
        q.push(" AND category = ").push_bind(category.clone());
    }
    for word in &query.words {
        q.push(" AND search_text LIKE ").push_bind(like(word));
    }
}

/// The SQL a Postgres search runs, for EXPLAIN in the bench and tests.
pub fn postgres_search_sql(query: &SearchQuery) -> String {
    pg_search_sql(query).into_sql().as_str().to_owned()
}

/// The [`Directory`] calls whose statements both backends share (with `$n`
/// placeholders, which both accept) but for how an instant is stored: Postgres keeps a
/// `timestamptz`, converted from microseconds by `navaro_ts` and back by `navaro_us`;
/// SQLite keeps the microseconds, so there `ts` and `us` are empty and leave a bare
/// parenthesis.
macro_rules! directory_calls {
    (ts = $ts:literal, us = $us:literal) => {
        fn disabled_users(&self) -> BoxFuture<'_, Result<Vec<Uuid>, StoreError>> {
            async move {
                sqlx::query_scalar("SELECT user_id FROM disabled_users")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_error)
            }
            .boxed()
        }

        fn append_audit(&self, entry: AuditEntry) -> BoxFuture<'_, Result<AuditEntry, StoreError>> {
            async move {
                let id: i64 = sqlx::query_scalar(concat!(
                    "INSERT INTO admin_audit (at, admin_id, action, target_kind, target_id, reason, detail)
                     VALUES (",
                    $ts,
                    "($1), $2, $3, $4, $5, $6, $7) RETURNING id"
                ))
                .bind(entry.at.as_microsecond())
                .bind(entry.admin_id)
                .bind(&entry.action)
                .bind(&entry.target_kind)
                .bind(entry.target_id)
                .bind(&entry.reason)
                .bind(&entry.detail)
                .fetch_one(&self.pool)
                .await
                .map_err(read_error)?;
                Ok(AuditEntry { id, ..entry })
            }
            .boxed()
        }

        fn audit(
            &self,
            before: Option<i64>,
            limit: usize,
        ) -> BoxFuture<'_, Result<Vec<AuditEntry>, StoreError>> {
            async move {
                let rows: Vec<AuditRow> = sqlx::query_as(concat!(
                    "SELECT id, ",
                    $us,
                    "(at), admin_id, action, target_kind, target_id, reason, detail
                     FROM admin_audit WHERE (CAST($1 AS BIGINT) IS NULL OR id < $1)
                     ORDER BY id DESC LIMIT $2"
                ))
                .bind(before)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(read_error)?;
                Ok(rows.into_iter().map(audit_entry).collect())
            }
            .boxed()
        }

        fn counters(
            &self,
            day_start: Timestamp,
            day_end: Timestamp,
        ) -> BoxFuture<'_, Result<StoreCounters, StoreError>> {
            async move {
                let row: (i64, i64, i64, i64, i64) = sqlx::query_as(concat!(
                    "SELECT
                        (SELECT count(*) FROM bookings WHERE kind = 'booking' AND status <> 'cancelled'
                            AND start_at >= ",
                    $ts,
                    "($1) AND start_at < ",
                    $ts,
                    "($2)),
                        (SELECT count(*) FROM establishments WHERE suspended_reason IS NULL),
                        (SELECT count(*) FROM establishments WHERE suspended_reason IS NOT NULL),
                        (SELECT count(*) FROM users),
                        (SELECT count(*) FROM disabled_users)"
                ))
                .bind(day_start.as_microsecond())
                .bind(day_end.as_microsecond())
                .fetch_one(&self.pool)
                .await
                .map_err(read_error)?;
                Ok(counters(row))
            }
            .boxed()
        }
    };
}

impl Directory for PgDirectory {
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<Vec<ListingHit>, StoreError>> {
        async move {
            // A query that cannot match anything after the cursor (wrong kind) is empty.
            let kind_ok = matches!(
                (&query.after, query.near),
                (None, _)
                    | (Some(Cursor::Distance { .. }), Some(_))
                    | (Some(Cursor::Name { .. }), None)
            );
            if !kind_ok || query.limit == 0 {
                return Ok(Vec::new());
            }
            let mut q = pg_search_sql(&query);
            let rows: Vec<ListingRow<Option<f64>>> = q
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(read_error)?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let (listing, distance_m) = record(row);
                    ListingHit {
                        listing,
                        distance_m,
                    }
                })
                .collect())
        }
        .boxed()
    }

    fn search_users(
        &self,
        text: Option<String>,
        after: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<UserSummary>, StoreError>> {
        async move {
            let pattern = text.map(|t| like_any(&t.to_lowercase()));
            let rows: Vec<(Uuid, String, String, i64, Option<String>)> = sqlx::query_as(
                "SELECT u.id, u.email, u.name, navaro_us(u.created_at), d.reason
                 FROM users u LEFT JOIN disabled_users d ON d.user_id = u.id
                 WHERE ($1::uuid IS NULL OR u.id > $1)
                   AND ($2::text IS NULL OR lower(u.email) LIKE $2 OR lower(u.name) LIKE $2)
                 ORDER BY u.id LIMIT $3",
            )
            .bind(after)
            .bind(pattern)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
            Ok(rows.into_iter().map(user_summary).collect())
        }
        .boxed()
    }

    fn disable_user(
        &self,
        user: UserId,
        by: UserId,
        reason: String,
        at: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(read_error)?;
            if exists.is_none() {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO disabled_users (user_id, disabled_at, disabled_by, reason)
                 VALUES ($1, navaro_ts($2), $3, $4) ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(user.0)
            .bind(at.as_microsecond())
            .bind(by.0)
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(read_error)?;
            Ok(true)
        }
        .boxed()
    }

    directory_calls!(ts = "navaro_ts", us = "navaro_us");
}

/// A `LIKE` pattern matching `text` anywhere, its wildcards escaped.
fn like_any(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

type AuditRow = (i64, i64, Uuid, String, String, Option<Uuid>, String, String);

fn audit_entry(r: AuditRow) -> AuditEntry {
    AuditEntry {
        id: r.0,
        at: Timestamp::from_microsecond(r.1).unwrap_or_default(),
        admin_id: r.2,
        action: r.3,
        target_kind: r.4,
        target_id: r.5,
        reason: r.6,
        detail: r.7,
    }
}

fn user_summary(r: (Uuid, String, String, i64, Option<String>)) -> UserSummary {
    UserSummary {
        id: r.0,
        email: r.1,
        name: r.2,
        created_at: Timestamp::from_microsecond(r.3).unwrap_or_default(),
        disabled_reason: r.4,
    }
}

fn counters(r: (i64, i64, i64, i64, i64)) -> StoreCounters {
    StoreCounters {
        bookings_today: r.0,
        active_establishments: r.1,
        suspended_establishments: r.2,
        users: r.3,
        disabled_users: r.4,
    }
}

/// The SQLite directory.
pub(crate) struct SqliteDirectory {
    pub pool: SqlitePool,
}

impl Directory for SqliteDirectory {
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, Result<Vec<ListingHit>, StoreError>> {
        async move {
            let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
            q.push(COLUMNS.replace("created_us", "created_at"));
            q.push(", services_folded FROM establishments WHERE 1");
            if !query.include_suspended {
                q.push(" AND suspended_reason IS NULL");
            }
            if let Some(category) = &query.category {
                q.push(" AND category = ").push_bind(category.clone());
            }
            for word in &query.words {
                q.push(" AND instr(search_text, ")
                    .push_bind(word.clone())
                    .push(") > 0");
            }
            if let Some(near) = query.near {
                let (min_lat, min_lon, max_lat, max_lon) =
                    bounding_box(near.latitude, near.longitude, near.radius_m);
                q.push(" AND latitude BETWEEN ").push_bind(min_lat);
                q.push(" AND ").push_bind(max_lat);
                q.push(" AND longitude BETWEEN ").push_bind(min_lon);
                q.push(" AND ").push_bind(max_lon);
            }
            let rows: Vec<ListingRow<String>> = q
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(read_error)?;
            let candidates = rows.into_iter().map(|row| record(row).0).collect();
            Ok(page(&query, candidates))
        }
        .boxed()
    }

    fn search_users(
        &self,
        text: Option<String>,
        after: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<UserSummary>, StoreError>> {
        async move {
            let text = text.map(|t| t.to_lowercase());
            let rows: Vec<(Uuid, String, String, i64, Option<String>)> = sqlx::query_as(
                "SELECT u.id, u.email, u.name, u.created_at, d.reason
                 FROM users u LEFT JOIN disabled_users d ON d.user_id = u.id
                 WHERE (?1 IS NULL OR u.id > ?1)
                   AND (?2 IS NULL OR instr(lower(u.email), ?2) > 0 OR instr(lower(u.name), ?2) > 0)
                 ORDER BY u.id LIMIT ?3",
            )
            .bind(after)
            .bind(text)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(read_error)?;
            Ok(rows.into_iter().map(user_summary).collect())
        }
        .boxed()
    }

    fn disable_user(
        &self,
        user: UserId,
        by: UserId,
        reason: String,
        at: Timestamp,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let done = sqlx::query(
                "INSERT INTO disabled_users (user_id, disabled_at, disabled_by, reason)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?1)
                 ON CONFLICT (user_id) DO NOTHING",
            )
            .bind(user.0)
            .bind(at.as_microsecond())
            .bind(by.0)
            .bind(reason)
            .execute(&self.pool)
            .await
            .map_err(read_error)?;
            if done.rows_affected() > 0 {
                return Ok(true);
            }
            let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = ?1")
                .bind(user.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(read_error)?;
            Ok(exists.is_some())
        }
        .boxed()
    }

    directory_calls!(ts = "", us = "");
}
