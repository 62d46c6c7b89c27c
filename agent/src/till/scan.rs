//! What a scanned or typed code means at this till, under the store's scan rules, and
//! putting it in the basket: an item (by GTIN, GS1 label, weighed code or SKU), a marked
//! item, a receipt (the page offers a return), a loyalty card (the customer).

use kassa_hardware::barcode::{self, ReceiptRef, RejectReason, Scan};
use kassa_protocol::catalog::{CatalogItem, Unit};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::Sku;

use super::basket::OpKey;
use super::{Till, TillError, TillEvent};
use crate::journal::{check_key, Refusal, WriteError};

/// What a scanned or typed code means at the till.
enum Resolved {
    Item(CatalogItem, i64),
    Marked(CatalogItem, String),
    Receipt(u64),
    /// Another store's receipt, by its code as scanned (a signed one proves itself).
    ElsewhereReceipt(String),
    Loyalty(String),
    Order(u64),
}

impl Till {
    /// A code from the scanner. A rejected scan is published with its reason (the page
    /// shows it) and returned as an error.
    pub async fn scan(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        let result = self.scan_inner(raw).await;
        if let Err(e) = &result {
            let code = kassa_hardware::escape(raw);
            tracing::info!(%code, reason_code = e.code(), reason = %e, "scan rejected");
            self.publish(TillEvent::ScanRejected { code, reason_code: e.code(), reason: e.to_string() });
        }
        result
    }

    async fn scan_inner(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        match self.resolve(raw).await? {
            Resolved::Item(item, quantity) => {
                let quantity = self.take_multiplier(item.unit, quantity).await;
                self.modify(None, move |b| b.add(&item, quantity).map(|_| ())).await
            }
            Resolved::Marked(item, code) => self.modify(None, move |b| b.add_marked(&item, &code).map(|_| ())).await,
            Resolved::Receipt(seq) => {
                let ev = TillEvent::ReceiptScanned { seq };
                self.publish(ev.clone());
                Ok(ev)
            }
            Resolved::ElsewhereReceipt(code) => {
                let ev = TillEvent::ElsewhereReceiptScanned { code };
                self.publish(ev.clone());
                Ok(ev)
            }
            Resolved::Order(order) => {
                let ev = TillEvent::OrderScanned { order };
                self.publish(ev.clone());
                Ok(ev)
            }
            // A card scanned at the till puts its customer on the basket.
            Resolved::Loyalty(card) => self.set_customer(&card).await,
        }
    }

    /// A code typed by the cashier: a barcode, or a PLU of a weighed item.
    pub async fn enter_code(&self, code: &str, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "scan", code);
        check_key(key.key)?;
        if let Some(ev) = self.remembered(key).await? {
            return Ok(ev);
        }
        match self.resolve(code.trim().as_bytes()).await? {
            Resolved::Item(item, quantity) => {
                let quantity = self.take_multiplier(item.unit, quantity).await;
                self.modify(Some(key), move |b| b.add(&item, quantity).map(|_| ())).await
            }
            Resolved::Marked(item, code) => {
                self.modify(Some(key), move |b| b.add_marked(&item, &code).map(|_| ())).await
            }
            Resolved::Receipt(seq) => Ok(TillEvent::ReceiptScanned { seq }),
            Resolved::ElsewhereReceipt(code) => Ok(TillEvent::ElsewhereReceiptScanned { code }),
            Resolved::Order(order) => Ok(TillEvent::OrderScanned { order }),
            Resolved::Loyalty(card) => self.set_customer(&card).await,
        }
    }

    pub async fn add_sku(&self, sku: Sku, quantity: i64, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "add_item", &(&sku, quantity));
        check_key(key.key)?;
        if let Some(ev) = self.remembered(key).await? {
            return Ok(ev);
        }
        let (s, at) = (sku.clone(), self.local_now());
        let item = self
            .journal(move |j| j.item_by_sku(&s)?.map(|i| j.priced_at(i, at)).transpose())
            .await?
            .ok_or(TillError::UnknownSku(sku.0))?;
        self.modify(Some(key), move |b| b.add(&item, quantity).map(|_| ())).await
    }

    async fn item_by_gtin(&self, gtin: &str) -> Result<CatalogItem, TillError> {
        let g = Gtin::parse(gtin).map_err(RejectReason::from)?;
        let at = self.local_now();
        match self.journal(move |j| j.item_by_gtin(&g)?.map(|i| j.priced_at(i, at)).transpose()).await? {
            Some(item) => Ok(item),
            None if self.journal(|j| j.catalog_len()).await? == 0 => Err(TillError::NoCatalog),
            None => Err(TillError::UnknownBarcode(g.short().to_owned())),
        }
    }

    /// What a code means at this till, under the store's scan rules.
    async fn resolve(&self, raw: &[u8]) -> Result<Resolved, TillError> {
        Ok(match barcode::parse_with(raw, &self.rules) {
            Scan::Gtin { gtin } => Resolved::Item(self.item_by_gtin(&gtin).await?, 1),
            // A GS1 label (e.g. a weighed pack with (310n)): the item by (01), the weight
            // as the quantity when the item is sold by weight.
            Scan::Gs1 { gtin: Some(gtin), weight_grams, .. } => {
                let item = self.item_by_gtin(&gtin).await?;
                let quantity = match (item.unit, weight_grams) {
                    (Unit::Kilogram, Some(g)) => g,
                    (Unit::Kilogram, None) => return Err(TillError::NoWeight),
                    (Unit::Piece, _) => 1,
                };
                Resolved::Item(item, quantity)
            }
            Scan::Gs1 { gtin: None, .. } => return Err(TillError::NoProductNumber),
            Scan::Marking { gtin, code, .. } => Resolved::Marked(self.item_by_gtin(&gtin).await?, code),
            Scan::Weighted { plu, weight_grams } => {
                let at = self.local_now();
                let item = self.journal(move |j| j.item_by_plu(plu)?.map(|i| j.priced_at(i, at)).transpose()).await?;
                Resolved::Item(item.ok_or(TillError::UnknownPlu(plu))?, weight_grams)
            }
            Scan::Receipt(r) => {
                let here = self.journal.store().0;
                let (store, code) = match r {
                    ReceiptRef::Sale { store, seq } => (Some(store), format!("KASSA:{store}:{seq}")),
                    ReceiptRef::Number { receipt_no } => {
                        let store = kassa_protocol::sale::parse_receipt_no(&receipt_no).map(|(s, _, _)| s.0);
                        (store, receipt_no)
                    }
                };
                // Another store's receipt: the page takes it back by its code as
                // scanned (HQ's figures, or its signed proof offline).
                if store.is_some_and(|s| s != here) {
                    return Ok(Resolved::ElsewhereReceipt(scanned_text(raw)));
                }
                let c = code.clone();
                let seq = self.journal(move |j| j.find_doc(&c)).await?;
                Resolved::Receipt(seq.ok_or(TillError::Write(WriteError::NoSuchSale(code)))?)
            }
            Scan::Loyalty { card } => Resolved::Loyalty(card),
            Scan::Order { order } => Resolved::Order(order),
            Scan::Rejected(reason) => return Err(reason.into()),
        })
    }
}

/// A scanned frame as text, without the AIM symbology prefix (`]Q1` for a QR code).
fn scanned_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    match text.strip_prefix(']').and_then(|rest| rest.get(2..)) {
        Some(code) => code.to_owned(),
        None => text.to_owned(),
    }
}
