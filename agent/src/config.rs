//! The agent's configuration (TOML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kassa_hardware::barcode::ScanRules;
use kassa_hardware::scanner::FramerConfig;
use kassa_hardware::serial::SerialSettings;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub store: u32,
    #[serde(default = "one")]
    pub terminal: u16,
    /// Where the journal (`journal.sqlite`) lives.
    pub data_dir: PathBuf,
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// The store's time zone for receipts (Moscow by default).
    #[serde(default = "moscow")]
    pub utc_offset_minutes: i32,
    pub hq: HqLink,
    /// The store's in-store code layouts: weighed items, loyalty cards, receipts.
    #[serde(default)]
    pub scan_rules: ScanRules,
    pub scanner: Option<ScannerConfig>,
    pub printer: Option<PrinterConfig>,
    /// A bearer token with which a monitoring system reads `/metrics` without a
    /// cashier's session (`Authorization: Bearer <token>`); unset, only a logged-in
    /// session can read it.
    #[serde(default)]
    pub metrics_token: Option<String>,
    /// What a cashier may do without a manager's PIN.
    #[serde(default)]
    pub limits: Limits,
}

/// Limits a store's manager sets (`[limits]` in agent.toml) on what a cashier does alone.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// A basket worth more than this (kopecks) is voided only with a manager's PIN.
    pub void_unapproved_max_kopecks: i64,
    /// Cash taken out of the drawer needs a manager's PIN.
    pub cash_out_needs_manager: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { void_unapproved_max_kopecks: 50_000, cash_out_needs_manager: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HqLink {
    pub addr: SocketAddr,
    #[serde(default = "hq_name")]
    pub server_name: String,
    /// Holds `ca.crt`, `store.crt`, `store.key` from `kassa-hq enroll`.
    pub pki_dir: PathBuf,
    /// The sync protocol version to speak to HQ; unset (the default), the current one
    /// (`kassa_protocol::wire::PROTOCOL_VERSION`). Only for tests and emergency rollback:
    /// `protocol_version = 2` makes this store speak as release 0.1.0 did, which an HQ
    /// serves while that version is supported.
    #[serde(default)]
    pub protocol_version: Option<u32>,
    /// Other HQ nodes sharing HQ's database (issue #17), tried in order when `addr` does
    /// not answer; a session on one of them gives way to `addr` again after
    /// `sync_client::FALLBACK_SESSION_MAX`.
    #[serde(default)]
    pub fallback_addrs: Vec<SocketAddr>,
}

impl HqLink {
    /// Every HQ node's address, `addr` first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr).chain(self.fallback_addrs.iter().copied()).collect()
    }

    /// The sync protocol version this store speaks.
    pub fn protocol(&self) -> u32 {
        self.protocol_version.unwrap_or(kassa_protocol::wire::PROTOCOL_VERSION)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerConfig {
    /// A stable name such as `/dev/serial/by-id/usb-…`.
    pub path: String,
    #[serde(default)]
    pub serial: SerialSettings,
    #[serde(default)]
    pub framer: FramerConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    pub path: String,
    #[serde(default)]
    pub serial: SerialSettings,
    /// A printer profile name: `epson` or `clone`.
    #[serde(default = "epson")]
    pub model: String,
}

fn one() -> u16 {
    1
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn moscow() -> i32 {
    180
}
fn hq_name() -> String {
    "kassa-hq".into()
}
fn epson() -> String {
    "epson".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{0}")]
    Invalid(String),
}

/// The shortest metrics token accepted: it is a password.
pub const METRICS_TOKEN_LEN_MIN: usize = 24;

impl AgentConfig {
    /// Store `store` at terminal 1 with its data in `data_dir`, linked to HQ by `hq`,
    /// its page on a port the OS chooses on loopback, in Moscow time, with no devices and
    /// every other setting at its default: what tests, benchmarks and the simulator start
    /// from (and override).
    pub fn on_loopback(store: u32, data_dir: PathBuf, hq: HqLink) -> AgentConfig {
        AgentConfig {
            store,
            terminal: 1,
            data_dir,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            utc_offset_minutes: 180,
            hq,
            scan_rules: ScanRules::default(),
            scanner: None,
            printer: None,
            metrics_token: None,
            limits: Limits::default(),
        }
    }

    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: AgentConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.store == 0 {
            return Err(ConfigError::Invalid("store 0 is HQ; stores are numbered from 1".into()));
        }
        if self.terminal == 0 || self.terminal > 99 {
            return Err(ConfigError::Invalid("terminal must be 1 to 99 (two digits on the receipt)".into()));
        }
        self.scan_rules.validate().map_err(|e| ConfigError::Invalid(format!("scan_rules: {e}")))?;
        if let Some(v) = self.hq.protocol_version {
            let supported = kassa_protocol::wire::SUPPORTED_VERSIONS;
            if !supported.contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "hq.protocol_version {v}: this agent speaks {supported:?}; leave it unset for the current one"
                )));
            }
        }
        if let Some(s) = &self.scanner {
            kassa_hardware::unescape(s.framer.prefix.as_bytes())
                .map_err(|e| ConfigError::Invalid(format!("scanner.framer.prefix: {e}")))?;
        }
        if let Some(t) = &self.metrics_token {
            if t.len() < METRICS_TOKEN_LEN_MIN || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::Invalid(format!(
                    "metrics_token must be at least {METRICS_TOKEN_LEN_MIN} printable ASCII characters"
                )));
            }
        }
        if let Some(p) = &self.printer {
            if kassa_hardware::escpos::profile(&p.model).is_none() {
                return Err(ConfigError::Invalid(format!("unknown printer model `{}` (epson, clone)", p.model)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration documented in ARCHITECTURE.md parses and validates.
    #[test]
    fn the_documented_configuration_parses() {
        let doc = include_str!("../../ARCHITECTURE.md");
        let start = doc.find("```toml\nstore = 7").expect("the example is in ARCHITECTURE.md") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("closed");
        let config: AgentConfig = toml::from_str(&doc[start..end]).unwrap();
        config.validate().unwrap();
        assert_eq!(config.store, 7);
        assert_eq!(config.printer.unwrap().model, "epson");
        assert_eq!(config.scan_rules.loyalty_prefix, "299");
        let addrs: Vec<String> = config.hq.addrs().iter().map(ToString::to_string).collect();
        assert_eq!(addrs, ["10.0.0.1:4433", "10.0.0.2:4433"], "the first HQ node, then the others in order");
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let base = "store = 1\ndata_dir = \"d\"\n[hq]\naddr = \"127.0.0.1:1\"\npki_dir = \"p\"\n";
        let c: AgentConfig = toml::from_str(&base.replace("store = 1", "store = 0")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("HQ"));
        let c: AgentConfig = toml::from_str(&format!("{base}[printer]\npath = \"x\"\nmodel = \"nope\"\n")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("nope"));
        assert!(toml::from_str::<AgentConfig>(&format!("{base}typo = 1\n")).is_err());
        let c: AgentConfig = toml::from_str(&format!("{base}protocol_version = 1\n")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("protocol_version 1"));
    }

    #[test]
    fn the_protocol_version_is_the_current_one_unless_set() {
        let base = "store = 1\ndata_dir = \"d\"\n[hq]\naddr = \"127.0.0.1:1\"\npki_dir = \"p\"\n";
        let c: AgentConfig = toml::from_str(base).unwrap();
        assert_eq!(c.hq.protocol(), kassa_protocol::wire::PROTOCOL_VERSION);
        let c: AgentConfig = toml::from_str(&format!("{base}protocol_version = 2\n")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.hq.protocol(), 2);
    }
}
