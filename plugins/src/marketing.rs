//! The marketing plugin: promotion codes, and win-back audiences.
//!
//! A promotion (percent or fixed amount off, valid from/until, a usage limit, once per
//! customer) is stored here when an owner creates it. At booking, the gateway resolves a
//! code to its terms ([`terms_for`]) and sends them with the booking command: the
//! establishment's actor applies the discount and counts the use, so the limits hold
//! under concurrent bookings and the discount is on the booking itself.
//!
//! A win-back audience is the customers last served (a booking completed, a walk-in
//! finished) more than N days ago, from `marketing_customers`, which this plugin's
//! consumer keeps from the events. Sending to it is left to the notifications module:
//! the audience is exposed for now, not sent.

use jiff::Timestamp;
use navaro_notify::{Bind, Db, Statement};
use navaro_protocol::{Discount, Event, EventRecord, PromotionTerms};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PluginError;
use crate::boundary::{EventContext, Plugin};
use crate::sql::on_db;

pub const NAME: &str = "marketing";

/// Codes are 3 to 32 characters of A-Z, 0-9, `-` and `_` (matched without case).
pub const MAX_CODE_CHARS: usize = 32;
pub const MIN_CODE_CHARS: usize = 3;
/// Promotions per establishment: a bound on the table a booking looks a code up in.
pub const MAX_PROMOTIONS: i64 = 500;
/// Most customers one audience lists (the oldest-seen first).
pub const MAX_AUDIENCE: i64 = 5_000;

/// The marketing plugin.
pub struct Marketing;

const SEEN: &str = "INSERT INTO marketing_customers (establishment_id, customer_id, \
    last_seen_us, visits) VALUES ($1, $2, $3, 1) \
    ON CONFLICT (establishment_id, customer_id) DO UPDATE SET \
    last_seen_us = CASE WHEN excluded.last_seen_us > marketing_customers.last_seen_us \
    THEN excluded.last_seen_us ELSE marketing_customers.last_seen_us END, \
    visits = marketing_customers.visits + 1";

impl Plugin for Marketing {
    type State = ();
    const NAME: &'static str = NAME;
    const CONSUMER: &'static str = "plugin.marketing";

    fn settings(&self, raw: &serde_json::Value) -> Result<serde_json::Value, PluginError> {
        crate::no_settings(raw)
    }

    fn on_event(
        &self,
        ctx: &EventContext<'_>,
        _: &mut (),
        record: &EventRecord,
        out: &mut Vec<Statement>,
    ) {
        let seen = match &record.event {
            Event::BookingCompleted { booking } => Some((booking.customer_id.0, booking.end)),
            Event::QueueFinished { ticket, .. } => ticket
                .customer_id
                .map(|c| (c.0, ticket.ended_at.unwrap_or(record.at))),
            _ => None,
        };
        if let Some((customer, at)) = seen {
            out.push(Statement::new(
                SEEN,
                vec![
                    Bind::Uuid(ctx.establishment_id),
                    Bind::Uuid(customer),
                    Bind::I64(at.as_microsecond()),
                ],
            ));
        }
    }
}

/// A promotion as an owner creates it.
#[derive(Clone, Debug, Deserialize)]
pub struct NewPromotion {
    pub code: String,
    pub percent_off: Option<u8>,
    pub amount_off_cents: Option<i64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub usage_limit: Option<u32>,
    pub once_per_customer: bool,
}

/// A stored promotion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Promotion {
    pub code: String,
    pub percent_off: Option<u8>,
    pub amount_off_cents: Option<i64>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub usage_limit: Option<u32>,
    pub once_per_customer: bool,
    pub active: bool,
    pub created_at: Timestamp,
}

type PromotionRow = (
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
);

fn from_row(r: PromotionRow) -> Promotion {
    let ts = |us: Option<i64>| us.and_then(|us| Timestamp::from_microsecond(us).ok());
    Promotion {
        code: r.0,
        percent_off: r.1.and_then(|p| u8::try_from(p).ok()),
        amount_off_cents: r.2,
        valid_from: ts(r.3),
        valid_until: ts(r.4),
        usage_limit: r.5.and_then(|n| u32::try_from(n).ok()),
        once_per_customer: r.6 != 0,
        active: r.7 != 0,
        created_at: ts(Some(r.8)).unwrap_or(Timestamp::UNIX_EPOCH),
    }
}

/// A code as stored and matched: trimmed, upper case, checked.
pub fn normalise_code(raw: &str) -> Result<String, PluginError> {
    let code = raw.trim().to_ascii_uppercase();
    let ok = (MIN_CODE_CHARS..=MAX_CODE_CHARS).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(code)
    } else {
        Err(PluginError::invalid(
            "code",
            format!("a code is {MIN_CODE_CHARS} to {MAX_CODE_CHARS} letters, digits, '-' or '_'"),
        ))
    }
}

fn check(new: &NewPromotion) -> Result<String, PluginError> {
    let code = normalise_code(&new.code)?;
    match (new.percent_off, new.amount_off_cents) {
        (Some(p), None) if (1..=100).contains(&p) => {}
        (Some(_), None) => {
            return Err(PluginError::invalid(
                "percent_off",
                "percent_off must be 1 to 100",
            ));
        }
        (None, Some(c)) if c > 0 => {}
        (None, Some(_)) => {
            return Err(PluginError::invalid(
                "amount_off_cents",
                "amount_off_cents must be positive",
            ));
        }
        _ => {
            return Err(PluginError::invalid(
                "percent_off",
                "give exactly one of percent_off and amount_off_cents",
            ));
        }
    }
    if let (Some(a), Some(b)) = (new.valid_from, new.valid_until)
        && b <= a
    {
        return Err(PluginError::invalid(
            "valid_until",
            "valid_until must be after valid_from",
        ));
    }
    if new.usage_limit == Some(0) {
        return Err(PluginError::invalid(
            "usage_limit",
            "usage_limit must be at least 1",
        ));
    }
    Ok(code)
}

/// Create a promotion; a code already taken here is a conflict.
pub async fn create(
    db: &Db,
    id: Uuid,
    new: &NewPromotion,
    now: Timestamp,
) -> Result<Promotion, PluginError> {
    let code = check(new)?;
    let (count,): (i64,) = on_db!(db, |pool| {
        sqlx::query_as("SELECT COUNT(*) FROM marketing_promotions WHERE establishment_id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?
    });
    if count >= MAX_PROMOTIONS {
        return Err(PluginError::Conflict(format!(
            "at most {MAX_PROMOTIONS} promotions per establishment"
        )));
    }
    let inserted = on_db!(db, |pool| {
        sqlx::query(
            "INSERT INTO marketing_promotions (establishment_id, code, percent_off, \
             amount_off_cents, valid_from, valid_until, usage_limit, once_per_customer, \
             active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) \
             ON CONFLICT (establishment_id, code) DO NOTHING",
        )
        .bind(id)
        .bind(&code)
        .bind(new.percent_off.map(i64::from))
        .bind(new.amount_off_cents)
        .bind(new.valid_from.map(|t| t.as_microsecond()))
        .bind(new.valid_until.map(|t| t.as_microsecond()))
        .bind(new.usage_limit.map(i64::from))
        .bind(i64::from(new.once_per_customer))
        .bind(now.as_microsecond())
        .execute(pool)
        .await?
        .rows_affected()
    });
    if inserted == 0 {
        return Err(PluginError::Conflict(format!(
            "promotion code {code} exists"
        )));
    }
    get(db, id, &code)
        .await?
        .ok_or(PluginError::NotFound("promotion"))
}

const COLUMNS: &str = "code, percent_off, amount_off_cents, valid_from, valid_until, \
    usage_limit, once_per_customer, active, created_at";

/// One promotion by code (any case).
pub async fn get(db: &Db, id: Uuid, code: &str) -> Result<Option<Promotion>, PluginError> {
    let code = code.trim().to_ascii_uppercase();
    let sql = format!(
        "SELECT {COLUMNS} FROM marketing_promotions WHERE establishment_id = $1 AND code = $2"
    );
    let row: Option<PromotionRow> = on_db!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(&code)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.map(from_row))
}

/// Every promotion of an establishment, by code.
pub async fn list(db: &Db, id: Uuid) -> Result<Vec<Promotion>, PluginError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM marketing_promotions WHERE establishment_id = $1 ORDER BY code"
    );
    let rows: Vec<PromotionRow> = on_db!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(from_row).collect())
}

/// Stop a promotion being used (bookings that used it keep their discount).
pub async fn deactivate(db: &Db, id: Uuid, code: &str) -> Result<Promotion, PluginError> {
    let code = code.trim().to_ascii_uppercase();
    let changed = on_db!(db, |pool| {
        sqlx::query(
            "UPDATE marketing_promotions SET active = 0 WHERE establishment_id = $1 AND code = $2",
        )
        .bind(id)
        .bind(&code)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if changed == 0 {
        return Err(PluginError::NotFound("promotion"));
    }
    get(db, id, &code)
        .await?
        .ok_or(PluginError::NotFound("promotion"))
}

/// The terms a booking made `now` gets for `code`, or why it gets none.
pub async fn terms_for(
    db: &Db,
    id: Uuid,
    code: &str,
    now: Timestamp,
) -> Result<PromotionTerms, PluginError> {
    let unavailable = |m: &str| PluginError::PromotionUnavailable(m.to_owned());
    let promotion = get(db, id, code)
        .await?
        .ok_or_else(|| unavailable("unknown promotion code"))?;
    if !promotion.active {
        return Err(unavailable("this promotion has ended"));
    }
    if promotion.valid_from.is_some_and(|from| now < from) {
        return Err(unavailable("this promotion has not started yet"));
    }
    if promotion.valid_until.is_some_and(|until| now >= until) {
        return Err(unavailable("this promotion has expired"));
    }
    let discount = match (promotion.percent_off, promotion.amount_off_cents) {
        (Some(p), _) => Discount::Percent(p),
        (None, Some(c)) => Discount::FixedCents(c),
        (None, None) => return Err(unavailable("this promotion has no discount")),
    };
    Ok(PromotionTerms {
        code: promotion.code,
        discount,
        usage_limit: promotion.usage_limit,
        once_per_customer: promotion.once_per_customer,
    })
}

/// A customer of a win-back audience.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AudienceMember {
    pub customer_id: Uuid,
    pub last_seen: Timestamp,
    pub visits: i64,
}

/// The customers last served more than `days` days before `now`, oldest first.
pub async fn win_back(
    db: &Db,
    id: Uuid,
    days: u32,
    now: Timestamp,
) -> Result<Vec<AudienceMember>, PluginError> {
    let before = now.as_microsecond() - i64::from(days) * 86_400 * 1_000_000;
    let rows: Vec<(Uuid, i64, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT customer_id, last_seen_us, visits FROM marketing_customers \
             WHERE establishment_id = $1 AND last_seen_us < $2 \
             ORDER BY last_seen_us, customer_id LIMIT $3",
        )
        .bind(id)
        .bind(before)
        .bind(MAX_AUDIENCE)
        .fetch_all(pool)
        .await?
    });
    Ok(rows
        .into_iter()
        .map(|(customer_id, seen, visits)| AudienceMember {
            customer_id,
            last_seen: Timestamp::from_microsecond(seen).unwrap_or(Timestamp::UNIX_EPOCH),
            visits,
        })
        .collect())
}
