//! `kassa-sim demo`: the whole store in one command, with a console and a control
//! socket so that `kassa-sim scan CODE` works from a second terminal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::printer::{PrinterEvent, VirtualPrinter};
use crate::printer_emu::{Model, PaperState};
use crate::scanner::{unescape, VirtualScanner};
use crate::stack::{self, StackOptions};

/// Longest control command line; a code plus a verb fits many times over.
const CONTROL_LINE_BYTES_MAX: usize = 4096;

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

/// The devices the console and the control socket act on.
struct Devices<'a> {
    scanner: &'a VirtualScanner,
    printer: &'a VirtualPrinter,
}

impl Devices<'_> {
    /// Runs one console/control command; returns the reply line.
    fn command(&self, line: &str) -> Result<String, String> {
        let line = line.trim();
        let (verb, arg) = line.split_once(' ').map_or((line, ""), |(v, a)| (v, a.trim()));
        match verb {
            "" => Ok(String::new()),
            "scan" if !arg.is_empty() => self.scan(arg),
            "paper" => {
                let state = match arg {
                    "ok" => PaperState::Ok,
                    "near-end" => PaperState::NearEnd,
                    "out" => PaperState::Out,
                    _ => return Err("paper ok|near-end|out".into()),
                };
                self.printer.set_paper(state);
                Ok(format!("paper {arg}"))
            }
            "cover" => match arg {
                "open" | "closed" => {
                    self.printer.set_cover_open(arg == "open");
                    Ok(format!("cover {arg}"))
                }
                _ => Err("cover open|closed".into()),
            },
            "offline" => match arg {
                "on" | "off" => {
                    self.printer.set_offline(arg == "on");
                    Ok(format!("offline {arg}"))
                }
                _ => Err("offline on|off".into()),
            },
            "help" => Ok(HELP.into()),
            // A bare code typed at the console is a scan.
            code if arg.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) => self.scan(code),
            _ => Err(format!("unknown command `{line}`; try `help`")),
        }
    }

    fn scan(&self, code: &str) -> Result<String, String> {
        let bytes = unescape(code)?;
        self.scanner.scan(&bytes).map_err(|e| format!("scanner: {e}"))?;
        Ok(format!("scanned {code}"))
    }
}

const HELP: &str =
    "commands: <code> | scan <code> (\\x1d for GS) | paper ok|near-end|out | cover open|closed | offline on|off | quit";

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
    let stack::Stack { hq, agent, scanner, printer, printer_events, cancel, catalog_ready } = stack;
    let printer_thread = spawn_receipt_printer(printer_events, receipts_dir.clone());

    println!();
    println!("  Kassa demo is running (data in {}).", opts.data_dir.display());
    println!("  Cashier page:   http://{}", agent.http_addr);
    for (id, name, role, pin) in stack::DEMO_USERS {
        println!("  Login:          {id} / PIN {pin}  ({name}, {})", role.code());
    }
    println!("  HQ API:         http://{}/api/stores", hq.http_addr);
    println!("                  http://{}/api/stock/100001", hq.http_addr);
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
    println!("  {HELP}");
    println!();

    let devices = Devices { scanner: &scanner, printer: &printer };
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
                Ok(Some(line)) => match devices.command(&line) {
                    Ok(reply) if !reply.is_empty() => println!("  {reply}"),
                    Ok(_) => {}
                    Err(e) => println!("  error: {e}"),
                },
                // No console (stdin closed): keep running until Ctrl-C.
                Ok(None) | Err(_) => stdin_open = false,
            },
            Some((line, reply)) = cmd_rx.recv() => {
                let answer = match devices.command(&line) {
                    Ok(r) => format!("ok {r}"),
                    Err(e) => format!("error {e}"),
                };
                let _ = reply.send(answer);
            }
        }
    }
    println!("  stopping…");
    cancel.cancel();
    let _ = control.await;
    agent.wait().await;
    hq.wait().await;
    drop(scanner);
    drop(printer); // closes the event channel, which ends the receipt printer thread
    let _ = printer_thread.join();
    let _ = std::fs::remove_file(&sock_path);
    println!("  stopped; data kept in {}", opts.data_dir.display());
    Ok(())
}

/// Accepts control connections: one command per line, one reply line each.
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
                if write.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
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
    let reply = lines.next_line().await?.unwrap_or_default();
    match reply.strip_prefix("error ") {
        Some(e) => anyhow::bail!("{e}"),
        None => Ok(reply.trim_start_matches("ok ").to_owned()),
    }
}

/// Prints each receipt to the console as the virtual printer produced it, and keeps a
/// copy as a text file.
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
                    let _ = std::fs::write(dir.join(format!("{stamp}-{n:04}.txt")), text);
                }
                PrinterEvent::DrawerKick => println!("  [cash drawer opened]"),
                PrinterEvent::Unknown { offset, byte } => {
                    println!("  [printer: unknown command byte 0x{byte:02x} at offset {offset}]")
                }
            }
        }
    })
}
