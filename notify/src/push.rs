//! Push through Expo's push service (the apps are Expo apps): devices, opt-outs, sending
//! and receipts.
//!
//! Expo's rules, as <https://docs.expo.dev/push-notifications/sending-notifications/>
//! states them: at most 100 messages per `POST /--/api/v2/push/send`; each answered with
//! a ticket (`ok` with an id, or `error` with `details.error`); receipts fetched later
//! (`POST /--/api/v2/push/getReceipts`, at most 1,000 ids) once Expo has handed the
//! message on; `DeviceNotRegistered` in a ticket or a receipt means the token is dead
//! and must not be sent to again; 429 and 5xx are retried with backoff. Requests are
//! paced to `requests_per_second`.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::NotifyError;
use crate::clock::Clock;
use crate::store::{Channel, Db, OutboxRow, on_db};

/// Expo's limit of messages per send request.
pub const MESSAGES_PER_REQUEST: usize = 100;
/// Expo's limit of ids per receipts request.
pub const RECEIPTS_PER_REQUEST: usize = 1000;
/// Tries of one request within a round (then its deliveries wait for the next round).
const TRIES: u32 = 3;
/// Push rows claimed per round.
const ROWS_PER_ROUND: i64 = 500;
/// Expo keeps receipts for a day: tickets older than this are dropped unread.
const TICKET_MAX_AGE_US: i64 = 24 * 3600 * 1_000_000;
/// Longest token accepted (Expo's are about 41 characters).
pub const MAX_TOKEN_BYTES: usize = 256;

/// How push is sent.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// Expo's base URL (`https://exp.host`); tests point it at a fake.
    pub base_url: String,
    /// Expo's access token, when the project requires one ("enhanced security").
    pub access_token: Option<String>,
    /// Requests per second to Expo at most (Expo allows 600 messages a second per
    /// project: six full requests).
    pub requests_per_second: u32,
    /// How long after sending the receipts are asked for (Expo: about 15 minutes).
    pub receipt_delay: Duration,
    /// One request's limit.
    pub timeout: Duration,
    /// First backoff after a 429 or 5xx; doubled on each further try.
    pub backoff: Duration,
    /// When a delivery Expo did not take goes again (after those in-request tries).
    pub retry_schedule: crate::webhook::RetrySchedule,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            base_url: "https://exp.host".to_owned(),
            access_token: None,
            requests_per_second: 6,
            receipt_delay: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            retry_schedule: crate::webhook::RetrySchedule::default(),
        }
    }
}

/// Whether a string looks like an Expo push token.
pub fn valid_token(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES
        && (token.starts_with("ExponentPushToken[") || token.starts_with("ExpoPushToken["))
        && token.ends_with(']')
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub token: String,
    pub platform: String,
    pub created_at_us: i64,
    pub active: bool,
}

impl Db {
    /// Register a token for a user (moving it from another user if it was theirs: a
    /// token is one device, signed in as one user).
    pub async fn register_device(
        &self,
        user: Uuid,
        token: &str,
        platform: &str,
        now_us: i64,
    ) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "INSERT INTO push_devices (token, user_id, platform, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO UPDATE SET \
                 user_id = excluded.user_id, platform = excluded.platform, \
                 created_at = excluded.created_at, deactivated_at = NULL",
            )
            .bind(token)
            .bind(user)
            .bind(platform)
            .bind(now_us)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn devices_of(&self, user: Uuid) -> Result<Vec<Device>, NotifyError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = on_db!(self, |pool, _b| {
            sqlx::query_as(
                "SELECT token, platform, created_at, deactivated_at FROM push_devices \
                 WHERE user_id = $1 ORDER BY created_at, token",
            )
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(token, platform, created_at_us, off)| Device {
                token,
                platform,
                created_at_us,
                active: off.is_none(),
            })
            .collect())
    }

    /// Remove a user's token; `false` if that user has no such token.
    pub async fn remove_device(&self, user: Uuid, token: &str) -> Result<bool, NotifyError> {
        let n = on_db!(self, |pool, _b| {
            sqlx::query("DELETE FROM push_devices WHERE token = $1 AND user_id = $2")
                .bind(token)
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn deactivate_device(&self, token: &str, now_us: i64) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE push_devices SET deactivated_at = $2 WHERE token = $1 AND deactivated_at IS NULL",
            )
            .bind(token)
            .bind(now_us)
            .execute(pool)
            .await?;
        });
        metrics::counter!("navaro_notify_push_tokens_deactivated_total").increment(1);
        Ok(())
    }

    pub async fn opt_outs(&self, user: Uuid) -> Result<Vec<String>, NotifyError> {
        let rows: Vec<(String,)> = on_db!(self, |pool, _b| {
            sqlx::query_as("SELECT kind FROM push_opt_outs WHERE user_id = $1 ORDER BY kind")
                .bind(user)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }

    /// Replace a user's opt-outs.
    pub async fn set_opt_outs(&self, user: Uuid, kinds: &[String]) -> Result<(), NotifyError> {
        on_db!(self, |pool, begin| {
            let mut tx = pool.begin_with(begin).await?;
            sqlx::query("DELETE FROM push_opt_outs WHERE user_id = $1")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            for kind in kinds {
                sqlx::query("INSERT INTO push_opt_outs (user_id, kind) VALUES ($1, $2)")
                    .bind(user)
                    .bind(kind)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn save_tickets(
        &self,
        tickets: &[(String, String)],
        now_us: i64,
    ) -> Result<(), NotifyError> {
        for (id, token) in tickets {
            on_db!(self, |pool, _b| {
                sqlx::query(
                    "INSERT INTO push_tickets (ticket_id, token, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (ticket_id) DO NOTHING",
                )
                .bind(id)
                .bind(token)
                .bind(now_us)
                .execute(pool)
                .await?;
            });
        }
        Ok(())
    }
}

/// One message and where it came from.
struct Message {
    row: usize,
    token: String,
    body: Value,
}

#[derive(Deserialize)]
struct Ticket {
    status: String,
    id: Option<String>,
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    error: Option<String>,
}

#[derive(Deserialize)]
struct SendAnswer {
    data: Vec<Ticket>,
}

#[derive(Deserialize)]
struct ReceiptsAnswer {
    data: std::collections::HashMap<String, Ticket>,
}

/// The push deliverer.
pub struct PushSender {
    db: Db,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    pub options: PushOptions,
    /// When the next request may go (pacing).
    next_request: Mutex<tokio::time::Instant>,
}

impl PushSender {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        options: PushOptions,
    ) -> Result<PushSender, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .build()
            .map_err(|e| NotifyError::Setup(e.to_string()))?;
        Ok(PushSender {
            db,
            clock,
            client,
            options,
            next_request: Mutex::new(tokio::time::Instant::now()),
        })
    }

    /// Send every due push (up to a round's worth); how many deliveries were handled.
    pub async fn run_once(&self) -> Result<usize, NotifyError> {
        let now = self.clock.now_us();
        let lease = (self.options.timeout * (TRIES + 1) * 8).as_micros() as i64;
        let rows = self
            .db
            .claim(Channel::Push, now, now + lease, ROWS_PER_ROUND)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let messages = self.expand(&rows).await?;
        let mut failed_rows = vec![false; rows.len()];
        let mut has_message = vec![false; rows.len()];
        for m in &messages {
            has_message[m.row] = true;
        }
        for chunk in messages.chunks(MESSAGES_PER_REQUEST) {
            if !self.send_chunk(chunk).await? {
                for m in chunk {
                    failed_rows[m.row] = true;
                }
            }
        }
        let now = self.clock.now_us();
        for (i, row) in rows.iter().enumerate() {
            if !has_message[i] {
                continue; // settled by `expand`
            }
            if failed_rows[i] {
                self.retry_later(row, now).await?;
            } else {
                self.db.mark_delivered(row.id, now, None).await?;
                metrics::counter!("navaro_notify_delivered_total", "channel" => "push")
                    .increment(1);
            }
        }
        Ok(n)
    }

    async fn retry_later(&self, row: &OutboxRow, now: i64) -> Result<(), NotifyError> {
        let made = (row.attempts.max(0) as usize) + 1;
        let retry_at = self
            .options
            .retry_schedule
            .next_attempt(made, None)
            .map(|d| now + d.as_micros() as i64);
        self.db
            .mark_attempt_failed(
                row.id,
                retry_at,
                None,
                "Expo did not accept the request",
                false,
            )
            .await?;
        let name = if retry_at.is_some() {
            "navaro_notify_retried_total"
        } else {
            "navaro_notify_failed_total"
        };
        metrics::counter!(name, "channel" => "push").increment(1);
        Ok(())
    }

    /// The messages of the rows: one per active token of the user, unless the user
    /// turned that kind off. Rows with nothing to send are settled here.
    async fn expand(&self, rows: &[OutboxRow]) -> Result<Vec<Message>, NotifyError> {
        let mut messages = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let opt_outs = self.db.opt_outs(row.target).await?;
            if opt_outs.contains(&row.event_type) {
                self.db
                    .mark_attempt_failed(row.id, None, None, "the user turned this kind off", true)
                    .await?;
                continue;
            }
            let tokens: Vec<String> = self
                .db
                .devices_of(row.target)
                .await?
                .into_iter()
                .filter(|d| d.active)
                .map(|d| d.token)
                .collect();
            if tokens.is_empty() {
                self.db
                    .mark_attempt_failed(row.id, None, None, "no active device", true)
                    .await?;
                continue;
            }
            let payload: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
            for token in tokens {
                let body = json!({
                    "to": token,
                    "title": payload.get("title"),
                    "body": payload.get("body"),
                    "data": payload.get("data"),
                    "sound": "default",
                });
                messages.push(Message {
                    row: i,
                    token,
                    body,
                });
            }
        }
        Ok(messages)
    }

    async fn pace(&self) {
        let every = Duration::from_secs(1) / self.options.requests_per_second.max(1);
        let mut next = self.next_request.lock().await;
        let now = tokio::time::Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + every;
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.options.base_url.trim_end_matches('/'), path);
        let mut request = self.client.post(url).header("accept", "application/json");
        if let Some(token) = &self.options.access_token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// POST with pacing and retries on 429, 5xx and transport errors; the answer's
    /// body, or `None` when every try failed.
    async fn post(&self, path: &str, body: &Value) -> Option<bytes_or_text::Body> {
        let mut wait = self.options.backoff;
        for attempt in 1..=TRIES {
            self.pace().await;
            metrics::gauge!("navaro_notify_in_flight", "channel" => "push").increment(1.0);
            let sent = self.request(path).json(body).send().await;
            metrics::gauge!("navaro_notify_in_flight", "channel" => "push").decrement(1.0);
            match sent {
                Ok(r) if r.status().is_success() => {
                    return r.text().await.ok().map(bytes_or_text::Body);
                }
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    tracing::warn!(status = r.status().as_u16(), attempt, "expo asked to retry");
                }
                Ok(r) => {
                    tracing::warn!(status = r.status().as_u16(), "expo refused the request");
                    return None;
                }
                Err(e) => tracing::warn!(error = %e, attempt, "expo unreachable"),
            }
            if attempt < TRIES {
                metrics::counter!("navaro_notify_push_request_retries_total").increment(1);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        None
    }

    /// Send one request's messages; `false` if Expo did not take them.
    async fn send_chunk(&self, chunk: &[Message]) -> Result<bool, NotifyError> {
        let body = Value::Array(chunk.iter().map(|m| m.body.clone()).collect());
        let Some(answer) = self.post("/--/api/v2/push/send", &body).await else {
            return Ok(false);
        };
        let Ok(answer) = serde_json::from_str::<SendAnswer>(&answer.0) else {
            tracing::warn!("expo's answer does not parse");
            return Ok(false);
        };
        let now = self.clock.now_us();
        let mut tickets = Vec::new();
        for (message, ticket) in chunk.iter().zip(answer.data) {
            if ticket.status == "ok" {
                if let Some(id) = ticket.id {
                    tickets.push((id, message.token.clone()));
                }
            } else if ticket.details.and_then(|d| d.error).as_deref() == Some("DeviceNotRegistered")
            {
                self.db.deactivate_device(&message.token, now).await?;
            }
        }
        self.db.save_tickets(&tickets, now).await?;
        Ok(true)
    }

    /// Ask for the receipts of tickets at least `receipt_delay` old, in batches;
    /// deactivate the tokens Expo reports `DeviceNotRegistered`. How many were settled.
    pub async fn fetch_receipts(&self) -> Result<usize, NotifyError> {
        let now = self.clock.now_us();
        let ready = now - self.options.receipt_delay.as_micros() as i64;
        let rows: Vec<(String, String)> = on_db!(&self.db, |pool, _b| {
            sqlx::query_as(
                "SELECT ticket_id, token FROM push_tickets WHERE created_at <= $1 \
                 ORDER BY created_at LIMIT $2",
            )
            .bind(ready)
            .bind(RECEIPTS_PER_REQUEST as i64 * 10)
            .fetch_all(pool)
            .await?
        });
        let mut settled = 0;
        for chunk in rows.chunks(RECEIPTS_PER_REQUEST) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            let Some(answer) = self
                .post("/--/api/v2/push/getReceipts", &json!({ "ids": ids }))
                .await
            else {
                break;
            };
            let Ok(answer) = serde_json::from_str::<ReceiptsAnswer>(&answer.0) else {
                break;
            };
            for (id, token) in chunk {
                let Some(receipt) = answer.data.get(id) else {
                    continue; // not ready yet
                };
                if receipt.status != "ok"
                    && receipt.details.as_ref().and_then(|d| d.error.as_deref())
                        == Some("DeviceNotRegistered")
                {
                    self.db.deactivate_device(token, now).await?;
                }
                self.delete_ticket(id).await?;
                settled += 1;
            }
        }
        on_db!(&self.db, |pool, _b| {
            sqlx::query("DELETE FROM push_tickets WHERE created_at < $1")
                .bind(now - TICKET_MAX_AGE_US)
                .execute(pool)
                .await?;
        });
        Ok(settled)
    }

    async fn delete_ticket(&self, id: &str) -> Result<(), NotifyError> {
        on_db!(&self.db, |pool, _b| {
            sqlx::query("DELETE FROM push_tickets WHERE ticket_id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

mod bytes_or_text {
    /// An answer's body text.
    pub struct Body(pub String);
}
