//! Establishments, members, staff, hours, time off, services, availability.
//!
//! Authorization: reads of an establishment and its availability are public; every
//! change needs an owner (or a platform admin) of that establishment, checked here
//! against the caller's membership before the engine sees the command (and the engine
//! checks the role it is given again).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use jiff::civil::Date;
use navaro_persistence::accounts::{AccountError, MemberRole, Membership};
use navaro_protocol::{Caller, Command, ErrorCode, EstablishmentId, Reply, Role};
use uuid::Uuid;

use crate::auth::{AuthUser, MaybeAuth};
use crate::body::{Chunks, kept};
use crate::dto::*;
use crate::engine_api::{AvailabilityQuery, Request, View};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::wire::{AcceptsGzip, ApiJson, ApiPath, ApiQuery, IdempotencyKey};

/// Most days one availability query may span (API.md): bounds the work of one request.
pub const MAX_AVAILABILITY_DAYS: u16 = 31;

/// The establishment's published view, or 404.
pub async fn view_of(state: &AppState, id: EstablishmentId) -> Result<Arc<View>, ApiError> {
    state.engine.view(id).await.map_err(ApiError::from)
}

/// The view and the caller's capacity there. The owner named in the view counts as owner
/// even if recording the membership failed after creation.
pub async fn resolve(
    state: &AppState,
    auth: &AuthUser,
    id: EstablishmentId,
) -> Result<(Arc<View>, Caller), ApiError> {
    let view = view_of(state, id).await?;
    let mut caller = auth.caller_at(state, id).await?;
    if view.owner_id() == auth.user_id {
        caller.role = Role::Owner;
    }
    Ok((view, caller))
}

/// The view and caller, refused unless the caller manages the establishment.
pub(crate) async fn manager(
    state: &AppState,
    auth: &AuthUser,
    id: EstablishmentId,
) -> Result<(Arc<View>, Caller), ApiError> {
    let (view, caller) = resolve(state, auth, id).await?;
    if !caller.role.can_manage() {
        return Err(ApiError::forbidden());
    }
    Ok((view, caller))
}

/// Run a command whose reply is one kind of item and render that item in the
/// establishment's zone. `render` answers `None` for any other reply, which is an engine
/// bug and answered 500; a rejection keeps the zone so that its alternatives render in it.
pub async fn execute_rendered<T>(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    command: Command,
    key: Option<String>,
    view: &View,
    render: impl FnOnce(Reply, &jiff::tz::TimeZone) -> Option<T>,
) -> Result<T, ApiError> {
    let kind = command.kind();
    match execute(state, id, caller, command, key).await {
        Ok(reply) => render(reply, view.timezone())
            .ok_or_else(|| ApiError::internal(format!("unexpected engine reply to {kind}"))),
        Err(e) => Err(e.in_zone(view.timezone())),
    }
}

/// Run a command at an establishment.
pub async fn execute(
    state: &AppState,
    id: EstablishmentId,
    caller: Caller,
    command: Command,
    idempotency_key: Option<String>,
) -> Result<Reply, ApiError> {
    let kind = command.kind();
    let result = state
        .engine
        .execute(
            id,
            Request {
                caller,
                command,
                idempotency_key,
            },
        )
        .await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(r) => r.code.as_str(),
    };
    metrics::counter!("navaro_commands_total", "kind" => kind, "outcome" => outcome).increment(1);
    result.map_err(|rejection| {
        let overloaded = rejection.code == ErrorCode::Overloaded;
        let mut error = ApiError::from(rejection);
        if overloaded {
            let seconds = state.settings.limits.overloaded_retry_after_seconds.max(1);
            error.retry_after = Some(std::time::Duration::from_secs(u64::from(seconds)));
        }
        error
    })
}

fn unexpected(reply: &Reply) -> ApiError {
    ApiError::internal(format!("unexpected engine reply: {reply:?}"))
}

/// `GET /v1/establishments/{id}`'s body: the same bytes `serde_json` makes of
/// [`establishment_dto`], from a rendering kept with the view's setup. Every event moves
/// the seq, but the settings, staff and services, most of the body, change rarely: they
/// are written once per change, and each answer adds only the seq's digits.
pub fn establishment_body(view: &View) -> Chunks {
    let setup = RenderedSetup::of(view);
    Chunks::new(vec![
        setup.head.clone(),
        Bytes::from(view.seq().to_string()),
        setup.tail.clone(),
    ])
}

/// The establishment's JSON cut around the seq's value: `head` ends with `"seq":`.
#[derive(Clone, Debug)]
struct RenderedSetup {
    head: Bytes,
    tail: Bytes,
}

impl RenderedSetup {
    /// The view's setup rendered, made on first use and kept in
    /// [`View::setup_rendered`] for every view of the same setup.
    fn of(view: &View) -> Cow<'_, RenderedSetup> {
        kept(view.setup_rendered(), || RenderedSetup::render(view))
    }

    fn render(view: &View) -> RenderedSetup {
        let json = serde_json::to_vec(&establishment_dto(view))
            .expect("an establishment serializes to JSON");
        // Inside a JSON string every quote is escaped, so `,"seq":` can only be an
        // object's key; the top-level field comes before `staff` and `services`, the only
        // nested objects, so the first match is it (the test checks the bytes).
        const KEY: &[u8] = b",\"seq\":";
        let key = json
            .windows(KEY.len())
            .position(|w| w == KEY)
            .expect("the establishment's JSON has a seq");
        let value = key + KEY.len();
        let digits = json[value..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        debug_assert_eq!(
            &json[value..value + digits],
            view.seq().to_string().as_bytes()
        );
        let json = Bytes::from(json);
        RenderedSetup {
            head: json.slice(..value),
            tail: json.slice(value + digits..),
        }
    }
}

pub fn establishment_dto(view: &View) -> EstablishmentDto {
    let s = view.settings();
    EstablishmentDto {
        id: view.id().0,
        owner_id: view.owner_id().0,
        name: s.name.clone(),
        timezone: s.timezone.clone(),
        slot_minutes: s.slot_minutes,
        min_notice_minutes: s.min_notice_minutes,
        horizon_days: s.horizon_days,
        cancel_cutoff_minutes: s.cancel_cutoff_minutes,
        max_future_bookings_per_customer: s.max_future_bookings_per_customer,
        queue_max_length: s.queue_max_length,
        queue_no_show_grace_minutes: s.queue_no_show_grace_minutes,
        category: s.listing.category.clone(),
        address: s.listing.address.clone(),
        latitude: s.listing.latitude.map(|d| d.0),
        longitude: s.listing.longitude.map(|d| d.0),
        photo_url: s.listing.photo_url.clone(),
        description: s.listing.description.clone(),
        rating_average: None,
        rating_count: 0,
        suspended_reason: view.suspended().map(str::to_owned),
        seq: view.seq(),
        staff: view.staff().into_iter().map(StaffDto::from).collect(),
        services: view.services().into_iter().map(ServiceDto::from).collect(),
    }
}

#[utoipa::path(post, path = "/v1/establishments", tag = "establishments", security(("bearer" = [])),
    request_body = CreateEstablishmentRequest,
    responses((status = 201, body = EstablishmentDto, description = "created, or a retry with the same Idempotency-Key within 24 hours"),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, description = "overloaded or unavailable; retry with the same Idempotency-Key", body = ErrorBody)))]
pub async fn create_establishment(
    State(state): State<AppState>,
    auth: AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateEstablishmentRequest>,
) -> Result<(StatusCode, Json<EstablishmentDto>), ApiError> {
    let settings = body.into_settings();
    // Checked here as well as by the engine: a request that cannot create anything
    // claims no key.
    navaro_engine::domain::rules::Settings::parse(settings.clone())?;
    let id = EstablishmentId(Uuid::now_v7());
    // The establishment keeps its idempotency keys, and a retry cannot find it without
    // its id: the first request with a key claims the id, and each retry is sent to
    // that establishment, whose actor replays the first answer (or refuses another
    // body with `idempotency_key_reused`).
    let id = match &key {
        Some(key) => match state
            .stores
            .accounts
            .claim_creation_key(auth.user_id, key, id, jiff::Timestamp::now())
            .await
        {
            Ok(claimed) => claimed,
            Err(AccountError::NoSuchUser) => {
                return Err(ApiError::unauthorized("account no longer exists"));
            }
            Err(e) => return Err(ApiError::store(e)),
        },
        None => id,
    };
    let caller = Caller {
        user_id: auth.user_id,
        role: Role::Owner,
    };
    let reply = execute(
        &state,
        id,
        caller,
        Command::CreateEstablishment { settings },
        key,
    )
    .await?;
    let Reply::Establishment { id, owner_id, .. } = reply else {
        return Err(unexpected(&reply));
    };
    let membership = Membership {
        user_id: owner_id,
        establishment_id: id,
        role: MemberRole::Owner,
    };
    if let Err(e) = state.stores.accounts.upsert_membership(membership).await {
        // The view names the owner, so the owner can still act; /v1/me will not list it.
        tracing::error!(establishment_id = %id, error = %e, "owner membership not recorded");
    }
    tracing::info!(establishment_id = %id, owner_id = %owner_id, "establishment created");
    let view = view_of(&state, id).await?;
    Ok((StatusCode::CREATED, Json(establishment_dto(&view))))
}

#[utoipa::path(get, path = "/v1/establishments/{id}", tag = "establishments",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = EstablishmentDto), (status = 404, body = ErrorBody)))]
pub async fn get_establishment(
    State(state): State<AppState>,
    _auth: MaybeAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let view = view_of(&state, est(id)).await?;
    let body = Body::new(establishment_body(&view));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[utoipa::path(patch, path = "/v1/establishments/{id}", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PatchEstablishmentRequest,
    responses((status = 200, body = EstablishmentDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_establishment(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PatchEstablishmentRequest>,
) -> Result<Json<EstablishmentDto>, ApiError> {
    let (_, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::UpdateSettings {
        patch: body.into_patch(),
    };
    execute(&state, est(id), caller, command, key).await?;
    let view = view_of(&state, est(id)).await?;
    Ok(Json(establishment_dto(&view)))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/members", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = MemberDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, Json<MemberDto>), ApiError> {
    manager(&state, &auth, est(id)).await?;
    let role = match body.role.as_str() {
        "owner" => MemberRole::Owner,
        "staff" => MemberRole::Staff,
        _ => return Err(ApiError::invalid("role", "must be owner or staff")),
    };
    let membership = Membership {
        user_id: user(body.user_id),
        establishment_id: est(id),
        role,
    };
    match state.stores.accounts.upsert_membership(membership).await {
        Ok(()) => {}
        Err(AccountError::NoSuchUser) => {
            return Err(navaro_protocol::Rejection::field(
                navaro_protocol::ErrorCode::NotFound,
                "user_id",
                "user not found",
            )
            .into());
        }
        Err(e) => return Err(ApiError::store(e)),
    }
    Ok((
        StatusCode::CREATED,
        Json(MemberDto {
            establishment_id: id,
            user_id: body.user_id,
            role: role.as_str().to_owned(),
        }),
    ))
}

#[utoipa::path(post, path = "/v1/establishments/{id}/staff", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AddStaffRequest,
    responses((status = 201, body = StaffDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_staff(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<AddStaffRequest>,
) -> Result<(StatusCode, Json<StaffDto>), ApiError> {
    let (_, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::AddStaff {
        name: body.name,
        user_id: body.user_id.map(user),
        hours: body.hours,
    };
    match execute(&state, est(id), caller, command, key).await? {
        Reply::Staff(staff) => Ok((StatusCode::CREATED, Json(staff.into()))),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(put, path = "/v1/establishments/{id}/staff/{staff_id}/hours", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("staff_id" = Uuid, Path)), request_body = SetHoursRequest,
    responses((status = 200, body = StaffDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_staff_hours(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, staff_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<SetHoursRequest>,
) -> Result<Json<StaffDto>, ApiError> {
    let (_, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::SetStaffHours {
        staff_id: staff(staff_id),
        hours: body.hours,
    };
    match execute(&state, est(id), caller, command, key).await? {
        Reply::Staff(staff) => Ok(Json(staff.into())),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/v1/establishments/{id}/staff/{staff_id}/time-off", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("staff_id" = Uuid, Path)), request_body = TimeOffRequest,
    responses((status = 201, body = TimeOffDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_time_off(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, staff_id)): ApiPath<(Uuid, Uuid)>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<TimeOffRequest>,
) -> Result<(StatusCode, Json<TimeOffDto>), ApiError> {
    let (view, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::AddTimeOff {
        staff_id: staff(staff_id),
        start: body.start,
        end: body.end,
        reason: body.reason,
    };
    match execute(&state, est(id), caller, command, key).await? {
        Reply::TimeOff(t) => Ok((
            StatusCode::CREATED,
            Json(TimeOffDto::new(t, view.timezone())),
        )),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/v1/establishments/{id}/services", tag = "establishments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AddServiceRequest,
    responses((status = 201, body = ServiceDto), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_service(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<AddServiceRequest>,
) -> Result<(StatusCode, Json<ServiceDto>), ApiError> {
    let (_, caller) = manager(&state, &auth, est(id)).await?;
    let command = Command::AddService {
        name: body.name,
        duration_minutes: body.duration_minutes,
        price_cents: body.price_cents,
        currency: body
            .currency
            .unwrap_or_else(navaro_protocol::defaults::currency),
        buffer_after_minutes: body.buffer_after_minutes.unwrap_or(0),
        staff_ids: ids(body.staff_ids),
    };
    match execute(&state, est(id), caller, command, key).await? {
        Reply::Service(service) => Ok((StatusCode::CREATED, Json(service.into()))),
        other => Err(unexpected(&other)),
    }
}

/// A local date parameter.
pub fn parse_date(field: &str, raw: &str) -> Result<Date, ApiError> {
    raw.parse::<Date>()
        .map_err(|_| ApiError::invalid(field, "must be a date, YYYY-MM-DD"))
}

#[utoipa::path(get, path = "/v1/establishments/{id}/availability", tag = "availability",
    params(("id" = Uuid, Path), AvailabilityParams),
    responses((status = 200, body = AvailabilityAnswer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn availability(
    State(state): State<AppState>,
    _auth: MaybeAuth,
    AcceptsGzip(gzip): AcceptsGzip,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<AvailabilityParams>,
) -> Result<Response, ApiError> {
    let view = view_of(&state, est(id)).await?;
    let days = params.days.unwrap_or(7);
    if !(1..=MAX_AVAILABILITY_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            format!("must be 1 to {MAX_AVAILABILITY_DAYS}"),
        ));
    }
    let form = AvailabilityForm::parse(params.form.as_deref())
        .ok_or_else(|| ApiError::invalid("form", "must be slots or runs"))?;
    let query = AvailabilityQuery {
        service_id: service(params.service_id),
        from: parse_date("from", &params.from)?,
        days,
        staff_id: params.staff_id.map(staff),
    };
    let slots = view
        .availability(&query, state.engine.now())
        .map_err(ApiError::from)?;
    let (reused, computed) = slots.days_reused_and_computed();
    metrics::counter!("navaro_availability_days_total", "outcome" => "reused")
        .increment(reused as u64);
    metrics::counter!("navaro_availability_days_total", "outcome" => "computed")
        .increment(computed as u64);
    let settings = view.settings();
    if form == AvailabilityForm::Runs {
        // A few KB: not worth compressing per answer, sent as it is.
        let body = crate::availability::encode_runs(
            id,
            params.service_id,
            &settings.timezone,
            view.timezone(),
            settings.slot_minutes,
            slots.iter(),
        );
        return Ok((
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body),
        )
            .into_response());
    }
    Ok(slots_answer(
        id,
        params.service_id,
        &settings.timezone,
        view.timezone(),
        &slots,
        gzip,
    ))
}

/// The default form's answer, gzip-compressed from the kept days' segments for a client
/// that takes it, plain otherwise; it varies with `Accept-Encoding`, and says so.
fn slots_answer(
    id: Uuid,
    service_id: Uuid,
    zone: &str,
    tz: &jiff::tz::TimeZone,
    slots: &navaro_engine::domain::Availability,
    gzip: bool,
) -> Response {
    let json = (header::CONTENT_TYPE, "application/json");
    let vary = (header::VARY, "accept-encoding");
    if !gzip {
        let body = crate::availability::encode_days(id, service_id, zone, tz, slots);
        return ([json, vary], Body::new(body)).into_response();
    }
    let (body, days) = crate::availability::encode_days_gzip(id, service_id, zone, tz, slots);
    for (outcome, count) in [
        ("reused", days.reused),
        ("deflated", days.deflated),
        ("stored", days.stored),
    ] {
        // Mostly every day is reused: the other two need no registry lookup.
        if count > 0 {
            metrics::counter!("navaro_availability_gzip_days_total", "outcome" => outcome)
                .increment(count as u64);
        }
    }
    let gzip = (header::CONTENT_ENCODING, "gzip");
    ([json, gzip, vary], Body::new(body)).into_response()
}

#[cfg(test)]
mod tests {
    use navaro_engine::store::MemoryJournal;
    use navaro_engine::{Engine, EngineConfig};
    use navaro_protocol::{
        Caller, EstablishmentSettings, Reply, Role, ServiceId, SettingsPatch, StaffId, UserId,
        WeeklyHours,
    };

    use super::*;

    const OWNER: Caller = Caller {
        user_id: UserId(Uuid::from_u128(1)),
        role: Role::Owner,
    };

    /// An engine with one establishment whose names spell the key the body is cut at
    /// (escaped, they cannot match), one staff member and one service.
    struct Shop {
        engine: Engine,
        id: EstablishmentId,
        staff: StaffId,
        service: ServiceId,
    }

    impl Shop {
        async fn open() -> Shop {
            let engine = Engine::start(Arc::new(MemoryJournal::new()), EngineConfig::default())
                .await
                .unwrap();
            let mut shop = Shop {
                engine,
                id: EstablishmentId(Uuid::now_v7()),
                staff: StaffId(Uuid::nil()),
                service: ServiceId(Uuid::nil()),
            };
            let settings = EstablishmentSettings {
                name: r#"The ,"seq":7, "shop" \ "#.into(),
                timezone: "America/Sao_Paulo".into(),
                slot_minutes: 15,
                min_notice_minutes: 0,
                horizon_days: 60,
                cancel_cutoff_minutes: 0,
                max_future_bookings_per_customer: 10,
                queue_max_length: 100,
                queue_no_show_grace_minutes: 5,
                listing: Default::default(),
            };
            shop.run(OWNER, Command::CreateEstablishment { settings })
                .await;
            let hours = WeeklyHours::every_day(&[("00:00", "24:00")]);
            let name = r#"Ana ,"seq":1"#.into();
            let add = Command::AddStaff {
                name,
                user_id: None,
                hours,
            };
            let Reply::Staff(staff) = shop.run(OWNER, add).await else {
                panic!("staff expected")
            };
            shop.staff = staff.id;
            let add = Command::AddService {
                name: "Cut".into(),
                duration_minutes: 30,
                price_cents: 5000,
                currency: "BRL".into(),
                buffer_after_minutes: 0,
                staff_ids: vec![staff.id],
            };
            let Reply::Service(service) = shop.run(OWNER, add).await else {
                panic!("service expected")
            };
            shop.service = service.id;
            shop
        }

        async fn run(&self, caller: Caller, command: Command) -> Reply {
            let request = navaro_engine::Request {
                caller,
                command,
                idempotency_key: None,
            };
            self.engine.execute(self.id, request).await.unwrap()
        }

        async fn view(&self) -> Arc<View> {
            self.engine.view(self.id).await.unwrap()
        }

        /// A booking by a customer, on the hour a day or so ahead.
        async fn book(&self) {
            let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(30);
            let start = jiff::Timestamp::from_second(ahead.as_second() / 3600 * 3600).unwrap();
            let customer = Caller {
                user_id: UserId(Uuid::from_u128(2)),
                role: Role::Customer,
            };
            let book = Command::Book {
                service_id: self.service,
                start,
                staff_id: None,
                customer_id: None,
                promotion: None,
            };
            let Reply::Booking(_) = self.run(customer, book).await else {
                panic!("booking expected")
            };
        }
    }

    /// The body from the kept rendering, checked against `serde_json` of the DTO, and
    /// the kept head's address (the same address: the rendering was not made again).
    fn checked_body(view: &View) -> (String, usize) {
        let body = establishment_body(view).to_bytes().to_vec();
        let reference = serde_json::to_vec(&establishment_dto(view)).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert_eq!(body, String::from_utf8_lossy(&reference));
        (body, RenderedSetup::of(view).head.as_ptr() as usize)
    }

    #[tokio::test]
    async fn the_kept_establishment_body_is_serdes_and_is_made_again_only_when_the_setup_changes() {
        let shop = Shop::open().await;
        // Every view is kept to the end, so that no rendering is freed and its address
        // taken again by the next one.
        let set_up = shop.view().await;
        let (_, setup) = checked_body(&set_up);

        // A booking moves the seq, not the setup: the same rendering answers.
        shop.book().await;
        let booked = shop.view().await;
        assert!(booked.seq() > set_up.seq());
        let (body, kept) = checked_body(&booked);
        assert_eq!(kept, setup, "a booking made the setup's rendering again");
        assert!(body.contains(&format!(",\"seq\":{},", booked.seq())));

        // A change to the setup makes it again, with the change.
        let patch = SettingsPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        };
        shop.run(OWNER, Command::UpdateSettings { patch }).await;
        let renamed_view = shop.view().await;
        let (body, renamed) = checked_body(&renamed_view);
        assert_ne!(renamed, setup);
        assert!(body.contains("\"name\":\"Renamed\""));
        let hours = WeeklyHours::every_day(&[("08:00", "12:00")]);
        let staff_id = shop.staff;
        shop.run(OWNER, Command::SetStaffHours { staff_id, hours })
            .await;
        let rehoured_view = shop.view().await;
        let (body, rehoured) = checked_body(&rehoured_view);
        assert_ne!(rehoured, renamed);
        assert!(body.contains("08:00"));
        drop((set_up, booked, renamed_view, rehoured_view));
    }
}
