//! HQ's metrics, as `GET /metrics` shows them (`prometheus-client`).
//!
//! [`Metrics`] counts what the sync server merges, for `/metrics` and the benchmarks,
//! and keeps `kassa_hq_batch_apply_seconds`, the time from handing a batch to the
//! database to its commit. The rest is read at each scrape ([`Readings`]): each
//! store's backlog and last contact (`store` label), the connected stores by protocol
//! version (`protocol` label), parked records, the catalog version.
//!
//! Each scrape builds one [`Registry`] from its readings, the counters and the
//! histogram, and encodes it: nothing to keep in step between scrapes, and no label
//! set outlives what it describes. The format is the Prometheus text format, version
//! 0.0.4 ([`CONTENT_TYPE`]), as on the agent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kassa_protocol::StoreId;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::db::StoreStatus;
use crate::sync_server::Peer;

/// The `Content-Type` of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of `kassa_hq_batch_apply_seconds`, 1 ms to 10 s: a batch is at most
/// `BATCH_ENTRIES_MAX` entries in one transaction, milliseconds when HQ keeps up.
pub const BATCH_APPLY_BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How much HQ merged and how long it took.
#[derive(Debug)]
pub struct Metrics {
    /// Outbox entries applied (sales, returns, loyalty changes), duplicates included.
    pub applied_entries: AtomicU64,
    /// Stock deltas (counter entries) those entries carried.
    pub applied_deltas: AtomicU64,
    /// Time spent applying them, from handing a batch to the database to its commit.
    pub apply_micros: AtomicU64,
    /// Transactions of batches applied (a node puts the batches of several stores that
    /// arrive together in one: `sync_server::applier`).
    pub applied_batches: AtomicU64,
    /// The same time per transaction.
    batch_apply_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            applied_entries: AtomicU64::new(0),
            applied_deltas: AtomicU64::new(0),
            apply_micros: AtomicU64::new(0),
            applied_batches: AtomicU64::new(0),
            batch_apply_seconds: Histogram::new(BATCH_APPLY_BUCKETS),
        }
    }
}

/// What a scrape reads from the database and from HQ's memory of its connections.
#[derive(Debug)]
pub struct Readings<'a> {
    pub stores: &'a [StoreStatus],
    pub peers: &'a BTreeMap<StoreId, Peer>,
    pub parked_records: usize,
    pub catalog_version: u64,
    /// Whether the database answered this scrape (when not, the readings above are empty).
    pub database_up: bool,
    /// Unix milliseconds now, for the age of each store's last contact.
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabel {
    store: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabel {
    protocol: u32,
}

impl Metrics {
    /// A batch of `entries` carrying `deltas` stock deltas was applied in `took`.
    pub fn batch_applied(&self, entries: usize, deltas: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.apply_micros.fetch_add(micros, Ordering::Relaxed);
        self.applied_entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.applied_deltas.fetch_add(deltas as u64, Ordering::Relaxed);
        self.applied_batches.fetch_add(1, Ordering::Relaxed);
        self.batch_apply_seconds.observe(took.as_secs_f64());
    }

    /// The registry of this scrape, in the Prometheus text format.
    pub fn encode(&self, now: &Readings<'_>) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();

        let backlog = Family::<StoreLabel, Gauge>::default();
        let last_contact = Family::<StoreLabel, Gauge>::default();
        for st in now.stores {
            let label = StoreLabel { store: st.store };
            backlog.get_or_create(&label).set(i64::try_from(st.backlog).unwrap_or(i64::MAX));
            last_contact.get_or_create(&label).set((now.now_ms - st.last_contact_ms).max(0) / 1000);
        }
        registry.register(
            "kassa_hq_store_backlog_entries",
            "Entries a store has that HQ does not, as of its last contact",
            backlog,
        );
        registry.register(
            "kassa_hq_store_last_contact_age_seconds",
            "Seconds since a store was last heard from",
            last_contact,
        );

        let connected = Family::<ProtocolLabel, Gauge>::default();
        for version in kassa_protocol::wire::SUPPORTED_VERSIONS {
            let n = now.peers.values().filter(|p| p.protocol_version == version).count();
            connected.get_or_create(&ProtocolLabel { protocol: version }).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        registry.register("kassa_hq_connected_stores", "Stores connected now, by sync protocol version", connected);
        registry.register(
            "kassa_hq_parked_records",
            "Records HQ could not apply (GET /api/parked)",
            ConstGauge::new(i64::try_from(now.parked_records).unwrap_or(i64::MAX)),
        );
        registry.register(
            "kassa_hq_database_up",
            "1 if HQ's database answered this scrape, 0 if not (HQ stops acknowledging until it does)",
            ConstGauge::new(i64::from(now.database_up)),
        );
        registry.register(
            "kassa_hq_catalog_version",
            "The catalog version published",
            ConstGauge::new(i64::try_from(now.catalog_version).unwrap_or(i64::MAX)),
        );

        // Counters are named without `_total`: the encoder appends it.
        let load = |c: &AtomicU64| ConstCounter::new(c.load(Ordering::Relaxed));
        registry.register(
            "kassa_hq_applied_entries",
            "Outbox entries applied, duplicates included",
            load(&self.applied_entries),
        );
        registry.register("kassa_hq_applied_deltas", "Stock deltas those entries carried", load(&self.applied_deltas));
        registry.register(
            "kassa_hq_applied_batches",
            "Transactions of store batches applied (batches arriving together share one)",
            load(&self.applied_batches),
        );
        let apply = Duration::from_micros(self.apply_micros.load(Ordering::Relaxed));
        registry.register(
            "kassa_hq_apply_seconds",
            "Time spent applying batches",
            ConstCounter::new(apply.as_secs_f64()),
        );
        registry.register(
            "kassa_hq_batch_apply_seconds",
            "A transaction of batches, from handing it to the database to its commit",
            self.batch_apply_seconds.clone(),
        );

        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_stores_counters_and_the_batch_histogram() {
        let metrics = Metrics::default();
        metrics.batch_applied(3, 5, Duration::from_millis(4));
        let store = StoreStatus {
            store: 1,
            epoch: 1,
            acked_seq: 3,
            head: 3,
            backlog: 0,
            last_contact_ms: 1_000,
            sales: 3,
            catalog_confirmed: 2,
            catalog_sent: 2,
        };
        let readings = Readings {
            stores: &[store],
            peers: &BTreeMap::new(),
            parked_records: 0,
            catalog_version: 2,
            database_up: true,
            now_ms: 61_000,
        };
        let text = metrics.encode(&readings).unwrap();
        for line in [
            "kassa_hq_store_backlog_entries{store=\"1\"} 0",
            "kassa_hq_store_last_contact_age_seconds{store=\"1\"} 60",
            "kassa_hq_connected_stores{protocol=\"3\"} 0",
            "kassa_hq_parked_records 0",
            "kassa_hq_catalog_version 2",
            "kassa_hq_applied_entries_total 3",
            "kassa_hq_applied_deltas_total 5",
            "kassa_hq_applied_batches_total 1",
            "kassa_hq_apply_seconds_total 0.004",
            "kassa_hq_batch_apply_seconds_bucket{le=\"0.0025\"} 0",
            "kassa_hq_batch_apply_seconds_bucket{le=\"0.005\"} 1",
            "kassa_hq_batch_apply_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
    }
}
