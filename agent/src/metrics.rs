//! The agent's metrics, as `GET /metrics` shows them (`prometheus-client`).
//!
//! Two kinds:
//! - **histograms** observed where the work happens and kept for the agent's life:
//!   `kassa_scan_to_basket_seconds` (a scanner frame's last byte read → its basket
//!   event published; the scan task in `lib.rs`) and `kassa_sale_commit_seconds` (a
//!   payment's journal commit; [`crate::Till`] times its own commits and owns that
//!   histogram);
//! - **gauges** read at each scrape from the status board and the journal
//!   ([`Readings`]): sales and returns committed, the sync backlog, devices, the shift.
//!
//! Each scrape builds one [`Registry`] from its readings and the histograms and
//! encodes it: nothing to keep in step between scrapes. The format is the Prometheus
//! text format, version 0.0.4 ([`CONTENT_TYPE`]), which every Prometheus-compatible
//! scraper reads (and which this endpoint always served); we use nothing that only
//! OpenMetrics carries (exemplars, units, `_created`).

use std::time::Instant;

use kassa_protocol::Kopecks;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::status::{DeviceState, DeviceStatus, Status};

/// The `Content-Type` of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of `kassa_scan_to_basket_seconds`, 100 µs to 1 s: a scan is a catalog
/// lookup and an in-memory basket change, well under a millisecond when all is well.
pub const SCAN_TO_BASKET_BUCKETS: [f64; 13] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Upper bounds of `kassa_sale_commit_seconds`, 1 ms to 1 s: one SQLite transaction
/// and its fsync.
pub const SALE_COMMIT_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The histogram of a till's sale commits (the till owns it; [`Metrics`] shows it).
pub fn sale_commit_histogram() -> Histogram {
    Histogram::new(SALE_COMMIT_BUCKETS)
}

/// The agent's histograms; [`Metrics::encode`] adds the scrape's readings.
#[derive(Debug, Clone)]
pub struct Metrics {
    scan_to_basket: Histogram,
    sale_commit: Histogram,
}

/// What a scrape reads from the status board and the journal.
#[derive(Debug)]
pub struct Readings<'a> {
    pub status: &'a Status,
    pub sales: u64,
    pub returns: u64,
    pub print_jobs_pending: u64,
    /// The cash the open shift expects in the drawer; `None` with no shift open.
    pub shift_expected_cash: Option<Kopecks>,
}

impl Metrics {
    /// `sale_commit`: the till's histogram (see [`sale_commit_histogram`]).
    pub fn new(sale_commit: Histogram) -> Metrics {
        Metrics { scan_to_basket: Histogram::new(SCAN_TO_BASKET_BUCKETS), sale_commit }
    }

    /// A scanner frame whose last byte was read at `arrived` is in the basket, its
    /// event published.
    pub fn scanned_into_basket(&self, arrived: Instant) {
        self.scan_to_basket.observe(arrived.elapsed().as_secs_f64());
    }

    /// The registry of this scrape, in the Prometheus text format.
    pub fn encode(&self, now: &Readings<'_>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        let status = now.status;
        let mut gauge = |name: &str, help: &str, value: i64| registry.register(name, help, ConstGauge::new(value));
        gauge("kassa_sales", "Sales committed in the journal", count(now.sales));
        gauge("kassa_returns", "Returns committed in the journal", count(now.returns));
        gauge("kassa_hq_online", "1 when the sync link to HQ is up", i64::from(status.hq.online));
        gauge("kassa_sync_backlog_entries", "Outbox entries HQ has not acknowledged", count(status.hq.backlog));
        gauge("kassa_catalog_version", "Catalog version received from HQ", count(status.hq.catalog_version));
        gauge("kassa_print_jobs_pending", "Print jobs waiting for the printer", count(now.print_jobs_pending));
        gauge("kassa_printer_state", "0 closed, 1 idle, 2 busy, 3 error", state_code(&status.printer));
        gauge("kassa_printer_jobs_printed", "Jobs printed since start", count(status.printer.count));
        gauge("kassa_scanner_state", "0 closed, 1 idle, 2 busy, 3 error", state_code(&status.scanner));
        gauge("kassa_scanner_frames", "Frames read from the scanner since start", count(status.scanner.count));
        gauge("kassa_scanner_rejected", "Frames rejected since start", count(status.scanner.rejected));
        gauge(
            "kassa_shift_open",
            "1 while a shift is open on this terminal",
            i64::from(now.shift_expected_cash.is_some()),
        );
        gauge(
            "kassa_shift_expected_cash_kopecks",
            "Cash expected in the drawer",
            now.shift_expected_cash.map_or(0, |k| k.0),
        );
        registry.register(
            "kassa_scan_to_basket_seconds",
            "From a scanner frame's last byte to its basket event",
            self.scan_to_basket.clone(),
        );
        registry.register(
            "kassa_sale_commit_seconds",
            "A sale's journal commit, from the call to the committed answer",
            self.sale_commit.clone(),
        );
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn state_code(d: &DeviceStatus) -> i64 {
    match d.state {
        DeviceState::Closed => 0,
        DeviceState::Idle => 1,
        DeviceState::Busy => 2,
        DeviceState::Error => 3,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn readings(status: &Status) -> Readings<'_> {
        Readings { status, sales: 3, returns: 1, print_jobs_pending: 0, shift_expected_cash: Some(Kopecks(10690)) }
    }

    #[test]
    fn gauges_keep_their_names_and_histograms_count() {
        let metrics = Metrics::new(sale_commit_histogram());
        let mut status = Status::default();
        status.hq.online = true;
        status.printer.state = DeviceState::Error;
        let text = metrics.encode(&readings(&status)).unwrap();
        for line in [
            "# TYPE kassa_sales gauge",
            "kassa_sales 3",
            "kassa_returns 1",
            "kassa_hq_online 1",
            "kassa_printer_state 3",
            "kassa_shift_open 1",
            "kassa_shift_expected_cash_kopecks 10690",
            "# TYPE kassa_scan_to_basket_seconds histogram",
            "kassa_scan_to_basket_seconds_count 0",
            "kassa_sale_commit_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }

        metrics.scanned_into_basket(Instant::now() - Duration::from_millis(2));
        metrics.sale_commit.observe(0.004);
        let text = metrics.encode(&readings(&status)).unwrap();
        for line in [
            "kassa_scan_to_basket_seconds_bucket{le=\"0.001\"} 0",
            "kassa_scan_to_basket_seconds_bucket{le=\"+Inf\"} 1",
            "kassa_scan_to_basket_seconds_count 1",
            "kassa_sale_commit_seconds_bucket{le=\"0.005\"} 1",
            "kassa_sale_commit_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
