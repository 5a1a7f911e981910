//! Connecting to a database URL, migrating it, and assembling the stores on it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool};
use tokio::sync::mpsc;

use crate::Directory;
use crate::backend::Backend;
use crate::breaker::{Breaker, Guarded};
use crate::directory_sql::{PgDirectory, SqliteDirectory};
use crate::fence::{ClusterFence, Epochs, WriterFence};
use crate::journal::SqlJournal;
use crate::pg::PgBackend;
use crate::read_model::SqlBookings;
use crate::sessions::{SessionPool, SqlSessions};
use crate::sql_accounts::SqlAccounts;
use crate::sqlite::SqliteBackend;
use crate::writer::{Backlog, GroupLimits, Streams, Writer};
use crate::{POSTGRES_WRITERS, StoreError, StoreOptions, Stores};

/// Which database a URL names.
enum Target {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

fn parse(url: &str) -> Result<Target, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl(reason);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        Ok(Target::Postgres(options))
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
        Ok(Target::Sqlite(sqlite_options(options)?))
    } else {
        Err(invalid("expected a sqlite: or postgres:// URL".into()))
    }
}

/// SQLite as a durable journal: WAL so readers do not block the writer, and `synchronous =
/// FULL` so a commit survives power loss and not only a process crash.
fn sqlite_options(options: SqliteConnectOptions) -> Result<SqliteConnectOptions, StoreError> {
    let path = options.get_filename().to_path_buf();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Connect(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true))
}

fn migration(version: i64, description: &'static str, sql: &'static str) -> Migration {
    Migration::new(
        version,
        description.into(),
        MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(sql),
        false,
    )
}

/// The Postgres migrations, embedded in the binary.
fn postgres_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(
            1,
            "init",
            include_str!("../migrations/postgres/0001_init.sql"),
        ),
        migration(
            2,
            "write group",
            include_str!("../migrations/postgres/0002_write_group.sql"),
        ),
        migration(
            3,
            "write costs",
            include_str!("../migrations/postgres/0003_write_costs.sql"),
        ),
        migration(
            4,
            "creation keys",
            include_str!("../migrations/postgres/0004_creation_keys.sql"),
        ),
        migration(
            5,
            "event compression",
            include_str!("../migrations/postgres/0005_event_compression.sql"),
        ),
        migration(
            6,
            "sessions",
            include_str!("../migrations/postgres/0006_sessions.sql"),
        ),
        migration(
            7,
            "discovery",
            include_str!("../migrations/postgres/0007_discovery.sql"),
        ),
        migration(
            9,
            "notify",
            include_str!("../migrations/postgres/0009_notify.sql"),
        ),
        migration(
            10,
            "owners",
            include_str!("../migrations/postgres/0010_owners.sql"),
        ),
        migration(
            11,
            "plugins",
            include_str!("../migrations/postgres/0011_plugins.sql"),
        ),
    ])
}

/// The SQLite migrations, embedded in the binary.
fn sqlite_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        migration(
            1,
            "init",
            include_str!("../migrations/sqlite/0001_init.sql"),
        ),
        migration(
            2,
            "creation keys",
            include_str!("../migrations/sqlite/0002_creation_keys.sql"),
        ),
        migration(
            3,
            "sessions",
            include_str!("../migrations/sqlite/0003_sessions.sql"),
        ),
        migration(
            4,
            "discovery",
            include_str!("../migrations/sqlite/0004_discovery.sql"),
        ),
        migration(
            6,
            "notify",
            include_str!("../migrations/sqlite/0006_notify.sql"),
        ),
        migration(
            7,
            "plugins",
            include_str!("../migrations/sqlite/0007_plugins.sql"),
        ),
    ])
}

/// A pooled connection idle at least this long is pinged before it is handed out.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The pool settings both backends share. sqlx pings every connection it hands out by
/// default: a round trip to the database (and on SQLite to its worker thread) before each
/// query or group commit, as costly as a small query. Here only a connection that sat
/// idle for [`PING_AFTER_IDLE`] is pinged, which still weeds out the ones a database
/// restart or an idle timeout killed; a busy connection that breaks fails its query,
/// the breaker sees the failure, and sqlx closes the connection when it comes back.
fn pool_options<DB: sqlx::Database>(store: &StoreOptions) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(store.max_connections)
        .acquire_timeout(store.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

async fn pg_pool(options: PgConnectOptions, store: &StoreOptions) -> Result<PgPool, StoreError> {
    let pool = pool_options::<Postgres>(store)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    postgres_migrator()
        .run(&pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(pool)
}

async fn sqlite_pool(
    options: SqliteConnectOptions,
    store: &StoreOptions,
) -> Result<SqlitePool, StoreError> {
    // The busy timeout is SQLite's "wait for the database": two processes on one file
    // queue on it instead of failing, and it is as short as a pool acquire for the same
    // reason (fail fast when the database stays locked).
    let options = options.busy_timeout(store.acquire_timeout);
    let pool = pool_options::<Sqlite>(store)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Connect(e.to_string()))?;
    sqlite_migrator()
        .run(&pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(pool)
}

/// On Postgres each writer keeps a connection between its groups (no acquire, no ping
/// per group), so the pool needs at least one more for everything else: with no
/// connection left over, every read, activation and login would wait out the acquire
/// timeout and be answered `overloaded`.
fn check_pool_size(
    max_connections: u32,
    writers: usize,
    by_default: bool,
) -> Result<(), StoreError> {
    if (max_connections as usize) > writers {
        return Ok(());
    }
    let default = if by_default {
        ", the Postgres default"
    } else {
        ""
    };
    Err(StoreError::Settings(format!(
        "store.max_connections ({max_connections}) must be more than store.writers \
         ({writers}{default}): each writer keeps a connection between its groups"
    )))
}

/// Apply the migrations to the database at `url` and close the connection.
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    let options = StoreOptions {
        max_connections: 1,
        ..StoreOptions::default()
    };
    match parse(database_url)? {
        Target::Postgres(o) => pg_pool(o, &options).await?.close().await,
        Target::Sqlite(o) => sqlite_pool(o, &options).await?.close().await,
    }
    Ok(())
}

fn log_backfill(projected: usize) {
    if projected > 0 {
        tracing::info!(
            establishments = projected,
            "listings projected for establishments created before discovery"
        );
    }
}

/// Connect, migrate, start the journal writer and assemble the stores.
pub async fn open(database_url: &str, options: StoreOptions) -> Result<Stores, StoreError> {
    open_clustered(database_url, options, None).await
}

/// [`open`], for a node of a cluster when `cluster` is given: the journal claims each
/// establishment in Postgres before loading it, and every group commit goes through the
/// epoch fence (`crate::fence`). A cluster needs Postgres: SQLite is refused.
pub async fn open_clustered(
    database_url: &str,
    options: StoreOptions,
    cluster: Option<ClusterFence>,
) -> Result<Stores, StoreError> {
    let target = parse(database_url)?;
    if cluster.is_some() && matches!(target, Target::Sqlite(_)) {
        return Err(StoreError::Settings(
            "a cluster needs Postgres: SQLite is single-node (unset [cluster] or set database_url to postgres://...)".into(),
        ));
    }
    let epochs = Epochs::default();
    let writer_fence = cluster.as_ref().map(|c| WriterFence {
        epochs: epochs.clone(),
        gate: c.gate.clone(),
    });
    let writers = match (options.writer_shards, &target) {
        (0, Target::Postgres(_)) => POSTGRES_WRITERS,
        (0, Target::Sqlite(_)) => 1,
        (chosen, _) => chosen,
    };
    if matches!(target, Target::Postgres(_)) {
        check_pool_size(options.max_connections, writers, options.writer_shards == 0)?;
    }
    let (database, directory, session_pool): (Arc<dyn Backend>, Arc<dyn Directory>, SessionPool) =
        match target {
            Target::Postgres(o) => {
                let pool = pg_pool(o, &options).await?;
                log_backfill(crate::backfill::pg(&pool).await?);
                (
                    Arc::new(PgBackend::new(pool.clone())),
                    Arc::new(PgDirectory { pool: pool.clone() }),
                    SessionPool::Postgres(pool),
                )
            }
            Target::Sqlite(o) => {
                let pool = sqlite_pool(o, &options).await?;
                log_backfill(crate::backfill::sqlite(&pool).await?);
                (
                    Arc::new(SqliteBackend { pool: pool.clone() }),
                    Arc::new(SqliteDirectory { pool: pool.clone() }),
                    SessionPool::Sqlite(pool),
                )
            }
        };
    let backend: Arc<dyn Backend> = Arc::new(Guarded::new(
        database,
        Breaker::new(options.probe_every, options.call_timeout),
    ));
    let streams = Streams::default();
    let limits = GroupLimits {
        max_events: options.group_max_events,
        max_wait: options.group_max_wait,
    };
    let backlogs: Vec<Arc<Backlog>> = (0..writers).map(|_| Arc::default()).collect();
    let shards = backlogs
        .iter()
        .map(|backlog| {
            let (tx, rx) = mpsc::channel(options.writer_queue_batches);
            let writer = Writer {
                backend: backend.clone(),
                streams: streams.clone(),
                limits,
                backlog: backlog.clone(),
                fence: writer_fence.clone(),
            };
            tokio::spawn(writer.run(rx));
            tx
        })
        .collect();
    tracing::info!(
        backend = if database_url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        },
        writers,
        "stores open"
    );
    Ok(Stores {
        journal: Arc::new(SqlJournal {
            backend: backend.clone(),
            streams,
            shards,
            backlogs,
            cluster: cluster.map(|c| (c, epochs)),
        }),
        accounts: Arc::new(SqlAccounts {
            backend: backend.clone(),
        }),
        bookings: Arc::new(SqlBookings { backend }),
        directory,
        sessions: Arc::new(SqlSessions {
            pool: session_pool,
            call_timeout: options.call_timeout,
        }),
    })
}
