//! Delivering webhooks: claim due rows, sign them (Standard Webhooks), POST them, and
//! record the outcome: 2xx delivered; 410 disables the endpoint; anything else (or no
//! answer within the timeout) is retried on the [`RetrySchedule`], later if the
//! receiver's `Retry-After` asks, and given up after its last step. An endpoint that has failed
//! without a success for `disable_after` is disabled, with the reason shown to members.

use std::sync::Arc;
use std::time::Duration;

use crate::NotifyError;
use crate::clock::Clock;
use crate::signing::signature_header;
use crate::ssrf;
use crate::store::{Channel, Db, OutboxRow};

/// The delays before each retry of a failed delivery: 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h (the Standard Webhooks reference schedule: eight attempts with the first,
/// about 28 hours in all). The default of `notify.retry_schedule_ms`.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// When a failed delivery (webhook or push) goes again: the delay before each retry, in
/// order; once they are spent the delivery has failed. Configurable so that tests (and
/// operators) need not wait minutes for the third attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Arc<[Duration]>);

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule(DEFAULT_RETRY_SCHEDULE.into())
    }
}

impl RetrySchedule {
    /// The delays before the first retry, the second, and so on.
    pub fn new(delays: impl Into<Arc<[Duration]>>) -> RetrySchedule {
        RetrySchedule(delays.into())
    }

    /// The delay before the next attempt after `made` failed ones, or `None` when the
    /// schedule is spent. A `Retry-After` longer than the schedule's step wins.
    pub fn next_attempt(&self, made: usize, retry_after: Option<Duration>) -> Option<Duration> {
        let step = match made.checked_sub(1) {
            // None made yet: the first attempt goes at once.
            None => Duration::ZERO,
            Some(retry) => *self.0.get(retry)?,
        };
        Some(retry_after.map_or(step, |r| r.max(step)))
    }
}

/// The longest `Retry-After` honoured: a receiver cannot park a delivery for a week.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of an error answer's body is kept with the delivery (for members to read).
const MAX_ERROR_BYTES: usize = 256;

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// One attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// Failing with no success for this long disables an endpoint.
    pub disable_after: Duration,
    /// Allow loopback, private and link-local receivers (development and tests only).
    pub allow_private_addresses: bool,
    /// Deliveries in flight at once: a slow receiver holds one of them, not the rest.
    pub concurrency: usize,
    /// How long a rotated secret keeps signing beside the new one.
    pub rotation_overlap: Duration,
    /// Tell the establishment's owners by push when an endpoint is disabled (set when
    /// push is on).
    pub tell_owners: bool,
    /// When failed deliveries go again.
    pub retry_schedule: RetrySchedule,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            allow_private_addresses: false,
            concurrency: 32,
            rotation_overlap: Duration::from_secs(24 * 3600),
            tell_owners: false,
            retry_schedule: RetrySchedule::default(),
        }
    }
}

/// The webhook deliverer.
pub struct WebhookSender {
    db: Db,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    pub options: WebhookOptions,
}

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered(u16),
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

impl WebhookSender {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        options: WebhookOptions,
    ) -> Result<WebhookSender, NotifyError> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            // A redirect could point anywhere, past the address check: not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Navaro-Webhooks/1");
        if let Some(resolver) = ssrf::resolver(options.allow_private_addresses) {
            builder = builder.dns_resolver(resolver);
        }
        let client = builder
            .build()
            .map_err(|e| NotifyError::Setup(e.to_string()))?;
        Ok(WebhookSender {
            db,
            clock,
            client,
            options,
        })
    }

    /// How long a claim is held: twice the attempt's own timeout (which bounds the whole
    /// request) and a margin for recording the outcome, so a slow attempt finishes
    /// before anyone else may take the row; a node killed mid-attempt delays its rows by
    /// no more than this.
    fn lease(&self) -> Duration {
        self.options.timeout * 2 + Duration::from_secs(5)
    }

    /// Claim up to `limit` due deliveries.
    pub async fn claim(&self, limit: usize) -> Result<Vec<OutboxRow>, NotifyError> {
        let now = self.clock.now_us();
        let until = now + self.lease().as_micros() as i64;
        self.db
            .claim(Channel::Webhook, now, until, limit as i64)
            .await
    }

    /// Claim every due delivery (up to `concurrency`) and deliver them; how many.
    pub async fn run_once(&self) -> Result<usize, NotifyError> {
        let rows = self.claim(self.options.concurrency).await?;
        let n = rows.len();
        futures::future::join_all(rows.into_iter().map(|row| self.deliver(row))).await;
        Ok(n)
    }

    /// One attempt of one delivery, its outcome recorded.
    pub async fn deliver(&self, row: OutboxRow) {
        if let Err(e) = self.deliver_now(&row).await {
            tracing::warn!(delivery_id = %row.id, error = %e, "webhook outcome not recorded");
        }
    }

    async fn deliver_now(&self, row: &OutboxRow) -> Result<(), NotifyError> {
        let Some(endpoint) = self.db.endpoint(row.target).await? else {
            return self
                .db
                .mark_attempt_failed(row.id, None, None, "endpoint removed", true)
                .await;
        };
        if let Some(reason) = &endpoint.disabled_reason {
            let why = format!("endpoint disabled: {reason}");
            return self
                .db
                .mark_attempt_failed(row.id, None, None, &why, true)
                .await;
        }
        metrics::gauge!("navaro_notify_in_flight", "channel" => "webhook").increment(1.0);
        let outcome = self.attempt(&endpoint, row).await;
        metrics::gauge!("navaro_notify_in_flight", "channel" => "webhook").decrement(1.0);
        let now = self.clock.now_us();
        match outcome {
            Outcome::Delivered(status) => {
                self.db
                    .mark_delivered(row.id, now, Some(i32::from(status)))
                    .await?;
                self.db.endpoint_outcome(endpoint.id, true, now).await?;
                metrics::counter!("navaro_notify_delivered_total", "channel" => "webhook")
                    .increment(1);
            }
            Outcome::Gone => {
                self.db
                    .disable_endpoint(endpoint.id, "the receiver answered 410 Gone")
                    .await?;
                self.db
                    .mark_attempt_failed(
                        row.id,
                        None,
                        Some(410),
                        "410 Gone: endpoint disabled",
                        false,
                    )
                    .await?;
                tracing::warn!(endpoint_id = %endpoint.id, "webhook endpoint disabled: 410");
                self.tell_owners(&endpoint, "the receiver answered 410 Gone", now)
                    .await?;
                metrics::counter!("navaro_notify_failed_total", "channel" => "webhook")
                    .increment(1);
                metrics::counter!("navaro_notify_endpoints_disabled_total").increment(1);
            }
            Outcome::Failed {
                status,
                error,
                retry_after,
            } => {
                self.failed(row, &endpoint, status, &error, retry_after, now)
                    .await?;
            }
        }
        Ok(())
    }

    async fn failed(
        &self,
        row: &OutboxRow,
        endpoint: &crate::endpoints::Endpoint,
        status: Option<u16>,
        error: &str,
        retry_after: Option<Duration>,
        now: i64,
    ) -> Result<(), NotifyError> {
        let made = (row.attempts.max(0) as usize) + 1;
        let retry_at = self
            .options
            .retry_schedule
            .next_attempt(made, retry_after)
            .map(|d| now + d.as_micros() as i64);
        let status = status.map(i32::from);
        self.db
            .mark_attempt_failed(row.id, retry_at, status, error, false)
            .await?;
        if retry_at.is_some() {
            metrics::counter!("navaro_notify_retried_total", "channel" => "webhook").increment(1);
        } else {
            metrics::counter!("navaro_notify_failed_total", "channel" => "webhook").increment(1);
        }
        let since = self.db.endpoint_outcome(endpoint.id, false, now).await?;
        let limit = self.options.disable_after.as_micros() as i64;
        if since.is_some_and(|s| now - s >= limit) {
            let reason = format!(
                "failing without a success for {} hours",
                self.options.disable_after.as_secs() / 3600
            );
            self.db.disable_endpoint(endpoint.id, &reason).await?;
            self.tell_owners(endpoint, &reason, now).await?;
            tracing::warn!(endpoint_id = %endpoint.id, establishment_id = %endpoint.establishment_id, %reason, "webhook endpoint disabled");
            metrics::counter!("navaro_notify_endpoints_disabled_total").increment(1);
        }
        Ok(())
    }

    /// Queue a push to the establishment's owners saying the endpoint was disabled (once
    /// per endpoint and disablement: the id is derived from both).
    async fn tell_owners(
        &self,
        endpoint: &crate::endpoints::Endpoint,
        reason: &str,
        now: i64,
    ) -> Result<(), NotifyError> {
        if !self.options.tell_owners {
            return Ok(());
        }
        let since = endpoint.failing_since_us.unwrap_or(now);
        for owner in self.db.owners_of(endpoint.establishment_id).await? {
            let id = crate::consumer::stable_id(&[
                b"webhook_disabled",
                endpoint.id.as_bytes(),
                owner.as_bytes(),
                &since.to_be_bytes(),
            ]);
            let message = serde_json::json!({
                "title": "Webhook endpoint disabled",
                "body": format!("{} was disabled: {reason}.", endpoint.url),
                "data": {
                    "type": "webhook_disabled",
                    "establishment_id": endpoint.establishment_id,
                    "webhook_id": endpoint.id,
                },
            });
            self.db
                .enqueue(&crate::consumer::NewDelivery {
                    id,
                    establishment_id: endpoint.establishment_id,
                    channel: Channel::Push,
                    target: owner,
                    event_type: "webhook_disabled".to_owned(),
                    payload: message.to_string(),
                    booking_id: None,
                    due_at_us: now,
                })
                .await?;
        }
        Ok(())
    }

    async fn attempt(&self, endpoint: &crate::endpoints::Endpoint, row: &OutboxRow) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            status: None,
            error,
            retry_after: None,
        };
        let url = match reqwest::Url::parse(&endpoint.url) {
            Ok(u) => u,
            Err(e) => return failed(format!("bad url: {e}")),
        };
        if !self.options.allow_private_addresses
            && let Some(ip) = ssrf::literal_ip(&url)
            && !ssrf::is_public(ip)
        {
            return failed(ssrf::Refused(ip).to_string());
        }
        let now = self.clock.now_us();
        let timestamp_s = now.div_euclid(1_000_000);
        let id = webhook_id(row);
        let body = row.payload.as_bytes();
        let signature = match signature_header(&endpoint.secrets_at(now), &id, timestamp_s, body) {
            Ok(s) => s,
            Err(e) => return failed(e.to_string()),
        };
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp_s.to_string())
            .header("webhook-signature", signature)
            .body(row.payload.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Outcome::Delivered(status);
        }
        if status == 410 {
            return Outcome::Gone;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let mut text = response.text().await.unwrap_or_default();
        let mut cut = MAX_ERROR_BYTES.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        Outcome::Failed {
            status: Some(status),
            error: format!("HTTP {status}: {text}"),
            retry_after,
        }
    }
}

/// The `webhook-id` of a delivery: the outbox row's stable id, the same on every
/// attempt and replay, which receivers deduplicate on.
pub fn webhook_id(row: &OutboxRow) -> String {
    format!("msg_{}", row.id.simple())
}

/// An error's chain, refused addresses made plain.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_grows_then_stops() {
        let schedule = RetrySchedule::default();
        let next_attempt = |made, retry_after| schedule.next_attempt(made, retry_after);
        assert_eq!(next_attempt(0, None), Some(Duration::ZERO));
        assert_eq!(next_attempt(1, None), Some(Duration::from_secs(5)));
        assert_eq!(next_attempt(2, None), Some(Duration::from_secs(300)));
        assert_eq!(next_attempt(7, None), Some(Duration::from_secs(36_000)));
        assert_eq!(next_attempt(8, None), None);
        assert_eq!(
            next_attempt(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_attempt(2, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn a_configured_schedule_replaces_the_default() {
        let schedule = RetrySchedule::new(vec![Duration::from_millis(200); 3]);
        assert_eq!(
            schedule.next_attempt(3, None),
            Some(Duration::from_millis(200))
        );
        assert_eq!(schedule.next_attempt(4, None), None);
        assert_eq!(RetrySchedule::new(Vec::new()).next_attempt(1, None), None);
    }
}
