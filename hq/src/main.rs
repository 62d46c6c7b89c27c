//! `kassa-hq`: the headquarters service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kassa_protocol::StoreId;

#[derive(Parser, Debug)]
#[command(name = "kassa-hq", version, about = "Kassa headquarters: sync server, merged store, catalog publishing")]
struct Cli {
    /// Where HQ keeps its database and certificate authority.
    #[arg(long, default_value = "./kassa-data/hq", global = true)]
    data_dir: PathBuf,
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
    /// Serve stores over QUIC and the HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:4433")]
        quic: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        http: SocketAddr,
    },
    /// Issue a store's key and certificate (written to OUT: store.key, store.crt, ca.crt).
    Enroll {
        store: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Catalog operations.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
    /// Validate a catalog CSV and publish it; a bad row is reported with its line and
    /// nothing is published.
    Import { file: PathBuf },
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
        Command::Serve { quic, http } => {
            kassa_hq::serve_until_signal(kassa_hq::HqConfig::new(cli.data_dir, quic, http)).await?;
        }
        Command::Enroll { store, out } => {
            let pki = kassa_hq::pki::Pki::open_or_create(&cli.data_dir.join("pki"))?;
            pki.enroll(StoreId(store), &out)?;
            println!("store {store}: key and certificate written to {}", out.display());
        }
        Command::Catalog { command: CatalogCommand::Import { file } } => {
            let csv = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let items = kassa_protocol::catalog::parse_csv(&csv).map_err(|e| match e {
                kassa_protocol::catalog::ImportError::Rows(rows) => {
                    let list: Vec<String> = rows.iter().map(|r| format!("  {}:{r}", file.display())).collect();
                    anyhow::anyhow!("nothing published; {} bad row(s):\n{}", rows.len(), list.join("\n"))
                }
                e => anyhow::anyhow!("nothing published: {e}"),
            })?;
            std::fs::create_dir_all(&cli.data_dir)?;
            let db = kassa_hq::Db::open(&cli.data_dir.join("hq.sqlite"))?;
            let version = db.publish_catalog(&items)?;
            println!("published catalog version {version}: {} items (a running HQ offers it on each store's next connection)", items.len());
        }
    }
    Ok(())
}
