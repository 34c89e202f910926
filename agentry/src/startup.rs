//! Building the HTTP application on a bound port and serving it until stopped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poem::Server;
use poem::http::HeaderName;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};

use crate::identity_setup::identity_service;
use crate::platform::{Platform, PlatformError};
use crate::settings::Settings;
use crate::telemetry;
use crate::tools_setup::tool_service;
use api::http::{BrowserOrigins, NoDelayAcceptor, OrgRateLimits, ProblemAcceptor, RateLimits};
use api::streaming::StreamWatch;
use api::{AppState, HttpConfig, build_app, metrics_app};
use tokio_util::sync::CancellationToken;

/// A built `agentry serve`: the platform connected, its background loops running, the port bound.
pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    metrics: Option<(TcpAcceptor, u16)>,
    platform: Platform,
    state: AppState,
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database, the private cluster or NATS.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address from `AGENTRY_LISTEN`.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Application {
    /// Connects the platform, starts the background loops and binds the listen address
    /// (port 0 picks a free port: tests run the real server this way).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let trusted_proxy_header = trusted_proxy_header(&settings)?;
        let browser_origins = browser_origins(&settings)?;
        let mut platform = Platform::connect(&settings).await?;
        platform.start_background(background_projectors());
        let identity = identity_service(&platform, &settings).await?;
        let tools = Arc::new(tool_service(&platform, &settings).await?);
        let billing = Arc::new(crate::billing_setup::billing_service(&platform, &settings));
        let runs = crate::runs_setup::start_runs(
            &mut platform,
            &settings,
            Arc::clone(&tools),
            Arc::clone(&billing),
            true,
        )
        .await?;
        let identity = Arc::new(identity);
        let stopping = CancellationToken::new();
        let state = AppState {
            quotas: Arc::clone(runs.service.quotas()),
            org_rate_limits: Arc::new(OrgRateLimits::new(Arc::clone(runs.service.quotas()))),
            runs: runs.service,
            streams: runs.streams,
            stream_watch: StreamWatch::start(settings.http.streams, Arc::clone(&identity), stopping.clone()),
            stopping,
            agents: Arc::new(
                commands::agents::AgentService::new(&platform.store)
                    .with_models(crate::runs_setup::model_catalog(&settings)),
            ),
            tools,
            billing,
            identity,
            rate_limits: Arc::new(RateLimits::new(
                settings.http.rate_limit_per_minute,
                settings.http.rate_limit_burst,
            )),
            auth_rate_limits: Arc::new(RateLimits::new(
                settings.sign_in_limits.auth_rate_limit_per_minute,
                settings.sign_in_limits.auth_rate_limit_burst,
            )),
            pool: platform.pool.clone(),
            store: platform.store.clone(),
            bus: platform.bus.clone(),
            config: Arc::new(HttpConfig {
                max_body_bytes: settings.http.max_body_bytes,
                follower_stall_seconds: settings.operations.follower_stall_seconds,
                metrics_on_api_port: settings.http.metrics_listen.is_none(),
                trusted_proxy_header,
                browser_origins,
                streams: settings.http.streams,
            }),
            metrics: telemetry::metrics_handle(),
        };
        let (acceptor, port) = bind(settings.http.listen).await?;
        let metrics = match settings.http.metrics_listen {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        Ok(Self {
            acceptor,
            port,
            metrics,
            platform,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on when `AGENTRY_METRICS_LISTEN` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(_, port)| *port)
    }

    /// Serves until `stop` resolves, lets requests in flight finish (up to 10 s), then stops
    /// the background loops.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(port = self.port, "agentry serving");
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let streams_stopping = self.state.stopping.clone();
        tokio::spawn(async move {
            stop.await;
            // Open streams end now (telling clients where to resume) instead of holding the drain.
            streams_stopping.cancel();
            let _ = stopping.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let metrics_server = self.metrics.map(|(acceptor, port)| {
            tracing::info!(port, "metrics serving");
            let app = metrics_app(self.state.clone());
            let acceptor = ProblemAcceptor::new(acceptor);
            tokio::spawn(Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                app,
                until_stopped(),
                Some(Duration::from_secs(1)),
            ))
        });
        let app = build_app(self.state);
        let acceptor = ProblemAcceptor::new(NoDelayAcceptor::new(self.acceptor));
        let served = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, until_stopped(), Some(Duration::from_secs(10)))
            .await;
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        self.platform.stop().await;
        served
    }
}

/// Binds `address` (port 0 picks a free port) and tells the port bound.
async fn bind(address: std::net::SocketAddr) -> Result<(TcpAcceptor, u16), StartupError> {
    let acceptor = TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|bound| bound.as_socket_addr().map(|socket| socket.port()))
        .unwrap_or(address.port());
    Ok((acceptor, port))
}

/// `AGENTRY_TRUSTED_PROXY_HEADER` as a header name; a name no header can have is refused at start.
fn trusted_proxy_header(settings: &Settings) -> Result<Option<HeaderName>, StartupError> {
    settings
        .sign_in_limits
        .trusted_proxy_header
        .as_deref()
        .map(|name| {
            HeaderName::try_from(name.trim()).map_err(|error| {
                PlatformError::Config(format!("invalid AGENTRY_TRUSTED_PROXY_HEADER {name:?}: {error}"))
            })
        })
        .transpose()
        .map_err(StartupError::from)
}

/// `AGENTRY_CORS_ORIGINS`, checked at start: an entry no browser could send is refused (it would
/// only ever block the frontend it was meant for), and `*` is logged as the development setting
/// it is.
fn browser_origins(settings: &Settings) -> Result<BrowserOrigins, StartupError> {
    let origins = BrowserOrigins::parse(settings.http.cors_origins.as_deref())
        .map_err(|error| PlatformError::Config(error.to_string()))?;
    match &origins {
        BrowserOrigins::None => {}
        BrowserOrigins::Any => tracing::warn!(
            "AGENTRY_CORS_ORIGINS=*: pages on every website may call this API from a browser; for development only"
        ),
        BrowserOrigins::Listed(listed) => {
            tracing::info!(origins = %listed.join(","), "browser origins allowed (CORS)");
        }
    }
    Ok(origins)
}

/// The read models every node keeps up to date, and the audit log's sealer.
pub fn background_projectors() -> Vec<Arc<dyn projections::Projector>> {
    vec![
        Arc::new(projections::IdentityProjector),
        Arc::new(projections::AuditProjector),
        Arc::new(projections::ConversationsProjector),
        Arc::new(projections::RunHistoryProjector),
        Arc::new(projections::UsageProjector),
    ]
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}
