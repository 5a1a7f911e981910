//! Building and running the server: [`Application::build`] opens the stores, starts the
//! engine and binds the listener (port 0 picks a free one, see [`Application::port`]);
//! [`Application::run_until_stopped`] serves until SIGTERM or ctrl-c, then shuts down in
//! order: stop accepting, close live connections with "going away", let in-flight
//! requests finish (up to the grace period), then `engine.shutdown()`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::from_fn_with_state;
use navaro_config::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{AuthError, Passwords, TokenKeys};
use crate::connections::{self, ConnectionTimeouts};
use crate::engine_api::{Engine, EngineConfig, EngineError};
use crate::limits::{self, Limiters};
use crate::listener::CappedListener;
use crate::live::LiveRegistry;
use crate::routes;
use crate::sessions::Sessions;
use crate::state::{AppState, Shared};
use crate::stores::{self, StoreError, StoreOptions, Stores};
use crate::{layers, telemetry, wire};

/// How long shutdown waits for live connections to take their close frame.
const LIVE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot open the stores: {0}")]
    Stores(#[from] StoreError),
    #[error("cannot start the engine: {0}")]
    Engine(#[from] EngineError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up authentication: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot create the data directory: {0}")]
    DataDir(std::io::Error),
    #[error("cannot start notifications: {0}")]
    Notify(navaro_notify::NotifyError),
    #[error("cannot start the plugins: {0}")]
    Plugins(navaro_plugins::PluginError),
    #[error("cannot set up the payment provider: {0}")]
    Payments(String),
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] navaro_cluster::ClusterError),
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: CappedListener,
    port: u16,
    router: Router,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
}

impl Application {
    /// Open the configured stores and build the server on them.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        // Before the stores open, so what they record at startup (the store's
        // `navaro_store_reachable`) is not lost to the no-op recorder.
        telemetry::install_metrics();
        let url = settings.database_url();
        if !settings.uses_postgres() {
            // The embedded SQLite file lives under the data directory.
            std::fs::create_dir_all(&settings.data_dir).map_err(StartupError::DataDir)?;
        }
        let cluster = if settings.cluster.enabled {
            Some(join_cluster(&settings).await?)
        } else {
            None
        };
        let opened = match &cluster {
            None => stores::open(url.expose(), store_options(&settings)).await,
            Some((node, _)) => {
                let fence = navaro_persistence::ClusterFence {
                    node_id: node.node_id().to_owned(),
                    gate: Arc::new(node.clone()),
                };
                navaro_persistence::open_clustered(
                    url.expose(),
                    store_options(&settings),
                    Some(fence),
                )
                .await
            }
        };
        let mut stores = match opened {
            Ok(stores) => stores,
            Err(e) => {
                if let Some((node, _)) = &cluster {
                    node.leave().await;
                }
                return Err(e.into());
            }
        };
        let notify = if settings.notify.enabled {
            let notify = crate::notify::start(&settings, url.expose(), stores.journal.clone())
                .await
                .map_err(StartupError::Notify)?;
            stores.journal = Arc::new(crate::notify::Tapped {
                inner: stores.journal.clone(),
                notify: notify.clone(),
            });
            Some(notify)
        } else {
            None
        };
        let plugins = if settings.plugins.enabled {
            let plugins = crate::plugins::start(&settings, url.expose(), stores.journal.clone())
                .await
                .map_err(StartupError::Plugins)?;
            stores.journal = Arc::new(crate::plugins::Tapped {
                inner: stores.journal.clone(),
                plugins: plugins.clone(),
            });
            Some(plugins)
        } else {
            None
        };
        if let Some((node, _)) = &cluster {
            // Outermost: an event is published once its append answered `Ok`.
            stores.journal = Arc::new(crate::relay::Published {
                inner: stores.journal.clone(),
                bus: node.bus.clone(),
            });
        }
        Self::build_on(settings, stores, notify, plugins, cluster).await
    }

    /// Build the server on given stores (tests, `navaro demo`).
    /// Notifications need the SQL stores' database and are off here.
    pub async fn build_with_stores(
        settings: Settings,
        stores: Stores,
    ) -> Result<Application, StartupError> {
        Self::build_on(settings, stores, None, None, None).await
    }

    async fn build_on(
        settings: Settings,
        stores: Stores,
        notify: Option<navaro_notify::Notify>,
        plugins: Option<navaro_plugins::Plugins>,
        cluster: Option<(navaro_cluster::Cluster, navaro_cluster::InternalServer)>,
    ) -> Result<Application, StartupError> {
        telemetry::install_metrics();
        let stores = Stores {
            accounts: Arc::new(stores::RoleCache::new(
                stores.accounts,
                stores::ROLE_TTL,
                stores::ROLE_STALE_IF_ERROR,
                stores::ROLE_CACHE_ENTRIES,
            )),
            ..stores
        };
        let disabled = stores
            .directory
            .disabled_users()
            .await
            .map_err(StartupError::Stores)?;
        let disabled = crate::routes::admin::DisabledUsers::new(disabled);
        let engine_settings = engine_config(&settings);
        let relay = cluster.as_ref().map(|(c, _)| {
            Arc::new(crate::relay::Relay::new(
                c.bus.clone(),
                stores.journal.clone(),
                engine_settings.live_channel_capacity,
            ))
        });
        let engine = match settings.engine.dev_clock_offset_seconds {
            0 => Engine::start(stores.journal.clone(), engine_settings).await?,
            offset => {
                let clock = Arc::new(OffsetClock(offset));
                Engine::start_with_clock(stores.journal.clone(), clock, engine_settings).await?
            }
        };
        let addr = settings.http.listen;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let local = tcp.local_addr()?;
        let listener = CappedListener::new(tcp, settings.http.max_connections);
        let limits = Arc::new(Limiters::new(&settings.limits));
        limits.spawn_sweeper();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let sessions = Arc::new(Sessions::new(
            stores.sessions.clone(),
            settings.auth.refresh_ttl_days,
        ));
        sessions.spawn_sweeper();
        let payments = payment_service(&settings, &engine)?;
        if let Some(service) = &payments {
            let every = Duration::from_millis(settings.payments.sweep_interval_ms);
            service.clone().spawn_sweeper(every, shutdown_rx.clone());
        }
        let state = AppState::new(Shared {
            tokens: Arc::new(TokenKeys::from_settings(&settings)),
            passwords: Arc::new(Passwords::new()?),
            settings: Arc::new(settings),
            engine,
            stores,
            limits,
            shutdown: shutdown_rx,
            live: Arc::new(LiveRegistry::default()),
            notify,
            plugins,
            disabled,
            cluster: cluster.as_ref().map(|(c, _)| c.clone()),
            relay,
            handoff: Arc::default(),
            zones: Arc::default(),
            sessions,
            payments,
        });
        if let Some((c, _)) = &cluster {
            state.sessions.announcer.set(c.bus.clone());
            crate::invalidate::spawn_listener(state.clone());
        }
        let router = router(state.clone());
        if let Some((_, internal)) = cluster {
            // Forwarded requests go through the same router (and its layers) as any.
            internal.spawn(crate::cluster::handler(router.clone()));
        }
        tracing::info!(addr = %local, "listening");
        Ok(Application {
            listener,
            port: local.port(),
            router,
            state,
            shutdown_tx,
        })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (for `navaro demo`, which loads data through the engine).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until SIGTERM or ctrl-c, then shut down gracefully.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serve until `stop` resolves, then shut down gracefully.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Application {
            listener,
            router,
            state,
            shutdown_tx,
            ..
        } = self;
        let grace = Duration::from_millis(state.settings.http.shutdown_grace_ms);
        let mut stopping = shutdown_tx.subscribe();
        let http = &state.settings.http;
        let timeouts = ConnectionTimeouts {
            header_read: Duration::from_millis(http.header_read_timeout_ms),
            keep_alive_idle: Duration::from_millis(http.keep_alive_idle_ms),
        };
        let serve = connections::serve(listener, router, timeouts, async move {
            stop.await;
            tracing::info!("shutting down: no new connections, closing live feeds");
            let _ = shutdown_tx.send(true);
        });
        let grace_expired = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        let serving = async move {
            tokio::select! {
                () = serve => {}
                () = grace_expired => tracing::warn!("grace period over; dropping in-flight requests"),
            }
        };
        // A cluster node hands its establishments over while its listeners drain: the
        // requests held for a moving establishment are then routed to its new owner.
        let mut leaving = state.shutdown.clone();
        let handoff = async {
            if state.cluster.is_some() {
                let _ = leaving.wait_for(|s| *s).await;
                crate::handoff::hand_off_all(&state).await;
            }
        };
        tokio::join!(serving, handoff);
        state.live.drain(LIVE_DRAIN_GRACE).await;
        state.engine.shutdown().await;
        if let Some(notify) = &state.notify {
            notify.stop();
        }
        if let Some(plugins) = &state.plugins {
            plugins.stop();
        }
        if let Some(cluster) = &state.cluster {
            // After the engine flushed and snapshotted everything: the establishments
            // are released and the next request for each is served by another node.
            cluster.leave().await;
            // Answer `x-navaro-not-owner` to what other nodes still forward here until
            // they have all read that this node left (they read the members every third
            // of the TTL, and at once on such an answer).
            tokio::time::sleep(cluster.config.lease_ttl / 3 + navaro_cluster::forward::LEFT_GRACE)
                .await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Bind the internal listener, then join the cluster (refusing to start when Redis
/// cannot be reached or the node id is live already).
async fn join_cluster(
    settings: &Settings,
) -> Result<(navaro_cluster::Cluster, navaro_cluster::InternalServer), StartupError> {
    let c = &settings.cluster;
    let internal = navaro_cluster::InternalServer::bind(c.internal_listen).await?;
    let bound = internal.local_addr()?;
    let config = navaro_cluster::ClusterConfig {
        node_id: c.node_id.clone(),
        advertise: c.advertise.clone().unwrap_or_else(|| bound.to_string()),
        redis_url: c
            .redis_url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .unwrap_or_default(),
        prefix: c.redis_prefix.clone(),
        lease_ttl: Duration::from_millis(c.lease_ttl_ms),
        lease_margin: Duration::from_millis(c.lease_margin_ms),
        forward_timeout: Duration::from_millis(c.forward_timeout_ms),
    };
    let cluster = navaro_cluster::Cluster::join(config).await?;
    tracing::info!(node = %c.node_id, internal = %bound, "cluster node listening");
    Ok((cluster, internal))
}

/// The system clock shifted by `engine.dev_clock_offset_seconds` (dev mode only).
struct OffsetClock(i64);

impl navaro_engine::Clock for OffsetClock {
    fn now(&self) -> jiff::Timestamp {
        let now = jiff::Timestamp::now();
        jiff::Timestamp::from_second(now.as_second() + self.0).unwrap_or(now)
    }
}

/// The payment provider the settings name, with its bookkeeping (`None`: no provider).
fn payment_service(
    settings: &Settings,
    engine: &Engine,
) -> Result<Option<Arc<crate::payments::PaymentService>>, StartupError> {
    use navaro_config::PaymentProviderKind;
    match settings.payments.provider {
        PaymentProviderKind::None => Ok(None),
        PaymentProviderKind::Stripe => {
            let s = &settings.payments.stripe;
            let key = s.api_key.as_ref().map(|k| k.expose()).unwrap_or_default();
            let stripe = navaro_payments::stripe::Stripe::new(
                &s.base_url,
                key,
                Duration::from_millis(s.timeout_ms),
            )
            .map_err(|e| StartupError::Payments(e.to_string()))?;
            let mut service =
                crate::payments::PaymentService::new(engine.clone(), Arc::new(stripe));
            // An attempt in flight longer than one provider call can take has ended,
            // one way or the other: its charge, if any, is then looked up at the provider.
            service.fee_lease_seconds = u32::try_from(s.timeout_ms / 1000 + 5).unwrap_or(u32::MAX);
            service.abort_after_fee_charge = settings.payments.dev_abort_after_fee_charge;
            Ok(Some(Arc::new(service)))
        }
    }
}

/// The engine's configuration: its defaults, overridden by what the settings name.
fn engine_config(settings: &Settings) -> EngineConfig {
    let mut config = EngineConfig::default();
    let s = &settings.engine;
    if let Some(n) = s.max_in_flight_per_establishment {
        config.max_in_flight_per_establishment = n;
    }
    if let Some(secs) = s.idle_timeout_seconds {
        config.idle_timeout = Duration::from_secs(secs);
    }
    if let Some(n) = s.live_channel_capacity {
        config.live_channel_capacity = n;
    }
    if let Some(n) = s.max_resume_events {
        config.max_resume_events = n;
    }
    if let Some(ms) = s.max_journal_lag_ms {
        config.max_journal_lag = Duration::from_millis(ms);
    }
    if let Some(days) = s.history_days {
        config.history_days = days;
    }
    config
}

/// The stores' options: their defaults, overridden by what the settings name.
fn store_options(settings: &Settings) -> StoreOptions {
    let mut options = StoreOptions::default();
    let s = &settings.store;
    if let Some(n) = s.max_connections {
        options.max_connections = n;
    }
    if let Some(ms) = s.acquire_timeout_ms {
        options.acquire_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = s.call_timeout_ms {
        options.call_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = s.probe_every_ms {
        options.probe_every = Duration::from_millis(ms);
    }
    if let Some(n) = s.writers {
        options.writer_shards = n;
    }
    if let Some(n) = s.group_max_events {
        options.group_max_events = n;
    }
    if let Some(ms) = s.group_max_wait_ms {
        options.group_max_wait = Duration::from_millis(ms);
    }
    options
}

/// SIGTERM (orchestrators) or ctrl-c (a terminal).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The whole HTTP surface with its layers, outermost last: request id, trace span, the
/// body guard (413 at once over the declared limit, 408 for a slow body), content
/// negotiation and error shape, panic catcher, timeout, body limit, then the
/// routes (API routes also pass the admission limit, then the per-IP rate limit). Negotiation (it reads bodies)
/// and the per-IP limit are axum `from_fn` middlewares; the others are tower layers.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    let limit = Duration::from_millis(state.settings.http.request_timeout_ms);
    let api = routes::api()
        .layer(from_fn_with_state(state.clone(), crate::cluster::route))
        .layer(from_fn_with_state(state.clone(), limits::per_ip))
        .layer(layers::Admission::new(state.settings.http.max_in_flight));
    Router::new()
        .merge(api)
        .merge(routes::ops::routes())
        .merge(crate::pro::routes())
        .route_layer(telemetry::Track)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(layers::Timeout { limit })
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state(state.clone(), wire::negotiate))
        .layer(layers::BodyGuard {
            limit_bytes: body_limit,
            read_timeout: Duration::from_millis(state.settings.http.body_read_timeout_ms),
        })
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(layers::X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(layers::RequestId)
        .with_state(state)
}
