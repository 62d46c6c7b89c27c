//! `kassa-agent`: the store daemon.

mod devices_cli;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(name = "kassa-agent", version, about = "Kassa store agent: journal, devices, cashier page, sync with HQ")]
struct Cli {
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent with a TOML configuration.
    Run {
        #[arg(long, default_value = "kassa-agent.toml")]
        config: PathBuf,
    },
    /// Technician tools for scanners and printers; no running agent needed.
    Devices {
        #[command(subcommand)]
        command: devices_cli::DevicesCommand,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => {
            let config = kassa_agent::AgentConfig::load(&config)?;
            let cancel = CancellationToken::new();
            let agent = kassa_agent::start(config, cancel.clone()).await?;
            println!("kassa-agent: cashier page on http://{}", agent.http_addr);
            shutdown_signal().await;
            cancel.cancel();
            agent.wait().await;
        }
        // Serial I/O blocks: off the executor. Ctrl-C ends the process as usual.
        Command::Devices { command } => {
            tokio::task::spawn_blocking(move || devices_cli::run(command)).await??;
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
