//! The `agentry` binary: settings, then telemetry, then the chosen command.

use std::process::ExitCode;

use api::platform::Platform;
use api::settings::{Cli, Command};
use api::startup::{Application, shutdown_signal};
use api::telemetry;
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
            platform.start_background(Vec::new());
            tracing::info!("agentry worker running");
            shutdown_signal().await;
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
