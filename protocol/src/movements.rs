//! Stock movements at a store other than sales and returns: receiving a delivery,
//! counting the shelves, writing goods off, and transfers between stores.
//!
//! A movement is a document of the store that made it (`MovementId`: the store and its
//! own sequence, unique without coordination, like a sale), recorded in the journal's
//! hash chain and replicated to HQ exactly once with the store's running stock totals
//! after it, like a sale. Its lines are signed quantity changes of the store's stock,
//! in pieces or grams: positive into stock (received), negative out of it (written off,
//! shipped); a count's lines are its adjustments, either sign.
//!
//! What a store is expected to receive — a delivery HQ announces, or a transfer another
//! store shipped — reaches it as an [`Inbound`] document over sync; the store receives
//! it by a [`MovementKind::Receipt`] or [`MovementKind::TransferIn`] that names it, and
//! each line then says what was expected beside what arrived.
//!
//! The rules here are sans-IO and shared: the store's journal and HQ validate a movement
//! with [`Movement::validate`], and a count's adjustments come from [`count_adjustments`].

use std::collections::BTreeMap;

use crate::ids::{Sku, StoreId};

/// Lines of one movement (or inbound document): a full count of a large store posts
/// every SKU that differs, and one movement must stay well inside a sync batch
/// (`wire::BATCH_BYTES_MAX`; a line is ~60 bytes encoded).
pub const MOVEMENT_LINES_MAX: usize = 4096;
/// Largest quantity of one line, in pieces or grams (a tonne of a weighed item).
pub const MOVEMENT_QUANTITY_MAX: i64 = 1_000_000;
/// Longest free-text note on a movement, in characters.
pub const NOTE_CHARS_MAX: usize = 200;

/// A movement: unique across the chain without coordination, like a sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MovementId {
    pub store: StoreId,
    pub seq: u64,
}

impl std::fmt::Display for MovementId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-M{}", self.store, self.seq)
    }
}

/// Why goods were written off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOffReason {
    Damaged,
    Expired,
    Theft,
    Other,
}

impl WriteOffReason {
    pub const ALL: [WriteOffReason; 4] =
        [WriteOffReason::Damaged, WriteOffReason::Expired, WriteOffReason::Theft, WriteOffReason::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteOffReason::Damaged => "damaged",
            WriteOffReason::Expired => "expired",
            WriteOffReason::Theft => "theft",
            WriteOffReason::Other => "other",
        }
    }
}

/// What a movement is, with what it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MovementKind {
    /// Goods received: against a delivery HQ announced (`delivery`), or without one
    /// (`None`: a manager approved it at the store).
    Receipt {
        delivery: Option<u64>,
    },
    WriteOff {
        reason: WriteOffReason,
    },
    /// The adjustments a stock count posted (`count` is the store's own count number).
    Count {
        count: u64,
    },
    /// Goods shipped to another store; the movement's id is the transfer's id.
    TransferOut {
        to: StoreId,
    },
    /// Goods of transfer `transfer` (the sending store's movement) received.
    TransferIn {
        transfer: MovementId,
    },
}

impl MovementKind {
    /// The reason a report groups movements by.
    pub fn reason(&self) -> &'static str {
        match self {
            MovementKind::Receipt { .. } => "receipt",
            MovementKind::WriteOff { reason } => match reason {
                WriteOffReason::Damaged => "write_off_damaged",
                WriteOffReason::Expired => "write_off_expired",
                WriteOffReason::Theft => "write_off_theft",
                WriteOffReason::Other => "write_off_other",
            },
            MovementKind::Count { .. } => "count",
            MovementKind::TransferOut { .. } => "transfer_out",
            MovementKind::TransferIn { .. } => "transfer_in",
        }
    }

    /// The movement that receives document `doc`.
    pub fn receiving(doc: InboundSource) -> MovementKind {
        match doc {
            InboundSource::Delivery(n) => MovementKind::Receipt { delivery: Some(n) },
            InboundSource::Transfer(id) => MovementKind::TransferIn { transfer: id },
        }
    }

    /// The inbound document it receives, if any (its receipt closes the document).
    pub fn received(&self) -> Option<InboundSource> {
        match *self {
            MovementKind::Receipt { delivery: Some(n) } => Some(InboundSource::Delivery(n)),
            MovementKind::TransferIn { transfer } => Some(InboundSource::Transfer(transfer)),
            _ => None,
        }
    }

    /// What it names as its source — the document it received (`delivery:N`,
    /// `transfer:S-M`) or the count it posted (`count:N`) — as the journal, HQ and the
    /// APIs key it; `None` for a receipt without a document, a write-off, a transfer out.
    pub fn source_key(&self) -> Option<String> {
        match self {
            MovementKind::Count { count } => Some(count_key(*count)),
            other => other.received().map(InboundSource::key),
        }
    }

    /// Which way its lines may go: `Some(true)` only into stock, `Some(false)` only out,
    /// `None` either (a count).
    fn direction(&self) -> Option<bool> {
        match self {
            MovementKind::Receipt { .. } | MovementKind::TransferIn { .. } => Some(true),
            MovementKind::WriteOff { .. } | MovementKind::TransferOut { .. } => Some(false),
            MovementKind::Count { .. } => None,
        }
    }
}

/// One SKU of a movement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovementLine {
    pub sku: Sku,
    pub name: String,
    /// The change of the store's stock: positive in, negative out; 0 only on a line of a
    /// receipt that says an expected item did not arrive.
    pub quantity: i64,
    /// What the inbound document said would arrive (receipts and transfers in); `None`
    /// for a line nobody announced.
    pub expected: Option<i64>,
}

impl MovementLine {
    /// Received minus expected: negative is short, positive is over; 0 when nothing was
    /// expected to compare with.
    pub fn difference(&self) -> i64 {
        self.expected.map_or(0, |e| self.quantity - e)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    pub id: MovementId,
    pub kind: MovementKind,
    pub lines: Vec<MovementLine>,
    /// Who recorded it (a user id at the store) and who approved it, if a manager had to.
    pub by: String,
    pub approved_by: Option<String>,
    pub note: String,
    pub created_at_ms: i64,
}

/// Why a movement is refused; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MovementError {
    #[error("a movement needs at least one line")]
    Empty,
    #[error("a movement has at most {MOVEMENT_LINES_MAX} lines")]
    TooManyLines,
    #[error("SKU {0} is on two lines: give each SKU once")]
    DuplicateSku(Sku),
    #[error("line {sku}: the quantity must be between 1 and {MOVEMENT_QUANTITY_MAX}")]
    Quantity { sku: Sku },
    #[error("line {sku}: a {kind} only moves stock {direction}")]
    Direction { sku: Sku, kind: &'static str, direction: &'static str },
    #[error("a note is at most {NOTE_CHARS_MAX} characters")]
    Note,
    #[error("a transfer goes to another store")]
    TransferToSelf,
}

impl Movement {
    /// The rules every movement keeps, checked by the store before it writes one and by
    /// HQ before it applies one.
    pub fn validate(&self) -> Result<(), MovementError> {
        // A count that found everything as the book says posts no adjustment, and is
        // still a movement: the record that the count happened.
        let is_count = matches!(self.kind, MovementKind::Count { .. });
        if self.lines.is_empty() && !is_count {
            return Err(MovementError::Empty);
        }
        if self.lines.len() > MOVEMENT_LINES_MAX {
            return Err(MovementError::TooManyLines);
        }
        if self.note.chars().count() > NOTE_CHARS_MAX {
            return Err(MovementError::Note);
        }
        if let MovementKind::TransferOut { to } = self.kind {
            if to == self.id.store || to == StoreId::HQ {
                return Err(MovementError::TransferToSelf);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.lines {
            if !seen.insert(&l.sku) {
                return Err(MovementError::DuplicateSku(l.sku.clone()));
            }
            self.check_line(l)?;
        }
        Ok(())
    }

    fn check_line(&self, l: &MovementLine) -> Result<(), MovementError> {
        let quantity_error = || MovementError::Quantity { sku: l.sku.clone() };
        if l.quantity.unsigned_abs() > MOVEMENT_QUANTITY_MAX as u64 {
            return Err(quantity_error());
        }
        if let Some(e) = l.expected {
            if !(0..=MOVEMENT_QUANTITY_MAX).contains(&e) {
                return Err(quantity_error());
            }
        }
        // A line of nothing says an announced item did not arrive (a receipt of a
        // document where nothing came at all records the whole shortage).
        let zero_allowed = l.expected.is_some_and(|e| e > 0);
        if l.quantity == 0 && !zero_allowed {
            return Err(quantity_error());
        }
        match self.kind.direction() {
            Some(true) if l.quantity < 0 => {
                Err(MovementError::Direction { sku: l.sku.clone(), kind: self.kind.reason(), direction: "in" })
            }
            Some(false) if l.quantity > 0 => {
                Err(MovementError::Direction { sku: l.sku.clone(), kind: self.kind.reason(), direction: "out" })
            }
            _ => Ok(()),
        }
    }

    /// The stock change per SKU as counter increments: `(sku, plus, minus)`.
    pub fn counter_moves(&self) -> impl Iterator<Item = (&Sku, i64, i64)> {
        self.lines.iter().filter(|l| l.quantity != 0).map(|l| (&l.sku, l.quantity.max(0), (-l.quantity).max(0)))
    }
}

/// What a store is told to expect, by HQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    pub source: InboundSource,
    /// Where it goes: the store that receives it.
    pub store: StoreId,
    pub lines: Vec<InboundLine>,
    pub created_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InboundSource {
    /// A delivery HQ (or a supplier's file through HQ) announced; HQ's number.
    Delivery(u64),
    /// A transfer another store shipped: its `TransferOut` movement.
    Transfer(MovementId),
}

impl InboundSource {
    /// How a document is named in the journal, at HQ, in the API and on the page:
    /// `delivery:31`, `transfer:8-17` (the sending store and its movement).
    pub fn key(self) -> String {
        match self {
            InboundSource::Delivery(n) => format!("delivery:{n}"),
            InboundSource::Transfer(id) => format!("transfer:{}-{}", id.store.0, id.seq),
        }
    }
}

/// How a stock count is named as a movement's source.
pub fn count_key(count: u64) -> String {
    format!("count:{count}")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
}

impl Inbound {
    pub fn validate(&self) -> Result<(), MovementError> {
        if self.lines.is_empty() {
            return Err(MovementError::Empty);
        }
        if self.lines.len() > MOVEMENT_LINES_MAX {
            return Err(MovementError::TooManyLines);
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.lines {
            if !seen.insert(&l.sku) {
                return Err(MovementError::DuplicateSku(l.sku.clone()));
            }
            if !(1..=MOVEMENT_QUANTITY_MAX).contains(&l.quantity) {
                return Err(MovementError::Quantity { sku: l.sku.clone() });
            }
        }
        Ok(())
    }

    /// The receipt's lines for what arrived: every expected line (0 if none came), then
    /// anything unannounced, each saying what was expected. `arrived` holds positive
    /// quantities per SKU (with names for unannounced ones).
    pub fn receipt_lines(&self, arrived: &BTreeMap<Sku, (String, i64)>) -> Vec<MovementLine> {
        let mut lines: Vec<MovementLine> = self
            .lines
            .iter()
            .map(|l| MovementLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                quantity: arrived.get(&l.sku).map_or(0, |(_, q)| *q),
                expected: Some(l.quantity),
            })
            .collect();
        for (sku, (name, quantity)) in arrived {
            if !self.lines.iter().any(|l| &l.sku == sku) {
                lines.push(MovementLine {
                    sku: sku.clone(),
                    name: name.clone(),
                    quantity: *quantity,
                    expected: Some(0),
                });
            }
        }
        lines
    }
}

/// One SKU of a stock count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountedSku {
    pub sku: Sku,
    pub name: String,
    /// The book quantity when the SKU was first counted (its shelf was being counted
    /// then): sales after that moment took goods the counters had already seen or had
    /// not, and the book and the shelf move together from there.
    pub book_at_count: i64,
    /// What the counters found, all scans added up (several people may count one SKU in
    /// different places).
    pub counted: i64,
}

/// A count's adjustments: for each SKU, what was counted minus the book quantity when it
/// was counted. Sales during the count then need no correction: a sale before the SKU
/// was counted is already in its book quantity, one after moves book and shelf alike.
/// In a full count (or a partial one by scope) a SKU in scope nobody counted was counted
/// as none: `uncounted` gives those with their book quantity now.
pub fn count_adjustments(counted: &[CountedSku], uncounted: &[(Sku, String, i64)]) -> Vec<MovementLine> {
    let mut lines: Vec<MovementLine> = counted
        .iter()
        .filter(|c| c.counted != c.book_at_count)
        .map(|c| MovementLine {
            sku: c.sku.clone(),
            name: c.name.clone(),
            quantity: c.counted - c.book_at_count,
            expected: None,
        })
        .collect();
    lines.extend(uncounted.iter().filter(|(_, _, book)| *book != 0).map(|(sku, name, book)| MovementLine {
        sku: sku.clone(),
        name: name.clone(),
        quantity: -book,
        expected: None,
    }));
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i64) -> MovementLine {
        MovementLine { sku: Sku(sku.into()), name: sku.into(), quantity, expected: None }
    }

    fn movement(kind: MovementKind, lines: Vec<MovementLine>) -> Movement {
        Movement {
            id: MovementId { store: StoreId(1), seq: 1 },
            kind,
            lines,
            by: "u".into(),
            approved_by: None,
            note: String::new(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn each_kind_moves_stock_one_way_only() {
        let write_off = MovementKind::WriteOff { reason: WriteOffReason::Damaged };
        assert!(movement(write_off.clone(), vec![line("a", -2)]).validate().is_ok());
        assert!(matches!(
            movement(write_off, vec![line("a", 2)]).validate(),
            Err(MovementError::Direction { direction: "out", .. })
        ));
        let receipt = MovementKind::Receipt { delivery: None };
        assert!(movement(receipt.clone(), vec![line("a", 5)]).validate().is_ok());
        assert!(matches!(movement(receipt, vec![line("a", -5)]).validate(), Err(MovementError::Direction { .. })));
        let count = MovementKind::Count { count: 1 };
        assert!(movement(count, vec![line("a", -5), line("b", 3)]).validate().is_ok());
    }

    #[test]
    fn bad_movements_are_refused_with_the_line_named() {
        let out = MovementKind::TransferOut { to: StoreId(2) };
        assert_eq!(movement(out.clone(), vec![]).validate(), Err(MovementError::Empty));
        assert_eq!(
            movement(out.clone(), vec![line("a", -1), line("a", -2)]).validate(),
            Err(MovementError::DuplicateSku(Sku("a".into())))
        );
        assert_eq!(
            movement(out.clone(), vec![line("a", 0)]).validate(),
            Err(MovementError::Quantity { sku: Sku("a".into()) })
        );
        assert_eq!(
            movement(out, vec![line("a", -(MOVEMENT_QUANTITY_MAX + 1))]).validate(),
            Err(MovementError::Quantity { sku: Sku("a".into()) })
        );
        assert_eq!(
            movement(MovementKind::TransferOut { to: StoreId(1) }, vec![line("a", -1)]).validate(),
            Err(MovementError::TransferToSelf)
        );
        let mut m = movement(MovementKind::Receipt { delivery: Some(1) }, vec![line("a", 0)]);
        m.lines[0].expected = Some(3);
        assert_eq!(m.validate(), Ok(()), "nothing of a delivery came: the shortage is recorded");
        assert_eq!(m.counter_moves().count(), 0, "and no stock moves");
        m.lines[0].expected = Some(0);
        assert_eq!(
            m.validate(),
            Err(MovementError::Quantity { sku: Sku("a".into()) }),
            "nothing expected, nothing came"
        );
    }

    #[test]
    fn a_receipt_lists_every_expected_line_and_what_nobody_announced() {
        let inbound = Inbound {
            source: InboundSource::Delivery(7),
            store: StoreId(1),
            lines: vec![
                InboundLine { sku: Sku("a".into()), name: "A".into(), quantity: 10 },
                InboundLine { sku: Sku("b".into()), name: "B".into(), quantity: 4 },
            ],
            created_at_ms: 0,
        };
        let arrived: BTreeMap<Sku, (String, i64)> =
            [(Sku("a".into()), ("A".into(), 9)), (Sku("c".into()), ("C".into(), 2))].into_iter().collect();
        let lines = inbound.receipt_lines(&arrived);
        let got: Vec<_> = lines.iter().map(|l| (l.sku.0.as_str(), l.quantity, l.expected, l.difference())).collect();
        assert_eq!(got, vec![("a", 9, Some(10), -1), ("b", 0, Some(4), -4), ("c", 2, Some(0), 2)]);
        let m = movement(MovementKind::Receipt { delivery: Some(7) }, lines);
        assert!(m.validate().is_ok());
        let moves: Vec<_> = m.counter_moves().map(|(s, p, n)| (s.0.as_str(), p, n)).collect();
        assert_eq!(moves, vec![("a", 9, 0), ("c", 2, 0)], "a line that did not arrive moves nothing");
    }

    #[test]
    fn a_count_adjusts_by_what_was_found_against_the_book_when_counted() {
        // Book 10 when the shelf was counted and 7 found: 3 missing. Two sold after
        // the count moved book and shelf alike, so the adjustment is still -3.
        let counted = vec![
            CountedSku { sku: Sku("a".into()), name: "A".into(), book_at_count: 10, counted: 7 },
            CountedSku { sku: Sku("b".into()), name: "B".into(), book_at_count: 4, counted: 4 },
            CountedSku { sku: Sku("c".into()), name: "C".into(), book_at_count: -1, counted: 2 },
        ];
        let uncounted = vec![(Sku("d".into()), "D".into(), 5), (Sku("e".into()), "E".into(), 0)];
        let lines = count_adjustments(&counted, &uncounted);
        let got: Vec<_> = lines.iter().map(|l| (l.sku.0.as_str(), l.quantity)).collect();
        assert_eq!(got, vec![("a", -3), ("c", 3), ("d", -5)]);
    }
}
