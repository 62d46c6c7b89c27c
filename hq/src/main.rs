//! `kassa-hq`: the headquarters service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kassa_hq::auth::{self, Actor, OperatorEdit, Permissions, Role};
use kassa_hq::db::CatalogImport;
use kassa_hq::Db;
use kassa_protocol::StoreId;

#[derive(Parser, Debug)]
#[command(name = "kassa-hq", version, about = "Kassa headquarters: sync server, merged store, catalog publishing")]
struct Cli {
    #[command(flatten)]
    place: Place,
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// Where HQ's data is: its directory, its database, its config file.
#[derive(clap::Args, Debug)]
struct Place {
    /// Where HQ keeps its database and certificate authority.
    #[arg(long, default_value = "./kassa-data/hq", global = true)]
    data_dir: PathBuf,
    /// HQ's database: a `postgres://user@host:port/db` URL shared by every HQ node, or
    /// the SQLite file `DATA_DIR/hq.sqlite` when not given (here or in the config file).
    #[arg(long, global = true)]
    database: Option<String>,
    /// HQ's config file (TOML: `database`, `database_connections_max`,
    /// `database_wait_ms`); default `DATA_DIR/hq.toml` if it exists.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
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
        /// The HTTP API and the console. Plain HTTP: put an HTTPS reverse proxy in front
        /// of it for anything beyond loopback (see the README).
        #[arg(long, default_value = "127.0.0.1:8081")]
        http: SocketAddr,
        /// `/metrics` needs an API token with the `metrics` scope (default: open).
        #[arg(long)]
        metrics_require_token: bool,
        /// Mark the console's session cookie `Secure` (behind an HTTPS reverse proxy).
        #[arg(long)]
        secure_cookies: bool,
        /// A reverse proxy whose `X-Forwarded-For` names the client (repeatable).
        #[arg(long = "trusted-proxy")]
        trusted_proxies: Vec<std::net::IpAddr>,
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
    /// Console operators (each change is in the audit log).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// API tokens for integrations (each change is in the audit log).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
    /// Validate a catalog CSV and publish it; a bad row is reported with its line and
    /// nothing is published. A file identical to the catalog in force publishes nothing;
    /// one that would remove items publishes nothing without --confirm-removals.
    Import {
        file: PathBuf,
        /// Remove the items the file does not list (listed first by a run without it).
        #[arg(long)]
        confirm_removals: bool,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add an operator. The password is read from stdin with --password-stdin, else one
    /// is made up and printed once.
    Add {
        login: String,
        /// administrator, merchandiser, operations, support or read_only.
        #[arg(long)]
        role: String,
        /// The name the console shows (default: the login).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List operators.
    List,
    /// Disable an operator: their sessions end at once and they cannot log in.
    Disable { login: String },
    /// Enable a disabled operator again.
    Enable { login: String },
    /// Set an operator's password (from stdin with --password-stdin, else made up and
    /// printed once); their sessions end.
    Passwd {
        login: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum TokensCommand {
    /// Issue a token; it is printed once and never shown again.
    Issue {
        /// What it is for (e.g. `online-shop`).
        name: String,
        /// A scope (repeatable), e.g. catalog:read; see `tokens list` for them all.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Or every permission of a role.
        #[arg(long)]
        role: Option<String>,
        /// How long it lasts (default: until revoked).
        #[arg(long)]
        days: Option<u32>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id: the next request with it is refused.
    Revoke { id: i64 },
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
        Command::Serve { quic, http, metrics_require_token, secure_cookies, trusted_proxies } => {
            let file = FileConfig::read(&cli.place)?;
            let config = kassa_hq::HqConfig {
                metrics_require_token,
                secure_cookies,
                trusted_proxies,
                database: cli.place.database.clone().or(file.database.clone()),
                pool: file.pool(),
                ..kassa_hq::HqConfig::new(cli.place.data_dir.clone(), quic, http)
            };
            kassa_hq::serve_until_signal(config).await?;
        }
        Command::Enroll { store, out } => {
            let pki = kassa_hq::pki::Pki::open_or_create(&cli.place.data_dir.join("pki"))?;
            pki.enroll(StoreId(store), &out)?;
            println!("store {store}: key and certificate written to {}", out.display());
        }
        Command::Catalog { command: CatalogCommand::Import { file, confirm_removals } } => {
            let csv = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let items = kassa_protocol::catalog::parse_csv(&csv).map_err(|e| match e {
                kassa_protocol::catalog::ImportError::Rows(rows) => {
                    let list: Vec<String> = rows.iter().map(|r| format!("  {}:{r}", file.display())).collect();
                    anyhow::anyhow!("nothing published; {} bad row(s):\n{}", rows.len(), list.join("\n"))
                }
                e => anyhow::anyhow!("nothing published: {e}"),
            })?;
            let db = open_db(&cli.place)?;
            let audit =
                Actor::system("kassa-hq catalog import").audit(now_ms(), "catalog.import", serde_json::json!({}));
            match db.import_catalog(&items, confirm_removals, false, &audit)? {
                CatalogImport::Published { version, diff } => println!(
                    "published catalog version {version}: {} items ({} added, {} changed, {} removed; a running HQ offers it on each store's next connection)",
                    items.len(),
                    diff.added.len(),
                    diff.changed.len(),
                    diff.removed.len()
                ),
                CatalogImport::Unchanged { version } => {
                    println!("identical to catalog version {version}; nothing published")
                }
                CatalogImport::RemovalsUnconfirmed { diff, .. } => {
                    let skus: Vec<String> =
                        diff.removed.iter().take(50).map(|i| format!("  {} {}", i.sku.as_str(), i.name)).collect();
                    anyhow::bail!(
                        "nothing published: the file would remove {} item(s) from every store:\n{}\nrun again with --confirm-removals to remove them",
                        diff.removed.len(),
                        skus.join("\n")
                    );
                }
                CatalogImport::Preview { .. } => unreachable!("not a dry run"),
            }
        }
        Command::Users { command } => users(&open_db(&cli.place)?, command)?,
        Command::Tokens { command } => tokens(&open_db(&cli.place)?, command)?,
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// HQ's config file: what a node needs beyond its flags (the database it shares).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database: Option<String>,
    database_connections_max: Option<u32>,
    database_wait_ms: Option<u64>,
}

impl FileConfig {
    /// `--config`, or `DATA_DIR/hq.toml` when it exists, or nothing.
    fn read(cli: &Place) -> anyhow::Result<FileConfig> {
        let default = cli.data_dir.join("hq.toml");
        let path = match &cli.config {
            Some(path) => path.clone(),
            None if default.exists() => default,
            None => return Ok(FileConfig::default()),
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: not a valid HQ config", path.display()))
    }

    fn pool(&self) -> kassa_hq::db::PoolLimits {
        let default = kassa_hq::db::PoolLimits::default();
        kassa_hq::db::PoolLimits {
            connections_max: self.database_connections_max.unwrap_or(default.connections_max).max(1),
            wait: self.database_wait_ms.map_or(default.wait, std::time::Duration::from_millis),
        }
    }
}

/// HQ's database, created (with its first administrator) if need be: the CLI works on a
/// fresh install as on a running one (SQLite serialises the writes; on PostgreSQL every
/// node's transactions take one lock).
fn open_db(cli: &Place) -> anyhow::Result<Db> {
    let data_dir = &cli.data_dir;
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let file = FileConfig::read(cli)?;
    let config = kassa_hq::HqConfig {
        database: cli.database.clone().or(file.database.clone()),
        pool: file.pool(),
        ..kassa_hq::HqConfig::new(data_dir.clone(), ([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into())
    };
    let db = kassa_hq::open_database(&config)?;
    if let Some(password) = auth::ensure_first_admin(&db, data_dir, now_ms())? {
        eprintln!("created the first administrator `{}` with password {password}", auth::FIRST_ADMIN);
    }
    Ok(db)
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((auth::random_password(), true));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
    Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
}

fn users(db: &Db, command: UsersCommand) -> anyhow::Result<()> {
    let by = Actor::system("kassa-hq users");
    match command {
        UsersCommand::Add { login, role, name, password_stdin } => {
            let role = Role::parse(&role)?;
            let (password, made_up) = read_password(password_stdin)?;
            let name = name.unwrap_or_else(|| login.clone());
            let op = auth::add_operator(db, &login, &name, role, &password, &by, now_ms())?;
            println!("added operator {} ({}, {})", op.login, op.name, op.role);
            if made_up {
                println!("password: {password}");
            }
        }
        UsersCommand::List => {
            for op in db.operators()? {
                let state = if op.disabled { "disabled" } else { "active" };
                println!("{:<32} {:<14} {:<9} {}", op.login, op.role.code(), state, op.name);
            }
        }
        UsersCommand::Disable { login } => {
            auth::change_operator(
                db,
                &login,
                OperatorEdit { disabled: Some(true), ..Default::default() },
                &by,
                now_ms(),
            )?;
            println!("disabled {login}; their sessions have ended");
        }
        UsersCommand::Enable { login } => {
            auth::change_operator(
                db,
                &login,
                OperatorEdit { disabled: Some(false), ..Default::default() },
                &by,
                now_ms(),
            )?;
            println!("enabled {login}");
        }
        UsersCommand::Passwd { login, password_stdin } => {
            let (password, made_up) = read_password(password_stdin)?;
            let edit = OperatorEdit { password: Some(&password), ..Default::default() };
            auth::change_operator(db, &login, edit, &by, now_ms())?;
            println!("changed {login}'s password; their sessions have ended");
            if made_up {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}

fn tokens(db: &Db, command: TokensCommand) -> anyhow::Result<()> {
    let by = Actor::system("kassa-hq tokens");
    match command {
        TokensCommand::Issue { name, scopes, role, days } => {
            let mut list = Permissions::parse(scopes.iter().map(String::as_str))?.iter().collect::<Vec<_>>();
            if let Some(role) = role {
                list.extend(Role::parse(&role)?.permissions().iter());
            }
            let issued = auth::issue_token(db, &name, Permissions::of(&list), days, &by, now_ms())?;
            println!(
                "token {} ({}), scopes: {}",
                issued.info.id,
                issued.info.name,
                issued.info.scopes.codes().join(" ")
            );
            println!("{}", issued.token);
            eprintln!("(shown once: HQ keeps only its hash)");
        }
        TokensCommand::List => {
            for t in db.tokens()? {
                let state = match (t.revoked_at_ms, t.expires_at_ms) {
                    (Some(_), _) => "revoked",
                    (None, Some(at)) if at <= now_ms() => "expired",
                    _ => "active",
                };
                println!("{:>5} {:<8} {}… {:<24} {}", t.id, state, t.prefix, t.name, t.scopes.codes().join(" "));
            }
            let all: Vec<&str> = auth::Permission::ALL.iter().map(|p| p.code()).collect();
            eprintln!("scopes: {}", all.join(" "));
        }
        TokensCommand::Revoke { id } => {
            let t = auth::revoke_token(db, id, &by, now_ms())?;
            println!("revoked token {} ({})", t.id, t.name);
        }
    }
    Ok(())
}
