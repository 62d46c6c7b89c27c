//! Serial ports: settings and opening.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-device serial settings. Vendors differ (Zebra 9600 8N1, some Honeywell 7 data
/// bits, space parity, 2 stop bits), so every one of them is configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialSettings {
    pub baud: u32,
    pub data_bits: u8,
    /// `none`, `odd` or `even`.
    pub parity: String,
    pub stop_bits: u8,
    /// `none`, `software` (XON/XOFF) or `hardware` (RTS/CTS).
    pub flow_control: String,
}

impl Default for SerialSettings {
    fn default() -> Self {
        SerialSettings { baud: 9600, data_bits: 8, parity: "none".into(), stop_bits: 1, flow_control: "none".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("bad serial setting: {0}")]
    Setting(String),
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: serialport::Error },
}

impl SerialSettings {
    fn builder(&self, path: &str, read_timeout: Duration) -> Result<serialport::SerialPortBuilder, OpenError> {
        use serialport::{DataBits, FlowControl, Parity, StopBits};
        let bad = |what: &str| OpenError::Setting(what.to_owned());
        let data_bits = match self.data_bits {
            5 => DataBits::Five,
            6 => DataBits::Six,
            7 => DataBits::Seven,
            8 => DataBits::Eight,
            _ => return Err(bad("data_bits must be 5 to 8")),
        };
        let parity = match self.parity.as_str() {
            "none" => Parity::None,
            "odd" => Parity::Odd,
            "even" => Parity::Even,
            _ => return Err(bad("parity must be none, odd or even")),
        };
        let stop_bits = match self.stop_bits {
            1 => StopBits::One,
            2 => StopBits::Two,
            _ => return Err(bad("stop_bits must be 1 or 2")),
        };
        let flow_control = match self.flow_control.as_str() {
            "none" => FlowControl::None,
            "software" => FlowControl::Software,
            "hardware" => FlowControl::Hardware,
            _ => return Err(bad("flow_control must be none, software or hardware")),
        };
        Ok(serialport::new(path, self.baud)
            .data_bits(data_bits)
            .parity(parity)
            .stop_bits(stop_bits)
            .flow_control(flow_control)
            .timeout(read_timeout))
    }

    /// Opens `path` exclusively (a second opener gets "busy", not half the bytes).
    pub fn open(&self, path: &str, read_timeout: Duration) -> Result<serialport::TTYPort, OpenError> {
        self.builder(path, read_timeout)?
            .open_native()
            .map_err(|source| OpenError::Open { path: path.to_owned(), source })
    }
}

/// Time one byte takes on the wire at these settings: start bit, data, parity, stop.
pub fn byte_wire_time(settings: &SerialSettings) -> Duration {
    let bits = 1 + u64::from(settings.data_bits) + u64::from(settings.parity != "none") + u64::from(settings.stop_bits);
    Duration::from_nanos(bits * 1_000_000_000 / u64::from(settings.baud.max(1)))
}
