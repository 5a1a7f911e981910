//! Webhook endpoints: registered by an establishment's managers, each with the event
//! types it wants and its signing secret.

use uuid::Uuid;

use crate::NotifyError;
use crate::signing::new_secret;
use crate::store::{Db, on_db};

/// The event types an endpoint may subscribe to: the journal's kinds that mean something
/// outside (not holds, nor the queue's periodic estimates).
pub const EVENT_TYPES: &[&str] = &[
    "booking.confirmed",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.completed",
    "booking.no_show",
    "queue.joined",
    "queue.called",
    "queue.started",
    "queue.finished",
    "queue.no_show",
    "queue.left",
    "staff.added",
    "service.added",
    "establishment.updated",
];

/// Endpoints per establishment at most: each event is one delivery per endpoint.
pub const MAX_ENDPOINTS_PER_ESTABLISHMENT: i64 = 20;
/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// An endpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_until_us: Option<i64>,
    pub disabled_reason: Option<String>,
    pub failing_since_us: Option<i64>,
    pub created_at_us: i64,
}

impl Endpoint {
    pub fn wants(&self, event_type: &str) -> bool {
        self.disabled_reason.is_none() && self.event_types.iter().any(|t| t == event_type)
    }

    /// The secrets that sign a delivery now: the current one, and the previous one while
    /// its overlap lasts.
    pub fn secrets_at(&self, now_us: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until_us)
            && now_us < until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// Why an endpoint's registration is refused (answered 422 naming the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("url: {0}")]
    Url(String),
    #[error("event_types: {0}")]
    EventTypes(String),
    #[error("too many endpoints: at most {0} per establishment")]
    TooMany(i64),
}

/// Check a registration: an http(s) URL with a host, and known event types.
pub fn validate(url: &str, event_types: &[String]) -> Result<(), EndpointError> {
    if url.len() > MAX_URL_BYTES {
        return Err(EndpointError::Url(format!(
            "longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| EndpointError::Url(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(EndpointError::Url("must be http or https".into()));
    }
    if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EndpointError::Url(
            "must have a host and no credentials".into(),
        ));
    }
    if event_types.is_empty() {
        return Err(EndpointError::EventTypes("name at least one".into()));
    }
    if let Some(bad) = event_types
        .iter()
        .find(|t| !EVENT_TYPES.contains(&t.as_str()))
    {
        return Err(EndpointError::EventTypes(format!(
            "unknown event type {bad:?}"
        )));
    }
    Ok(())
}

type Raw = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
);

fn endpoint(r: Raw) -> Endpoint {
    Endpoint {
        id: r.0,
        establishment_id: r.1,
        url: r.2,
        event_types: r
            .3
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        secret: r.4,
        previous_secret: r.5,
        previous_until_us: r.6,
        disabled_reason: r.7,
        failing_since_us: r.8,
        created_at_us: r.9,
    }
}

const COLUMNS: &str = "id, establishment_id, url, event_types, secret, previous_secret, \
                       previous_until, disabled_reason, failing_since, created_at";

impl Db {
    /// Register an endpoint with a new secret.
    pub async fn create_endpoint(
        &self,
        establishment_id: Uuid,
        url: &str,
        event_types: &[String],
        now_us: i64,
    ) -> Result<Result<Endpoint, EndpointError>, NotifyError> {
        if let Err(e) = validate(url, event_types) {
            return Ok(Err(e));
        }
        let (count,): (i64,) = on_db!(self, |pool, _b| {
            sqlx::query_as("SELECT count(*) FROM webhook_endpoints WHERE establishment_id = $1")
                .bind(establishment_id)
                .fetch_one(pool)
                .await?
        });
        if count >= MAX_ENDPOINTS_PER_ESTABLISHMENT {
            return Ok(Err(EndpointError::TooMany(MAX_ENDPOINTS_PER_ESTABLISHMENT)));
        }
        let e = Endpoint {
            id: Uuid::now_v7(),
            establishment_id,
            url: url.to_owned(),
            event_types: event_types.to_vec(),
            secret: new_secret(),
            previous_secret: None,
            previous_until_us: None,
            disabled_reason: None,
            failing_since_us: None,
            created_at_us: now_us,
        };
        on_db!(self, |pool, _b| {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, establishment_id, url, event_types, secret, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(e.id)
            .bind(e.establishment_id)
            .bind(&e.url)
            .bind(e.event_types.join(","))
            .bind(&e.secret)
            .bind(e.created_at_us)
            .execute(pool)
            .await?;
        });
        Ok(Ok(e))
    }

    pub async fn endpoints_of(&self, establishment_id: Uuid) -> Result<Vec<Endpoint>, NotifyError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE establishment_id = $1 ORDER BY id"
        ));
        let rows: Vec<Raw> = on_db!(self, |pool, _b| {
            sqlx::query_as(sql)
                .bind(establishment_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(endpoint).collect())
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Option<Endpoint>, NotifyError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ));
        let row: Option<Raw> = on_db!(self, |pool, _b| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(endpoint))
    }

    pub async fn delete_endpoint(&self, id: Uuid) -> Result<bool, NotifyError> {
        let n = on_db!(self, |pool, _b| {
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// A new secret; the current one keeps signing (beside it) until `overlap_until_us`.
    pub async fn rotate_secret(
        &self,
        id: Uuid,
        overlap_until_us: i64,
    ) -> Result<Option<Endpoint>, NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $2, \
                 secret = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(overlap_until_us)
            .bind(new_secret())
            .execute(pool)
            .await?;
        });
        self.endpoint(id).await
    }

    /// Enable again (clears a disablement and the failure streak).
    pub async fn enable_endpoint(&self, id: Uuid) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled_reason = NULL, failing_since = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn disable_endpoint(&self, id: Uuid, reason: &str) -> Result<(), NotifyError> {
        on_db!(self, |pool, _b| {
            sqlx::query("UPDATE webhook_endpoints SET disabled_reason = $2 WHERE id = $1")
                .bind(id)
                .bind(reason)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Record an attempt's outcome on the endpoint: a success ends a failure streak; a
    /// failure starts one (if none is running). Returns when the streak started.
    pub async fn endpoint_outcome(
        &self,
        id: Uuid,
        ok: bool,
        now_us: i64,
    ) -> Result<Option<i64>, NotifyError> {
        let since: Option<(Option<i64>,)> = on_db!(self, |pool, _b| {
            if ok {
                sqlx::query_as(
                    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 \
                     RETURNING failing_since",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?
            } else {
                sqlx::query_as(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) \
                     WHERE id = $1 RETURNING failing_since",
                )
                .bind(id)
                .bind(now_us)
                .fetch_optional(pool)
                .await?
            }
        });
        Ok(since.and_then(|(s,)| s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_registrations() {
        let types = vec!["booking.confirmed".to_owned()];
        assert!(validate("https://example.com/hook", &types).is_ok());
        assert!(matches!(
            validate("ftp://example.com", &types),
            Err(EndpointError::Url(_))
        ));
        assert!(matches!(
            validate("not a url", &types),
            Err(EndpointError::Url(_))
        ));
        assert!(matches!(
            validate("https://u:p@example.com", &types),
            Err(EndpointError::Url(_))
        ));
        assert!(matches!(
            validate("https://example.com", &[]),
            Err(EndpointError::EventTypes(_))
        ));
        assert!(matches!(
            validate("https://example.com", &["hold.placed".to_owned()]),
            Err(EndpointError::EventTypes(_))
        ));
    }
}
