//! Fixtures for tests: a basket line and a sale with sensible defaults, to override
//! with `..` where a test cares. Not part of the crate's API (hidden in its docs), but
//! public so that other crates' tests and the fuzz targets share it.
//!
//! ```
//! use kassa_protocol::basket::BasketLine;
//! use kassa_protocol::catalog::VatRate;
//! use kassa_protocol::testing::{line, sale};
//! use kassa_protocol::{Kopecks, StoreId};
//!
//! let milk = BasketLine { vat: VatRate::Vat10, ..line("100001", Kopecks(100)) };
//! let s = sale(StoreId(1), 7, vec![milk]);
//! assert_eq!(s.total, Kopecks(100));
//! assert_eq!(s.receipt_no, "0001-01-000007");
//! ```

use crate::basket::BasketLine;
use crate::catalog::{Unit, VatRate};
use crate::ids::{SaleId, Sku, StoreId};
use crate::money::Kopecks;
use crate::sale::{Sale, Tender, TenderKind};

/// One piece of `sku` (named after it) at `price`, VAT 20 %, at its list price, nothing
/// off: no promotion, no marking, no category.
pub fn line(sku: &str, price: Kopecks) -> BasketLine {
    pieces(sku, price, 1)
}

/// `quantity` pieces of `sku` at `price` each, otherwise as [`line`].
pub fn pieces(sku: &str, price: Kopecks, quantity: i64) -> BasketLine {
    BasketLine {
        sku: Sku(sku.into()),
        name: sku.into(),
        category: String::new(),
        unit: Unit::Piece,
        quantity,
        list_price: price,
        price,
        vat: VatRate::Vat20,
        amount: Kopecks(price.0 * quantity),
        discount: Kopecks::ZERO,
        promotions: Vec::new(),
        marking: None,
    }
}

/// Sale `seq` of `store` at terminal 1 by cashier `c`, at time 0, with the receipt
/// number of its sequence: `lines` paid in cash, exactly, no customer.
pub fn sale(store: StoreId, seq: u64, lines: Vec<BasketLine>) -> Sale {
    let total = Kopecks(lines.iter().map(|l| l.net().0).sum());
    Sale {
        id: SaleId { store, seq },
        receipt_no: crate::sale::receipt_no(store, 1, seq),
        terminal: 1,
        cashier: "c".into(),
        created_at_ms: 0,
        lines,
        tenders: vec![Tender { kind: TenderKind::Cash, amount: total }],
        total,
        change: Kopecks::ZERO,
        loyalty: None,
    }
}

/// Return `id` of `quantity` of `sale`'s first line, at what was paid for it, refunded in
/// cash, at time 0.
pub fn cash_return(sale: &Sale, id: SaleId, quantity: i64) -> crate::returns::Return {
    let line = &sale.lines[0];
    let amount = Kopecks(line.net().0 / line.quantity.max(1) * quantity);
    crate::returns::Return {
        id,
        receipt_no: crate::sale::receipt_no(id.store, 1, id.seq),
        terminal: 1,
        cashier: "c".into(),
        created_at_ms: 0,
        kind: crate::returns::ReturnKind::WithReceipt { sale: sale.id },
        lines: vec![crate::returns::ReturnLine {
            sale_line: Some(0),
            sku: line.sku.clone(),
            name: line.name.clone(),
            unit: line.unit,
            quantity,
            vat: line.vat,
            amount,
        }],
        refunds: vec![Tender { kind: TenderKind::Cash, amount }],
        total: amount,
        loyalty: None,
    }
}
