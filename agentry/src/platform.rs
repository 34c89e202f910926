//! The parts every `agentry` command stands on, and the background loops.

use std::sync::Arc;
use std::time::Duration;

use eventstore::log::FollowerProgress;
use eventstore::relay::{LocalBus, NatsBus};
use eventstore::{EventBus, EventStore, Relay, database};
use projections::{ProjectionRunner, Projector};
use sqlx::PgPool;
use thiserror::Error;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::embedded_postgres::{EmbeddedPostgres, EmbeddedPostgresError, default_data_dir};
use crate::settings::Settings;

/// Why the process could not start; each renders as one line an operator can act on.
#[derive(Debug, Error)]
pub enum PlatformError {
    /// No database is configured, none answers at the default address, and none can be started.
    #[error(
        "no database: DATABASE_URL is unset, nothing answers at the default address, and a private cluster cannot be started ({0}); set DATABASE_URL or install PostgreSQL (apt-get install postgresql)"
    )]
    NoDatabase(EmbeddedPostgresError),
    /// The private cluster failed to start.
    #[error("private PostgreSQL: {0}")]
    Embedded(#[from] EmbeddedPostgresError),
    /// The database could not be reached or created.
    #[error(
        "cannot use the database at {address}: {source}; check that PostgreSQL runs there, or set DATABASE_URL"
    )]
    Unreachable {
        /// Host, port and database name (never the password).
        address: String,
        /// What the driver said.
        source: sqlx::Error,
    },
    /// A database operation failed after connecting.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be migrated.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// NATS could not be configured.
    #[error("NATS: {0}")]
    Nats(#[from] eventstore::relay::BusError),
}

/// The database, the event store and the bus, plus the background tasks running over them.
pub struct Platform {
    /// The event-store database.
    pub pool: PgPool,
    /// Appends and loads events.
    pub store: EventStore,
    /// Carries committed events (NATS or in-process).
    pub bus: EventBus,
    /// Cancelled on shutdown; every background loop watches it.
    pub shutdown: CancellationToken,
    tasks: JoinSet<()>,
    embedded: Option<EmbeddedPostgres>,
    /// The process's one listener for the projectors' progress, started on first use.
    progress: std::sync::OnceLock<FollowerProgress>,
}

impl Platform {
    /// Resolves and prepares the database (created if missing, migrated), and connects the bus.
    pub async fn connect(settings: &Settings) -> Result<Self, PlatformError> {
        let (url, embedded) = resolve_database(settings).await?;
        let unreachable = |source| PlatformError::Unreachable {
            address: describe(&url),
            source,
        };
        database::create_if_missing(&url).await.map_err(unreachable)?;
        let pool = database::connect(&url, settings.database.db_max_connections)
            .await
            .map_err(unreachable)?;
        database::MIGRATOR.run(&pool).await?;
        let bus = match &settings.bus.nats_url {
            Some(url) => EventBus::from(NatsBus::connect(url).await?),
            None => EventBus::Local(LocalBus::default()),
        };
        let store = EventStore::new(pool.clone(), domain::upcasting::upcasters());
        Ok(Self {
            pool,
            store,
            bus,
            shutdown: CancellationToken::new(),
            tasks: JoinSet::new(),
            embedded,
            progress: std::sync::OnceLock::new(),
        })
    }

    /// Where each projector stands, for reads that must see a write of a moment ago: the
    /// process's one `LISTEN` connection, started on first use and stopped with the platform.
    pub fn progress(&self) -> FollowerProgress {
        self.progress
            .get_or_init(|| FollowerProgress::start(self.pool.clone(), self.shutdown.clone()))
            .clone()
    }

    /// Starts the relay, one runner per projector, and the watchers of the log gate and of the
    /// followers' stall ages. With NATS several processes run this: each follower (the relay,
    /// every projector) works on one process at a time, the holder of its lease; the others
    /// stand by and take over within seconds when the holder stops renewing.
    pub fn start_background(&mut self, projectors: Vec<Arc<dyn Projector>>) {
        let relay = Relay::new(&self.store, self.bus.clone());
        let mut followers = vec![relay.name().to_owned()];
        self.tasks.spawn(relay.run(self.shutdown.clone()));
        self.tasks.spawn(eventstore::log::watch_gate(
            self.pool.clone(),
            self.shutdown.clone(),
        ));
        followers.extend(self.start_projectors(projectors));
        self.tasks.spawn(eventstore::log::watch_stalls(
            self.pool.clone(),
            followers,
            self.shutdown.clone(),
        ));
    }

    /// Starts one runner per projector, without the relay (`agentry admin create` keeps the
    /// read models current while it waits for them, and publishes nothing). Returns their names.
    pub fn start_projectors(&mut self, projectors: Vec<Arc<dyn Projector>>) -> Vec<String> {
        let mut names = Vec::with_capacity(projectors.len());
        for projector in projectors {
            names.push(projector.name().to_owned());
            let runner = ProjectionRunner::new(&self.store, projector).with_progress(self.progress());
            self.tasks.spawn(runner.run(self.shutdown.clone()));
        }
        names
    }

    /// Runs `task` in the background until shutdown (it must watch [`Self::shutdown`]).
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Stops the background loops (waiting up to 10 s for them), then a private cluster.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("background tasks did not stop within 10 s");
        }
        self.pool.close().await;
        if let Some(embedded) = self.embedded.take()
            && let Err(error) = embedded.stop().await
        {
            tracing::warn!(%error, "private PostgreSQL did not stop cleanly");
        }
    }
}

/// `DATABASE_URL` when set; else the default address when something answers there; else a
/// private cluster under the data directory.
async fn resolve_database(settings: &Settings) -> Result<(String, Option<EmbeddedPostgres>), PlatformError> {
    if let Some(url) = &settings.database.database_url {
        return Ok((url.clone(), None));
    }
    let default = &settings.database.default_database_url;
    if answers(default).await {
        return Ok((default.clone(), None));
    }
    if EmbeddedPostgres::find_binaries().is_none() {
        return Err(PlatformError::NoDatabase(EmbeddedPostgresError::NotInstalled {
            hint: "PostgreSQL's server programs are not installed".to_owned(),
        }));
    }
    let data_dir = settings
        .database
        .data_dir
        .clone()
        .unwrap_or_else(default_data_dir)
        .join("postgres");
    let embedded = EmbeddedPostgres::start(&data_dir, settings.database.private_postgres_port).await?;
    tracing::info!(
        data_dir = %embedded.data_dir().display(),
        port = embedded.port(),
        "DATABASE_URL is unset and nothing answers at the default address: running a private PostgreSQL cluster"
    );
    Ok((embedded.url("agentry"), Some(embedded)))
}

/// `host:port/database` of a URL, for messages: never the user or password.
fn describe(url: &str) -> String {
    match url.parse::<sqlx::postgres::PgConnectOptions>() {
        Ok(options) => format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("postgres")
        ),
        Err(_) => "an unparsable DATABASE_URL".to_owned(),
    }
}

/// Whether something accepts TCP connections at the URL's host and port.
async fn answers(url: &str) -> bool {
    let Ok(options) = url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return false;
    };
    let connect = tokio::net::TcpStream::connect((options.get_host().to_owned(), options.get_port()));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}
