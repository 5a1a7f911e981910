//! Navaro's one way out: a durable outbox derived from the journal, and two kinds of
//! delivery on it, Expo push and signed outbound webhooks.
//!
//! How the modules fit: [`consumer`] is the seam (an [`EventConsumer`] and the
//! [`ConsumerRunner`] that reads each establishment's journal after a durable checkpoint
//! and applies the consumer's effects with the checkpoint's move, in one transaction).
//! [`derive`] is this crate's consumer: what is sent when, reminders included. The
//! effects land in the outbox (`notify_outbox`, [`store`]), from which [`webhook`] and
//! [`push`] claim due rows under a lease (`FOR UPDATE SKIP LOCKED` on Postgres, so one
//! node delivers each) and record each attempt's outcome. [`signing`] is Standard
//! Webhooks, [`ssrf`] the address guard, [`endpoints`] the webhook endpoints, [`clock`]
//! time as an input. [`Notify::start`] wires it all and runs it off the booking path:
//! the gateway only calls [`Notify::touch`] when an append is durable.

pub mod clock;
pub mod consumer;
pub mod derive;
pub mod endpoints;
pub mod push;
pub mod signing;
pub mod ssrf;
pub mod store;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use navaro_engine::store::Journal;
use tokio::sync::watch;
use uuid::Uuid;

pub use clock::{Clock, ManualClock, SystemClock};
pub use consumer::{ConsumerRunner, Effect, EventConsumer};
pub use push::{PushOptions, PushSender};
pub use store::Db;
pub use webhook::{RetrySchedule, WebhookOptions, WebhookSender};

/// Why the notify service failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify store: {0}")]
    Store(String),
    #[error("notify setup: {0}")]
    Setup(String),
}

impl From<sqlx::Error> for NotifyError {
    fn from(e: sqlx::Error) -> Self {
        NotifyError::Store(e.to_string())
    }
}

/// What the service runs with.
#[derive(Clone, Debug)]
pub struct NotifyOptions {
    /// How often every establishment's journal is compared with the checkpoints (wakes
    /// cover the live path; this catches what a crash made them miss).
    pub rescan_every: Duration,
    /// How often the deliverers look for due rows when nothing woke them (reminders
    /// and retries come due by time alone).
    pub poll_every: Duration,
    /// Reminder offsets in minutes before a booking's start, for establishments that set
    /// none.
    pub reminders_minutes: Vec<u32>,
    pub webhooks: WebhookOptions,
    /// `None`: push is off (no push deliveries are derived).
    pub push: Option<PushOptions>,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            rescan_every: Duration::from_secs(60),
            poll_every: Duration::from_secs(1),
            reminders_minutes: vec![24 * 60, 2 * 60],
            webhooks: WebhookOptions::default(),
            push: None,
        }
    }
}

/// The running service: a handle for the gateway.
#[derive(Clone)]
pub struct Notify {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub options: Arc<NotifyOptions>,
    runner: Arc<ConsumerRunner>,
    consumer: Arc<derive::NotifyConsumer>,
    stop: Arc<watch::Sender<bool>>,
}

impl Notify {
    /// Connect to the (migrated) database at `url` and start the consumer and the
    /// deliverers on their own tasks.
    pub async fn start(
        url: &str,
        journal: Arc<dyn Journal>,
        clock: Arc<dyn Clock>,
        options: NotifyOptions,
    ) -> Result<Notify, NotifyError> {
        let db = Db::connect(url).await?;
        let applied = Arc::new(tokio::sync::Notify::new());
        let consumer = Arc::new(derive::NotifyConsumer::new(
            db.clone(),
            clock.clone(),
            options.reminders_minutes.clone(),
            options.push.is_some(),
        ));
        let runner = Arc::new(ConsumerRunner::new(
            db.clone(),
            journal,
            consumer.clone(),
            options.rescan_every,
            applied.clone(),
        ));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(runner.clone().run(stop_rx.clone()));
        let webhooks = Arc::new(WebhookSender::new(
            db.clone(),
            clock.clone(),
            options.webhooks.clone(),
        )?);
        tokio::spawn(webhook_loop(
            webhooks,
            applied.clone(),
            options.poll_every,
            stop_rx.clone(),
        ));
        if let Some(push) = &options.push {
            let sender = Arc::new(PushSender::new(db.clone(), clock.clone(), push.clone())?);
            tokio::spawn(push_loop(
                sender,
                applied.clone(),
                options.poll_every,
                stop_rx.clone(),
            ));
        }
        tokio::spawn(gauge_loop(db.clone(), clock.clone(), stop_rx));
        Ok(Notify {
            db,
            clock,
            options: Arc::new(options),
            runner,
            consumer,
            stop: Arc::new(stop),
        })
    }

    /// An establishment's append is durable: look at its journal soon.
    pub fn touch(&self, establishment_id: Uuid) {
        self.runner.touch(establishment_id);
    }

    /// An establishment's endpoints or notification settings changed: derive its next
    /// events with the new ones.
    pub fn invalidate(&self, establishment_id: Uuid) {
        self.consumer.invalidate(establishment_id);
    }

    pub fn now_us(&self) -> i64 {
        self.clock.now_us()
    }

    /// Stop the tasks (leases held lapse; their rows go again after the lease).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Deliver webhooks as they come due; at most `concurrency` in flight, each on its own
/// task so a slow receiver holds only its own slot.
async fn webhook_loop(
    sender: Arc<WebhookSender>,
    wake: Arc<tokio::sync::Notify>,
    poll_every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        sender.options.concurrency.max(1),
    ));
    loop {
        let free = slots.available_permits();
        if free > 0 {
            match sender.claim(free).await {
                Ok(rows) => {
                    for row in rows {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let sender = sender.clone();
                        tokio::spawn(async move {
                            sender.deliver(row).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook claim failed"),
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll_every) => {}
            () = crate::stopped(&mut stop) => return,
        }
    }
}

async fn push_loop(
    sender: Arc<PushSender>,
    wake: Arc<tokio::sync::Notify>,
    poll_every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut receipts = tokio::time::interval(Duration::from_secs(60));
    loop {
        match sender.run_once().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "push round failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(poll_every) => {}
            _ = receipts.tick() => {
                if let Err(e) = sender.fetch_receipts().await {
                    tracing::warn!(error = %e, "push receipts failed");
                }
            }
            () = crate::stopped(&mut stop) => return,
        }
    }
}

/// Refresh the outbox gauges: pending, in flight (leased), oldest due age.
async fn gauge_loop(db: Db, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = crate::stopped(&mut stop) => return,
        }
        let now = clock.now_us();
        if let Ok((pending, leased, oldest)) = db.gauges(now).await {
            metrics::gauge!("navaro_notify_pending").set(pending as f64);
            metrics::gauge!("navaro_notify_leased").set(leased as f64);
            let age_s = oldest.map_or(0.0, |due| (now - due).max(0) as f64 / 1e6);
            metrics::gauge!("navaro_notify_oldest_pending_age_seconds").set(age_s);
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
