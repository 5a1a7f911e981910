//! Starting the plugins: one consumer runner per plugin, each on its own task, all off
//! the booking path (the gateway only calls [`Plugins::touch`] once an append is
//! durable).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use navaro_engine::store::Journal;
use navaro_notify::{ConsumerRunner, Db, EventConsumer};
use tokio::sync::watch;
use uuid::Uuid;

use crate::PluginError;
use crate::boundary::PluginConsumer;

/// What the plugins run with.
#[derive(Clone, Debug)]
pub struct PluginOptions {
    /// How often every journal is compared with the plugins' checkpoints (catches what a
    /// crash made a wake miss).
    pub rescan_every: Duration,
    /// How long one plugin may take on one batch before it is given up and retried.
    pub derive_timeout: Duration,
    /// Tests only: see [`PluginConsumer`].
    pub fault_file: Option<PathBuf>,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            rescan_every: Duration::from_secs(60),
            derive_timeout: navaro_notify::consumer::DEFAULT_DERIVE_TIMEOUT,
            fault_file: None,
        }
    }
}

/// The running plugins: a handle for the gateway.
#[derive(Clone)]
pub struct Plugins {
    pub db: Db,
    runners: Vec<Arc<ConsumerRunner>>,
    stop: Arc<watch::Sender<bool>>,
}

impl Plugins {
    /// Connect to the (migrated) database at `url` and start each plugin's consumer.
    pub async fn start(
        url: &str,
        journal: Arc<dyn Journal>,
        options: PluginOptions,
    ) -> Result<Plugins, PluginError> {
        let db = Db::connect(url)
            .await
            .map_err(|e| PluginError::Store(e.to_string()))?;
        let fault = options.fault_file.clone();
        let consumers: Vec<Arc<dyn EventConsumer>> = vec![
            PluginConsumer::new(crate::analytics::Analytics, db.clone(), fault.clone()),
            PluginConsumer::new(crate::marketing::Marketing, db.clone(), fault.clone()),
            PluginConsumer::new(crate::ads::Ads, db.clone(), fault),
        ];
        let (stop, stop_rx) = watch::channel(false);
        let mut runners = Vec::new();
        for consumer in consumers {
            let runner = Arc::new(
                ConsumerRunner::new(
                    db.clone(),
                    journal.clone(),
                    consumer,
                    options.rescan_every,
                    Arc::new(tokio::sync::Notify::new()),
                )
                .with_derive_timeout(options.derive_timeout),
            );
            tokio::spawn(runner.clone().run(stop_rx.clone()));
            runners.push(runner);
        }
        Ok(Plugins {
            db,
            runners,
            stop: Arc::new(stop),
        })
    }

    /// An establishment's append is durable: every plugin looks at its journal soon.
    pub fn touch(&self, establishment_id: Uuid) {
        for runner in &self.runners {
            runner.touch(establishment_id);
        }
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}
