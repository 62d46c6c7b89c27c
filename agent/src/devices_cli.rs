//! `kassa-agent devices`: technician tools that work on a port directly, without a
//! running agent. Ports are opened exclusively, so stop the agent first when testing
//! the devices it uses.
//!
//! - `list`: serial ports and their stable names.
//! - `test-print`: status check in words, then a test receipt.
//! - `scan-test`: every frame the scanner sends, raw and parsed, as JSON lines.
//! - `parse`: codes from stdin, parsed, as JSON lines.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand, ValueEnum};
use kassa_hardware::barcode::{ParsedScan, ScanRules, WeightedTemplate};
use kassa_hardware::escpos::{self, Align, Cut, Encoder, PrinterProfile};
use kassa_hardware::scanner::{self, FramerConfig, ScannerEvent, Terminator};
use kassa_hardware::serial::SerialSettings;
use kassa_hardware::status::{self, PrinterStatus, StatusError};

/// How long one read on the printer port blocks: the granularity of the status
/// timeouts (see `kassa_hardware::status::query_status`).
const PRINTER_READ_TIMEOUT: Duration = Duration::from_millis(20);
/// Bytes per write to the printer: serial printers have small buffers.
const PRINT_CHUNK_BYTES: usize = 256;

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// List the serial ports present and their stable names (for agent.toml).
    List,
    /// Check the printer's status (paper, cover, offline), then print a test receipt.
    TestPrint(TestPrintArgs),
    /// Print each frame the scanner sends as one JSON object per line, until Ctrl-C.
    ScanTest(ScanTestArgs),
    /// Parse codes from stdin, one per line (`\x1d` stands for GS, `\\` for a
    /// backslash), printing one JSON object per line. Blank lines are skipped.
    Parse(RulesArgs),
}

/// Serial settings, as in the `serial` table of agent.toml.
#[derive(Args, Debug)]
pub struct SerialArgs {
    #[arg(long, default_value_t = 9600)]
    baud: u32,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(5..=8))]
    data_bits: u8,
    #[arg(long, default_value = "none", value_parser = ["none", "odd", "even"])]
    parity: String,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: u8,
    #[arg(long, default_value = "none", value_parser = ["none", "software", "hardware"])]
    flow_control: String,
}

impl SerialArgs {
    fn settings(&self) -> SerialSettings {
        SerialSettings {
            baud: self.baud,
            data_bits: self.data_bits,
            parity: self.parity.clone(),
            stop_bits: self.stop_bits,
            flow_control: self.flow_control.clone(),
        }
    }
}

fn printer_models() -> PossibleValuesParser {
    PossibleValuesParser::new(escpos::PROFILES.iter().map(|p| p.name))
}

#[derive(Args, Debug)]
pub struct TestPrintArgs {
    /// The printer's port, e.g. /dev/serial/by-id/usb-…
    #[arg(long)]
    port: String,
    /// The printer profile (code table, Chinese-mode quirk).
    #[arg(long, default_value = "epson", value_parser = printer_models())]
    model: String,
    #[command(flatten)]
    serial: SerialArgs,
    /// Print even when the status check says the printer cannot.
    #[arg(long)]
    force: bool,
    /// How long to wait for each status reply.
    #[arg(long, default_value_t = 500)]
    status_timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TerminatorArg {
    Cr,
    Lf,
    Crlf,
    Etx,
    None,
}

impl From<TerminatorArg> for Terminator {
    fn from(t: TerminatorArg) -> Terminator {
        match t {
            TerminatorArg::Cr => Terminator::Cr,
            TerminatorArg::Lf => Terminator::Lf,
            TerminatorArg::Crlf => Terminator::CrLf,
            TerminatorArg::Etx => Terminator::Etx,
            TerminatorArg::None => Terminator::None,
        }
    }
}

#[derive(Args, Debug)]
pub struct ScanTestArgs {
    /// The scanner's port, e.g. /dev/serial/by-id/usb-…
    #[arg(long)]
    port: String,
    #[command(flatten)]
    serial: SerialArgs,
    /// The scanner's suffix; `none` ends frames by the idle gap alone.
    #[arg(long, value_enum, default_value_t = TerminatorArg::Cr)]
    terminator: TerminatorArg,
    /// Bytes the scanner sends before each code (`\x02` for STX), stripped.
    #[arg(long, default_value = "")]
    prefix: String,
    /// A frame also ends when no byte came for this long.
    #[arg(long, default_value_t = 50)]
    idle_gap_ms: u64,
    #[arg(long, default_value_t = 512)]
    frame_bytes_max: usize,
    /// Stop after this many frames (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    rules: RulesArgs,
}

/// The store's code rules, as in agent.toml; defaults from `ScanRules::default()`.
#[derive(Args, Debug)]
pub struct RulesArgs {
    /// In-store weighed-item layout, e.g. 22PPPPPWWWWWC.
    #[arg(long)]
    weighted_template: Option<WeightedTemplate>,
    /// Loyalty card prefix: digits (EAN-13 cards) or letters.
    #[arg(long)]
    loyalty_prefix: Option<String>,
    /// Receipt QR prefix.
    #[arg(long)]
    receipt_prefix: Option<String>,
}

impl RulesArgs {
    fn rules(&self) -> anyhow::Result<ScanRules> {
        let d = ScanRules::default();
        let rules = ScanRules {
            weighted_template: self.weighted_template.clone().unwrap_or(d.weighted_template),
            loyalty_prefix: self.loyalty_prefix.clone().unwrap_or(d.loyalty_prefix),
            receipt_prefix: self.receipt_prefix.clone().unwrap_or(d.receipt_prefix),
        };
        rules.validate()?;
        Ok(rules)
    }
}

/// Runs one command. Blocking: call it off the async executor.
pub fn run(cmd: DevicesCommand) -> anyhow::Result<()> {
    match cmd {
        DevicesCommand::List => {
            let ports = serialport::available_ports().unwrap_or_else(|e| {
                eprintln!("serialport could not enumerate ports: {e}");
                Vec::new()
            });
            print!("{}", list_report(Path::new("/dev"), Path::new("/sys/class/tty"), &ports));
            Ok(())
        }
        DevicesCommand::TestPrint(args) => test_print(&args),
        DevicesCommand::ScanTest(args) => scan_test(&args),
        DevicesCommand::Parse(rules) => parse_lines(&rules.rules()?, std::io::stdin().lock(), std::io::stdout().lock()),
    }
}

/// The `list` report. `dev` is `/dev` and `sys_tty` `/sys/class/tty` (parameters for tests).
fn list_report(dev: &Path, sys_tty: &Path, ports: &[serialport::SerialPortInfo]) -> String {
    let mut out = String::new();
    out.push_str("Serial ports found by enumeration (serialport is built without libudev: few USB details):\n");
    if ports.is_empty() {
        out.push_str("  (none)\n");
    }
    for p in ports {
        let kind = match &p.port_type {
            serialport::SerialPortType::UsbPort(u) => {
                let mut s = format!("usb {:04x}:{:04x}", u.vid, u.pid);
                for v in [&u.manufacturer, &u.product, &u.serial_number].into_iter().flatten() {
                    s.push_str(&format!(" {v:?}"));
                }
                s
            }
            serialport::SerialPortType::PciPort => "pci".into(),
            serialport::SerialPortType::BluetoothPort => "bluetooth".into(),
            serialport::SerialPortType::Unknown => "unknown type".into(),
        };
        out.push_str(&format!("  {} ({kind})\n", p.port_name));
    }
    for (dir, hint) in [
        ("serial/by-id", "devices without a USB serial number have none: use by-path or a udev SYMLINK rule"),
        ("serial/by-path", "names by the USB socket: stable while the cable stays in the same socket"),
    ] {
        out.push_str(&format!("Stable names in {} ({hint}):\n", dev.join(dir).display()));
        let links = symlinks(&dev.join(dir));
        if links.is_empty() {
            out.push_str("  (none)\n");
        }
        for (link, target) in links {
            out.push_str(&format!("  {} -> {}\n", link.display(), target.display()));
        }
    }
    out.push_str("Device nodes:\n");
    let mut any = false;
    for prefix in ["ttyUSB", "ttyACM"] {
        for node in nodes(dev, prefix) {
            out.push_str(&format!("  {}\n", dev.join(&node).display()));
            any = true;
        }
    }
    // The kernel makes ttyS0… whether or not a UART is behind them; sysfs `type` 0
    // means none was found.
    let (uarts, phantoms): (Vec<String>, Vec<String>) = nodes(dev, "ttyS")
        .into_iter()
        .partition(|n| std::fs::read_to_string(sys_tty.join(n).join("type")).map_or(true, |t| t.trim() != "0"));
    for node in &uarts {
        out.push_str(&format!("  {}\n", dev.join(node).display()));
        any = true;
    }
    if !phantoms.is_empty() {
        out.push_str(&format!("  ({} more ttyS nodes with no UART behind them)\n", phantoms.len()));
        any = true;
    }
    if !any {
        out.push_str("  (none)\n");
    }
    let printers = nodes(&dev.join("usb"), "lp");
    if !printers.is_empty() {
        out.push_str("USB printer-class nodes (not serial ports: no baud rate, no termios):\n");
        for p in printers {
            out.push_str(&format!("  {}\n", dev.join("usb").join(p).display()));
        }
    }
    out
}

/// Symlinks in `dir` with what they resolve to, sorted; nothing if `dir` is missing.
fn symlinks(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut links: Vec<(PathBuf, PathBuf)> = entries
        .flatten()
        .map(|e| {
            let path = e.path();
            let target = std::fs::canonicalize(&path)
                .or_else(|_| std::fs::read_link(&path))
                .unwrap_or_else(|_| PathBuf::from("?"));
            (path, target)
        })
        .collect();
    links.sort();
    links
}

/// Names in `dir` that are `prefix` followed by a number, in numeric order.
fn nodes(dir: &Path, prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(u32, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, name))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, name)| name).collect()
}

fn test_print(args: &TestPrintArgs) -> anyhow::Result<()> {
    let profile = escpos::profile(&args.model).context("unknown printer model")?;
    let mut port = args.serial.settings().open(&args.port, PRINTER_READ_TIMEOUT)?;
    let timeout = Duration::from_millis(args.status_timeout_ms);

    let status = status::query_status(&mut port, timeout);
    println!("Printer status: {}", describe(&status, timeout));
    let refusal = match &status {
        Ok(s) if s.ready() => None,
        Ok(s) => Some(s.describe_en()),
        Err(e) => Some(error_words(e, timeout)),
    };
    if let Some(why) = refusal {
        if !args.force {
            bail!("not printing: {why} (--force prints anyway)");
        }
        println!("Printing anyway (--force).");
    }

    let job = test_receipt(profile, &args.port);
    for chunk in job.chunks(PRINT_CHUNK_BYTES) {
        port.write_all(chunk).context("writing to the printer")?;
    }
    port.flush().context("writing to the printer")?;
    println!("Sent a test receipt: {} bytes, profile {}.", job.len(), profile.name);
    // Asked again between jobs (the receipt is sent whole): the paper may have run out
    // on the way, and a printer that took the bytes but is silent now says so.
    let after = status::query_status(&mut port, timeout);
    println!("Printer status after printing: {}", describe(&after, timeout));
    Ok(())
}

/// A status in English and Russian, as technician and cashier would read it.
fn describe(status: &Result<PrinterStatus, StatusError>, timeout: Duration) -> String {
    match status {
        Ok(s) => format!("{} / {}", s.describe_en(), s.describe_ru()),
        Err(e) => error_words(e, timeout),
    }
}

fn error_words(e: &StatusError, timeout: Duration) -> String {
    let words = format!("{} / {}", e.describe_en(), e.describe_ru());
    match e {
        StatusError::NoReply => format!(
            "{words} (no reply to DLE EOT within {} ms: check power, cable, --port and --baud)",
            timeout.as_millis()
        ),
        _ => words,
    }
}

/// Cyrillic in both cases, sizes, bold, alignment, a CODE128, a QR code and a cut.
fn test_receipt(profile: PrinterProfile, port: &str) -> Vec<u8> {
    let mut e = Encoder::new(profile);
    e.align(Align::Centre).bold(true).size(2, 2).line("KASSA").size(1, 1).line("Тестовая печать").bold(false);
    e.line(&format!("Профиль {}, кодовая таблица {}", profile.name, profile.code_table));
    e.line(port).newline();
    e.align(Align::Left);
    e.line("Съешь же ещё этих мягких французских булок, да выпей чаю.");
    e.line("СЪЕШЬ ЖЕ ЕЩЁ ЭТИХ МЯГКИХ ФРАНЦУЗСКИХ БУЛОК, ДА ВЫПЕЙ ЧАЮ.");
    e.line("The quick brown fox jumps over the lazy dog 0123456789");
    e.newline();
    e.size(2, 1).line("Ширина x2").size(1, 2).line("Высота x2").size(2, 2).line("Двойной").size(1, 1);
    e.bold(true).line("Жирный шрифт").bold(false).line("Обычный шрифт");
    e.align(Align::Left).line("Слева").align(Align::Centre).line("По центру").align(Align::Right).line("Справа");
    e.align(Align::Left).columns("Итого", "1 234,56 руб.");
    e.newline().align(Align::Centre).code128("KASSA-TEST-0001").newline();
    e.qr(b"KASSA test print", 6).newline();
    e.line("Конец теста").cut(Cut::FeedPartial(3));
    e.finish()
}

fn scan_test(args: &ScanTestArgs) -> anyhow::Result<()> {
    let rules = args.rules.rules()?;
    let framer = FramerConfig {
        prefix: args.prefix.clone(),
        terminator: args.terminator.into(),
        idle_gap_ms: args.idle_gap_ms,
        frame_bytes_max: args.frame_bytes_max,
    };
    if args.count == Some(0) {
        return Ok(());
    }
    let stop = AtomicBool::new(false);
    let mut frames = 0u64;
    let mut out = std::io::stdout().lock();
    let mut write_error = None;
    scanner::run_reader(&args.port, &args.serial.settings(), &framer, &stop, |ev| {
        let line = match ev {
            ScannerEvent::Connected => {
                eprintln!("scan-test: connected to {}", args.port);
                return;
            }
            ScannerEvent::Disconnected { reason } => {
                eprintln!("scan-test: {}: {reason} (retrying)", args.port);
                return;
            }
            ScannerEvent::Frame { bytes, .. } => serde_json::to_string(&ParsedScan::parse(&bytes, &rules)),
            ScannerEvent::Oversized { bytes_dropped } => serde_json::to_string(&serde_json::json!({
                "kind": "rejected",
                "error": format!(
                    "frame longer than {} bytes, {bytes_dropped} bytes dropped: a missing terminator \
                     (--terminator) or noise",
                    framer.frame_bytes_max
                ),
            })),
        };
        let written = writeln!(out, "{}", line.expect("JSON of plain data")).and_then(|()| out.flush());
        if let Err(e) = written {
            write_error = Some(e);
            stop.store(true, Ordering::Relaxed);
        }
        frames += 1;
        if Some(frames) == args.count {
            stop.store(true, Ordering::Relaxed);
        }
    });
    match write_error {
        Some(e) => Err(e).context("writing to stdout"),
        None => Ok(()),
    }
}

/// `parse`: one JSON object per non-blank input line.
fn parse_lines(rules: &ScanRules, input: impl BufRead, mut output: impl Write) -> anyhow::Result<()> {
    for (i, line) in input.split(b'\n').enumerate() {
        let mut line = line.context("reading stdin")?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let json = match kassa_hardware::unescape(&line) {
            Ok(frame) => serde_json::to_string(&ParsedScan::parse(&frame, rules)),
            Err(e) => serde_json::to_string(&serde_json::json!({
                "kind": "rejected",
                "raw": kassa_hardware::escape(&line),
                "error": format!("line {}: {e}", i + 1),
            })),
        }
        .expect("JSON of plain data");
        writeln!(output, "{json}").context("writing to stdout")?;
    }
    output.flush().context("writing to stdout")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lines_unescapes_and_skips_blank_lines() {
        let input = b"4650001209603\r\n\n  \n0104650001209603\\x1d21sQ5xhAbC\n\\x1\n".as_slice();
        let mut out = Vec::new();
        parse_lines(&ScanRules::default(), input, &mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["gtin"], "04650001209603");
        assert_eq!(lines[1]["ai"]["21"], "sQ5xhAbC");
        assert_eq!(lines[2]["kind"], "rejected");
        assert!(lines[2]["error"].as_str().unwrap().starts_with("line 5:"));
    }

    #[test]
    fn list_shows_stable_names_and_real_uarts() {
        let dir = tempfile::tempdir().unwrap();
        let (dev, sys) = (dir.path().join("dev"), dir.path().join("sys"));
        for d in ["serial/by-id", "usb"] {
            std::fs::create_dir_all(dev.join(d)).unwrap();
        }
        for node in ["ttyACM0", "ttyUSB1", "ttyUSB0", "ttyS0", "ttyS1", "ttyS10", "usb/lp0", "null"] {
            std::fs::write(dev.join(node), b"").unwrap();
        }
        std::os::unix::fs::symlink("../../ttyACM0", dev.join("serial/by-id/usb-Honeywell_Scanner_123-if00")).unwrap();
        for (n, t) in [("ttyS0", "4"), ("ttyS1", "0"), ("ttyS10", "0")] {
            std::fs::create_dir_all(sys.join(n)).unwrap();
            std::fs::write(sys.join(n).join("type"), t).unwrap();
        }
        let report = list_report(&dev, &sys, &[]);
        let acm = std::fs::canonicalize(dev.join("ttyACM0")).unwrap();
        assert!(report.contains(&format!("usb-Honeywell_Scanner_123-if00 -> {}", acm.display())), "{report}");
        let usb0 = report.find("ttyUSB0").unwrap();
        assert!(usb0 < report.find("ttyUSB1").unwrap());
        assert!(report.contains(&format!("{}\n", dev.join("ttyS0").display())));
        assert!(!report.contains("ttyS1\n") && report.contains("2 more ttyS nodes"), "{report}");
        assert!(report.contains("lp0") && !report.contains("null"));
        assert!(report.contains("by-path") && report.contains("(none)"));
    }

    #[test]
    fn test_receipt_has_cyrillic_barcode_qr_and_cut() {
        let job = test_receipt(escpos::EPSON, "/dev/ttyUSB0");
        let has = |needle: &[u8]| job.windows(needle.len()).any(|w| w == needle);
        assert!(job.starts_with(&[0x1B, 0x40, 0x1B, 0x74, 17]));
        // "Тест" in PC866.
        assert!(has(&[0x92, 0xA5, 0xE1, 0xE2]));
        assert!(has(&[0x1D, 0x6B, 73]) && has(b"{BKASSA-TEST-0001"));
        assert!(has(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]));
        assert!(job.ends_with(&[b'\n', 0x1D, 0x56, 0x42, 3]));
        let clone = test_receipt(escpos::CLONE, "/dev/ttyUSB0");
        assert!(clone.starts_with(&[0x1B, 0x40, 0x1C, 0x2E, 0x1B, 0x74, 46]));
    }
}
