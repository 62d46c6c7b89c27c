//! One customer in every channel: what a customer bought and returned with their card
//! at any store, and the orders placed with their phone online or at any till, newest
//! first. HQ serves it to the online shop and the console
//! (`GET /api/customers/{card}/history`) and to a till over sync
//! ([`HistoryRequest`], protocol 5); a till that cannot reach HQ shows what its own
//! journal holds, marked as such.

use crate::ids::{SaleId, StoreId};
use crate::loyalty::CustomerId;
use crate::money::Kopecks;
use crate::orders::{OrderChannel, OrderId, OrderState};

/// Entries of each kind a history holds, newest first.
pub const HISTORY_ENTRIES_MAX: usize = 50;
/// A receipt number's length in a history (a store's are 14 characters).
pub const RECEIPT_NO_LEN_MAX_BYTES: usize = 64;

/// A customer's purchases and orders, newest first, at most [`HISTORY_ENTRIES_MAX`] of
/// each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    pub purchases: Vec<Purchase>,
    pub orders: Vec<OrderEntry>,
}

/// A sale or return made with the customer's card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    /// The sale or return, by its store and sequence there.
    pub doc: SaleId,
    pub kind: DocKind,
    pub receipt_no: String,
    pub created_at_ms: i64,
    /// What the customer paid (a sale) or was refunded (a return; positive too).
    pub total: Kopecks,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocKind {
    Sale,
    Return,
}

impl DocKind {
    /// The word HQ's API and the till's page use.
    pub fn code(self) -> &'static str {
        match self {
            DocKind::Sale => "sale",
            DocKind::Return => "return",
        }
    }
}

/// An order placed with the customer's phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEntry {
    pub id: OrderId,
    /// Where it is picked up.
    pub store: StoreId,
    pub channel: OrderChannel,
    pub state: OrderState,
    pub total: Kopecks,
    pub created_at_ms: i64,
}

/// A till asks HQ for a customer's history (HQ answers with
/// [`crate::wire::HqMessage::History`]: `None` for a card it does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRequest {
    /// The store's own number for the request, echoed in the answer.
    pub request_id: u64,
    pub customer: CustomerId,
}

impl OrderEntry {
    /// `order`, now in `state`, as a history shows it.
    pub fn of(order: &crate::orders::Order, state: OrderState) -> OrderEntry {
        OrderEntry {
            id: order.id,
            store: order.store,
            channel: order.channel,
            state,
            total: order.total(),
            created_at_ms: order.created_at_ms,
        }
    }
}

impl CustomerHistory {
    /// Bounds and shape: what a peer may send.
    pub fn validate(&self) -> Result<(), String> {
        if self.purchases.len() > HISTORY_ENTRIES_MAX || self.orders.len() > HISTORY_ENTRIES_MAX {
            return Err(format!(
                "{} purchases and {} orders, more than {HISTORY_ENTRIES_MAX} of each",
                self.purchases.len(),
                self.orders.len()
            ));
        }
        if let Some(p) = self.purchases.iter().find(|p| p.receipt_no.len() > RECEIPT_NO_LEN_MAX_BYTES) {
            return Err(format!("purchase {}: a receipt number of {} bytes", p.doc, p.receipt_no.len()));
        }
        if let Some(p) = self.purchases.iter().find(|p| p.total.0 < 0) {
            return Err(format!("purchase {}: a negative total", p.doc));
        }
        if let Some(o) = self.orders.iter().find(|o| o.total.0 < 0) {
            return Err(format!("order {}: a negative total", o.id.0));
        }
        Ok(())
    }

    /// This history with `own` (what a store's journal holds) added: newest first, each
    /// purchase and order once (the store's own copy wins: it is as new as it gets), at
    /// most [`HISTORY_ENTRIES_MAX`] of each.
    pub fn with(mut self, own: CustomerHistory) -> CustomerHistory {
        self.purchases.retain(|p| !own.purchases.iter().any(|o| o.doc == p.doc));
        self.purchases.extend(own.purchases);
        self.purchases.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.doc.cmp(&a.doc)));
        self.purchases.truncate(HISTORY_ENTRIES_MAX);
        self.orders.retain(|p| !own.orders.iter().any(|o| o.id == p.id));
        self.orders.extend(own.orders);
        self.orders.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.0.cmp(&a.id.0)));
        self.orders.truncate(HISTORY_ENTRIES_MAX);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(store: u32, seq: u64, at: i64) -> Purchase {
        Purchase {
            doc: SaleId { store: StoreId(store), seq },
            kind: DocKind::Sale,
            receipt_no: format!("{store:04}-01-{seq:06}"),
            created_at_ms: at,
            total: Kopecks(100),
        }
    }

    #[test]
    fn a_stores_own_records_join_hqs_history_newest_first_each_once() {
        let hq = CustomerHistory { purchases: vec![purchase(2, 5, 30), purchase(1, 3, 10)], orders: vec![] };
        let own = CustomerHistory { purchases: vec![purchase(1, 4, 20), purchase(1, 3, 10)], orders: vec![] };
        let all = hq.with(own);
        let ids: Vec<_> = all.purchases.iter().map(|p| (p.doc.store.0, p.doc.seq)).collect();
        assert_eq!(ids, vec![(2, 5), (1, 4), (1, 3)]);
        assert_eq!(all.validate(), Ok(()));
    }

    #[test]
    fn a_history_beyond_its_bounds_is_refused() {
        let many = CustomerHistory {
            purchases: (0..=HISTORY_ENTRIES_MAX as u64).map(|i| purchase(1, i, i as i64)).collect(),
            orders: vec![],
        };
        assert!(many.validate().is_err());
        let trimmed = CustomerHistory::default().with(many);
        assert_eq!((trimmed.purchases.len(), trimmed.purchases[0].doc.seq), (HISTORY_ENTRIES_MAX, 50));
        let long = CustomerHistory {
            purchases: vec![Purchase { receipt_no: "9".repeat(65), ..purchase(1, 1, 0) }],
            orders: vec![],
        };
        assert!(long.validate().unwrap_err().contains("65 bytes"));
        let negative =
            CustomerHistory { purchases: vec![Purchase { total: Kopecks(-1), ..purchase(1, 1, 0) }], orders: vec![] };
        assert!(negative.validate().is_err());
    }
}
