//! `kassa-sim demo`: the whole store in one command, with a console and a control
//! socket so that `kassa-sim scan CODE` works from a second terminal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::console::{Console, HELP};
use crate::printer::PrinterEvent;
use crate::printer_emu::Model;
use crate::stack::{self, StackOptions};

/// Longest control command line; a code plus a verb fits many times over.
const CONTROL_LINE_BYTES_MAX: usize = 4096;
/// How often the console prints new byte-log lines while `log on`.
const LOG_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// Ends a reply on the control socket (replies may span lines).
const REPLY_END: &str = ".";

pub fn control_socket(data_dir: &Path) -> PathBuf {
    data_dir.join("sim.sock")
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub hq_http: SocketAddr,
    pub hq_quic: SocketAddr,
    pub model: Model,
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)?;
    let sock_path = control_socket(&opts.data_dir);
    if sock_path.exists() {
        if tokio::net::UnixStream::connect(&sock_path).await.is_ok() {
            anyhow::bail!("a demo is already running on {} (its control socket answers)", opts.data_dir.display());
        }
        std::fs::remove_file(&sock_path)?;
    }
    let stack = stack::start(StackOptions {
        data_dir: opts.data_dir.clone(),
        store: 1,
        agent_http: opts.http,
        hq_http: opts.hq_http,
        hq_quic: opts.hq_quic,
        printer_model: opts.model,
    })
    .await?;
    let receipts_dir = opts.data_dir.join("receipts");
    std::fs::create_dir_all(&receipts_dir)?;
    let stack::Stack { hq, agent, scanner, printer, printer_events, cancel, catalog_ready, hq_token: _ } = stack;
    let printer_thread = spawn_receipt_printer(printer_events, receipts_dir.clone());

    println!();
    println!("  Kassa demo is running (data in {}).", opts.data_dir.display());
    println!("  Cashier page:   http://{}", agent.http_addr);
    for (id, name, role, pin) in stack::DEMO_USERS {
        println!("  Login:          {id} / PIN {pin}  ({name}, {})", role.code());
    }
    println!("  HQ console:     http://{}/", hq.http_addr);
    match stack::initial_admin_password(&opts.data_dir) {
        Some(password) => println!("  HQ login:       {} / {password}  (administrator)", kassa_hq::auth::FIRST_ADMIN),
        None => println!("  HQ login:       {} (its password was changed after install)", kassa_hq::auth::FIRST_ADMIN),
    }
    println!("  HQ API:         http://{}/api/stores  (needs a token: kassa-hq tokens issue)", hq.http_addr);
    println!("  HQ sync (QUIC): {} (mutual TLS)", hq.quic_addr);
    println!("  Scanner:        {}", scanner.path().display());
    println!("  Printer:        {} (receipts also in {})", printer.path().display(), receipts_dir.display());
    if !catalog_ready {
        println!("  (the store has not received its catalog from HQ yet)");
    }
    println!();
    println!("  Scan: type a barcode here and press Enter, e.g. 4650001209603 (milk),");
    println!("        or from a second terminal: cargo run --release -- scan 4650001209603");
    println!("        Weighed goods: 2200001012356 (apples, 1.235 kg).");
    println!("  On the page: log in, open the shift, scan, pay. Ctrl-C (or `quit`) stops everything.");
    println!("  Receipts are also drawn as PNG images in {}.", receipts_dir.display());
    println!();
    print_reply(HELP);
    println!();

    let console = Console::new(scanner.clone(), printer.clone(), Some(agent.status.subscribe()));
    let mut log_tick = tokio::time::interval(LOG_POLL);
    let listener = UnixListener::bind(&sock_path)?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel::<(String, tokio::sync::oneshot::Sender<String>)>(16);
    let control = tokio::spawn(serve_control(listener, cmd_tx, cancel.clone()));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim() == "quit" => break,
                Ok(Some(line)) => match console.command(&line) {
                    Ok(reply) => print_reply(&reply),
                    Err(e) => println!("  error: {e}"),
                },
                // No console (stdin closed): keep running until Ctrl-C.
                Ok(None) | Err(_) => stdin_open = false,
            },
            Some((line, reply)) = cmd_rx.recv() => {
                let answer = match console.command(&line) {
                    Ok(r) => format!("ok {r}"),
                    Err(e) => format!("error {e}"),
                };
                let _ = reply.send(answer);
            }
            _ = log_tick.tick() => {
                for line in console.poll_log() {
                    println!("  {line}");
                }
            }
        }
    }
    println!("  stopping…");
    cancel.cancel();
    let _ = control.await;
    agent.wait().await;
    hq.wait().await;
    drop(console);
    drop(scanner);
    drop(printer); // closes the event channel, which ends the receipt printer thread
    let _ = printer_thread.join();
    let _ = std::fs::remove_file(&sock_path);
    println!("  stopped; data kept in {}", opts.data_dir.display());
    Ok(())
}

/// Accepts control connections: one command per line; each reply is one or more lines
/// (the first starts `ok` or `error`), then a line holding only [`REPLY_END`].
async fn serve_control(
    listener: UnixListener,
    commands: tokio::sync::mpsc::Sender<(String, tokio::sync::oneshot::Sender<String>)>,
    cancel: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = cancel.cancelled() => return,
            s = listener.accept() => match s { Ok(s) => s, Err(_) => continue },
        };
        let commands = commands.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read.take(CONTROL_LINE_BYTES_MAX as u64 * 64)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.len() > CONTROL_LINE_BYTES_MAX {
                    let _ = write.write_all(b"error line too long\n").await;
                    break;
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                if commands.send((line, tx)).await.is_err() {
                    break;
                }
                let answer = rx.await.unwrap_or_else(|_| "error demo stopping".into());
                // Lines starting with the end marker are stuffed with one more, as in SMTP.
                let mut text = String::new();
                for line in answer.lines() {
                    if line.starts_with(REPLY_END) {
                        text.push_str(REPLY_END);
                    }
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str(REPLY_END);
                text.push('\n');
                if write.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Sends one command to a running demo and returns its reply.
pub async fn send_command(data_dir: &Path, command: &str) -> anyhow::Result<String> {
    let path = control_socket(data_dir);
    let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
        anyhow::anyhow!("no demo running in {} ({}): start `kassa-sim demo` first", data_dir.display(), e)
    })?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{command}\n").as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let mut reply = Vec::new();
    while let Some(line) = lines.next_line().await? {
        if line == REPLY_END {
            break;
        }
        reply.push(line.strip_prefix(REPLY_END).filter(|_| line.starts_with("..")).unwrap_or(&line).to_owned());
    }
    let reply = reply.join("\n");
    match reply.strip_prefix("error ") {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(reply.strip_prefix("ok ").or(reply.strip_prefix("ok")).unwrap_or(&reply).to_owned()),
    }
}

/// Prints a console reply indented, line by line.
fn print_reply(reply: &str) {
    for line in reply.lines() {
        println!("  {line}");
    }
}

/// Prints each receipt to the console as the virtual printer produced it, and keeps a
/// copy as a text file and as a PNG image side by side.
fn spawn_receipt_printer(events: std::sync::mpsc::Receiver<PrinterEvent>, dir: PathBuf) -> std::thread::JoinHandle<()> {
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::spawn(move || {
        for ev in events {
            match ev {
                PrinterEvent::Receipt(r) => {
                    let text = r.text();
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let width = crate::printer_emu::COLUMNS;
                    println!("  ┌{}┐", "─".repeat(width + 2));
                    for line in text.lines() {
                        let pad = width.saturating_sub(line.chars().count());
                        println!("  │ {line}{} │", " ".repeat(pad));
                    }
                    println!("  └{}┘ ({:?} cut)", "─".repeat(width + 2), r.cut);
                    let stamp =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                    let name = format!("{stamp}-{n:04}");
                    let _ = std::fs::write(dir.join(format!("{name}.txt")), text);
                    let png = crate::render::render_png(&r);
                    match std::fs::write(dir.join(format!("{name}.png")), png) {
                        Ok(()) => println!("  receipt image: {}", dir.join(format!("{name}.png")).display()),
                        Err(e) => println!("  receipt image not written: {e}"),
                    }
                }
                PrinterEvent::DrawerKick => println!("  [cash drawer opened]"),
                PrinterEvent::Unknown { offset, byte } => {
                    println!("  [printer: unknown command byte 0x{byte:02x} at offset {offset}]")
                }
            }
        }
    })
}
