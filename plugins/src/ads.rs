//! The ads plugin: sponsored placement in discovery results.
//!
//! An establishment buys placement for a category around a point (a circle), with a
//! daily budget and a cost per click. A discovery search in that category (near a point
//! inside the circle, when the search has a point) shows up to [`MAX_SPONSORED`] such
//! establishments in a separate, labelled `sponsored` list, each shown counting an
//! impression; a click through the placement's link counts a click and charges the cost
//! per click against the day's budget (local day in the establishment's zone). Once the
//! day's spend leaves less than one click's cost, the campaign is not placed again that
//! day. The charge is one conditional update, so concurrent clicks never spend past the
//! budget.
//!
//! Placement also needs the plugin installed and the establishment not suspended, which
//! this plugin's consumer keeps on the campaigns from the journal.

use jiff::Timestamp;
use navaro_notify::{Bind, Db, Statement};
use navaro_protocol::{CATEGORIES, Event, EventRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PluginError;
use crate::boundary::{EventContext, Plugin, zone_of};
use crate::sql::on_db;

pub const NAME: &str = "ads";

/// Sponsored results per search: a few, above the organic ones, never instead of them.
pub const MAX_SPONSORED: usize = 2;
/// Campaigns per establishment.
pub const MAX_CAMPAIGNS: i64 = 20;
/// Campaigns of a category one search considers (highest bids first).
const CANDIDATES: i64 = 200;
/// Largest campaign radius, as discovery's largest search radius.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// Largest daily budget and cost per click, in minor units (a typo guard).
pub const MAX_BUDGET_CENTS: i64 = 100_000_000;

/// The label every sponsored result carries.
pub const LABEL: &str = "sponsored";

/// The ads plugin.
pub struct Ads;

impl Plugin for Ads {
    type State = ();
    const NAME: &'static str = NAME;
    const CONSUMER: &'static str = "plugin.ads";

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
        let (column, value) = match &record.event {
            Event::PluginInstalled { name, .. } if name == NAME => ("installed", 1),
            Event::PluginUninstalled { name } if name == NAME => ("installed", 0),
            Event::EstablishmentSuspended { .. } => ("suspended", 1),
            Event::EstablishmentReinstated { .. } => ("suspended", 0),
            _ => return,
        };
        let sql = if column == "installed" {
            "UPDATE ads_campaigns SET installed = $2 WHERE establishment_id = $1"
        } else {
            "UPDATE ads_campaigns SET suspended = $2 WHERE establishment_id = $1"
        };
        out.push(Statement::new(
            sql,
            vec![Bind::Uuid(ctx.establishment_id), Bind::I64(value)],
        ));
    }
}

/// A campaign as an owner creates it.
#[derive(Clone, Debug, Deserialize)]
pub struct NewCampaign {
    pub category: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
    pub daily_budget_cents: i64,
    pub cost_per_click_cents: i64,
}

/// A campaign with today's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaign {
    pub id: Uuid,
    pub establishment_id: Uuid,
    pub category: String,
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
    pub daily_budget_cents: i64,
    pub cost_per_click_cents: i64,
    pub active: bool,
    /// Today (the establishment's local day).
    pub today: DayFigures,
}

/// A campaign's figures for one local day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayFigures {
    pub day: String,
    pub impressions: i64,
    pub clicks: i64,
    pub spent_cents: i64,
    /// Whether the campaign can still be placed today (budget left for a click).
    pub placing: bool,
}

fn check(new: &NewCampaign) -> Result<(), PluginError> {
    if !CATEGORIES.contains(&new.category.as_str()) {
        return Err(PluginError::invalid(
            "category",
            format!("category must be one of {}", CATEGORIES.join(", ")),
        ));
    }
    if !new.latitude.is_finite() || !(-90.0..=90.0).contains(&new.latitude) {
        return Err(PluginError::invalid(
            "latitude",
            "latitude must be between -90 and 90",
        ));
    }
    if !new.longitude.is_finite() || !(-180.0..=180.0).contains(&new.longitude) {
        return Err(PluginError::invalid(
            "longitude",
            "longitude must be between -180 and 180",
        ));
    }
    if !new.radius_km.is_finite() || new.radius_km <= 0.0 || new.radius_km > MAX_RADIUS_KM {
        return Err(PluginError::invalid(
            "radius_km",
            format!("radius_km must be more than 0 and at most {MAX_RADIUS_KM}"),
        ));
    }
    if !(1..=MAX_BUDGET_CENTS).contains(&new.daily_budget_cents) {
        return Err(PluginError::invalid(
            "daily_budget_cents",
            format!("daily_budget_cents must be 1 to {MAX_BUDGET_CENTS}"),
        ));
    }
    if !(1..=new.daily_budget_cents).contains(&new.cost_per_click_cents) {
        return Err(PluginError::invalid(
            "cost_per_click_cents",
            "cost_per_click_cents must be at least 1 and at most the daily budget",
        ));
    }
    Ok(())
}

/// The local day of `now` in `timezone`.
fn day_in(timezone: &str, now: Timestamp) -> String {
    now.to_zoned_datetime(zone_of(timezone)).date().to_string()
}

/// Create a campaign for establishment `id` (whose zone is `timezone`).
pub async fn create(
    db: &Db,
    id: Uuid,
    timezone: &str,
    new: &NewCampaign,
    now: Timestamp,
) -> Result<Campaign, PluginError> {
    check(new)?;
    let (count,): (i64,) = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT COUNT(*) FROM ads_campaigns WHERE establishment_id = $1 AND active = 1",
        )
        .bind(id)
        .fetch_one(pool)
        .await?
    });
    if count >= MAX_CAMPAIGNS {
        return Err(PluginError::Conflict(format!(
            "at most {MAX_CAMPAIGNS} active campaigns per establishment"
        )));
    }
    let campaign_id = Uuid::now_v7();
    on_db!(db, |pool| {
        sqlx::query(
            "INSERT INTO ads_campaigns (id, establishment_id, timezone, category, latitude, \
             longitude, radius_km, daily_budget_cents, cost_per_click_cents, active, \
             installed, suspended, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 1, 0, $10)",
        )
        .bind(campaign_id)
        .bind(id)
        .bind(timezone)
        .bind(&new.category)
        .bind(new.latitude)
        .bind(new.longitude)
        .bind(new.radius_km)
        .bind(new.daily_budget_cents)
        .bind(new.cost_per_click_cents)
        .bind(now.as_microsecond())
        .execute(pool)
        .await?;
    });
    let campaigns = list(db, id, now).await?;
    campaigns
        .into_iter()
        .find(|c| c.id == campaign_id)
        .ok_or(PluginError::NotFound("campaign"))
}

type CampaignRow = (Uuid, Uuid, String, String, f64, f64, f64, i64, i64, i64);

const CAMPAIGN_COLUMNS: &str = "id, establishment_id, timezone, category, latitude, longitude, \
    radius_km, daily_budget_cents, cost_per_click_cents, active";

async fn figures(db: &Db, campaign: Uuid, day: &str) -> Result<(i64, i64, i64), PluginError> {
    let row: Option<(i64, i64, i64)> = on_db!(db, |pool| {
        sqlx::query_as("SELECT impressions, clicks, spent_cents FROM ads_days WHERE campaign_id = $1 AND day = $2")
            .bind(campaign)
            .bind(day)
            .fetch_optional(pool)
            .await?
    });
    Ok(row.unwrap_or((0, 0, 0)))
}

async fn with_today(db: &Db, r: CampaignRow, now: Timestamp) -> Result<Campaign, PluginError> {
    let day = day_in(&r.2, now);
    let (impressions, clicks, spent_cents) = figures(db, r.0, &day).await?;
    Ok(Campaign {
        id: r.0,
        establishment_id: r.1,
        category: r.3,
        latitude: r.4,
        longitude: r.5,
        radius_km: r.6,
        daily_budget_cents: r.7,
        cost_per_click_cents: r.8,
        active: r.9 != 0,
        today: DayFigures {
            day,
            impressions,
            clicks,
            spent_cents,
            placing: r.9 != 0 && spent_cents + r.8 <= r.7,
        },
    })
}

/// An establishment's campaigns, newest first, with today's figures.
pub async fn list(db: &Db, id: Uuid, now: Timestamp) -> Result<Vec<Campaign>, PluginError> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM ads_campaigns WHERE establishment_id = $1 ORDER BY created_at DESC, id"
    );
    let rows: Vec<CampaignRow> = on_db!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_all(pool)
            .await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(with_today(db, r, now).await?);
    }
    Ok(out)
}

/// Stop a campaign (its figures stay).
pub async fn stop(
    db: &Db,
    id: Uuid,
    campaign: Uuid,
    now: Timestamp,
) -> Result<Campaign, PluginError> {
    let changed = on_db!(db, |pool| {
        sqlx::query("UPDATE ads_campaigns SET active = 0 WHERE id = $1 AND establishment_id = $2")
            .bind(campaign)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if changed == 0 {
        return Err(PluginError::NotFound("campaign"));
    }
    list(db, id, now)
        .await?
        .into_iter()
        .find(|c| c.id == campaign)
        .ok_or(PluginError::NotFound("campaign"))
}

/// A placement chosen for a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    pub campaign_id: Uuid,
    pub establishment_id: Uuid,
}

/// Great-circle distance in km.
fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

/// Up to [`MAX_SPONSORED`] placements for a search in `category` (near `point`, if the
/// search has one), highest bid first, one per establishment; each counts an impression.
/// `exclude` says which establishments may not be placed (the caller's live check).
pub async fn sponsored(
    db: &Db,
    category: &str,
    point: Option<(f64, f64)>,
    now: Timestamp,
) -> Result<Vec<Placement>, PluginError> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM ads_campaigns WHERE category = $1 AND active = 1 \
         AND installed = 1 AND suspended = 0 ORDER BY cost_per_click_cents DESC, id LIMIT $2"
    );
    let rows: Vec<CampaignRow> = on_db!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(category)
            .bind(CANDIDATES)
            .fetch_all(pool)
            .await?
    });
    let mut chosen: Vec<Placement> = Vec::new();
    for r in rows {
        if chosen.len() == MAX_SPONSORED {
            break;
        }
        if chosen.iter().any(|p| p.establishment_id == r.1) {
            continue;
        }
        if point.is_some_and(|p| distance_km(p, (r.4, r.5)) > r.6) {
            continue;
        }
        let day = day_in(&r.2, now);
        let (_, _, spent) = figures(db, r.0, &day).await?;
        if spent + r.8 > r.7 {
            continue;
        }
        on_db!(db, |pool| {
            sqlx::query(
                "INSERT INTO ads_days (campaign_id, day, impressions) VALUES ($1, $2, 1) \
                 ON CONFLICT (campaign_id, day) DO UPDATE SET impressions = ads_days.impressions + 1",
            )
            .bind(r.0)
            .bind(&day)
            .execute(pool)
            .await?;
        });
        chosen.push(Placement {
            campaign_id: r.0,
            establishment_id: r.1,
        });
    }
    Ok(chosen)
}

/// What a click did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Click {
    pub campaign_id: Uuid,
    pub establishment_id: Uuid,
    /// What the click cost the campaign: its cost per click, or 0 once the day's budget
    /// could not cover it (the click is still counted).
    pub charged_cents: i64,
}

/// Count a click on a placement, charging it if the day's budget allows.
pub async fn click(db: &Db, campaign: Uuid, now: Timestamp) -> Result<Click, PluginError> {
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM ads_campaigns WHERE id = $1");
    let row: Option<CampaignRow> = on_db!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(campaign)
            .fetch_optional(pool)
            .await?
    });
    let r = row.ok_or(PluginError::NotFound("campaign"))?;
    let day = day_in(&r.2, now);
    let charged = on_db!(db, |pool| {
        sqlx::query("INSERT INTO ads_days (campaign_id, day) VALUES ($1, $2) ON CONFLICT (campaign_id, day) DO NOTHING")
            .bind(campaign)
            .bind(&day)
            .execute(pool)
            .await?;
        let charged = sqlx::query(
            "UPDATE ads_days SET clicks = clicks + 1, spent_cents = spent_cents + $3 \
             WHERE campaign_id = $1 AND day = $2 AND spent_cents + $3 <= $4",
        )
        .bind(campaign)
        .bind(&day)
        .bind(r.8)
        .bind(r.7)
        .execute(pool)
        .await?
        .rows_affected();
        if charged == 0 {
            sqlx::query(
                "UPDATE ads_days SET clicks = clicks + 1 WHERE campaign_id = $1 AND day = $2",
            )
            .bind(campaign)
            .bind(&day)
            .execute(pool)
            .await?;
        }
        charged
    });
    Ok(Click {
        campaign_id: campaign,
        establishment_id: r.1,
        charged_cents: if charged == 1 { r.8 } else { 0 },
    })
}
