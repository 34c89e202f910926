//! The `agentry` binary: settings, then telemetry, then the chosen command.

use std::process::ExitCode;

use agentry::identity_setup::identity_service;
use agentry::platform::Platform;
use agentry::settings::{AdminCommand, Cli, Command};
use agentry::startup::{Application, background_projectors, shutdown_signal};
use agentry::telemetry;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    telemetry::init_logs(&cli.settings.log_filter);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "agentry stopped");
            eprintln!("agentry: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let application = Application::build(cli.settings).await?;
            application.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Worker => {
            let mut platform = Platform::connect(&cli.settings).await?;
            platform.start_background(background_projectors());
            tracing::info!("agentry worker running");
            shutdown_signal().await;
            platform.stop().await;
        }
        Command::Admin(AdminCommand::Create { email, password }) => {
            let platform = Platform::connect(&cli.settings).await?;
            let identity = identity_service(&platform, &cli.settings).await?;
            let user_id = identity.create_platform_admin(&email, &password).await?;
            tracing::info!(%user_id, "platform administrator ready");
            println!("platform administrator {user_id}");
            platform.stop().await;
        }
        Command::Migrate => {
            let platform = Platform::connect(&cli.settings).await?;
            tracing::info!("migrations applied");
            platform.stop().await;
        }
    }
    Ok(())
}
