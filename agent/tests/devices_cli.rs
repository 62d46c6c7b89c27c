//! `kassa-agent devices` as a technician runs it: the built binary, its stdin and
//! stdout, and pseudo-terminals standing in for a scanner and a printer.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_kassa-agent");
/// Generous: CI machines are slow, and a hang must fail rather than block the suite.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `kassa-agent`, its output read line by line on threads.
struct Running {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    fn spawn(args: &[&str], stdin: &[u8]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kassa-agent");
        let mut input = child.stdin.take().expect("piped");
        let stdin = stdin.to_vec();
        // Written on a thread so that a large output cannot deadlock against the input.
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let stdout = lines_of(child.stdout.take().expect("piped"));
        let stderr = lines_of(child.stderr.take().expect("piped"));
        Running { child, stdout, stderr }
    }

    /// Waits for a stderr line containing `needle`, and returns the lines seen.
    fn wait_stderr(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let mut seen = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
        panic!("no {needle:?} on stderr; saw {seen:?}");
    }

    /// Waits for the process to end (killing it after [`RUN_TIMEOUT`]).
    fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out: Vec<String> = self.stdout.try_iter().collect();
                let err: Vec<String> = self.stderr.try_iter().collect();
                panic!("kassa-agent did not finish; stdout {out:?}, stderr {err:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, self.stdout.iter().collect(), self.stderr.iter().collect())
    }
}

fn parse(input: &str) -> Vec<Value> {
    let (status, out, err) = Running::spawn(&["devices", "parse"], input.as_bytes()).finish();
    assert!(status.success(), "stderr: {err:?}");
    out.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
}

#[test]
fn parse_prints_one_json_object_per_code() {
    let input = [
        "4650001209603",
        "]E02200001012356",
        "",
        "]C101046500012096033103001250\\x1d10LOT7",
        "0104650001209603\\x1d21sQ5xhAbC",
        "]d20104650001209603215aBcDeFg\\x1d93&</>",
        "2990000123459",
        "KASSA:1:42",
        "4650001209604",
        "ДС12345",
        "back\\\\slash",
    ]
    .join("\n");
    let out = parse(&input);
    assert_eq!(out.len(), 10, "{out:#?}");
    assert_eq!(out[0], json!({"kind": "gtin", "gtin": "04650001209603", "raw": "4650001209603"}));
    assert_eq!(
        out[1],
        json!({"kind": "weighted", "plu": 1, "weight_grams": 1235, "raw": "]E02200001012356", "aim": "]E0"})
    );
    assert_eq!(out[2]["kind"], "gs1");
    assert_eq!(out[2]["gtin"], "04650001209603");
    assert_eq!(out[2]["weight_grams"], 1250);
    assert_eq!(out[2]["ai"], json!({"01": "04650001209603", "3103": "001250", "10": "LOT7"}));
    assert_eq!(out[2]["raw"], "]C101046500012096033103001250\\x1d10LOT7");
    assert_eq!(
        out[3],
        json!({
            "kind": "gs1", "gtin": "04650001209603", "ai": {"01": "04650001209603", "21": "sQ5xhAbC"},
            "raw": "0104650001209603\\x1d21sQ5xhAbC"
        })
    );
    assert_eq!(out[4]["kind"], "marking");
    assert_eq!(out[4]["gtin"], "04650001209603");
    assert_eq!(out[4]["ai"]["93"], "&</>");
    assert_eq!(out[4]["raw"], "]d20104650001209603215aBcDeFg\\x1d93&</>");
    assert_eq!(out[4]["code"], "0104650001209603215aBcDeFg\u{1d}93&</>");
    assert_eq!(out[5], json!({"kind": "loyalty", "card": "2990000123459", "raw": "2990000123459"}));
    assert_eq!(out[6], json!({"kind": "receipt", "store": 1, "seq": 42, "raw": "KASSA:1:42"}));
    assert_eq!(out[7]["kind"], "rejected");
    assert!(out[7]["error"].as_str().unwrap().contains("check digit"));
    assert!(out[7].get("gtin").is_none());
    assert!(out[8]["error"].as_str().unwrap().contains("Russian keyboard layout"));
    assert_eq!(out[8]["raw"], "\\xd0\\x94\\xd0\\xa112345");
    assert_eq!(out[9]["raw"], "back\\\\slash");
}

#[test]
fn parse_takes_the_store_rules() {
    let (status, out, _) = Running::spawn(
        &["devices", "parse", "--weighted-template", "21PPPPPWWWWWC", "--loyalty-prefix", "LC"],
        b"2100001012359\nLC00012345\n",
    )
    .finish();
    assert!(status.success());
    let out: Vec<Value> = out.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out[0]["kind"], "weighted");
    assert_eq!(out[1]["kind"], "loyalty");
    let (status, _, err) = Running::spawn(&["devices", "parse", "--weighted-template", "21PPPP"], b"").finish();
    assert!(!status.success());
    assert!(err.join("\n").contains("8, 12 or 13"), "{err:?}");
}

/// A raw pseudo-terminal: the test holds the master and the slave open; the binary
/// opens the slave by path as it would a real port.
struct Pty {
    master: File,
    _slave: OwnedFd,
    path: PathBuf,
}

fn pty() -> Pty {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let mut t = tcgetattr(&pair.slave).expect("tcgetattr");
    cfmakeraw(&mut t);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &t).expect("tcsetattr");
    let path = nix::unistd::ttyname(&pair.slave).expect("ttyname");
    Pty { master: File::from(pair.master), _slave: pair.slave, path }
}

#[test]
fn scan_test_prints_frames_from_a_serial_port() {
    let mut scanner = pty();
    let port = scanner.path.to_str().expect("utf-8 path").to_owned();
    let run = Running::spawn(&["devices", "scan-test", "--port", &port, "--count", "2", "--idle-gap-ms", "2000"], b"");
    run.wait_stderr("connected");
    // The first frame split across writes, as scanners deliver long codes.
    scanner.master.write_all(b"46500").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    scanner.master.write_all(b"01209603\r]d20104650001209603215aBcDeFg\x1d93&</>\r").unwrap();
    let (status, out, err) = run.finish();
    assert!(status.success(), "stderr: {err:?}");
    let out: Vec<Value> = out.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], json!({"kind": "gtin", "gtin": "04650001209603", "raw": "4650001209603"}));
    assert_eq!(out[1]["kind"], "marking");
    assert_eq!(out[1]["raw"], "]d20104650001209603215aBcDeFg\\x1d93&</>");
    assert_eq!(out[1]["aim"], "]d2");
}

/// A printer on a pty: answers `DLE EOT n` with `replies[n - 1]` (or not at all) and
/// keeps everything it was sent.
struct FakePrinter {
    pty_path: PathBuf,
    received: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _slave: OwnedFd,
}

impl FakePrinter {
    fn start(replies: Option<[u8; 4]>) -> FakePrinter {
        let Pty { mut master, _slave, path } = pty();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, st) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut scanned = 0;
            let mut buf = [0u8; 512];
            while !st.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(20u16)).unwrap_or(0) == 0 {
                    continue;
                }
                let Ok(n) = master.read(&mut buf) else { break };
                let mut all = rx.lock().unwrap();
                all.extend_from_slice(&buf[..n]);
                while scanned + 3 <= all.len() {
                    if all[scanned] == 0x10 && all[scanned + 1] == 0x04 && (1..=4).contains(&all[scanned + 2]) {
                        if let Some(r) = replies {
                            master.write_all(&[r[usize::from(all[scanned + 2]) - 1]]).unwrap();
                        }
                        scanned += 3;
                    } else {
                        scanned += 1;
                    }
                }
            }
        });
        FakePrinter { pty_path: path, received, stop, thread: Some(thread), _slave }
    }

    fn path(&self) -> &str {
        self.pty_path.to_str().expect("utf-8 path")
    }

    fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for FakePrinter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const STATUS_QUERIES: [u8; 12] = [0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 3, 0x10, 0x04, 4];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn test_print_checks_status_then_prints() {
    let printer = FakePrinter::start(Some([0x12, 0x12, 0x12, 0x1E]));
    let (status, out, err) =
        Running::spawn(&["devices", "test-print", "--port", printer.path(), "--model", "clone"], b"").finish();
    assert!(status.success(), "stdout {out:?} stderr {err:?}");
    let out = out.join("\n");
    assert!(out.contains("Printer status: Paper near end / Бумага заканчивается"), "{out}");
    assert!(out.contains("Sent a test receipt"), "{out}");
    let got = printer.received();
    assert!(got.starts_with(&STATUS_QUERIES), "{got:02x?}");
    assert!(contains(&got, &[0x1B, 0x40, 0x1C, 0x2E, 0x1B, 0x74, 46]));
    assert!(contains(&got, b"{BKASSA-TEST-0001"));
    assert!(contains(&got, &[b'\n', 0x1D, 0x56, 0x42, 3]));
    assert!(got.ends_with(&STATUS_QUERIES), "asks again after the job");
}

#[test]
fn test_print_refuses_without_paper_unless_forced() {
    let printer = FakePrinter::start(Some([0x1A, 0x32, 0x12, 0x7E]));
    let (status, out, err) = Running::spawn(&["devices", "test-print", "--port", printer.path()], b"").finish();
    assert!(!status.success());
    assert!(out.join("\n").contains("Paper out / Нет бумаги"), "{out:?}");
    assert!(err.join("\n").contains("not printing: Paper out"), "{err:?}");
    assert_eq!(printer.received(), STATUS_QUERIES, "nothing but the status queries");

    let (status, out, _) =
        Running::spawn(&["devices", "test-print", "--port", printer.path(), "--force"], b"").finish();
    assert!(status.success());
    assert!(out.join("\n").contains("Printing anyway"));
    assert!(contains(&printer.received(), b"{BKASSA-TEST-0001"));
}

#[test]
fn test_print_reports_a_silent_printer() {
    let printer = FakePrinter::start(None);
    let (status, out, err) =
        Running::spawn(&["devices", "test-print", "--port", printer.path(), "--status-timeout-ms", "200"], b"")
            .finish();
    assert!(!status.success());
    assert!(out.join("\n").contains("Printer not responding / Нет связи с принтером"), "{out:?}");
    assert!(err.join("\n").contains("not printing"), "{err:?}");
    assert_eq!(printer.received(), &STATUS_QUERIES[..3], "stops at the first unanswered query");
}
