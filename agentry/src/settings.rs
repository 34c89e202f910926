//! Typed configuration from the command line and the contract's environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use commands::identity::{
    DEFAULT_HASH_WAIT, DEFAULT_REFRESH_GRACE, DEFAULT_VIEW_WAIT, KeyPrefixSource, LoginLimits,
};
use secrecy::SecretString;

/// The address used when `DATABASE_URL` is unset, before falling back to a private cluster.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/agentry";

/// `agentry`: an event-sourced backend for AI-agent SaaS.
#[derive(Debug, Parser)]
#[command(
    name = "agentry",
    version,
    about = "Agentry: an event-sourced backend for AI-agent SaaS",
    long_about = None
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Settings shared by every command.
    #[command(flatten)]
    pub settings: Settings,
}

/// The process's modes, as the contract names them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP API, event relay, projectors and an embedded worker in one process.
    Serve,
    /// Only the background side (relay standby, projectors); add more for scale.
    Worker,
    /// Apply the migrations and exit.
    Migrate,
    /// Platform administration from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Maintenance of the event store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

/// `agentry projections …`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild one read model from the event log beside the live one, while the API keeps
    /// answering from the live one, then switch to it atomically: `conversations`,
    /// `run_history` or `usage`.
    Rebuild {
        /// The read model (its projector's name).
        name: String,
    },
}

/// `agentry audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of every organization's audit log (docs/audit-chain.md): exit 0
    /// when every chain is intact, 1 with each broken chain's first broken link printed.
    Verify {
        /// Only this organization's chain.
        #[arg(long)]
        org: Option<uuid::Uuid>,
    },
}

/// `agentry store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// After restoring a logical dump (pg_dump/pg_restore), before starting any node: renumber
    /// the restored events' transaction ids, place the relay at the end of the restored log and
    /// rebuild the read models. Safe to run twice; refuses while nodes are running.
    Restored,
}

/// `agentry admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform administrator (or promote the existing user with that email).
    Create {
        /// The administrator's login email.
        #[arg(long)]
        email: String,
        /// Their password (same rule as for every account: at least 12 characters).
        #[arg(long)]
        password: String,
    },
}

/// Everything the process reads from its environment, grouped by concern. Passed down, never
/// global. Each value has its default in exactly one place: its `#[arg]` below.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// The event-store database, or the private cluster standing in for it.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The bus between nodes.
    #[command(flatten)]
    pub bus: BusSettings,
    /// The HTTP server.
    #[command(flatten)]
    pub http: HttpSettings,
    /// Sign-in, tokens and mail.
    #[command(flatten)]
    pub identity: IdentitySettings,
    /// Limits that keep sign-in from being abused (flooding, guessing).
    #[command(flatten)]
    pub sign_in_limits: SignInLimitSettings,
    /// Keys that protect secrets the service stores.
    #[command(flatten)]
    pub secrets: SecretsSettings,
    /// Logs and readiness.
    #[command(flatten)]
    pub operations: OperationsSettings,
    /// Agent runs: models, prices, concurrency.
    #[command(flatten)]
    pub runs: RunSettings,
    /// Credits and Stripe.
    #[command(flatten)]
    pub billing: BillingSettings,
}

/// Credits and Stripe.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Billing")]
pub struct BillingSettings {
    /// Whether runs are billed: each model call reserved before and charged after against the
    /// organization's credits, a run short of credits paused, and a run without credit refused
    /// (402). `false` for a deployment that does not sell; the ledger and its routes stay.
    #[arg(
        long,
        env = "AGENTRY_BILLING_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub billing_enabled: bool,
    /// Credits a new organization starts with (0: none). The default lets a newcomer's runs on
    /// the development model work (`echo` costs about a credit per call).
    #[arg(
        long,
        env = "AGENTRY_SIGNUP_CREDITS",
        default_value_t = commands::billing::DEFAULT_SIGNUP_CREDITS,
        global = true
    )]
    pub signup_credits: u64,
    /// Stripe's secret key (`sk_…`, never logged); unset: buying credits answers
    /// `stripe_not_configured`.
    #[arg(long, env = "STRIPE_SECRET_KEY", global = true, hide_env_values = true)]
    pub stripe_secret_key: Option<SecretString>,
    /// The webhook's signing secret (`whsec_…`, never logged); unset: the webhook answers
    /// `stripe_not_configured`.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", global = true, hide_env_values = true)]
    pub stripe_webhook_secret: Option<SecretString>,
    /// Stripe's API (tests point it at a local server).
    #[arg(
        long,
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com",
        global = true
    )]
    pub stripe_api_base: String,
    /// The price of a million credits, in the currency's smallest unit (100: USD 1.00).
    #[arg(
        long,
        env = "AGENTRY_CREDITS_PRICE_PER_MILLION",
        default_value_t = 100,
        global = true
    )]
    pub price_per_million_credits: u64,
    /// The currency purchases are charged in (ISO 4217, lowercase).
    #[arg(long, env = "AGENTRY_CREDITS_CURRENCY", default_value = "usd", global = true)]
    pub currency: String,
}

/// How agent runs are executed.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Runs")]
pub struct RunSettings {
    /// Runs one process executes at once; more wait in its queue.
    #[arg(
        long,
        env = "AGENTRY_MAX_CONCURRENT_RUNS",
        default_value_t = 64,
        global = true
    )]
    pub max_concurrent_runs: usize,
    /// Prices in credits per million tokens, over the defaults: a JSON object from model name
    /// (or `default`) to `{"prompt": n, "completion": n}`.
    #[arg(long, env = "AGENTRY_LLM_PRICES", global = true)]
    pub llm_prices: Option<String>,
    /// Any OpenAI-compatible endpoint (`https://api.openai.com/v1`, a local vLLM or Ollama…).
    /// Unset: only the built-in `echo` model is offered.
    #[arg(long, env = "AGENTRY_LLM_BASE_URL", global = true)]
    pub llm_base_url: Option<String>,
    /// The endpoint's API key (never logged).
    #[arg(long, env = "AGENTRY_LLM_API_KEY", global = true, hide_env_values = true)]
    pub llm_api_key: Option<SecretString>,
    /// Comma-separated model names agents may use with the endpoint; unset: any name.
    #[arg(long, env = "AGENTRY_LLM_MODELS", global = true, value_delimiter = ',')]
    pub llm_models: Option<Vec<String>>,
    /// Seconds a model call may take to its first chunk (per attempt).
    #[arg(
        long,
        env = "AGENTRY_LLM_TIMEOUT_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub llm_timeout_seconds: u64,
    /// Seconds a streaming answer may go without a chunk.
    #[arg(
        long,
        env = "AGENTRY_LLM_IDLE_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub llm_idle_timeout_seconds: u64,
    /// Retries of a model call on 429, 5xx and connection errors (before any text streamed).
    #[arg(long, env = "AGENTRY_LLM_MAX_RETRIES", default_value_t = 3, global = true)]
    pub llm_max_retries: u32,
    /// Lets tools call loopback, private and link-local addresses (development and tests).
    #[arg(
        long,
        env = "AGENTRY_TOOLS_ALLOW_PRIVATE_NETWORKS",
        default_value_t = false,
        global = true
    )]
    pub tools_allow_private_networks: bool,
    /// The largest tool answer accepted, in bytes; a larger one is a tool error.
    #[arg(long, env = "AGENTRY_TOOLS_MAX_RESPONSE_BYTES", default_value_t = 256 * 1024, global = true)]
    pub tools_max_response_bytes: usize,
    /// How far a stream's reader may fall behind before it is cut off, and the frames kept for
    /// readers joining mid-run. Not flags: the defaults in every real process; tests of the
    /// slow-reader rule shrink them.
    #[arg(skip)]
    pub stream_feed: streams::FeedLimits,
}

/// Where events are stored.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// The event store. Unset: postgres://postgres@127.0.0.1:5432/agentry, or a private
    /// cluster under the data directory when nothing answers there. Created if missing.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where to look for a database when DATABASE_URL is unset, before starting a private
    /// cluster. Hidden: it exists so tests can make "nothing answers there" true.
    #[arg(long, env = "AGENTRY_DEFAULT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide = true, global = true)]
    pub default_database_url: String,

    /// Where a private PostgreSQL cluster keeps its data when no database is configured.
    /// Unset: /var/lib/agentry when running as root, ./.agentry otherwise.
    #[arg(long, env = "AGENTRY_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Port of the private PostgreSQL cluster (never the packaged 5432).
    #[arg(
        long,
        env = "AGENTRY_PRIVATE_POSTGRES_PORT",
        default_value_t = 54329,
        global = true
    )]
    pub private_postgres_port: u16,

    /// Connections of this process's main database pool (a process also opens up to 7 more,
    /// for the small pools of its hottest statements and its progress listener).
    #[arg(long, env = "AGENTRY_DB_MAX_CONNECTIONS", default_value_t = 32, global = true)]
    pub db_max_connections: u32,
}

/// How committed events travel between nodes.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Bus")]
pub struct BusSettings {
    /// NATS with JetStream, carrying events between nodes. Unset: an in-process bus for one node.
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
}

/// The HTTP server and what every request is held to.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// HTTP address to listen on.
    #[arg(long, env = "AGENTRY_LISTEN", default_value = "127.0.0.1:8080", global = true)]
    pub listen: SocketAddr,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "AGENTRY_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,

    /// Requests per minute per API key and per user (token bucket, per node).
    #[arg(
        long,
        env = "AGENTRY_RATE_LIMIT_PER_MINUTE",
        default_value_t = 600,
        global = true
    )]
    pub rate_limit_per_minute: u32,

    /// Largest burst per API key and per user.
    #[arg(long, env = "AGENTRY_RATE_LIMIT_BURST", default_value_t = 100, global = true)]
    pub rate_limit_burst: u32,

    /// Serve `/metrics` on this address instead of the API's (so operators can keep it off
    /// the public port); unset: `/metrics` is on `AGENTRY_LISTEN`.
    #[arg(long, env = "AGENTRY_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,

    /// Web origins whose pages may call the API from a browser, comma-separated, each exactly
    /// as browsers send it (https://app.example.com, http://localhost:3000); `*` allows every
    /// origin, for development only. Unset: no CORS headers. A WebSocket upgrade from a page on
    /// an origin not allowed gets 403.
    #[arg(long, env = "AGENTRY_CORS_ORIGINS", global = true)]
    pub cors_origins: Option<String>,

    /// Heartbeats and standing checks of run streams. Not flags: the documented bounds in every
    /// real process; tests shorten them.
    #[arg(skip)]
    pub streams: api::streaming::StreamTimings,
}

/// Sign-in, tokens and the mail identity sends.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Identity")]
pub struct IdentitySettings {
    /// Access-token signing key. Unset: generated once and kept in the database.
    #[arg(long, env = "AGENTRY_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// SMTP server for password reset, email verification and invitation mail, e.g.
    /// smtp://127.0.0.1:25 or smtps://user:pass@host. Unset: reset and verification mail is
    /// logged, not sent, and invitations answer 503 `mail_unavailable`.
    #[arg(long, env = "AGENTRY_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// Sender of Agentry's mail.
    #[arg(
        long,
        env = "AGENTRY_MAIL_FROM",
        default_value = "Agentry <no-reply@agentry.invalid>",
        global = true
    )]
    pub mail_from: String,

    /// Base URL of links in mail (password reset, email verification, invitations).
    #[arg(
        long,
        env = "AGENTRY_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub public_url: String,

    /// Seconds an invitation to join an organization stays valid (default 7 days).
    #[arg(
        long,
        env = "AGENTRY_INVITATION_TTL_SECONDS",
        default_value_t = 7 * 24 * 3600,
        global = true
    )]
    pub invitation_ttl_seconds: u32,

    /// Seconds an email verification link stays valid (default 7 days).
    #[arg(
        long,
        env = "AGENTRY_EMAIL_VERIFICATION_TTL_SECONDS",
        default_value_t = 7 * 24 * 3600,
        global = true
    )]
    pub email_verification_ttl_seconds: u32,

    /// How long an identity write (revocation, removal, suspension…) waits, in milliseconds, for
    /// the read model that authentication uses; past it the answer is 503 `not_yet_effective`
    /// (the write is recorded) rather than a success that has not taken effect.
    #[arg(
        long,
        env = "AGENTRY_VIEW_WAIT_MS",
        default_value_t = DEFAULT_VIEW_WAIT.as_millis() as u64,
        global = true
    )]
    pub view_wait_ms: u64,

    /// Milliseconds after a refresh during which the spent refresh token returns the same new
    /// pair again (a client refreshing twice at once is not logged out); after it, presenting
    /// a spent token revokes the session as theft.
    #[arg(
        long,
        env = "AGENTRY_REFRESH_GRACE_MS",
        default_value_t = DEFAULT_REFRESH_GRACE.as_millis() as u64,
        global = true
    )]
    pub refresh_grace_ms: u64,

    /// Where new API key prefixes come from. Not a flag: random in every real process; tests
    /// replace it to make two keys draw the same prefix.
    #[arg(skip)]
    pub key_prefixes: KeyPrefixSource,
}

/// Keys that protect secrets the service must read back (tool signing secrets).
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Secrets")]
pub struct SecretsSettings {
    /// Key sealing tool secrets inside events (AES-256-GCM): base64 of 32 bytes, e.g. from
    /// `openssl rand -base64 32`. Unset: generated once and kept in the database. Every node
    /// must have the same; secrets sealed under another key cannot be opened.
    #[arg(long, env = "AGENTRY_SECRETS_KEY", global = true, hide_env_values = true)]
    pub secrets_key: Option<SecretString>,
    /// Keys being rotated out, comma-separated (base64 of 32 bytes each): what they sealed
    /// still opens; nothing new is sealed under them. The key generated into the database
    /// counts as one once `AGENTRY_SECRETS_KEY` is set.
    #[arg(
        long,
        env = "AGENTRY_SECRETS_PREVIOUS_KEYS",
        global = true,
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secrets_previous_keys: Vec<SecretString>,
}

/// What keeps the unauthenticated sign-in routes from being used to exhaust the service or to
/// guess passwords (issue 11).
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Sign-in limits")]
pub struct SignInLimitSettings {
    /// Requests to /v1/auth/* per client address per minute (token bucket, per node); over it
    /// 429 `auth_rate_limited` with Retry-After. A person signing in never meets it.
    #[arg(
        long,
        env = "AGENTRY_AUTH_RATE_LIMIT_PER_MINUTE",
        default_value_t = 60,
        global = true
    )]
    pub auth_rate_limit_per_minute: u32,

    /// Largest burst of /v1/auth/* requests per client address.
    #[arg(
        long,
        env = "AGENTRY_AUTH_RATE_LIMIT_BURST",
        default_value_t = 30,
        global = true
    )]
    pub auth_rate_limit_burst: u32,

    /// A header set by the reverse proxy in front of Agentry naming the client's address, e.g.
    /// X-Forwarded-For (its last entry, the one the proxy saw, counts). Unset: the TCP peer's
    /// address is the client's. Set it only behind a proxy that sets the header, or clients
    /// choose their own address.
    #[arg(long, env = "AGENTRY_TRUSTED_PROXY_HEADER", global = true)]
    pub trusted_proxy_header: Option<String>,

    /// Password hashes computed at once; memory held by hashing is at most this × 19 MiB.
    /// Unset: one per core.
    #[arg(long, env = "AGENTRY_PASSWORD_HASH_CONCURRENCY", global = true)]
    pub password_hash_concurrency: Option<usize>,

    /// Requests that may wait for a hash; one more is answered 503 `auth_busy` at once.
    /// Unset: eight per hash computed at once.
    #[arg(long, env = "AGENTRY_PASSWORD_HASH_QUEUE", global = true)]
    pub password_hash_queue: Option<usize>,

    /// Milliseconds a request waits for a hash before it is answered 503 `auth_busy`.
    #[arg(
        long,
        env = "AGENTRY_PASSWORD_HASH_WAIT_MS",
        default_value_t = DEFAULT_HASH_WAIT.as_millis() as u64,
        global = true
    )]
    pub password_hash_wait_ms: u64,

    /// Failed logins of one account from one address, within the failure window, that lock
    /// that account for that address (429 `too_many_attempts`, even with the right password).
    #[arg(
        long,
        env = "AGENTRY_LOGIN_MAX_FAILURES",
        default_value_t = LoginLimits::default().max_failures,
        global = true
    )]
    pub login_max_failures: u32,

    /// Seconds failed logins are remembered towards a lock.
    #[arg(
        long,
        env = "AGENTRY_LOGIN_FAILURE_WINDOW_SECONDS",
        default_value_t = LoginLimits::default().window.num_seconds() as u32,
        global = true
    )]
    pub login_failure_window_seconds: u32,

    /// Seconds of the first lock; each further lock of the same account and address doubles.
    #[arg(
        long,
        env = "AGENTRY_LOGIN_LOCK_SECONDS",
        default_value_t = LoginLimits::default().first_lock.num_seconds() as u32,
        global = true
    )]
    pub login_lock_seconds: u32,

    /// The longest lock, in seconds.
    #[arg(
        long,
        env = "AGENTRY_LOGIN_MAX_LOCK_SECONDS",
        default_value_t = LoginLimits::default().max_lock.num_seconds() as u32,
        global = true
    )]
    pub login_max_lock_seconds: u32,

    /// Failed logins of one account within an hour, from all addresses together, past which
    /// addresses that have not logged in to it in the last 30 days are refused until the hour ends.
    #[arg(
        long,
        env = "AGENTRY_LOGIN_ACCOUNT_FAILURES_PER_HOUR",
        default_value_t = LoginLimits::default().account_failures_per_hour,
        global = true
    )]
    pub login_account_failures_per_hour: u32,
}

/// Logs and readiness.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Operations")]
pub struct OperationsSettings {
    /// Log filter (tracing's EnvFilter syntax); logs are JSON lines on stdout.
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Seconds a log follower (the relay, a projector) may leave a committed event undelivered
    /// before `/readyz` reports it stalled (503 naming it).
    #[arg(
        long,
        env = "AGENTRY_FOLLOWER_STALL_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub follower_stall_seconds: u64,
}

/// The settings alone, for [`Settings::defaults`].
#[derive(Parser)]
#[command(name = "agentry")]
struct SettingsOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// Every default, as `agentry` would use them with no flag and no environment variable
    /// (the environment is ignored here, so a developer's shell cannot change a test).
    pub fn defaults() -> Self {
        let command = SettingsOnly::command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command.get_matches_from(["agentry"]);
        match SettingsOnly::from_arg_matches(&matches) {
            Ok(only) => only.settings,
            Err(error) => panic!("the settings' own defaults do not parse: {error}"),
        }
    }

    /// Settings for tests: the defaults with the given database, an ephemeral port, small
    /// bodies and pools, rate limits no test meets unless it sets its own, and quiet logs.
    pub fn for_tests(database_url: String) -> Self {
        let mut settings = Self::defaults();
        settings.database.database_url = Some(database_url);
        settings.database.db_max_connections = 8;
        settings.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.http.max_body_bytes = 64 * 1024;
        settings.http.rate_limit_per_minute = 6_000;
        settings.http.rate_limit_burst = 1_000;
        // Every test talks from 127.0.0.1; a test of these limits sets its own.
        settings.sign_in_limits.auth_rate_limit_per_minute = 60_000;
        settings.sign_in_limits.auth_rate_limit_burst = 10_000;
        // Many test processes share two cores, so a hash can take a while: wait for it rather
        // than answer busy, unless a test sets its own bound.
        settings.sign_in_limits.password_hash_queue = Some(10_000);
        settings.sign_in_limits.password_hash_wait_ms = 60_000;
        // Longer than a node's default: many test applications share two cores and one
        // cluster-wide gate, and a test that needs a stalled view sets its own.
        settings.identity.view_wait_ms = 15_000;
        settings.operations.log_filter = "warn".to_owned();
        // Never Stripe's real API from a test: a test of checkout sets its own local server.
        settings.billing.stripe_api_base = "http://127.0.0.1:9".to_owned();
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let settings = Settings::defaults();
        assert_eq!(settings.database.database_url, None);
        assert_eq!(settings.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.http.max_body_bytes, 1024 * 1024);
        assert_eq!(settings.http.cors_origins, None);
        assert_eq!(settings.bus.nats_url, None);
        assert!(settings.secrets.secrets_key.is_none());
        assert_eq!(settings.identity.view_wait_ms, 8_000);
        assert_eq!(settings.sign_in_limits.auth_rate_limit_per_minute, 60);
        assert_eq!(settings.sign_in_limits.trusted_proxy_header, None);
        assert_eq!(settings.operations.follower_stall_seconds, 60);
        assert_eq!(settings.billing.signup_credits, 1_000_000);
        assert_eq!(settings.billing.stripe_api_base, "https://api.stripe.com");
        assert!(
            settings.billing.stripe_secret_key.is_none() && settings.billing.stripe_webhook_secret.is_none()
        );
    }
}
