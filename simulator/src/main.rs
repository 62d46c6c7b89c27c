//! `kassa-sim`: the hardware simulator and the one-command demo.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kassa_sim::demo::{self, DemoOptions};
use kassa_sim::printer_emu::Model;

#[derive(Parser, Debug)]
#[command(name = "kassa-sim", version, about = "Kassa hardware simulator and demo")]
struct Cli {
    /// Where the demo keeps its data (SQLite files, certificates, device links).
    #[arg(long, default_value = "./kassa-data", global = true)]
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PrinterModel {
    Epson,
    Clone,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// HQ, one store agent, a virtual scanner and printer, and the cashier page.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        hq_http: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:4433")]
        hq_quic: SocketAddr,
        #[arg(long, value_enum, default_value_t = PrinterModel::Epson)]
        printer: PrinterModel,
    },
    /// Scan a code on the running demo's virtual scanner (`\x1d` stands for GS).
    Scan { code: String },
    /// Send a console command to the running demo (e.g. `paper out`).
    Ctl { command: Vec<String> },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,quinn=warn".into());
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
        Command::Demo { http, hq_http, hq_quic, printer } => {
            let model = match printer {
                PrinterModel::Epson => Model::Epson,
                PrinterModel::Clone => Model::Clone,
            };
            demo::run(DemoOptions { data_dir: cli.data_dir, http, hq_http, hq_quic, model }).await
        }
        Command::Scan { code } => {
            println!("{}", demo::send_command(&cli.data_dir, &format!("scan {code}")).await?);
            Ok(())
        }
        Command::Ctl { command } => {
            println!("{}", demo::send_command(&cli.data_dir, &command.join(" ")).await?);
            Ok(())
        }
    }
}
