//! `GET /v1/establishments`: customers find establishments.
//!
//! The query string is parsed here, once, into a [`SearchQuery`] (every bad parameter a
//! 422 naming it); the store answers the text, category and distance part with keyset
//! pagination. "Open now" and "a free slot on a date" are asked of the establishments'
//! actors (their published views and cached availability), never computed in SQL: the
//! candidates the store returns are checked in order, at most [`MAX_CHECKED`] per
//! request, and the cursor continues after the last one checked, so a page may hold
//! fewer than `limit` results and still have a next cursor.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use navaro_engine::AvailabilityQuery;
use navaro_engine::shell::View;
use navaro_persistence::{Cursor, ListingHit, Near, SearchQuery, fold};
use navaro_protocol::CATEGORIES;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::MaybeAuth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::ApiQuery;

/// Longest search text, in characters: names and service names are at most 200, and a
/// query is a few words of them.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words of a search text: each is one more index condition.
pub const MAX_QUERY_WORDS: usize = 8;
/// Largest search radius: a metropolitan area. Wider is not "near", and a radius of
/// thousands of kilometres would make every search a scan.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// Radius when a point is given without one.
pub const DEFAULT_RADIUS_KM: f64 = 10.0;
/// Page size bounds.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 50;
/// Most candidates one request checks against the actors for `open_now` / `free_on`:
/// each may activate an actor and compute a day of availability (cached afterwards).
pub const MAX_CHECKED: usize = 200;

/// The search's query string; every field optional, all text so that a bad value gets
/// a 422 naming its parameter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Text matched against names and service names, ignoring accents and case; every
    /// word must occur: up to 200 characters with a letter or digit (of any script; the
    /// pattern names the Latin ones), at most 8 words (runs of letters and digits; more
    /// are refused with 422 on `q`).
    #[param(
        max_length = 200,
        pattern = r"[0-9A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u00FF]"
    )]
    pub q: Option<String>,
    /// One of the categories (`barbershop`, `salon`, `clinic`, `spa`, `nails`, `beauty`,
    /// `tattoo`, `pet`, `fitness`, `other`).
    #[param(value_type = Option<ListingCategory>)]
    pub category: Option<String>,
    /// Latitude of the point to search around (-90 to 90); with `lon` (one without the
    /// other is refused: 422).
    #[param(value_type = Option<f64>, minimum = -90, maximum = 90)]
    pub lat: Option<String>,
    /// Longitude of the point to search around (-180 to 180); with `lat`.
    #[param(value_type = Option<f64>, minimum = -180, maximum = 180)]
    pub lon: Option<String>,
    /// Radius around the point in km, more than 0 and at most 100 (default 10); only
    /// with `lat` and `lon`.
    #[param(value_type = Option<f64>, exclusive_minimum = 0, maximum = 100)]
    pub radius_km: Option<String>,
    /// `true`: only establishments where some staff member works right now.
    #[param(value_type = Option<bool>)]
    pub open_now: Option<String>,
    /// `today` (each establishment's own local today) or `YYYY-MM-DD`: only
    /// establishments with a bookable slot that day. (The pattern admits days 01-28 of
    /// every month; the server also takes the 29th to the 31st where the month has them.)
    #[param(pattern = r"^(today|[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))$")]
    pub free_on: Option<String>,
    /// Only with `free_on`: only slots of services whose name contains this text (as
    /// `q`: a letter or digit, at most 8 words).
    #[param(
        max_length = 200,
        pattern = r"[0-9A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u00FF]"
    )]
    pub service: Option<String>,
    /// From a previous page's `next_cursor`, of the same search (with a point or
    /// without): any other is refused with 422 on `cursor`.
    #[param(min_length = 1, max_length = 1633)]
    pub cursor: Option<String>,
    /// Page size, 1 to 50 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
}

/// An establishment's category, for the document ([`CATEGORIES`]'s names; a test
/// checks the two agree).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ListingCategory {
    Barbershop,
    Salon,
    Clinic,
    Spa,
    Nails,
    Beauty,
    Tattoo,
    Pet,
    Fitness,
    Other,
}

/// A result: what a listing shows.
#[derive(Serialize, ToSchema)]
pub struct ListingDto {
    pub id: Uuid,
    pub name: String,
    pub category: Option<String>,
    pub address: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub photo_url: Option<String>,
    pub description: Option<String>,
    pub timezone: String,
    /// Service names.
    pub services: Vec<String>,
    /// Reserved for ratings: always null for now.
    pub rating_average: Option<f64>,
    /// Reserved for ratings: always 0 for now.
    pub rating_count: u32,
    /// Metres from the searched point (only in a search near a point).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
}

impl From<ListingHit> for ListingDto {
    fn from(hit: ListingHit) -> Self {
        let l = hit.listing;
        ListingDto {
            id: l.id,
            name: l.name,
            category: l.category,
            address: l.address,
            latitude: l.latitude,
            longitude: l.longitude,
            photo_url: l.photo_url,
            description: l.description,
            timezone: l.timezone,
            services: l.services,
            rating_average: None,
            rating_count: 0,
            distance_m: hit.distance_m,
        }
    }
}

/// A page of results.
#[derive(Serialize, ToSchema)]
pub struct SearchPage {
    /// Nearest first near a point, else by name; ties by id.
    pub establishments: Vec<ListingDto>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
    /// Sponsored results (the ads plugin), each labelled `sponsored`; only on the first
    /// page of a search with a category, empty otherwise. Organic results are unchanged.
    pub sponsored: Vec<crate::routes::plugins::ads::SponsoredDto>,
}

/// The day `free_on` asks about.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FreeOn {
    Today,
    Date(Date),
}

/// What the actors are asked about each candidate.
#[derive(Clone, Debug, Default, PartialEq)]
struct ActorFilters {
    open_now: bool,
    free_on: Option<FreeOn>,
    /// Folded words a service's name must contain to count for `free_on`.
    service_words: Vec<String>,
}

impl ActorFilters {
    fn any(&self) -> bool {
        self.open_now || self.free_on.is_some()
    }
}

fn number(field: &str, raw: &str) -> Result<f64, ApiError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be a number")))
}

/// Folded words of a search text, checked.
pub fn parse_words(field: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    if raw.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let folded = fold(raw);
    let words: Vec<String> = folded
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must contain a letter or digit"),
        ));
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(ApiError::invalid(
            field,
            format!("{field} must have at most {MAX_QUERY_WORDS} words"),
        ));
    }
    Ok(words)
}

fn parse_near(p: &SearchParams) -> Result<Option<Near>, ApiError> {
    let (lat, lon) = match (&p.lat, &p.lon) {
        (None, None) => {
            if p.radius_km.is_some() {
                return Err(ApiError::invalid(
                    "radius_km",
                    "radius_km needs lat and lon",
                ));
            }
            return Ok(None);
        }
        (Some(_), None) => return Err(ApiError::invalid("lon", "lat needs lon")),
        (None, Some(_)) => return Err(ApiError::invalid("lat", "lon needs lat")),
        (Some(lat), Some(lon)) => (number("lat", lat)?, number("lon", lon)?),
    };
    if !(-90.0..=90.0).contains(&lat) {
        return Err(ApiError::invalid("lat", "lat must be between -90 and 90"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(ApiError::invalid("lon", "lon must be between -180 and 180"));
    }
    let radius_km = match &p.radius_km {
        Some(raw) => number("radius_km", raw)?,
        None => DEFAULT_RADIUS_KM,
    };
    if !(radius_km > 0.0 && radius_km <= MAX_RADIUS_KM) {
        return Err(ApiError::invalid(
            "radius_km",
            format!("radius_km must be more than 0 and at most {MAX_RADIUS_KM}"),
        ));
    }
    Ok(Some(Near {
        latitude: lat,
        longitude: lon,
        radius_m: radius_km * 1000.0,
    }))
}

fn parse_bool(field: &str, raw: &Option<String>) -> Result<bool, ApiError> {
    match raw.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be true or false"),
        )),
    }
}

/// The query string as a store query and the actors' filters.
fn parse(
    p: SearchParams,
    include_suspended: bool,
) -> Result<(SearchQuery, ActorFilters), ApiError> {
    let words = match &p.q {
        Some(q) => parse_words("q", q)?,
        None => Vec::new(),
    };
    let near = parse_near(&p)?;
    let category = match p.category {
        Some(c) if CATEGORIES.contains(&c.as_str()) => Some(c),
        Some(_) => {
            return Err(ApiError::invalid(
                "category",
                format!("category must be one of {CATEGORIES:?}"),
            ));
        }
        None => None,
    };
    let limit = match &p.limit {
        Some(raw) => raw
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
        None => DEFAULT_LIMIT,
    };
    let after = match &p.cursor {
        Some(raw) => {
            let cursor = Cursor::decode(raw)
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this search gave"))?;
            let fits = matches!(
                (&cursor, near),
                (Cursor::Distance { .. }, Some(_)) | (Cursor::Name { .. }, None)
            );
            if !fits {
                return Err(ApiError::invalid(
                    "cursor",
                    "the cursor is from a search with(out) a point; repeat that search",
                ));
            }
            Some(cursor)
        }
        None => None,
    };
    let free_on = match p.free_on.as_deref() {
        None => None,
        Some("today") => Some(FreeOn::Today),
        Some(raw) => Some(FreeOn::Date(raw.parse::<Date>().map_err(|_| {
            ApiError::invalid("free_on", "free_on must be today or YYYY-MM-DD")
        })?)),
    };
    let service_words = match &p.service {
        Some(_) if free_on.is_none() => {
            return Err(ApiError::invalid("service", "service goes with free_on"));
        }
        Some(s) => parse_words("service", s)?,
        None => Vec::new(),
    };
    let filters = ActorFilters {
        open_now: parse_bool("open_now", &p.open_now)?,
        free_on,
        service_words,
    };
    let query = SearchQuery {
        words,
        category,
        near,
        include_suspended,
        after,
        limit,
    };
    Ok((query, filters))
}

#[utoipa::path(get, path = "/v1/establishments", tag = "discovery",
    params(SearchParams),
    responses((status = 200, body = SearchPage),
        (status = 422, description = "a parameter is out of range; `field` names it", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn search_establishments(
    State(state): State<AppState>,
    _auth: MaybeAuth,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    let (query, filters) = parse(params, false)?;
    // Sponsored results (the ads plugin) go on the first page only, apart from the
    // organic ones, which they never change.
    let sponsored = if query.after.is_none() {
        let point = query.near.map(|n| (n.latitude, n.longitude));
        crate::routes::plugins::ads::sponsored_for(&state, query.category.as_deref(), point).await
    } else {
        Vec::new()
    };
    let (hits, next_cursor) = search(&state, query, &filters).await?;
    Ok(Json(SearchPage {
        establishments: hits.into_iter().map(ListingDto::from).collect(),
        next_cursor,
        sponsored,
    }))
}

/// A page of hits and the cursor after it (`None` on the last page).
pub(crate) type Hits = (Vec<ListingHit>, Option<String>);

/// Run a search: one store query, or, with actor filters, store pages checked against
/// the actors until the page is full or [`MAX_CHECKED`] candidates were checked.
async fn search(
    state: &AppState,
    mut query: SearchQuery,
    filters: &ActorFilters,
) -> Result<Hits, ApiError> {
    let limit = query.limit;
    if !filters.any() {
        let hits = state
            .stores
            .directory
            .search(query)
            .await
            .map_err(ApiError::store)?;
        let next_cursor = (hits.len() == limit)
            .then(|| hits.last().map(|h| h.cursor().encode()))
            .flatten();
        return Ok((hits, next_cursor));
    }
    let now = state.engine.now();
    let mut found = Vec::new();
    let mut checked = 0;
    loop {
        query.limit = limit.min(MAX_CHECKED - checked);
        let hits = state
            .stores
            .directory
            .search(query.clone())
            .await
            .map_err(ApiError::store)?;
        let exhausted = hits.len() < query.limit;
        for hit in hits {
            checked += 1;
            query.after = Some(hit.cursor());
            if passes(state, &hit, filters, now).await {
                found.push(hit);
                if found.len() == limit {
                    break;
                }
            }
        }
        if found.len() == limit || checked >= MAX_CHECKED || exhausted {
            let more = !exhausted || found.len() == limit;
            let next_cursor = more.then(|| query.after.map(|c| c.encode())).flatten();
            return Ok((found, next_cursor));
        }
    }
}

/// Whether the establishment passes the actor filters. One that cannot be asked (its
/// actor will not activate) does not.
async fn passes(
    state: &AppState,
    hit: &ListingHit,
    filters: &ActorFilters,
    now: Timestamp,
) -> bool {
    let id = navaro_protocol::EstablishmentId(hit.listing.id);
    let Ok(view) = state.engine.view(id).await else {
        return false;
    };
    if filters.open_now && !open_at(&view, now) {
        return false;
    }
    match filters.free_on {
        None => true,
        Some(day) => {
            let date = match day {
                FreeOn::Today => view.timezone().to_datetime(now).date(),
                FreeOn::Date(date) => date,
            };
            free_on(&view, date, &filters.service_words, now)
        }
    }
}

/// Whether some staff member's weekly hours include `now`, local to the establishment
/// (time off is not consulted: it says "open", not "free").
pub fn open_at(view: &View, now: Timestamp) -> bool {
    let local = view.timezone().to_datetime(now);
    let hm = format!("{:02}:{:02}", local.hour(), local.minute());
    let day = match local.weekday() {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    };
    view.staff().iter().any(|s| {
        s.hours
            .days()
            .iter()
            .filter(|(name, _)| *name == day)
            .flat_map(|(_, ranges)| ranges.iter())
            // "HH:MM" strings compare as times ("24:00" ends a day).
            .any(|[start, end]| start.as_str() <= hm.as_str() && hm.as_str() < end.as_str())
    })
}

/// Whether some service (whose name has every word of `service_words`) has a bookable
/// slot on `date`, by the establishment's availability (the cached day when there is one).
pub fn free_on(view: &View, date: Date, service_words: &[String], now: Timestamp) -> bool {
    view.services().iter().any(|service| {
        let name = fold(&service.name);
        if !service_words.iter().all(|w| name.contains(w.as_str())) {
            return false;
        }
        let query = AvailabilityQuery {
            service_id: service.id,
            from: date,
            days: 1,
            staff_id: None,
        };
        view.availability(&query, now)
            .is_ok_and(|slots| slots.iter().next().is_some())
    })
}

/// The admin's establishment search: the same parameters, suspended ones included.
pub(crate) async fn admin_search(state: &AppState, params: SearchParams) -> Result<Hits, ApiError> {
    let (query, filters) = parse(params, true)?;
    search(state, query, &filters).await
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_documented_categories_are_the_servers() {
        let schema = serde_json::to_value(ListingCategory::schema()).unwrap();
        let documented: Vec<&str> = schema["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(documented, CATEGORIES);
    }
}
