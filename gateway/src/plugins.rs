//! The gateway's side of the plugins: starting them on the SQL stores with the settings,
//! and tapping the journal so they hear of every durable append at once (off the
//! booking path: the tap only marks the establishment, after the append's answer is
//! known; a plugin's work never delays or fails the append).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_config::Settings;
use navaro_engine::store::{AppendBatch, Journal, JournalError, Recovered, Snapshot};
use navaro_plugins::{PluginError, PluginOptions, Plugins};
use navaro_protocol::{EstablishmentId, EventRecord};

/// Start the plugins on the database at `url`, reading `journal`.
pub async fn start(
    settings: &Settings,
    url: &str,
    journal: Arc<dyn Journal>,
) -> Result<Plugins, PluginError> {
    let p = &settings.plugins;
    if let Some(file) = &p.fault_file {
        tracing::warn!(file = %file.display(), "plugin fault injection on (dev mode)");
    }
    let options = PluginOptions {
        rescan_every: Duration::from_secs(p.rescan_seconds),
        derive_timeout: Duration::from_millis(p.derive_timeout_ms),
        fault_file: p.fault_file.clone(),
    };
    Plugins::start(url, journal, options).await
}

/// A journal that tells the plugins of each durable append.
pub struct Tapped {
    pub inner: Arc<dyn Journal>,
    pub plugins: Plugins,
}

impl Journal for Tapped {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let id = batch.establishment_id.0;
        let plugins = self.plugins.clone();
        self.inner
            .append(batch)
            .map(move |result| {
                if result.is_ok() {
                    plugins.touch(id);
                }
                result
            })
            .boxed()
    }

    fn load(
        &self,
        establishment_id: EstablishmentId,
    ) -> BoxFuture<'_, Result<Option<Recovered>, JournalError>> {
        self.inner.load(establishment_id)
    }

    fn save_snapshot(
        &self,
        establishment_id: EstablishmentId,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        self.inner.save_snapshot(establishment_id, snapshot)
    }

    fn read_after(
        &self,
        establishment_id: EstablishmentId,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<EventRecord>, JournalError>> {
        self.inner.read_after(establishment_id, since, limit)
    }

    fn lag(&self) -> Duration {
        self.inner.lag()
    }
}
