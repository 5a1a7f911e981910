//! The gateway's side of notifications: starting the notify service on the SQL stores
//! with the settings, and tapping the journal so the service hears of every durable
//! append at once (off the booking path: the tap only marks the establishment, after
//! the append's answer is known).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use navaro_config::Settings;
use navaro_engine::store::{AppendBatch, Journal, JournalError, Recovered, Snapshot};
use navaro_notify::{
    Notify, NotifyOptions, PushOptions, RetrySchedule, SystemClock, WebhookOptions,
};
use navaro_protocol::{EstablishmentId, EventRecord};

/// The notify service's options from the settings.
pub fn options(settings: &Settings) -> NotifyOptions {
    let n = &settings.notify;
    let w = &settings.webhooks;
    let p = &settings.push;
    let retry_schedule = RetrySchedule::new(
        n.retry_schedule_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect::<Vec<_>>(),
    );
    NotifyOptions {
        rescan_every: Duration::from_secs(n.rescan_seconds),
        poll_every: Duration::from_millis(n.poll_ms),
        reminders_minutes: n.reminders_minutes.clone(),
        webhooks: WebhookOptions {
            timeout: Duration::from_millis(w.timeout_ms),
            disable_after: Duration::from_secs(w.disable_after_hours * 3600),
            allow_private_addresses: w.allow_private_addresses,
            concurrency: w.concurrency,
            rotation_overlap: Duration::from_secs(w.rotation_overlap_hours * 3600),
            tell_owners: p.enabled,
            retry_schedule: retry_schedule.clone(),
        },
        push: p.enabled.then(|| PushOptions {
            base_url: p.base_url.clone(),
            access_token: p.access_token.as_ref().map(|t| t.expose().to_owned()),
            requests_per_second: p.requests_per_second,
            receipt_delay: Duration::from_secs(p.receipt_delay_seconds),
            timeout: Duration::from_millis(p.timeout_ms),
            retry_schedule,
            ..PushOptions::default()
        }),
    }
}

/// Start the service on the database at `url`, reading `journal`.
pub async fn start(
    settings: &Settings,
    url: &str,
    journal: Arc<dyn Journal>,
) -> Result<Notify, navaro_notify::NotifyError> {
    let clock = SystemClock {
        offset_us: settings.notify.dev_clock_offset_seconds * 1_000_000,
    };
    if clock.offset_us != 0 {
        tracing::warn!(
            offset_seconds = settings.notify.dev_clock_offset_seconds,
            "notify clock shifted (dev mode)"
        );
    }
    Notify::start(url, journal, Arc::new(clock), options(settings)).await
}

/// A journal that tells the notify service of each durable append.
pub struct Tapped {
    pub inner: Arc<dyn Journal>,
    pub notify: Notify,
}

impl Journal for Tapped {
    fn append(&self, batch: AppendBatch) -> BoxFuture<'static, Result<(), JournalError>> {
        let id = batch.establishment_id.0;
        let notify = self.notify.clone();
        self.inner
            .append(batch)
            .map(move |result| {
                if result.is_ok() {
                    notify.touch(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_retry_schedule_is_the_notify_crates() {
        let options = options(&Settings::default());
        assert_eq!(options.webhooks.retry_schedule, RetrySchedule::default());
        assert_eq!(
            options.push.map(|p| p.retry_schedule),
            Some(RetrySchedule::default())
        );
    }

    #[test]
    fn a_configured_retry_schedule_reaches_both_channels() {
        let mut settings = Settings::default();
        settings.notify.retry_schedule_ms = vec![500, 1500];
        let options = options(&settings);
        let expected = RetrySchedule::new(vec![
            Duration::from_millis(500),
            Duration::from_millis(1500),
        ]);
        assert_eq!(options.webhooks.retry_schedule, expected);
        assert_eq!(options.push.map(|p| p.retry_schedule), Some(expected));
    }
}
