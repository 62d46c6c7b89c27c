//! Scenarios: a small TOML script of scans, pauses, faults, payments and expectations,
//! run against a live agent through its devices.
//!
//! ```toml
//! name = "normal sale"
//!
//! [[step]]
//! scan = "4650001209603"
//! [[step]]
//! scan = '0104650001209603215aB3d\x1d93Ab1z'  # `\x1d` is the GS byte (single quotes:
//!                                              # TOML's literal string, no TOML escapes)
//! [[step]]
//! expect = { basket_lines = 1 }          # polled until true, within 5 s by default
//! [[step]]
//! pay = { cash_kopecks = 20000 }         # POST /api/pay, fresh idempotency key
//! [[step]]
//! expect = { receipt_contains = ["ИТОГО", "=106,90"], within_ms = 5000 }
//! ```
//!
//! Steps: `scan`, `pause_ms`, `fault` (`paper_ok`, `paper_near_end`, `paper_out`,
//! `cover_open`, `cover_closed`, `offline`, `online`, `scanner_unplug`,
//! `scanner_replug`, `printer_unplug`, `printer_replug`), `fault_after = { fault =
//! "paper_out", printer_bytes = 200 }` (a printer fault that strikes once the printer
//! has received that many more bytes: in the middle of the next receipt), `pay = {
//! cash_kopecks, card_kopecks, expect_error }` and `expect`.
//!
//! Expectations (one per step): `receipt_contains` (a string or a list, all in one
//! receipt printed since the last receipt matched; that receipt and those before it
//! are used up), `basket_lines` (`GET /api/basket`), `printer_status` (`ok`,
//! `paper_near_end`, `paper_out`, `cover_open`, `offline`, `online`, `unplugged`: the
//! virtual printer's state), `partial_receipt_contains` (on the paper of a receipt
//! not yet cut), `agent_scanner` / `agent_printer` (`idle`, `busy`, `error`, `closed`:
//! the agent's view, `GET /api/status`), and `no_receipt_for_ms`. A condition is polled
//! until it holds, for `within_ms` (default [`WITHIN_MS_DEFAULT`]), or must hold for
//! the whole of `for_ms`.
//!
//! # Design
//!
//! The agent opens its devices by path, so whoever drives it must own those devices.
//! [`run`] therefore starts the whole store itself, as the demo does ([`crate::stack`]:
//! HQ, the agent, the virtual scanner and printer, in a fresh temporary directory on
//! ports the OS picks), waits for the catalog, and then acts on the running agent only
//! from the outside: bytes on the scanner's pty, faults on the printer, the cashier's
//! HTTP API. It never calls into the agent's code, so a scenario exercises exactly
//! what a cashier and a technician would. Each scenario gets a store of its own, so
//! scenarios cannot disturb each other or a demo running on the same machine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kassa_protocol::Kopecks;
use serde::Deserialize;
use serde_json::Value;

use crate::printer::{PrinterEvent, PrinterFault, PrinterState};
use crate::printer_emu::{Model, PaperState, Receipt};
use crate::scanner::{unescape, ScannerError};
use crate::stack::{self, Stack, StackOptions};

/// How long an expectation waits by default.
pub const WITHIN_MS_DEFAULT: u64 = 5_000;
/// Longest wait or pause a step may ask for.
pub const WAIT_MS_MAX: u64 = 120_000;
/// Most steps in a scenario.
pub const STEPS_MAX: usize = 1_000;
/// Largest scenario file.
pub const SCENARIO_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// How often a condition is checked while waiting.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: larger than {SCENARIO_FILE_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("{0}")]
    Parse(String),
    #[error("step {step}: {reason}")]
    Invalid { step: usize, reason: String },
    #[error("starting the store: {0}")]
    Stack(#[from] stack::StackError),
    #[error("temporary directory: {0}")]
    TempDir(std::io::Error),
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "step")]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Scan(String),
    PauseMs(u64),
    Fault(Fault),
    FaultAfter(FaultAfter),
    Pay(Pay),
    Expect(Expect),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    PaperOk,
    PaperNearEnd,
    PaperOut,
    CoverOpen,
    CoverClosed,
    Offline,
    Online,
    ScannerUnplug,
    ScannerReplug,
    PrinterUnplug,
    PrinterReplug,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAfter {
    pub fault: Fault,
    pub printer_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pay {
    #[serde(default)]
    pub cash_kopecks: i64,
    #[serde(default)]
    pub card_kopecks: i64,
    /// The payment must be refused with this error code (e.g. `payment_short`).
    pub expect_error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterStatus {
    Ok,
    PaperNearEnd,
    PaperOut,
    CoverOpen,
    Offline,
    Online,
    Unplugged,
}

impl PrinterStatus {
    fn name(self) -> &'static str {
        match self {
            PrinterStatus::Ok => "ok",
            PrinterStatus::PaperNearEnd => "paper_near_end",
            PrinterStatus::PaperOut => "paper_out",
            PrinterStatus::CoverOpen => "cover_open",
            PrinterStatus::Offline => "offline",
            PrinterStatus::Online => "online",
            PrinterStatus::Unplugged => "unplugged",
        }
    }

    fn holds(self, s: &PrinterState) -> bool {
        match self {
            PrinterStatus::Ok => s.plugged && s.online && s.paper == PaperState::Ok,
            PrinterStatus::PaperNearEnd => s.paper == PaperState::NearEnd,
            PrinterStatus::PaperOut => s.paper == PaperState::Out,
            PrinterStatus::CoverOpen => s.cover_open,
            PrinterStatus::Offline => !s.online,
            PrinterStatus::Online => s.online,
            PrinterStatus::Unplugged => !s.plugged,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentDeviceState {
    Idle,
    Busy,
    Error,
    Closed,
}

impl AgentDeviceState {
    fn name(self) -> &'static str {
        match self {
            AgentDeviceState::Idle => "idle",
            AgentDeviceState::Busy => "busy",
            AgentDeviceState::Error => "error",
            AgentDeviceState::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub receipt_contains: Option<OneOrMany>,
    pub partial_receipt_contains: Option<OneOrMany>,
    pub basket_lines: Option<usize>,
    pub printer_status: Option<PrinterStatus>,
    pub agent_scanner: Option<AgentDeviceState>,
    pub agent_printer: Option<AgentDeviceState>,
    pub no_receipt_for_ms: Option<u64>,
    pub within_ms: Option<u64>,
    pub for_ms: Option<u64>,
}

impl Expect {
    fn conditions(&self) -> usize {
        [
            self.receipt_contains.is_some(),
            self.partial_receipt_contains.is_some(),
            self.basket_lines.is_some(),
            self.printer_status.is_some(),
            self.agent_scanner.is_some(),
            self.agent_printer.is_some(),
            self.no_receipt_for_ms.is_some(),
        ]
        .iter()
        .filter(|&&c| c)
        .count()
    }

    fn validate(&self) -> Result<(), String> {
        if self.conditions() != 1 {
            return Err("an expectation needs exactly one condition".into());
        }
        if self.within_ms.is_some() && self.for_ms.is_some() {
            return Err("within_ms (eventually) and for_ms (throughout) exclude each other".into());
        }
        if (self.receipt_contains.is_some() || self.no_receipt_for_ms.is_some()) && self.for_ms.is_some() {
            return Err("for_ms does not apply to receipts; use no_receipt_for_ms".into());
        }
        if self.no_receipt_for_ms.is_some() && self.within_ms.is_some() {
            return Err("no_receipt_for_ms takes no within_ms".into());
        }
        let longest = [self.within_ms, self.for_ms, self.no_receipt_for_ms].into_iter().flatten().max();
        if longest.is_some_and(|ms| ms > WAIT_MS_MAX) {
            return Err(format!("waits are at most {WAIT_MS_MAX} ms"));
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Scan(code) => write!(f, "scan {code}"),
            Step::PauseMs(ms) => write!(f, "pause {ms} ms"),
            Step::Fault(fault) => write!(f, "fault {}", fault_name(*fault)),
            Step::FaultAfter(a) => write!(f, "fault {} after {} printer bytes", fault_name(a.fault), a.printer_bytes),
            Step::Pay(p) => {
                write!(f, "pay")?;
                if p.cash_kopecks > 0 {
                    write!(f, " {} cash", Kopecks(p.cash_kopecks))?;
                }
                if p.card_kopecks > 0 {
                    write!(f, " {} by card", Kopecks(p.card_kopecks))?;
                }
                if let Some(e) = &p.expect_error {
                    write!(f, ", refused with {e}")?;
                }
                Ok(())
            }
            Step::Expect(e) => {
                write!(f, "expect ")?;
                if let Some(texts) = &e.receipt_contains {
                    write!(f, "a receipt containing {:?}", texts.items())?;
                }
                if let Some(texts) = &e.partial_receipt_contains {
                    write!(f, "a receipt cut short containing {:?}", texts.items())?;
                }
                if let Some(n) = e.basket_lines {
                    write!(f, "{n} basket line{}", if n == 1 { "" } else { "s" })?;
                }
                if let Some(s) = e.printer_status {
                    write!(f, "printer status {}", s.name())?;
                }
                if let Some(s) = e.agent_scanner {
                    write!(f, "agent's scanner {}", s.name())?;
                }
                if let Some(s) = e.agent_printer {
                    write!(f, "agent's printer {}", s.name())?;
                }
                if let Some(ms) = e.no_receipt_for_ms {
                    write!(f, "no receipt for {ms} ms")?;
                }
                if let Some(ms) = e.for_ms {
                    write!(f, " for {ms} ms")?;
                } else if e.no_receipt_for_ms.is_none() {
                    write!(f, " within {} ms", e.within_ms.unwrap_or(WITHIN_MS_DEFAULT))?;
                }
                Ok(())
            }
        }
    }
}

fn fault_name(fault: Fault) -> &'static str {
    match fault {
        Fault::PaperOk => "paper_ok",
        Fault::PaperNearEnd => "paper_near_end",
        Fault::PaperOut => "paper_out",
        Fault::CoverOpen => "cover_open",
        Fault::CoverClosed => "cover_closed",
        Fault::Offline => "offline",
        Fault::Online => "online",
        Fault::ScannerUnplug => "scanner_unplug",
        Fault::ScannerReplug => "scanner_replug",
        Fault::PrinterUnplug => "printer_unplug",
        Fault::PrinterReplug => "printer_replug",
    }
}

/// Parses and validates a scenario.
pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
    if scenario.steps.is_empty() {
        return Err(ScenarioError::Parse("a scenario needs at least one [[step]]".into()));
    }
    if scenario.steps.len() > STEPS_MAX {
        return Err(ScenarioError::Parse(format!("at most {STEPS_MAX} steps")));
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let invalid = |reason: String| ScenarioError::Invalid { step: i + 1, reason };
        match step {
            Step::Scan(code) => {
                unescape(code).map_err(invalid)?;
            }
            Step::PauseMs(ms) if *ms > WAIT_MS_MAX => {
                return Err(invalid(format!("pauses are at most {WAIT_MS_MAX} ms")))
            }
            Step::FaultAfter(a) if printer_fault(a.fault).is_none() => {
                return Err(invalid("fault_after takes paper_near_end, paper_out, cover_open or offline".into()))
            }
            Step::Pay(p) if p.cash_kopecks < 0 || p.card_kopecks < 0 || p.cash_kopecks + p.card_kopecks == 0 => {
                return Err(invalid("pay needs cash_kopecks and/or card_kopecks, positive".into()))
            }
            Step::Expect(e) => e.validate().map_err(invalid)?,
            _ => {}
        }
    }
    Ok(scenario)
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let read = |source| ScenarioError::Read { path: path.to_owned(), source };
    if std::fs::metadata(path).map_err(read)?.len() > SCENARIO_FILE_BYTES_MAX {
        return Err(ScenarioError::TooLarge { path: path.to_owned() });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(&text).map_err(|e| match e {
        ScenarioError::Parse(msg) => ScenarioError::Parse(format!("{}: {msg}", path.display())),
        ScenarioError::Invalid { step, reason } => {
            ScenarioError::Parse(format!("{}: step {step}: {reason}", path.display()))
        }
        e => e,
    })
}

fn printer_fault(fault: Fault) -> Option<PrinterFault> {
    Some(match fault {
        Fault::PaperNearEnd => PrinterFault::PaperNearEnd,
        Fault::PaperOut => PrinterFault::PaperOut,
        Fault::CoverOpen => PrinterFault::CoverOpen,
        Fault::Offline => PrinterFault::Offline,
        _ => return None,
    })
}

/// How one step went.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub number: usize,
    pub step: String,
    /// `Err(reason)` for the step that failed; steps after it are not run.
    pub outcome: Result<String, String>,
    pub elapsed: Duration,
}

/// How a scenario went.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub steps: Vec<StepResult>,
    /// Every receipt the printer produced, in order.
    pub receipts: Vec<Receipt>,
    pub elapsed: Duration,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.outcome.is_ok())
    }

    /// The failing step and why, if any.
    pub fn failure(&self) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.outcome.is_err())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario: {}", self.name)?;
        for s in &self.steps {
            let ms = s.elapsed.as_millis();
            match &s.outcome {
                Ok(note) if note.is_empty() => writeln!(f, "  ok   {:>3}. {} ({ms} ms)", s.number, s.step)?,
                Ok(note) => writeln!(f, "  ok   {:>3}. {} ({ms} ms): {note}", s.number, s.step)?,
                Err(reason) => writeln!(f, "  FAIL {:>3}. {} ({ms} ms): {reason}", s.number, s.step)?,
            }
        }
        let secs = self.elapsed.as_millis();
        match self.failure() {
            None => write!(f, "PASS {} ({} steps, {}.{:03} s)", self.name, self.steps.len(), secs / 1000, secs % 1000),
            Some(s) => {
                // The details are on the step's line above; the summary keeps to one line.
                let reason = s.outcome.as_ref().err().and_then(|r| r.lines().next()).unwrap_or_default();
                write!(f, "FAIL {} at step {} ({}): {reason}", self.name, s.number, s.step)
            }
        }
    }
}

/// How [`run`] sets up the store.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub printer_model: Model,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { printer_model: Model::Epson }
    }
}

/// Starts a store of its own (see the module documentation), runs the scenario
/// against it, stops it and reports. An error means the store could not be started;
/// a scenario that fails is a [`Report`] that did not pass.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> Result<Report, ScenarioError> {
    let dir = tempfile::Builder::new().prefix("kassa-scenario-").tempdir().map_err(ScenarioError::TempDir)?;
    let stack =
        stack::start(StackOptions { printer_model: opts.printer_model, ..StackOptions::ephemeral(dir.path()) }).await?;
    let report = if stack.catalog_ready {
        run_on(&stack, scenario).await
    } else {
        let step = StepResult {
            number: 0,
            step: "start the store".into(),
            outcome: Err("the store did not receive its catalog from HQ".into()),
            elapsed: Duration::ZERO,
        };
        Report { name: scenario.name.clone(), steps: vec![step], receipts: Vec::new(), elapsed: Duration::ZERO }
    };
    stack.stop().await;
    Ok(report)
}

/// Runs the scenario against a running store whose devices this process owns.
pub async fn run_on(stack: &Stack, scenario: &Scenario) -> Report {
    let started = Instant::now();
    let client = reqwest::Client::new();
    let agent = format!("http://{}", stack.agent.http_addr);
    let token = match crate::stack::cashier_token(&client, &agent).await {
        Ok(t) => t,
        Err(e) => {
            let outcome = Err(format!("cannot log in at the till: {e}"));
            let steps = vec![StepResult { number: 0, step: "login".into(), outcome, elapsed: started.elapsed() }];
            return Report { name: scenario.name.clone(), steps, receipts: Vec::new(), elapsed: started.elapsed() };
        }
    };
    let mut runner = Runner {
        stack,
        client,
        token,
        agent,
        unmatched: Vec::new(),
        receipts: Vec::new(),
        unknown: Vec::new(),
        payments: 0,
    };
    let mut steps = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let t = Instant::now();
        let mut outcome = runner.step(step).await;
        // The agent must never send the printer something it does not understand.
        runner.drain_printer();
        if outcome.is_ok() && !runner.unknown.is_empty() {
            let list: Vec<String> = runner.unknown.iter().map(|(o, b)| format!("0x{b:02x} at offset {o}")).collect();
            outcome = Err(format!("the printer got unknown command bytes: {}", list.join(", ")));
        }
        let failed = outcome.is_err();
        steps.push(StepResult { number: i + 1, step: step.to_string(), outcome, elapsed: t.elapsed() });
        if failed {
            break;
        }
    }
    Report { name: scenario.name.clone(), steps, receipts: runner.receipts, elapsed: started.elapsed() }
}

struct Runner<'a> {
    stack: &'a Stack,
    client: reqwest::Client,
    /// The cashier's bearer token.
    token: String,
    agent: String,
    /// Receipts printed and not yet matched by `receipt_contains`.
    unmatched: Vec<Receipt>,
    receipts: Vec<Receipt>,
    unknown: Vec<(u64, u8)>,
    payments: u32,
}

impl Runner<'_> {
    fn drain_printer(&mut self) {
        while let Ok(ev) = self.stack.printer_events.try_recv() {
            match ev {
                PrinterEvent::Receipt(r) => {
                    self.unmatched.push(r.clone());
                    self.receipts.push(r);
                }
                PrinterEvent::DrawerKick => {}
                PrinterEvent::Unknown { offset, byte } => self.unknown.push((offset, byte)),
            }
        }
    }

    async fn step(&mut self, step: &Step) -> Result<String, String> {
        match step {
            Step::Scan(code) => {
                let bytes = unescape(code)?;
                match self.stack.scanner.scan(&bytes) {
                    Ok(()) => Ok(String::new()),
                    // A scan with the cable out reaches nobody; that is the point of trying.
                    Err(ScannerError::Unplugged) => Ok("scanner unplugged: nothing sent".into()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Step::PauseMs(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                Ok(String::new())
            }
            Step::Fault(fault) => self.fault(*fault),
            Step::FaultAfter(a) => {
                let fault = printer_fault(a.fault).ok_or("not a printer fault")?;
                self.stack.printer.fault_after(a.printer_bytes, fault);
                Ok(String::new())
            }
            Step::Pay(pay) => self.pay(pay).await,
            Step::Expect(e) => self.expect(e).await,
        }
    }

    fn fault(&self, fault: Fault) -> Result<String, String> {
        let (scanner, printer) = (&self.stack.scanner, &self.stack.printer);
        match fault {
            Fault::PaperOk => printer.set_paper(PaperState::Ok),
            Fault::PaperNearEnd => printer.set_paper(PaperState::NearEnd),
            Fault::PaperOut => printer.set_paper(PaperState::Out),
            Fault::CoverOpen => printer.set_cover_open(true),
            Fault::CoverClosed => printer.set_cover_open(false),
            Fault::Offline => printer.set_offline(true),
            Fault::Online => printer.set_offline(false),
            Fault::ScannerUnplug => {
                scanner.unplug();
            }
            Fault::ScannerReplug => {
                scanner.replug().map_err(|e| format!("scanner: {e}"))?;
            }
            Fault::PrinterUnplug => {
                printer.unplug();
            }
            Fault::PrinterReplug => {
                printer.replug().map_err(|e| format!("printer: {e}"))?;
            }
        }
        Ok(String::new())
    }

    async fn pay(&mut self, pay: &Pay) -> Result<String, String> {
        self.payments += 1;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let key = format!("scenario-{}-{nanos}-{}", std::process::id(), self.payments);
        let mut tenders = Vec::new();
        if pay.cash_kopecks > 0 {
            tenders.push(serde_json::json!({ "kind": "cash", "amount_kopecks": pay.cash_kopecks }));
        }
        if pay.card_kopecks > 0 {
            tenders.push(serde_json::json!({ "kind": "card", "amount_kopecks": pay.card_kopecks }));
        }
        let body = serde_json::json!({ "idempotency_key": key, "tenders": tenders });
        let resp = self
            .client
            .post(format!("{}/api/pay", self.agent))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST /api/pay: {e}"))?;
        let status = resp.status();
        let answer: Value = resp.json().await.map_err(|e| format!("POST /api/pay: bad answer: {e}"))?;
        match (&pay.expect_error, status.is_success()) {
            (None, true) => Ok(format!(
                "sale {}, total {}, change {}",
                answer["sale"]["receipt_no"].as_str().unwrap_or("?"),
                answer["sale"]["total_kopecks"],
                answer["sale"]["change_kopecks"]
            )),
            (None, false) => Err(format!("payment refused ({status}): {}", answer["message"])),
            (Some(code), false) if answer["error"] == code.as_str() => Ok(format!("refused: {}", answer["message"])),
            (Some(code), false) => {
                Err(format!("expected refusal {code}, got {}: {}", answer["error"], answer["message"]))
            }
            (Some(code), true) => Err(format!("expected refusal {code}, but the sale went through")),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let resp = self
            .client
            .get(format!("{}{path}", self.agent))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        resp.json().await.map_err(|e| format!("GET {path}: {e}"))
    }

    async fn expect(&mut self, e: &Expect) -> Result<String, String> {
        if let Some(ms) = e.no_receipt_for_ms {
            let deadline = Instant::now() + Duration::from_millis(ms);
            loop {
                self.drain_printer();
                if let Some(r) = self.unmatched.first() {
                    return Err(format!("a receipt was printed:\n{}", indent(&r.text())));
                }
                if Instant::now() >= deadline {
                    return Ok(String::new());
                }
                tokio::time::sleep(POLL).await;
            }
        }
        if let Some(texts) = &e.receipt_contains {
            let texts = texts.items();
            let deadline = Instant::now() + Duration::from_millis(e.within_ms.unwrap_or(WITHIN_MS_DEFAULT));
            loop {
                self.drain_printer();
                if let Some(i) = self.unmatched.iter().position(|r| texts.iter().all(|t| r.text().contains(t))) {
                    let earlier = i;
                    self.unmatched.drain(..=i);
                    return Ok(match earlier {
                        0 => String::new(),
                        n => format!("{n} earlier receipts skipped"),
                    });
                }
                if Instant::now() >= deadline {
                    let seen = match self.unmatched.last() {
                        None => "no receipt was printed".to_owned(),
                        Some(r) => format!(
                            "{} receipts printed, none matching; the last:\n{}",
                            self.unmatched.len(),
                            indent(&r.text())
                        ),
                    };
                    return Err(seen);
                }
                tokio::time::sleep(POLL).await;
            }
        }
        // The other conditions are snapshots, polled.
        let throughout = e.for_ms.map(Duration::from_millis);
        let deadline =
            Instant::now() + throughout.unwrap_or(Duration::from_millis(e.within_ms.unwrap_or(WITHIN_MS_DEFAULT)));
        loop {
            let (holds, seen) = self.check(e).await?;
            match (throughout, holds) {
                (None, true) => return Ok(String::new()),
                (Some(_), false) => return Err(format!("no longer true: {seen}")),
                _ => {}
            }
            if Instant::now() >= deadline {
                return match throughout {
                    Some(_) => Ok(String::new()),
                    None => Err(format!("not true in time: {seen}")),
                };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the snapshot condition holds now, and what was seen.
    async fn check(&self, e: &Expect) -> Result<(bool, String), String> {
        if let Some(n) = e.basket_lines {
            let basket = self.get("/api/basket").await?;
            let lines = basket["basket"]["lines"].as_array().map_or(0, Vec::len);
            return Ok((lines == n, format!("{lines} basket lines")));
        }
        if let Some(status) = e.printer_status {
            let state = self.stack.printer.state();
            return Ok((status.holds(&state), format!("printer {state}")));
        }
        if let Some(texts) = &e.partial_receipt_contains {
            let text = self.stack.printer.pending_text();
            let holds = texts.items().iter().all(|t| text.contains(t));
            return Ok((holds, format!("on the paper since the last cut:\n{}", indent(&text))));
        }
        let (device, want) = match (e.agent_scanner, e.agent_printer) {
            (Some(want), _) => ("scanner", want),
            (_, Some(want)) => ("printer", want),
            _ => unreachable!("validated: one condition per expectation"),
        };
        let status = self.get("/api/status").await?;
        let state = status[device]["state"].as_str().unwrap_or("?").to_owned();
        let detail = status[device]["detail"].as_str().map(|d| format!(" ({d})")).unwrap_or_default();
        Ok((state == want.name(), format!("the agent's {device} is {state}{detail}")))
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      | {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_kind() {
        let s = parse(
            r#"
            name = "all"
            [[step]]
            scan = '0104650001209603\x1d21abc'
            [[step]]
            pause_ms = 10
            [[step]]
            fault = "paper_out"
            [[step]]
            fault_after = { fault = "cover_open", printer_bytes = 100 }
            [[step]]
            pay = { cash_kopecks = 20000 }
            [[step]]
            pay = { cash_kopecks = 1, expect_error = "payment_short" }
            [[step]]
            expect = { receipt_contains = ["ИТОГО", "Сдача"], within_ms = 3000 }
            [[step]]
            expect = { basket_lines = 0, for_ms = 100 }
            [[step]]
            expect = { printer_status = "paper_out" }
            [[step]]
            expect = { agent_scanner = "error" }
            [[step]]
            expect = { no_receipt_for_ms = 100 }
            "#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 11);
        assert_eq!(s.steps[3].to_string(), "fault cover_open after 100 printer bytes");
        assert_eq!(s.steps[6].to_string(), r#"expect a receipt containing ["ИТОГО", "Сдача"] within 3000 ms"#);
        assert_eq!(s.steps[7].to_string(), "expect 0 basket lines for 100 ms");
        assert_eq!(s.steps[5].to_string(), "pay 0,01 cash, refused with payment_short");
    }

    #[test]
    fn refuses_bad_scenarios_with_the_step() {
        let bad = |steps: &str| parse(&format!("name = \"x\"\n{steps}")).unwrap_err().to_string();
        assert!(bad("").contains("at least one"));
        assert!(bad("[[step]]\nfault = \"paper_sideways\"").contains("unknown variant"));
        assert!(bad("[[step]]\npause_ms = 1\n[[step]]\nexpect = { basket_lines = 1, printer_status = \"ok\" }")
            .starts_with("step 2: an expectation needs exactly one"));
        assert!(bad("[[step]]\nexpect = { basket_lines = 1, within_ms = 1, for_ms = 1 }").contains("exclude"));
        assert!(
            bad("[[step]]\nfault_after = { fault = \"scanner_unplug\", printer_bytes = 1 }").contains("fault_after")
        );
        assert!(bad("[[step]]\npay = { }").contains("pay needs"));
        assert!(bad("[[step]]\nscan = \"\\\\x1\"").contains("escape"));
        assert!(bad("[[step]]\nexpect = { basket_lines = 1, typo = 2 }").contains("unknown field"));
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3, "at least three scenarios ship");
    }
}
