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
use api::http::RateLimits;
use api::{AppState, HttpConfig, build_app};

/// A built `agentry serve`: the platform connected, its background loops running, the port bound.
pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
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
        let mut platform = Platform::connect(&settings).await?;
        platform.start_background(background_projectors());
        let identity = identity_service(&platform, &settings).await?;
        let state = AppState {
            identity: Arc::new(identity),
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
                trusted_proxy_header,
            }),
            metrics: telemetry::metrics_handle(),
        };
        let acceptor = TcpListener::bind(settings.http.listen)
            .into_acceptor()
            .await
            .map_err(|source| StartupError::Bind {
                address: settings.http.listen.to_string(),
                source,
            })?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|address| address.as_socket_addr().map(|socket| socket.port()))
            .unwrap_or(settings.http.listen.port());
        Ok(Self {
            acceptor,
            port,
            platform,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `stop` resolves, lets requests in flight finish (up to 10 s), then stops
    /// the background loops.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(port = self.port, "agentry serving");
        let app = build_app(self.state);
        let served = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(app, stop, Some(Duration::from_secs(10)))
            .await;
        self.platform.stop().await;
        served
    }
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

/// The read models every node keeps up to date.
pub fn background_projectors() -> Vec<Arc<dyn projections::Projector>> {
    vec![Arc::new(projections::IdentityProjector)]
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
