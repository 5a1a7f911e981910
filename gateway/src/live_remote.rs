//! A live feed opened on a node that does not own the establishment (docs/cluster.md,
//! "Live feeds"). The WebSocket stays here; the owner is asked, over the internal
//! connection, for what only it knows (the caller's role there, the zone, its durable
//! seq, the caller's tickets: [`handshake`]); the events come from this node's
//! [`crate::relay::Relay`], and what the subscriber missed before from the journal.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::tz::TimeZone;
use navaro_cluster::RequestHead;
use navaro_protocol::{Caller, EstablishmentId, EventRecord, Role, TicketId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::cluster::Forwarded;
use crate::dto::est;
use crate::engine_api::Subscription;
use crate::error::ApiError;
use crate::routes::establishments::resolve;
use crate::state::AppState;
use crate::wire::ApiPath;

/// The internal route a non-owner asks the owner (never routed for a client: a request
/// without the [`Forwarded`] marker gets 404).
pub const HANDSHAKE_PATH: &str = "/v1/establishments/{id}/live/handshake";

/// What the owner tells a node opening a feed for one of its establishments.
#[derive(Serialize, Deserialize)]
pub struct Handshake {
    /// The establishment's last durable seq.
    pub seq: u64,
    /// IANA name of the establishment's zone.
    pub timezone: String,
    pub user_id: UserId,
    pub role: Role,
    /// The caller's active tickets.
    pub tickets: Vec<TicketId>,
}

/// `GET /v1/establishments/{id}/live/handshake` on the owner, for another node.
pub async fn handshake(
    State(state): State<AppState>,
    forwarded: Option<Extension<Forwarded>>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Result<Json<Handshake>, ApiError> {
    if forwarded.is_none() {
        return Err(ApiError::not_found("route"));
    }
    let token = crate::auth::bearer_in(&headers)
        .ok_or_else(|| ApiError::unauthorized("bearer token or access_token required"))?;
    let auth = AuthUser::from_token(&state, token).await?;
    let (view, caller) = resolve(&state, &auth, est(id)).await?;
    // The durable seq (the view's may be ahead of it): a feed starts after it.
    let durable = state
        .engine
        .subscribe(est(id), view.seq())
        .await
        .map_err(ApiError::from)?
        .hello_seq;
    let timezone = view
        .timezone()
        .iana_name()
        .ok_or_else(|| ApiError::internal("establishment zone has no IANA name"))?
        .to_owned();
    Ok(Json(Handshake {
        seq: durable,
        timezone,
        user_id: caller.user_id,
        role: caller.role,
        tickets: view.active_tickets_of(caller.user_id),
    }))
}

/// A feed opened here for an establishment another node owns.
pub struct Opened {
    pub subscription: Subscription,
    pub timezone: TimeZone,
    pub caller: Caller,
    pub tickets: Vec<TicketId>,
    /// Keeps this node's feed of the establishment while the subscriber is connected
    /// (`None` on the owner: its engine's feed).
    pub feed: Option<Arc<crate::relay::Feed>>,
}

/// Ask the owner of `id`, if another node owns it, and open the feed from `since`
/// (`None`: from now). `Ok(None)`: this node owns it; `Err(response)`: the owner's
/// refusal (401, 403, 404), or a retriable 503.
pub async fn open(
    state: &AppState,
    id: EstablishmentId,
    token: &str,
    since: Option<u64>,
) -> Result<Option<Opened>, axum::response::Response> {
    use axum::response::IntoResponse;
    let Some(relay) = &state.relay else {
        return Ok(None);
    };
    let head = RequestHead {
        method: "GET".into(),
        uri: HANDSHAKE_PATH.replace("{id}", &id.0.to_string()),
        headers: vec![(
            "authorization".into(),
            format!("Bearer {token}").into_bytes(),
        )],
        client: None,
    };
    let (head, body) = match crate::cluster::ask_owner(state, id, head).await {
        Ok(None) => return Ok(None),
        Ok(Some(answer)) => answer,
        Err(e) => return Err(e.into_response()),
    };
    if head.status != 200 {
        return Err(crate::cluster::response_of(head, body));
    }
    let refused = |what: &str| ApiError::internal(what).into_response();
    let hs: Handshake =
        serde_json::from_slice(&body).map_err(|_| refused("malformed live handshake"))?;
    let timezone = TimeZone::get(&hs.timezone).map_err(|_| refused("unknown zone"))?;
    let watch = relay.watch(id, hs.seq).await;
    let hello = watch.last.max(hs.seq);
    let since = since.unwrap_or(hello);
    let max = state
        .settings
        .engine
        .max_resume_events
        .unwrap_or(navaro_engine::EngineConfig::default().max_resume_events);
    let reload = since > hello || hello - since > max as u64;
    let backlog = if reload {
        Vec::new()
    } else {
        backlog(state, id, since, hello)
            .await
            .map_err(IntoResponse::into_response)?
    };
    Ok(Some(Opened {
        subscription: Subscription {
            hello_seq: hello,
            reload,
            backlog,
            live: watch.receiver,
        },
        timezone,
        caller: Caller {
            user_id: hs.user_id,
            role: hs.role,
        },
        tickets: hs.tickets,
        feed: Some(watch.feed),
    }))
}

/// The events after `since` up to `until`, from the journal.
async fn backlog(
    state: &AppState,
    id: EstablishmentId,
    since: u64,
    until: u64,
) -> Result<Vec<Arc<EventRecord>>, ApiError> {
    let mut out = Vec::new();
    let mut from = since;
    while from < until {
        let want = (until - from) as usize;
        let page = state
            .stores
            .journal
            .read_after(id, from, want)
            .await
            .map_err(|e| ApiError::new(e.refusal_code(), "cannot read the journal"))?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        out.extend(page.into_iter().filter(|r| r.seq <= until).map(Arc::new));
        from = last;
    }
    Ok(out)
}

/// How long a zone read from another node is reused (a zone changes seldom; a request
/// rendering in a zone changed less than this ago shows the same instant in the former
/// offset).
const ZONE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Zones of establishments other nodes own, as last read.
pub type ZoneCache = dashmap::DashMap<EstablishmentId, (TimeZone, std::time::Instant)>;

/// The zone of an establishment, whichever node owns it: from this node's engine, or
/// asked of the owner (`GET /v1/establishments/{id}` over the internal connection) and
/// kept for [`ZONE_TTL`]. `None` if it cannot be told now.
pub async fn zone_of(state: &AppState, id: EstablishmentId) -> Option<TimeZone> {
    if let Some(entry) = state.zones.get(&id)
        && entry.1.elapsed() < ZONE_TTL
    {
        return Some(entry.0.clone());
    }
    let head = RequestHead {
        method: "GET".into(),
        uri: format!("/v1/establishments/{}", id.0),
        headers: Vec::new(),
        client: None,
    };
    match crate::cluster::ask_owner(state, id, head).await {
        Ok(None) => state
            .engine
            .view(id)
            .await
            .ok()
            .map(|v| v.timezone().clone()),
        Ok(Some((head, body))) if head.status == 200 => {
            let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let tz = TimeZone::get(body["timezone"].as_str()?).ok()?;
            state
                .zones
                .insert(id, (tz.clone(), std::time::Instant::now()));
            Some(tz)
        }
        _ => None,
    }
}
