//! The till: the open basket of a terminal and what happens on a scan and on payment.
//!
//! Every change is published as a [`TillEvent`] to the cashier page (server-sent
//! events), so a scan shows without a reload.

use std::sync::Arc;

use kassa_hardware::barcode::{self, Scan};
use kassa_protocol::basket::{Basket, BasketError, Totals};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::sale::{Sale, Tender};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Mutex};

use crate::journal::{Journal, JournalError, SaleError};

/// Events buffered per page; a page that falls further behind reloads the basket.
pub const EVENTS_QUEUE_MAX: usize = 256;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TillEvent {
    Basket { basket: Basket, totals: Option<Totals> },
    ScanRejected { code: String, reason: String },
    SaleCommitted { sale: Sale },
    Status { status: crate::status::Status },
}

#[derive(Debug, thiserror::Error)]
pub enum TillError {
    #[error("unknown barcode {0}: not in the catalog")]
    UnknownBarcode(String),
    #[error("unknown weighed item PLU {0}")]
    UnknownPlu(u32),
    #[error("{0}")]
    Rejected(String),
    #[error("no catalog yet: the store has not reached HQ since it was installed")]
    NoCatalog,
    #[error(transparent)]
    Basket(#[from] BasketError),
    #[error(transparent)]
    Sale(#[from] SaleError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

#[derive(Debug)]
pub struct Till {
    pub terminal: u16,
    journal: Arc<Journal>,
    basket: Mutex<Basket>,
    events: broadcast::Sender<TillEvent>,
    /// Bumped after each commit that wrote to the outbox; the sync client watches it.
    outbox_changed: watch::Sender<u64>,
    /// Wakes the print spooler.
    print_wake: std::sync::mpsc::SyncSender<()>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Till {
    pub fn new(
        terminal: u16,
        journal: Arc<Journal>,
        outbox_changed: watch::Sender<u64>,
        print_wake: std::sync::mpsc::SyncSender<()>,
    ) -> Self {
        Till {
            terminal,
            journal,
            basket: Mutex::new(Basket::default()),
            events: broadcast::channel(EVENTS_QUEUE_MAX).0,
            outbox_changed,
            print_wake,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<TillEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, ev: TillEvent) {
        let _ = self.events.send(ev); // nobody listening is fine
    }

    pub async fn basket_event(&self) -> TillEvent {
        let basket = self.basket.lock().await.clone();
        let totals = basket.totals();
        TillEvent::Basket { basket, totals }
    }

    async fn journal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let j = self.journal.clone();
        tokio::task::spawn_blocking(move || f(&j)).await.expect("journal task panicked")
    }

    /// A code from the scanner or typed by the cashier. A rejected scan is published
    /// with its reason (the page shows it) and returned as an error.
    pub async fn scan(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        let result = self.scan_inner(raw).await;
        if let Err(e) = &result {
            let code = String::from_utf8_lossy(raw).into_owned();
            tracing::info!(%code, reason = %e, "scan rejected");
            self.publish(TillEvent::ScanRejected { code, reason: e.to_string() });
        }
        result
    }

    async fn scan_inner(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        let (item, quantity) = match barcode::parse(raw) {
            Scan::Gtin { gtin } => {
                let g = Gtin::parse(&gtin).map_err(|e| TillError::Rejected(e.to_string()))?;
                let item = self.journal(move |j| j.item_by_gtin(&g)).await?;
                (item.ok_or_else(|| TillError::UnknownBarcode(g.short().to_owned()))?, 1)
            }
            Scan::Weighted { plu, weight_grams } => {
                let item = self.journal(move |j| j.item_by_plu(plu)).await?;
                (item.ok_or(TillError::UnknownPlu(plu))?, weight_grams)
            }
            Scan::Rejected { error } => return Err(TillError::Rejected(error)),
            other @ (Scan::Gs1 { .. } | Scan::Marking { .. } | Scan::Loyalty { .. } | Scan::Receipt(_)) => {
                return Err(TillError::Rejected(format!("{} codes are not supported at the till yet", kind(&other))))
            }
        };
        let mut basket = self.basket.lock().await;
        basket.add(&item, quantity)?;
        let ev = TillEvent::Basket { basket: basket.clone(), totals: basket.totals() };
        drop(basket);
        self.publish(ev.clone());
        Ok(ev)
    }

    pub async fn remove_line(&self, line: usize) -> Result<TillEvent, TillError> {
        let mut basket = self.basket.lock().await;
        basket.remove(line)?;
        let ev = TillEvent::Basket { basket: basket.clone(), totals: basket.totals() };
        drop(basket);
        self.publish(ev.clone());
        Ok(ev)
    }

    pub async fn void(&self) -> TillEvent {
        let mut basket = self.basket.lock().await;
        *basket = Basket::default();
        drop(basket);
        let ev = TillEvent::Basket { basket: Basket::default(), totals: None };
        self.publish(ev.clone());
        ev
    }

    /// Pays the open basket. The basket stays locked until the sale is committed, so no
    /// scan slips in between totals and commit. A retried key returns the same sale.
    pub async fn pay(&self, tenders: Vec<Tender>, idempotency_key: String) -> Result<(Sale, bool), TillError> {
        let mut basket = self.basket.lock().await;
        let snapshot = basket.clone();
        let (terminal, journal) = (self.terminal, self.journal.clone());
        let (sale, replayed) = tokio::task::spawn_blocking(move || {
            journal.commit_sale(terminal, &snapshot, &tenders, &idempotency_key, now_ms())
        })
        .await
        .expect("journal task panicked")?;
        if !replayed {
            *basket = Basket::default();
            drop(basket);
            tracing::info!(sale = %sale.id, receipt = %sale.receipt_no, total = %sale.total, "sale committed");
            self.outbox_changed.send_modify(|g| *g += 1);
            let _ = self.print_wake.try_send(());
            self.publish(TillEvent::SaleCommitted { sale: sale.clone() });
            self.publish(TillEvent::Basket { basket: Basket::default(), totals: None });
        }
        Ok((sale, replayed))
    }

    pub async fn reprint(&self, seq: u64) -> Result<bool, TillError> {
        let queued = self.journal(move |j| j.reprint(seq, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        Ok(queued)
    }
}

/// A scan kind in words, for rejections of kinds the till does not handle yet.
fn kind(scan: &Scan) -> &'static str {
    match scan {
        Scan::Gtin { .. } => "product",
        Scan::Gs1 { .. } => "GS1",
        Scan::Weighted { .. } => "weighed-item",
        Scan::Marking { .. } => "marking",
        Scan::Loyalty { .. } => "loyalty card",
        Scan::Receipt(_) => "receipt",
        Scan::Rejected { .. } => "rejected",
    }
}
