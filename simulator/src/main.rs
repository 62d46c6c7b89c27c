//! `kassa-sim`: the hardware simulator and the one-command demo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use kassa_sim::demo::{self, DemoOptions};
use kassa_sim::printer_emu::{Model, Receipt};
use kassa_sim::{render, scenario};

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

impl PrinterModel {
    fn model(self) -> Model {
        match self {
            PrinterModel::Epson => Model::Epson,
            PrinterModel::Clone => Model::Clone,
        }
    }
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
    /// Send a console command to the running demo (e.g. `paper out`, `devices`).
    Ctl { command: Vec<String> },
    /// Run scenario files, each against a store of its own (HQ, agent, virtual devices in
    /// a temporary directory); exits non-zero if any fails.
    Run {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = PrinterModel::Epson)]
        printer: PrinterModel,
        /// Also write every receipt printed, as text and PNG, into this folder.
        #[arg(long)]
        receipts: Option<PathBuf>,
    },
    /// N simulated stores connected at once to one HQ (a child process), each selling:
    /// HQ's resident memory and the merge lag (build with --release).
    Fleet {
        #[arg(long, default_value_t = 1_000)]
        stores: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Sales per store per minute.
        #[arg(long, default_value_t = 12)]
        sales_per_minute: u32,
        /// HQ nodes (processes) sharing HQ's database, the stores spread over them; more
        /// than one needs `--database`.
        #[arg(long, default_value_t = 1)]
        hq_nodes: usize,
        /// HQ's database: an empty PostgreSQL database (`postgres://…`); default a SQLite
        /// file in a temporary directory.
        #[arg(long)]
        database: Option<String>,
    },
    /// HQ as `kassa-hq serve` runs it; `fleet` starts it as its child.
    #[command(hide = true)]
    HqServe {
        #[arg(long)]
        quic: SocketAddr,
        #[arg(long)]
        http: SocketAddr,
        #[arg(long)]
        database: Option<String>,
    },
    /// Benchmarks (build with --release): `scan`, `journal`, `loyalty`, `sync`, `promotions`,
    /// `orders`.
    Bench {
        #[command(subcommand)]
        what: BenchKind,
    },
}

#[derive(Subcommand, Debug)]
enum BenchKind {
    /// Scans through a pty into a running agent: latency to the basket event vs wire time.
    Scan {
        #[arg(long, default_value_t = 10_000)]
        scans: usize,
        /// Promotions published at HQ (and so at the till) first: the mix of `bench
        /// promotions`, over the demo catalog.
        #[arg(long, default_value_t = 10_000)]
        promotions: usize,
    },
    /// Sales committed through the journal vs a raw durable SQLite insert.
    Journal {
        #[arg(long, default_value_t = 5_000)]
        sales: usize,
    },
    /// Online loyalty redemptions: the round trip to HQ for spending rights.
    Loyalty {
        #[arg(long, default_value_t = 1_000)]
        redemptions: usize,
    },
    /// A store's catch-up with HQ after an outage (5-line sales) vs a raw quinn transfer.
    Sync {
        #[arg(long, default_value_t = 20_000)]
        sales: usize,
        /// HQ on this PostgreSQL database (`postgres://…`, empty: HQ creates its tables)
        /// instead of a SQLite file.
        #[arg(long)]
        database: Option<String>,
    },
    /// Repricing a 50-line basket against many active promotions vs against none.
    Promotions {
        #[arg(long, default_value_t = 10_000)]
        active: usize,
    },
    /// Orders placed at HQ's API for a connected store: how soon the till has them.
    Orders {
        #[arg(long, default_value_t = 1_000)]
        orders: usize,
    },
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
            let model = printer.model();
            demo::run(DemoOptions { data_dir: cli.data_dir, http, hq_http, hq_quic, model }).await
        }
        Command::Run { scenarios, printer, receipts } => run_scenarios(&scenarios, printer.model(), receipts).await,
        Command::Bench { what: BenchKind::Scan { scans, promotions } } => {
            kassa_sim::bench::scan(scans, promotions).await
        }
        Command::Bench { what: BenchKind::Journal { sales } } => {
            tokio::task::spawn_blocking(move || kassa_sim::bench::journal(sales)).await?
        }
        Command::Bench { what: BenchKind::Loyalty { redemptions } } => kassa_sim::bench::loyalty(redemptions).await,
        Command::Bench { what: BenchKind::Sync { sales, database } } => {
            kassa_sim::bench_sync::sync(sales, database).await.map(drop)
        }
        Command::Bench { what: BenchKind::Orders { orders } } => {
            kassa_sim::bench_orders::orders(orders).await.map(drop)
        }
        Command::Bench { what: BenchKind::Promotions { active } } => {
            kassa_sim::bench_promotions::promotions_bench(active)
        }
        Command::Fleet { stores, seconds, sales_per_minute, hq_nodes, database } => {
            let exe = std::env::current_exe()?;
            let opts = kassa_sim::fleet::FleetOptions { stores, seconds, sales_per_minute, hq_nodes, database, exe };
            kassa_sim::fleet::fleet(opts).await.map(drop)
        }
        Command::HqServe { quic, http, database } => {
            let config = kassa_hq::HqConfig { database, ..kassa_hq::HqConfig::new(cli.data_dir, quic, http) };
            Ok(kassa_hq::serve_until_signal(config).await?)
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

async fn run_scenarios(paths: &[PathBuf], model: Model, receipts: Option<PathBuf>) -> anyhow::Result<()> {
    // Load them all first: a typo in the third file should not cost two store start-ups.
    let scenarios = paths.iter().map(|p| scenario::load(p)).collect::<Result<Vec<_>, _>>()?;
    let opts = scenario::RunOptions { printer_model: model };
    let mut failed = Vec::new();
    for (path, s) in paths.iter().zip(&scenarios) {
        println!("{}: {}", path.display(), s.name);
        let report = scenario::run(s, &opts).await?;
        println!("{report}");
        println!();
        if let Some(dir) = &receipts {
            save_receipts(dir, path, &report.receipts)?;
        }
        if !report.passed() {
            failed.push(s.name.clone());
        }
    }
    match failed.len() {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} scenarios failed: {}", scenarios.len(), failed.join(", ")),
    }
}

fn save_receipts(dir: &Path, scenario: &Path, receipts: &[Receipt]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stem = scenario.file_stem().map_or_else(|| "scenario".into(), |s| s.to_string_lossy());
    for (i, r) in receipts.iter().enumerate() {
        let name = format!("{stem}-{:02}", i + 1);
        std::fs::write(dir.join(format!("{name}.txt")), r.text())?;
        std::fs::write(dir.join(format!("{name}.png")), render::render_png(r))?;
    }
    Ok(())
}
