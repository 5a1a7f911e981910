//! The plugin boundary: what a plugin implements, and the adapter that runs it as a
//! journal consumer.
//!
//! The adapter ([`PluginConsumer`]) keeps, per establishment, the plugin's state between
//! batches in `plugin_state` (JSON), next to what every plugin needs: the
//! establishment's time zone and whether (and with which settings) the plugin is
//! installed. It loads that state, walks the batch's events in order, lets the plugin
//! turn each into statements, and saves the state with them: all of it is applied with
//! the checkpoint's move, in one transaction, so a batch counts once however often it is
//! derived.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use navaro_notify::{Bind, Db, Effect, EventConsumer, NotifyError, Statement};
use navaro_protocol::{Event, EventRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PluginError;
use crate::sql::on_db;

/// A plugin: its name, its settings, and what it does with each event.
pub trait Plugin: Send + Sync + 'static {
    /// What the plugin remembers per establishment between batches.
    type State: Serialize + DeserializeOwned + Default + Send;
    /// The plugin's name, as in its routes and in `plugin.installed`.
    const NAME: &'static str;
    /// The consumer checkpoint's name: stable, it keys the plugin's progress.
    const CONSUMER: &'static str;

    /// Validate the settings an owner installs the plugin with; the normalised settings.
    fn settings(&self, raw: &serde_json::Value) -> Result<serde_json::Value, PluginError>;

    /// The statements one event calls for (pushed to `out`), changing `state` as needed.
    /// Called for every event of the establishment in seq order, installed or not, so a
    /// plugin can keep what it needs (prices, hours) from before its installation; it
    /// decides itself what to do while uninstalled ([`EventContext::installed`]). Must
    /// depend only on the event, the context and the state: a batch may be derived again.
    fn on_event(
        &self,
        ctx: &EventContext<'_>,
        state: &mut Self::State,
        record: &EventRecord,
        out: &mut Vec<Statement>,
    );
}

/// What the adapter knows when it hands a plugin an event.
pub struct EventContext<'a> {
    pub establishment_id: Uuid,
    /// The establishment's time zone as of this event.
    pub zone: &'a jiff::tz::TimeZone,
    /// The plugin's settings while it is installed, as of this event.
    pub installed: Option<&'a serde_json::Value>,
}

/// The state the adapter keeps per plugin and establishment.
#[derive(Serialize, Deserialize, Default)]
#[serde(bound(deserialize = "S: DeserializeOwned + Default"))]
struct Kept<S> {
    #[serde(default)]
    timezone: String,
    #[serde(default)]
    installed: Option<serde_json::Value>,
    #[serde(default)]
    plugin: S,
}

/// A plugin as a journal consumer.
pub struct PluginConsumer<P: Plugin> {
    plugin: P,
    db: Db,
    /// Tests only: a file naming plugins to fail (`<name> panic` or `<name> hang` per
    /// line), read before each batch, so a test can see a failing plugin handled and
    /// caught up on the real binary.
    fault_file: Option<PathBuf>,
}

impl<P: Plugin> PluginConsumer<P> {
    pub fn new(plugin: P, db: Db, fault_file: Option<PathBuf>) -> Arc<Self> {
        Arc::new(PluginConsumer {
            plugin,
            db,
            fault_file,
        })
    }

    async fn load(&self, establishment_id: Uuid) -> Result<Kept<P::State>, NotifyError> {
        let row: Option<(String,)> = on_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT state FROM plugin_state WHERE plugin = $1 AND establishment_id = $2",
            )
            .bind(P::NAME)
            .bind(establishment_id)
            .fetch_optional(pool)
            .await?
        });
        match row {
            None => Ok(Kept::default()),
            Some((text,)) => serde_json::from_str(&text)
                .map_err(|e| NotifyError::Consumer(format!("{} state: {e}", P::NAME))),
        }
    }

    /// Fail as the fault file says (tests only).
    async fn injected_fault(&self) {
        let Some(path) = &self.fault_file else {
            return;
        };
        let Ok(text) = tokio::fs::read_to_string(path).await else {
            return;
        };
        for line in text.lines() {
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, "panic"] if name == P::NAME => panic!("injected fault: {name} panics"),
                [name, "hang"] if name == P::NAME => futures::future::pending::<()>().await,
                _ => {}
            }
        }
    }

    async fn derive_batch(
        &self,
        establishment_id: Uuid,
        records: &[EventRecord],
    ) -> Result<Vec<Effect>, NotifyError> {
        self.injected_fault().await;
        let mut kept = self.load(establishment_id).await?;
        let mut out = Vec::new();
        let mut zone = zone_of(&kept.timezone);
        for record in records {
            match &record.event {
                Event::EstablishmentCreated { settings, .. }
                | Event::SettingsUpdated { settings } => {
                    kept.timezone.clone_from(&settings.timezone);
                    zone = zone_of(&kept.timezone);
                }
                Event::PluginInstalled { name, settings } if name == P::NAME => {
                    kept.installed = Some(settings.clone());
                }
                Event::PluginUninstalled { name } if name == P::NAME => kept.installed = None,
                _ => {}
            }
            let ctx = EventContext {
                establishment_id,
                zone: &zone,
                installed: kept.installed.as_ref(),
            };
            self.plugin
                .on_event(&ctx, &mut kept.plugin, record, &mut out);
        }
        let text = serde_json::to_string(&kept)
            .map_err(|e| NotifyError::Consumer(format!("{} state: {e}", P::NAME)))?;
        out.push(Statement::new(
            "INSERT INTO plugin_state (plugin, establishment_id, state) VALUES ($1, $2, $3) \
             ON CONFLICT (plugin, establishment_id) DO UPDATE SET state = excluded.state",
            vec![
                Bind::Text(P::NAME.to_owned()),
                Bind::Uuid(establishment_id),
                Bind::Text(text),
            ],
        ));
        Ok(out.into_iter().map(Effect::Exec).collect())
    }
}

impl<P: Plugin> EventConsumer for PluginConsumer<P> {
    fn name(&self) -> &'static str {
        P::CONSUMER
    }

    fn derive<'a>(
        &'a self,
        establishment_id: Uuid,
        records: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<Vec<Effect>, NotifyError>> {
        Box::pin(self.derive_batch(establishment_id, records))
    }
}

/// The zone named `name`, UTC if it is unknown (the engine accepts only known zones, so
/// this is only the state before `establishment.created`).
pub fn zone_of(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The plugin state the consumer of `plugin` keeps for an establishment (for a plugin's
/// queries, e.g. the analytics report's working hours); `None` before its first batch.
pub async fn kept_state<S: DeserializeOwned + Default>(
    db: &Db,
    plugin: &str,
    establishment_id: Uuid,
) -> Result<Option<(String, S)>, PluginError> {
    let row: Option<(String,)> = on_db!(db, |pool| {
        sqlx::query_as("SELECT state FROM plugin_state WHERE plugin = $1 AND establishment_id = $2")
            .bind(plugin)
            .bind(establishment_id)
            .fetch_optional(pool)
            .await?
    });
    let Some((text,)) = row else {
        return Ok(None);
    };
    let kept: Kept<S> =
        serde_json::from_str(&text).map_err(|e| PluginError::Store(e.to_string()))?;
    Ok(Some((kept.timezone, kept.plugin)))
}
