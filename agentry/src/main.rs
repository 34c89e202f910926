//! The `agentry` binary: settings, then telemetry, then the chosen command.

use std::process::ExitCode;

use agentry::audit_verify::verify_audit_chains;
use agentry::identity_setup::identity_service;
use agentry::platform::Platform;
use agentry::restored_store::{RESTORE_APPLICATION_NAME, make_restored_store_consistent};
use agentry::settings::{AdminCommand, AuditCommand, Cli, Command, ProjectionsCommand, StoreCommand};
use agentry::startup::{Application, background_projectors, shutdown_signal};
use agentry::telemetry;
use clap::Parser;
use commands::identity::IdentityError;

/// How long `agentry admin create` waits for the administrator to be able to log in, in ms.
const ADMIN_VIEW_WAIT_MS: u64 = 30_000;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("agentry: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(start())
}

/// Settings, then telemetry, then the chosen command.
async fn start() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    telemetry::init_logs(&cli.settings.operations.log_filter);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(%error, "agentry stopped");
            eprintln!("agentry: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit status when it completes (non-zero only for a check that found
/// something wrong; failures to run are errors).
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => {
            let application = Application::build(cli.settings).await?;
            application.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Worker => {
            let mut platform = Platform::connect(&cli.settings).await?;
            platform.start_background(background_projectors());
            let tools = agentry::tools_setup::tool_service(&platform, &cli.settings).await?;
            let billing = agentry::billing_setup::billing_service(&platform, &cli.settings);
            agentry::runs_setup::start_runs(
                &mut platform,
                &cli.settings,
                std::sync::Arc::new(tools),
                std::sync::Arc::new(billing),
                false,
            )
            .await?;
            tracing::info!("agentry worker running");
            shutdown_signal().await;
            platform.stop().await;
        }
        Command::Admin(AdminCommand::Create { email, password }) => {
            let mut settings = cli.settings;
            // Not a request: it may wait for a projector lease to change hands.
            settings.identity.view_wait_ms = settings.identity.view_wait_ms.max(ADMIN_VIEW_WAIT_MS);
            let mut platform = Platform::connect(&settings).await?;
            // No node may be running yet (a fresh install): this process keeps the read models
            // up to date itself, so "ready" means the administrator can log in.
            platform.start_projectors(background_projectors());
            let identity = identity_service(&platform, &settings).await?;
            let created = identity.create_platform_admin(&email, &password).await;
            platform.stop().await;
            let user_id = created.map_err(|error| match error {
                IdentityError::NotYetEffective(_) => anyhow::anyhow!(
                    "{error} (no identity projector caught up within {} s; is a projector stalled? see /readyz)",
                    settings.identity.view_wait_ms / 1000
                ),
                other => other.into(),
            })?;
            tracing::info!(%user_id, "platform administrator ready");
            println!("platform administrator {user_id}");
        }
        Command::Store(StoreCommand::Restored) => {
            let platform = Platform::connect(&cli.settings).await?;
            // Its own connections, named apart from a node's so it does not count itself as one.
            let options = platform
                .pool
                .connect_options()
                .as_ref()
                .clone()
                .application_name(RESTORE_APPLICATION_NAME);
            platform.pool.close().await;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?;
            let result = make_restored_store_consistent(&pool, &background_projectors()).await;
            pool.close().await;
            platform.stop().await;
            let done = result?;
            tracing::info!("{done}");
            println!("{done}");
        }
        Command::Migrate => {
            let platform = Platform::connect(&cli.settings).await?;
            tracing::info!("migrations applied");
            platform.stop().await;
        }
        Command::Projections(ProjectionsCommand::Rebuild { name }) => {
            let platform = Platform::connect(&cli.settings).await?;
            let rebuilt = agentry::rebuild_projection::rebuild_projection(&platform, &name).await;
            platform.stop().await;
            println!("{}", rebuilt?);
        }
        Command::Audit(AuditCommand::Verify { org }) => {
            let platform = Platform::connect(&cli.settings).await?;
            let verification = verify_audit_chains(&platform.pool, org).await;
            platform.stop().await;
            let verification = verification?;
            println!("{}", verification.report());
            if !verification.intact() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
