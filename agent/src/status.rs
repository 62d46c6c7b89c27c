//! What the status bar shows: HQ link and devices.

use serde::Serialize;
use tokio::sync::watch;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub hq: HqStatus,
    pub scanner: DeviceStatus,
    pub printer: DeviceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HqStatus {
    pub online: bool,
    /// Outbox entries HQ has not acknowledged yet.
    pub backlog: u64,
    pub last_contact_ms: Option<i64>,
    pub catalog_version: u64,
    /// The version of the promotions the till prices with (0: none yet).
    pub promotions_version: u64,
    pub last_error: Option<String>,
    /// What kind of trouble `last_error` is, as a code the page translates:
    /// `unreachable` (the network or HQ), `disk_full` (this store's disk: sync waits for
    /// space), `journal` (the store's journal failed), `not_enrolled`, `hq_older` (HQ
    /// does not speak this store's protocol version: it is older than the store and must
    /// be upgraded), `hq_protocol` (HQ does not speak the older version this store is set
    /// to speak by `[hq] protocol_version`).
    pub error_code: Option<&'static str>,
    /// The sync protocol version this store speaks (`kassa-sync/N`), once it has tried.
    pub protocol_version: Option<u32>,
    /// HQ's software version, from its `Welcome` (HQ of protocol 3 on).
    pub hq_software_version: Option<String>,
    /// Bytes sent to and received from HQ since the agent started, as whole IP packets:
    /// IP and UDP headers, QUIC headers, acknowledgements and handshakes included —
    /// what the store's uplink carries.
    pub wire_sent_bytes: u64,
    pub wire_received_bytes: u64,
}

/// The UnifiedPOS-style lifecycle of a device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not configured, or not open yet.
    #[default]
    Closed,
    Idle,
    Busy,
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    pub configured: bool,
    pub state: DeviceState,
    pub path: Option<String>,
    pub detail: Option<String>,
    /// Scanner: frames read; printer: jobs printed.
    pub count: u64,
    /// Scanner: frames rejected (bad codes, overlong frames).
    pub rejected: u64,
    /// The device's condition in words for the cashier ("Нет бумаги" / "Paper out").
    pub words: Option<Words>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Words {
    pub ru: String,
    pub en: String,
}

/// The shared status; every change wakes the cashier pages' event streams.
pub type StatusBoard = watch::Sender<Status>;

pub fn board() -> StatusBoard {
    watch::channel(Status::default()).0
}
