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
    /// Check the journal's hash chain and that its tables agree with it; names the
    /// first broken link. Exit status 0 only if everything holds.
    Verify {
        #[arg(long, default_value = "kassa-agent.toml")]
        config: PathBuf,
    },
    /// Cashiers and managers. `--config` goes before or after the subcommand
    /// (`users --config agent.toml add …` or `users add … --config agent.toml`).
    Users {
        #[arg(long, default_value = "kassa-agent.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add a user; the PIN is read from the KASSA_PIN environment variable or asked for.
    Add {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["cashier", "manager"])]
        role: String,
    },
    List,
}

fn open_journal(config: &std::path::Path) -> anyhow::Result<kassa_agent::Journal> {
    let config = kassa_agent::AgentConfig::load(config)?;
    Ok(kassa_agent::Journal::open(&config.data_dir.join("journal.sqlite"), kassa_protocol::StoreId(config.store))?)
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
            kassa_agent::blocking::run(move || devices_cli::run(command)).await?;
        }
        Command::Verify { config } => {
            let report = open_journal(&config)?.verify()?;
            println!("{} records: {} sales, {} returns", report.records, report.sales, report.returns);
            if let Some(broken) = &report.first_broken {
                println!("BROKEN: {broken}");
            }
            for p in &report.problems {
                println!("PROBLEM: {p}");
            }
            if !report.ok() {
                std::process::exit(1);
            }
            println!("journal verified: the hash chain is intact and the tables agree with it");
        }
        Command::Users { config, command } => {
            // On a fresh install the first user comes before the first run: the data
            // directory may not exist yet.
            let data_dir = kassa_agent::AgentConfig::load(&config)?.data_dir;
            std::fs::create_dir_all(&data_dir)
                .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", data_dir.display()))?;
            let journal = open_journal(&config)?;
            match command {
                UsersCommand::Add { id, name, role } => {
                    let pin = match std::env::var("KASSA_PIN") {
                        Ok(pin) => pin,
                        Err(_) => {
                            eprint!("PIN for {id}: ");
                            let mut line = String::new();
                            std::io::stdin().read_line(&mut line)?;
                            line.trim().to_owned()
                        }
                    };
                    let role = kassa_agent::journal::Role::parse(&role).expect("clap checked it");
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
                    journal.add_user(&kassa_agent::journal::User { id: id.clone(), name, role }, &pin, now)?;
                    println!("added {id}");
                }
                UsersCommand::List => {
                    for u in journal.users()? {
                        println!("{}\t{}\t{}", u.id, u.role.code(), u.name);
                    }
                }
            }
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
