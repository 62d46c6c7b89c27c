//! The technician's console: one command per line, acting on the virtual devices.
//!
//! The demo reads it from stdin and from its control socket (`kassa-sim ctl ...`).
//! Commands that take time (a code list, a frame split with delays) run on a thread of
//! their own, so the console stays responsive; everything else answers at once.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_agent::status::Status;
use tokio::sync::watch;

use crate::bytelog::{ByteLog, Entry};
use crate::printer::{PrinterFault, VirtualPrinter};
use crate::printer_emu::PaperState;
use crate::scanner::{codes, parse_code_list, unescape, Framing, VirtualScanner};

/// Longest pause between the pieces of a split frame.
pub const SPLIT_DELAY_MS_MAX: u64 = 10_000;
/// Largest code-list file read.
pub const CODE_LIST_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Most entries `log N` shows.
pub const LOG_SHOW_ENTRIES_MAX: usize = 500;
/// Bytes shown per log line; longer writes continue on the following lines.
const LOG_LINE_BYTES: usize = 32;
/// Lines shown per log entry (a receipt is ~20); the rest is summarised.
const LOG_ENTRY_LINES_MAX: usize = 64;

pub const HELP: &str = "\
scanner:  <code> | scan <code>          (\\x1d stands for the GS byte)
          weighed <plu> <grams>         in-store code 22PPPPPWWWWWC
          marking <gtin14> <serial>     a marking code (01)(21) GS (91) GS (92)
          scan-split <code> <parts> <ms>  one frame in pieces, <ms> apart
          scan-file <path> [<codes/s>]  a list of codes (default 2/s) | scan-file stop
          garbage <bytes>               random bytes, as at a wrong baud rate
          raw <bytes>                   exactly these bytes (\\x escapes)
          suffix cr|lf|crlf|none        aim off|auto|]E0|]d2|...
          scanner unplug|replug
printer:  paper ok|near-end|out  cover open|closed  offline on|off  printer unplug|replug
          fault-after <bytes> paper-out|paper-near-end|cover-open|offline
                                        strikes once that many more bytes arrive
both:     devices                       state of each device (and what the agent sees)
          log on|off                    watch the byte log, both directions, as it grows
          log [<n>]                     the last n log entries (default 20)
          help | quit";

/// A group of commands: the reply, or `Ok(None)` when the command is not one of the group's.
type Group = fn(&Console, &str, &[&str]) -> Result<Option<String>, String>;

/// The devices a console acts on, and its own small state.
#[derive(Debug)]
pub struct Console {
    scanner: Arc<VirtualScanner>,
    printer: Arc<VirtualPrinter>,
    /// The agent's view of its devices, when there is an agent in this process.
    agent_status: Option<watch::Receiver<Status>>,
    /// Stops the running code list.
    list_stop: Mutex<Option<Arc<AtomicBool>>>,
    watching: AtomicBool,
    /// Next log entry to show, per device, while watching.
    cursors: Mutex<(u64, u64)>,
}

impl Console {
    pub fn new(
        scanner: Arc<VirtualScanner>,
        printer: Arc<VirtualPrinter>,
        agent_status: Option<watch::Receiver<Status>>,
    ) -> Console {
        Console {
            scanner,
            printer,
            agent_status,
            list_stop: Mutex::new(None),
            watching: AtomicBool::new(false),
            cursors: Mutex::new((0, 0)),
        }
    }

    /// Runs one command; the reply may span several lines.
    pub fn command(&self, line: &str) -> Result<String, String> {
        let line = line.trim();
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let groups: [Group; 3] = [Self::console_command, Self::scanner_command, Self::printer_command];
        for group in groups {
            if let Some(reply) = group(self, verb, &args)? {
                return Ok(reply);
            }
        }
        // A bare code typed at the console is a scan.
        if args.is_empty() && verb.bytes().all(|b| b.is_ascii_digit()) {
            return self.scan(verb);
        }
        Err(format!("unknown command or wrong arguments: `{line}`; try `help`"))
    }

    /// The console's own commands (help, the devices' state, the byte log); `Ok(None)`:
    /// not one of them.
    fn console_command(&self, verb: &str, args: &[&str]) -> Result<Option<String>, String> {
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let reply = match (verb, args.len()) {
            ("", _) => Ok(String::new()),
            ("help", _) => Ok(HELP.into()),
            ("devices", 0) => Ok(self.devices()),
            ("log", 1) if matches!(arg(0), "on" | "off") => {
                let on = arg(0) == "on";
                *self.cursors.lock().unwrap_or_else(|p| p.into_inner()) =
                    (self.scanner.log().next_seq(), self.printer.log().next_seq());
                self.watching.store(on, Ordering::Relaxed);
                Ok(format!("byte log {}", arg(0)))
            }
            ("log", 0 | 1) => {
                let n = if args.is_empty() { Ok(20) } else { arg(0).parse::<usize>() };
                let n = n.map_err(|_| "log on|off|<n>".to_owned())?.min(LOG_SHOW_ENTRIES_MAX);
                Ok(self.last_log_entries(n))
            }
            _ => return Ok(None),
        };
        reply.map(Some)
    }

    /// The scanner's commands; `Ok(None)`: not one of them.
    fn scanner_command(&self, verb: &str, args: &[&str]) -> Result<Option<String>, String> {
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let reply = match (verb, args.len()) {
            ("scan", 1) => self.scan(arg(0)),
            ("weighed", 2) => {
                let number = |s: &str| s.parse::<u32>().map_err(|_| format!("`{s}` is not a number"));
                let code = codes::weighted(number(arg(0))?, number(arg(1))?)?;
                self.scan(&code)
            }
            ("marking", 2) => {
                let code = codes::marking(arg(0), arg(1), "EE06", "mW/9+kQ<>&x=");
                self.scanner.scan(&code).map_err(|e| e.to_string())?;
                Ok(format!("scanned {}", kassa_hardware::escape(&code)))
            }
            ("scan-split", 3) => self.scan_split(arg(0), arg(1), arg(2)),
            ("scan-file", 1) if arg(0) == "stop" => self.stop_list(),
            ("scan-file", 1 | 2) => self.scan_file(Path::new(arg(0)), if args.len() == 2 { arg(1) } else { "2" }),
            ("garbage", 1) => {
                let len = arg(0).parse::<usize>().map_err(|_| "garbage <bytes>".to_owned())?;
                let seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64);
                self.scanner.garbage(len, seed).map_err(|e| e.to_string())?;
                Ok(format!("sent {len} garbage bytes"))
            }
            ("raw", 1) => {
                let bytes = unescape(arg(0))?;
                self.scanner.send_raw(&bytes).map_err(|e| e.to_string())?;
                Ok(format!("sent {} bytes", bytes.len()))
            }
            ("suffix", 1) => {
                let suffix = arg(0).parse().map_err(|e: crate::scanner::ScannerError| e.to_string())?;
                self.scanner.set_framing(Framing { suffix, ..self.scanner.framing() });
                Ok(format!("scanner {}", self.scanner.framing()))
            }
            ("aim", 1) => {
                let aim = arg(0).parse().map_err(|e: crate::scanner::ScannerError| e.to_string())?;
                self.scanner.set_framing(Framing { aim, ..self.scanner.framing() });
                Ok(format!("scanner {}", self.scanner.framing()))
            }
            ("scanner", 1) => match arg(0) {
                "unplug" => {
                    Ok(if self.scanner.unplug() { "scanner unplugged" } else { "scanner was unplugged" }.into())
                }
                "replug" => match self.scanner.replug() {
                    Ok(true) => Ok(format!("scanner plugged in at {}", self.scanner.path().display())),
                    Ok(false) => Ok("scanner was plugged in".into()),
                    Err(e) => Err(format!("scanner: {e}")),
                },
                _ => Err("scanner unplug|replug".into()),
            },
            _ => return Ok(None),
        };
        reply.map(Some)
    }

    /// The printer's commands; `Ok(None)`: not one of them.
    fn printer_command(&self, verb: &str, args: &[&str]) -> Result<Option<String>, String> {
        let arg = |i: usize| args.get(i).copied().unwrap_or("");
        let reply = match (verb, args.len()) {
            ("printer", 1) => match arg(0) {
                "unplug" => {
                    Ok(if self.printer.unplug() { "printer unplugged" } else { "printer was unplugged" }.into())
                }
                "replug" => match self.printer.replug() {
                    Ok(true) => Ok(format!("printer plugged in at {}", self.printer.path().display())),
                    Ok(false) => Ok("printer was plugged in".into()),
                    Err(e) => Err(format!("printer: {e}")),
                },
                _ => Err("printer unplug|replug".into()),
            },
            ("fault-after", 2) => {
                let bytes: u64 = arg(0).parse().map_err(|_| "fault-after <bytes> <fault>".to_owned())?;
                let fault = match arg(1) {
                    "paper-out" => PrinterFault::PaperOut,
                    "paper-near-end" => PrinterFault::PaperNearEnd,
                    "cover-open" => PrinterFault::CoverOpen,
                    "offline" => PrinterFault::Offline,
                    _ => return Err("fault-after <bytes> paper-out|paper-near-end|cover-open|offline".into()),
                };
                self.printer.fault_after(bytes, fault);
                Ok(format!("{} after {bytes} more bytes", arg(1)))
            }
            ("paper", 1) => {
                let state = match arg(0) {
                    "ok" => PaperState::Ok,
                    "near-end" => PaperState::NearEnd,
                    "out" => PaperState::Out,
                    _ => return Err("paper ok|near-end|out".into()),
                };
                self.printer.set_paper(state);
                Ok(format!("paper {}", arg(0)))
            }
            ("cover", 1) => match arg(0) {
                "open" | "closed" => {
                    self.printer.set_cover_open(arg(0) == "open");
                    Ok(format!("cover {}", arg(0)))
                }
                _ => Err("cover open|closed".into()),
            },
            ("offline", 1) => match arg(0) {
                "on" | "off" => {
                    self.printer.set_offline(arg(0) == "on");
                    Ok(format!("offline {}", arg(0)))
                }
                _ => Err("offline on|off".into()),
            },
            _ => return Ok(None),
        };
        reply.map(Some)
    }

    fn scan(&self, code: &str) -> Result<String, String> {
        let bytes = unescape(code)?;
        self.scanner.scan(&bytes).map_err(|e| e.to_string())?;
        Ok(format!("scanned {code}"))
    }

    fn scan_split(&self, code: &str, parts: &str, delay_ms: &str) -> Result<String, String> {
        let bytes = unescape(code)?;
        let parts: usize = parts.parse().map_err(|_| "parts must be a number")?;
        let delay_ms: u64 = delay_ms.parse().map_err(|_| "delay must be milliseconds")?;
        if delay_ms > SPLIT_DELAY_MS_MAX {
            return Err(format!("delay at most {SPLIT_DELAY_MS_MAX} ms"));
        }
        let scanner = self.scanner.clone();
        std::thread::spawn(move || {
            if let Err(e) = scanner.scan_split(&bytes, parts, Duration::from_millis(delay_ms)) {
                println!("  scan-split: {e}");
            }
        });
        Ok(format!("sending {code} in {parts} pieces, {delay_ms} ms apart"))
    }

    fn scan_file(&self, path: &Path, rate: &str) -> Result<String, String> {
        let rate: u32 = rate.parse().map_err(|_| "rate must be codes per second")?;
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, CODE_LIST_FILE_BYTES_MAX), &mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let codes = parse_code_list(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut running = self.list_stop.lock().unwrap_or_else(|p| p.into_inner());
        if running.as_ref().is_some_and(|stop| !stop.load(Ordering::Relaxed)) {
            return Err("a code list is already being scanned; `scan-file stop` first".into());
        }
        let stop = Arc::new(AtomicBool::new(false));
        *running = Some(stop.clone());
        let scanner = self.scanner.clone();
        let total = codes.len();
        std::thread::spawn(move || {
            match scanner.scan_list(&codes, rate, &stop) {
                Ok(sent) => println!("  scan-file: {sent} of {total} codes sent"),
                Err(e) => println!("  scan-file: {e}"),
            }
            stop.store(true, Ordering::Relaxed);
        });
        Ok(format!("scanning {total} codes at {rate} per second"))
    }

    fn stop_list(&self) -> Result<String, String> {
        match self.list_stop.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(stop) if !stop.load(Ordering::Relaxed) => {
                stop.store(true, Ordering::Relaxed);
                Ok("code list stopped".into())
            }
            _ => Err("no code list is being scanned".into()),
        }
    }

    fn devices(&self) -> String {
        let s = &self.scanner;
        let mut text = format!(
            "scanner  {} ({}), {}",
            s.path().display(),
            if s.is_plugged() { "plugged in" } else { "unplugged" },
            s.framing()
        );
        let _ = write!(text, "\nprinter  {}: {}", self.printer.path().display(), self.printer.state());
        if let Some(status) = &self.agent_status {
            let st = status.borrow();
            let view = |d: &kassa_agent::status::DeviceStatus| {
                let state = serde_json::to_value(d.state).ok().and_then(|v| v.as_str().map(str::to_owned));
                let mut v = format!("{} ({} done, {} rejected)", state.unwrap_or_default(), d.count, d.rejected);
                if let Some(detail) = &d.detail {
                    let _ = write!(v, ": {detail}");
                }
                v
            };
            let _ = write!(text, "\nagent sees: scanner {}; printer {}", view(&st.scanner), view(&st.printer));
        }
        text
    }

    fn last_log_entries(&self, n: usize) -> String {
        let mut entries = self.entries_since(0, 0);
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
        let lines: Vec<String> = entries.iter().map(|(log, e)| display(log, e)).collect();
        if lines.is_empty() {
            "the byte log is empty".into()
        } else {
            lines.join("\n")
        }
    }

    /// Entries of both devices from the given positions, in time order.
    fn entries_since(&self, scanner_seq: u64, printer_seq: u64) -> Vec<(&ByteLog, Entry)> {
        let (s, p) = (self.scanner.log(), self.printer.log());
        let mut all: Vec<(&ByteLog, Entry)> = s.since(scanner_seq).into_iter().map(|e| (s, e)).collect();
        all.extend(p.since(printer_seq).into_iter().map(|e| (p, e)));
        all.sort_by_key(|(_, e)| e.at_ms);
        all
    }

    /// New byte-log lines while watching (`log on`), else nothing. Call it now and then.
    pub fn poll_log(&self) -> Vec<String> {
        if !self.watching.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let (s, p) = *cursors;
        let mut lines = Vec::new();
        // Entries evicted before we saw them: say how many, rather than skip silently.
        let first = |log: &ByteLog, from: u64| log.since(from).first().map(|e| e.seq);
        for (log, from) in [(self.scanner.log(), s), (self.printer.log(), p)] {
            if let Some(seq) = first(log, from).filter(|&seq| seq > from) {
                lines.push(format!("{}: {} log entries dropped before they were shown", log.device(), seq - from));
            }
        }
        lines.extend(self.entries_since(s, p).iter().map(|(log, e)| display(log, e)));
        *cursors = (self.scanner.log().next_seq(), self.printer.log().next_seq());
        lines
    }
}

fn display(log: &ByteLog, entry: &Entry) -> String {
    let mut lines = entry.display_lines(log.device(), LOG_LINE_BYTES);
    if lines.len() > LOG_ENTRY_LINES_MAX {
        let more = lines.len() - LOG_ENTRY_LINES_MAX;
        lines.truncate(LOG_ENTRY_LINES_MAX);
        lines.push(format!("\n         … {more} more lines"));
    }
    lines.concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer_emu::Model;

    fn console() -> Console {
        let scanner = Arc::new(VirtualScanner::create(None).unwrap());
        let (printer, _events) = VirtualPrinter::create(None, Model::Epson).unwrap();
        Console::new(scanner, Arc::new(printer), None)
    }

    #[test]
    fn commands_act_on_the_devices() {
        let c = console();
        assert_eq!(c.command("4650001209603").unwrap(), "scanned 4650001209603");
        assert_eq!(c.command("weighed 1 1235").unwrap(), "scanned 2200001012356");
        assert!(c.command("suffix crlf").unwrap().contains("suffix crlf"));
        assert!(c.command("aim ]E0").unwrap().contains("AIM ]E0"));
        c.command("scan 123").unwrap();
        assert!(c.command("paper out").is_ok());
        assert!(c.command("devices").unwrap().contains("paper out"));
        assert_eq!(c.command("scanner unplug").unwrap(), "scanner unplugged");
        assert_eq!(c.command("scan 1").unwrap_err(), "the scanner is unplugged");
        assert!(c.command("devices").unwrap().contains("(unplugged)"));
        assert!(c.command("scanner replug").unwrap().starts_with("scanner plugged in at"));
        assert!(c.command("paper sideways").is_err());
        assert_eq!(c.command("fault-after 0 cover-open").unwrap(), "cover-open after 0 more bytes");
        assert!(c.command("devices").unwrap().contains("cover open"));
        assert!(c.command("frobnicate").unwrap_err().contains("help"));
        assert!(c.command("scan-file /nonexistent").is_err());
        assert!(c.command("scan-file stop").is_err());

        let log = c.command("log 50").unwrap();
        assert!(log.contains("scanner → agent  (8 B) ]E0123\\x0d\\x0a"), "{log}");
        assert!(log.contains("printer: paper Out"), "{log}");
    }

    #[test]
    fn watching_shows_only_new_entries() {
        let c = console();
        c.command("scan 1").unwrap();
        assert!(c.poll_log().is_empty(), "not watching");
        c.command("log on").unwrap();
        assert!(c.poll_log().is_empty(), "nothing new yet");
        c.command("scan 2").unwrap();
        let lines = c.poll_log();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].ends_with("scanner → agent  (2 B) 2\\x0d"), "{lines:?}");
        assert!(c.poll_log().is_empty());
        c.command("log off").unwrap();
        c.command("scan 3").unwrap();
        assert!(c.poll_log().is_empty());
    }
}
