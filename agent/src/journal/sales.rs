//! Sales, returns, cancellations and voids, with everything that commits with them:
//! stock counters, the outbox entry for HQ and the print job.

use std::collections::BTreeMap;

use kassa_protocol::basket::Basket;
use kassa_protocol::loyalty::{LoyaltyEntry, SaleLoyalty};
use kassa_protocol::pricing;
use kassa_protocol::returns::{self, Return, ReturnKind, ReturnLine, Returned};
use kassa_protocol::sale::{self, Sale, Tender};
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::wire::Change;
use kassa_protocol::{Kopecks, SaleId, Sku};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::chain;
use super::outbox::push_outbox_after;
use super::print_queue::{queue_print, queue_report};
use super::types::Record;
use super::types::{PrintDoc, PrintExtras, PrintJob, Printable, ShiftReport};
use super::{
    exec, idempotent, multi_row_sql, query_row, Journal, JournalError, RequestDigest, WriteError, ROWS_PER_INSERT,
};
use kassa_protocol::receipt_proof::ProofLoyalty;

/// A loyalty customer on a sale.
#[derive(Debug, Clone)]
pub struct LoyaltyUse {
    pub customer: kassa_protocol::loyalty::CustomerId,
    pub rules: kassa_protocol::loyalty::LoyaltyRules,
    /// HQ is reachable: spare rights go to HQ so the points can be spent anywhere.
    pub online: bool,
}

/// A return, as the cashier asks for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReturnRequest {
    /// Lines (sale line number, quantity) of a sale of this store.
    WithReceipt { sale_seq: u64, lines: Vec<(u32, i64)> },
    /// Items by SKU, refunded at today's price in cash or to a card (`refund`, the
    /// customer's choice: with no receipt there is no payment to follow); a manager
    /// approved it.
    WithoutReceipt { lines: Vec<(Sku, i64)>, approved_by: String, refund: sale::TenderKind },
    /// Everything not yet returned of a sale, reversed; a manager approved it.
    Cancel { sale_seq: u64, approved_by: String },
    /// Lines of a sale of any store as HQ answered a lookup (return anywhere, online):
    /// what was returned of it is HQ's figures (every store's returns it applied and
    /// every live claim but this one) plus this store's returns made without a claim
    /// that HQ has not yet acknowledged. `claimed`: HQ was asked to hold these lines
    /// (`returns::ReturnClaim`), so HQ's figures will count this return until it
    /// arrives. A sale with a loyalty card: `loyalty_owed` is what its latest return HQ
    /// holds left owed for the points (this store's later returns of it supersede it).
    Anywhere {
        sale: Box<Sale>,
        returned: Returned,
        refunds: Vec<Tender>,
        loyalty_owed: Kopecks,
        lines: Vec<(u32, i64)>,
        claimed: bool,
    },
    /// Lines of another store's sale as its signed receipt proves it, taken back with HQ
    /// out of reach: what was returned of it is this store's own returns only, and the
    /// refund is within HQ's limits (per receipt, per shift).
    Offline { proof: Box<kassa_protocol::receipt_proof::ReceiptProof>, lines: Vec<(u32, i64)> },
}

/// What a sale's or return's idempotency key keeps: the document's sequence. The record
/// holds the document already; a third copy of it as JSON was the largest row of the
/// commit. Keys kept before this hold the whole document as JSON, and still answer.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRef {
    doc: u64,
}

impl DocRef {
    fn stored(seq: u64) -> Result<String, JournalError> {
        serde_json::to_string(&DocRef { doc: seq }).map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    /// The document a stored answer names (or holds whole, if kept the old way, read
    /// by `legacy`).
    fn load<T>(
        conn: &Connection,
        stored: &str,
        what: &str,
        pick: impl FnOnce(Record) -> Option<T>,
        legacy: impl FnOnce(&str) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let Ok(DocRef { doc: seq }) = serde_json::from_str(stored) else {
            return legacy(stored);
        };
        doc(conn, seq)?.and_then(pick).ok_or_else(|| JournalError::Corrupt(format!("no {what} {seq}")))
    }
}

impl super::Response for Sale {
    fn to_stored(&self) -> Result<String, JournalError> {
        DocRef::stored(self.id.seq)
    }

    fn from_stored(conn: &Connection, stored: &str) -> Result<Self, JournalError> {
        let pick = |r| match r {
            Record::Sale { sale, .. } => Some(sale),
            _ => None,
        };
        DocRef::load(conn, stored, "sale", pick, super::format::legacy_sale_json)
    }
}

impl super::Response for Return {
    fn to_stored(&self) -> Result<String, JournalError> {
        DocRef::stored(self.id.seq)
    }

    fn from_stored(conn: &Connection, stored: &str) -> Result<Self, JournalError> {
        let pick = |r| match r {
            Record::Return { ret, .. } => Some(ret),
            _ => None,
        };
        DocRef::load(conn, stored, "return", pick, super::format::legacy_return_json)
    }
}

/// Documents a terminal's list of receipts shows at most (a busy shift's worth).
pub const SHIFT_DOCS_MAX: usize = 500;

/// A sale or return as the till's list of receipts shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DocSummary {
    pub seq: u64,
    pub receipt_no: String,
    /// `sale` or `return`.
    pub kind: String,
    pub total_kopecks: i64,
    pub at_ms: i64,
    /// The sale a return returns.
    pub sale_seq: Option<u64>,
    /// A return that cancelled the whole sale.
    pub cancels: bool,
}

/// Lines in a return without receipt; the same bound as a basket.
const RETURN_LINES_MAX: usize = kassa_protocol::basket::BASKET_LINES_MAX;

impl Journal {
    /// Commits a paid basket as a sale. A key seen before returns the sale it made
    /// (`true` = replayed) and writes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_sale(
        &self,
        terminal: u16,
        cashier: &str,
        basket: &Basket,
        tenders: &[Tender],
        loyalty: Option<&LoyaltyUse>,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<(Sale, bool), WriteError> {
        self.commit_payment(terminal, cashier, basket, Some(basket.id), tenders, loyalty, idempotency_key, now_ms)
    }

    /// Commits a paid basket as a sale, the request being "pay basket `seen_basket` (or
    /// whatever basket is open, if `None`) with `tenders`": a retry of it (after a crash,
    /// the basket is long gone) answers the sale it made; the same key with another
    /// request is refused; a basket that is no longer the one the cashier saw is refused
    /// ([`WriteError::BasketChanged`]). The sale records the basket's id, so the basket
    /// ends with the commit.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_payment(
        &self,
        terminal: u16,
        cashier: &str,
        basket: &Basket,
        seen_basket: Option<u64>,
        tenders: &[Tender],
        loyalty: Option<&LoyaltyUse>,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<(Sale, bool), WriteError> {
        let digest = RequestDigest::of("pay", &(seen_basket, tenders));
        let conn = self.conn();
        idempotent(&conn, idempotency_key, "pay", digest, |tx| {
            if seen_basket.is_some_and(|seen| seen != basket.id) {
                return Err(WriteError::BasketChanged);
            }
            self.pay_in(tx, terminal, cashier, basket, Some(basket.id), tenders, loyalty, now_ms)
        })
    }

    /// Records `basket` paid with `tenders` as a sale, in the caller's transaction: the
    /// sale, its record, its stock counters, its outbox entries and its receipt. The sale
    /// remembers `basket_id` (the till's open basket it ended), or none (an order's lines
    /// paid at pickup).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pay_in(
        &self,
        tx: &Connection,
        terminal: u16,
        cashier: &str,
        basket: &Basket,
        basket_id: Option<u64>,
        tenders: &[Tender],
        loyalty: Option<&LoyaltyUse>,
        now_ms: i64,
    ) -> Result<Sale, WriteError> {
        let heads = heads(tx, terminal)?;
        let shift = heads.shift.ok_or(WriteError::NoShift)?;
        let (totals, change) = sale::settle(basket, tenders)?;
        let paid_in_points: i64 =
            tenders.iter().filter(|t| t.kind == sale::TenderKind::Points).map(|t| t.amount.0).sum();
        let (plan, loyalty_entries) = match loyalty {
            None if paid_in_points > 0 => return Err(WriteError::PointsNeedCustomer),
            None => (None, Vec::new()),
            Some(u) => {
                let (plan, entries) = self.loyalty_for_sale(tx, u, basket, paid_in_points)?;
                (Some(plan), entries)
            }
        };
        let seq = heads.doc_seq + 1;
        let receipt_number = heads.receipt_number + 1;
        let sale = Sale {
            id: SaleId { store: self.store, seq },
            receipt_no: sale::receipt_no(self.store, terminal, receipt_number as u64),
            terminal,
            cashier: cashier.to_owned(),
            created_at_ms: now_ms,
            lines: basket.lines.clone(),
            tenders: tenders.to_vec(),
            total: totals.total,
            change,
            loyalty: plan,
        };
        debug_assert_eq!(sale.validate(), Ok(()));
        let record = Record::Sale { sale: sale.clone(), shift };
        let record_seq = chain::append_after(tx, heads.chain, terminal, cashier, now_ms, &record)?;
        let doc = DocRow { seq, record_seq, receipt_no: &sale.receipt_no, terminal, receipt_number, shift };
        insert_doc(tx, &doc, "sale", sale.total, None, basket_id)?;
        if let Some(l) = &sale.loyalty {
            super::history::note(tx, &l.customer, seq)?;
        }
        let lines: Vec<_> = sale.lines.iter().map(|l| (None, &l.sku, l.quantity, l.net(), l.vat)).collect();
        insert_lines(tx, seq, &lines)?;
        insert_tenders(tx, seq, &sale.tenders)?;
        let counters = self.count(tx, sale.lines.iter().map(|l| (&l.sku, 0, l.quantity)))?;
        let outbox = push_outbox_after(tx, heads.outbox, Change::Sale { sale: sale.clone(), counters })?;
        if !loyalty_entries.is_empty() {
            push_outbox_after(tx, outbox, Change::Loyalty { customer: None, entries: loyalty_entries })?;
        }
        queue_print(tx, &PrintDoc::Doc { seq }, false, now_ms)?;
        Ok(sale)
    }

    /// Earns and spends a sale's points: refuses (writing nothing) to spend beyond the
    /// rights this store holds; hands spare rights over to HQ when asked to (online).
    fn loyalty_for_sale(
        &self,
        tx: &Connection,
        u: &LoyaltyUse,
        basket: &Basket,
        paid_in_points: i64,
    ) -> Result<(SaleLoyalty, Vec<LoyaltyEntry>), WriteError> {
        let point_value = u.rules.point_value_kopecks();
        if paid_in_points % point_value != 0 {
            return Err(WriteError::PointsStep { step: Kopecks(point_value) });
        }
        let skus: Vec<&Sku> = basket.lines.iter().map(|l| &l.sku).collect();
        let categories = Journal::categories(tx, &skus)?;
        let plan = kassa_protocol::loyalty::plan_sale(
            &u.rules,
            u.customer.clone(),
            &basket.lines,
            |sku| categories.get(&sku.0).map(String::as_str),
            paid_in_points / point_value,
        )?;
        let mut account = super::loyalty::account(tx, &u.customer)?;
        let mut entries = match account.apply_sale(self.actor, &plan) {
            Ok(entries) => entries,
            Err(_) => {
                let eligible = kassa_protocol::loyalty::eligible_total(&u.rules, &basket.lines, |sku| {
                    categories.get(&sku.0).map(String::as_str)
                });
                let offer = kassa_protocol::loyalty::offline_offer(&u.rules, &account, self.actor, eligible);
                return Err(WriteError::Points {
                    message: offer.message(!u.online),
                    spendable_now: offer.spendable_now,
                });
            }
        };
        if u.online {
            entries.extend(account.hand_over(self.actor, kassa_protocol::ActorId::HQ, 0));
        }
        for e in &entries {
            super::loyalty::merge_entry(tx, e)?;
        }
        let promotions: std::collections::BTreeSet<u32> =
            basket.lines.iter().flat_map(|l| l.promotions.iter().map(|p| p.promotion)).collect();
        super::loyalty::record_promotions(tx, &u.customer, &promotions.into_iter().collect::<Vec<_>>())?;
        Ok((plan, entries))
    }

    /// A return of `lines` of `sale` (of any store) after what came `before`: the lines,
    /// and the refund — money back the way it came, points given back as points, and the
    /// points the returned lines earned taken back — from this store's rights, or, where
    /// the customer already spent them (or, offline, they are held elsewhere), their
    /// value kept back from the money refund. Online, the store then hands the rights it
    /// holds beyond that to HQ, as after a sale: the customer spends them anywhere. See
    /// `kassa_protocol::loyalty` for the rules and their rounding.
    fn with_receipt(
        &self,
        tx: &Connection,
        sale: &Sale,
        before: Before,
        lines: &[(u32, i64)],
    ) -> Result<ReturnPlan, WriteError> {
        let Before { returned, earlier, owed, online } = before;
        let lines = returns::plan(sale, &returned, lines)?;
        let kind = ReturnKind::WithReceipt { sale: sale.id };
        let total = Kopecks(lines.iter().map(|l| l.amount.0).sum());
        let Some(sl) = &sale.loyalty else {
            let refunds = returns::refund_tenders(sale, &earlier, total);
            return Ok((kind, lines, refunds, None));
        };
        let points = kassa_protocol::loyalty::plan_return(sl, &sale.lines, &returned, &lines)?;
        let mut account = super::loyalty::account(tx, &sl.customer)?;
        let settled = points.settle(total, account.rights(self.actor), owed);
        let mut entries = account.apply_return(self.actor, &settled).map_err(WriteError::LoyaltyAccount)?;
        if online {
            entries.extend(account.hand_over(self.actor, kassa_protocol::ActorId::HQ, 0));
        }
        // Money refunds go the way the money came, never to points.
        let money_sale = Sale {
            tenders: sale.tenders.iter().filter(|t| t.kind != sale::TenderKind::Points).cloned().collect(),
            ..sale.clone()
        };
        let mut refunds = returns::refund_tenders(&money_sale, &earlier, settled.money_refund);
        if points.paid_in_points.0 > 0 {
            refunds.push(Tender { kind: sale::TenderKind::Points, amount: points.paid_in_points });
        }
        Ok((kind, lines, refunds, Some((settled, entries))))
    }

    /// Commits a return (with or without receipt, or a cancellation). A key seen before
    /// returns the return it made and writes nothing. Cash is refunded only from what
    /// the drawer holds, unless `drawer_override` names the manager who allowed more
    /// (recorded in the chain with the return).
    pub fn commit_return(
        &self,
        terminal: u16,
        cashier: &str,
        request: &ReturnRequest,
        drawer_override: Option<&str>,
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<(Return, bool), WriteError> {
        // A retry asks HQ again, whose figures may have moved: the sale and the lines
        // say what was asked.
        // This store's own sale digests as the plain return it is offline, so that a
        // retry made once HQ answers — or no longer does — is the same request.
        let digest = match request {
            ReturnRequest::Anywhere { sale, lines, .. } if sale.id.store == self.store => {
                let plain = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: lines.clone() };
                RequestDigest::of("return", &(&plain, drawer_override))
            }
            ReturnRequest::Anywhere { sale, lines, .. } => {
                RequestDigest::of("return", &(sale.id, lines, drawer_override))
            }
            // The same request as the online one: a retry made once HQ answers is it.
            ReturnRequest::Offline { proof, lines } => {
                RequestDigest::of("return", &(proof.sale, lines, drawer_override))
            }
            _ => RequestDigest::of("return", &(request, drawer_override)),
        };
        let conn = self.conn();
        idempotent(&conn, idempotency_key, "return", digest, |tx| {
            let heads = heads(tx, terminal)?;
            let shift = heads.shift.ok_or(WriteError::NoShift)?;
            let PlannedReturn { kind, lines, refunds, loyalty, sale_receipt } = self.plan_return(tx, request)?;
            let claimed = matches!(request, ReturnRequest::Anywhere { claimed: true, .. });
            let offline = match request {
                ReturnRequest::Offline { proof, .. } => {
                    let refund = Kopecks(lines.iter().map(|l| l.amount.0).sum());
                    let (receipt, in_shift) = super::return_terms::offline_refunded(tx, proof.sale, shift)?;
                    super::return_terms::return_limits(tx)?.allow(receipt, in_shift, refund)?;
                    refund
                }
                _ => Kopecks::ZERO,
            };
            let seq = heads.doc_seq + 1;
            let receipt_number = heads.receipt_number + 1;
            let total = Kopecks(lines.iter().map(|l| l.amount.0).sum());
            let ret = Return {
                id: SaleId { store: self.store, seq },
                receipt_no: sale::receipt_no(self.store, terminal, receipt_number as u64),
                terminal,
                cashier: cashier.to_owned(),
                created_at_ms: now_ms,
                kind,
                lines,
                refunds,
                total,
                loyalty: loyalty.as_ref().map(|(l, _)| l.clone()),
            };
            ret.validate().map_err(WriteError::Inconsistent)?;
            let cash_refund = cash_total(&ret.refunds)?;
            let overridden = super::shifts::check_drawer(tx, terminal, shift, cash_refund, drawer_override)?;
            let record = Record::Return { ret: ret.clone(), shift };
            let record_seq = chain::append_after(tx, heads.chain, terminal, cashier, now_ms, &record)?;
            if let Some(o) = overridden {
                chain::append(tx, terminal, cashier, now_ms, &o)?;
            }
            // A sale of this store is a document here; another store's is named in
            // `return_refs` only.
            let sale_seq = ret.kind.sale().filter(|s| s.store == self.store).map(|s| s.seq);
            let doc = DocRow { seq, record_seq, receipt_no: &ret.receipt_no, terminal, receipt_number, shift };
            insert_doc(tx, &doc, "return", ret.total, sale_seq, None)?;
            if matches!(ret.kind, ReturnKind::Cancellation { .. }) {
                exec(tx, "UPDATE docs SET cancels = 1 WHERE seq = ?1", [seq as i64])?;
            }
            if let Some(l) = &ret.loyalty {
                super::history::note(tx, &l.customer, seq)?;
            }
            let lines: Vec<_> = ret.lines.iter().map(|l| (l.sale_line, &l.sku, l.quantity, l.amount, l.vat)).collect();
            insert_lines(tx, seq, &lines)?;
            insert_tenders(tx, seq, &ret.refunds)?;
            let counters = self.count(tx, ret.lines.iter().map(|l| (&l.sku, l.quantity, 0)))?;
            let outbox = push_outbox_after(tx, heads.outbox, Change::Return { ret: ret.clone(), counters })?;
            if let Some(sale) = ret.kind.sale() {
                let receipt = sale_receipt.unwrap_or_default();
                exec(
                    tx,
                    "INSERT INTO return_refs (doc_seq, sale_store, sale_seq, sale_receipt_no, outbox_seq, offline_kopecks, claimed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![seq as i64, sale.store.0, sale.seq as i64, receipt, outbox as i64, offline.0, claimed],
                )?;
            }
            if let Some((_, entries)) = loyalty.filter(|(_, e)| !e.is_empty()) {
                for e in &entries {
                    super::loyalty::merge_entry(tx, e)?;
                }
                push_outbox_after(tx, outbox, Change::Loyalty { customer: None, entries })?;
            }
            queue_print(tx, &PrintDoc::Doc { seq }, false, now_ms)?;
            Ok(ret)
        })
    }

    /// Whether a write was already made under idempotency key `key` (its retry is
    /// answered from the journal: a return's retry claims nothing again at HQ).
    pub fn key_used(&self, key: &str) -> Result<bool, JournalError> {
        let seen: Option<i64> =
            query_row(&self.conn(), "SELECT 1 FROM idempotency WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        Ok(seen.is_some())
    }

    /// Works out a return from its request: which lines, what each refunds, how the
    /// money goes back, and what it does to the customer's points.
    fn plan_return(&self, tx: &Connection, request: &ReturnRequest) -> Result<PlannedReturn, WriteError> {
        let mut sale_receipt = None;
        let (kind, lines, refunds, loyalty) = match request {
            ReturnRequest::WithReceipt { sale_seq, lines } => {
                let (sale, returned, earlier) = sale_for_return(tx, *sale_seq)?;
                sale_receipt = Some(sale.receipt_no.clone());
                let before = Before { returned, earlier, owed: owed_here(tx, sale.id.seq)?, online: false };
                self.with_receipt(tx, &sale, before, lines)?
            }
            ReturnRequest::Anywhere { sale, returned, refunds, loyalty_owed, lines, .. } => {
                let acked = super::meta(tx, "acked_seq")?;
                let (returned, earlier) = own_returns_after(tx, sale, acked, true, returned.clone(), refunds.clone())?;
                sale_receipt = Some(sale.receipt_no.clone());
                // The points: HQ's latest return's figure, unless this store returned
                // some of the sale since (HQ has not heard of that return yet).
                let owed = last_owed(tx, sale, acked)?.unwrap_or(*loyalty_owed);
                self.with_receipt(tx, sale, Before { returned, earlier, owed, online: true }, lines)?
            }
            ReturnRequest::Offline { proof, lines } => {
                if let Some(&(line, _)) =
                    lines.iter().find(|(i, _)| proof.lines.get(*i as usize).is_some_and(|l| l.marked))
                {
                    return Err(WriteError::MarkedOffline(line));
                }
                let (sale, returned, earlier) = proven_sale(tx, proof)?;
                sale_receipt = Some(sale.receipt_no.clone());
                // The points: what this store's own returns of it left owed, the only
                // ones it can see; what it cannot take back is kept from the refund.
                let owed = last_owed(tx, &sale, 0)?.unwrap_or(Kopecks::ZERO);
                self.with_receipt(tx, &sale, Before { returned, earlier, owed, online: false }, lines)?
            }
            ReturnRequest::Cancel { sale_seq, approved_by } => {
                let (sale, returned, earlier) = sale_for_return(tx, *sale_seq)?;
                let rest: Vec<(u32, i64)> = returns::left_to_return(&sale, &returned)
                    .into_iter()
                    .enumerate()
                    .map(|(i, q)| (i as u32, q))
                    .filter(|(_, q)| *q > 0)
                    .collect();
                if rest.is_empty() {
                    return Err(WriteError::AlreadyCancelled(sale.receipt_no));
                }
                sale_receipt = Some(sale.receipt_no.clone());
                let before = Before { returned, earlier, owed: owed_here(tx, sale.id.seq)?, online: false };
                let (_, lines, refunds, loyalty) = self.with_receipt(tx, &sale, before, &rest)?;
                (ReturnKind::Cancellation { sale: sale.id, approved_by: approved_by.clone() }, lines, refunds, loyalty)
            }
            ReturnRequest::WithoutReceipt { lines, approved_by, refund } => {
                if *refund == sale::TenderKind::Points {
                    return Err(WriteError::RefundMethod);
                }
                let lines = lines_without_receipt(tx, lines)?;
                let total = Kopecks(lines.iter().map(|l| l.amount.0).sum());
                let refunds = vec![Tender { kind: *refund, amount: total }];
                (ReturnKind::WithoutReceipt { approved_by: approved_by.clone() }, lines, refunds, None)
            }
        };
        Ok(PlannedReturn { kind, lines, refunds, loyalty, sale_receipt })
    }

    /// Records an abandoned basket. Nothing else changes: no stock moved. The basket has
    /// ended, shift or not: a restart does not bring it back.
    pub fn void_basket(&self, terminal: u16, cashier: &str, basket: &Basket, now_ms: i64) -> Result<(), WriteError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        super::set_meta(&tx, &voided_basket_key(terminal), basket.id)?;
        // Without a shift nothing was sold, so there is nothing to account for.
        if let Some(shift) = super::shifts::open_shift(&tx, terminal)? {
            let total = basket.totals().map_or(Kopecks::ZERO, |t| t.total);
            let record = Record::Void { shift: shift.id, lines: basket.lines.len() as u32, total };
            let record_seq = chain::append(&tx, terminal, cashier, now_ms, &record)?;
            exec(
                &tx,
                "INSERT INTO voids (record_seq, shift_id, total_kopecks) VALUES (?1, ?2, ?3)",
                params![record_seq, shift.id, total.0],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Adds to this store's own running totals; returns the new entry per SKU.
    pub(super) fn count<'a>(
        &self,
        tx: &Connection,
        moves: impl Iterator<Item = (&'a Sku, i64, i64)>,
    ) -> Result<Vec<CounterEntry>, JournalError> {
        // One entry per SKU (a SKU may be on several lines).
        let mut per_sku: BTreeMap<&Sku, (i64, i64)> = BTreeMap::new();
        for (sku, plus, minus) in moves {
            let m = per_sku.entry(sku).or_default();
            *m = (m.0 + plus, m.1 + minus);
        }
        let per_sku: Vec<_> = per_sku.into_iter().collect();
        let mut out = Vec::with_capacity(per_sku.len());
        // Several SKUs per statement (one statement per line was the costliest part of a
        // sale): read the totals, add, write them back. The transaction holds the write
        // lock, so nothing changes them in between; reading first is half the cost of an
        // upsert with RETURNING. The read is point lookups joined by UNION ALL: `sku IN
        // (…)` builds a temporary index of the list first and costs more.
        for chunk in per_sku.chunks(ROWS_PER_INSERT) {
            let sql = (0..chunk.len())
                .map(|i| {
                    format!(
                        "SELECT sku, p, n FROM stock_counters WHERE sku = ?{} AND actor_store = ?1 AND actor_epoch = ?2",
                        i + 3
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let mut st = tx.prepare_cached(&sql)?;
            st.raw_bind_parameter(1, self.actor.store.0)?;
            st.raw_bind_parameter(2, self.actor.epoch)?;
            for (i, (sku, _)) in chunk.iter().enumerate() {
                st.raw_bind_parameter(i + 3, sku.as_str())?;
            }
            let mut totals: Vec<(i64, i64)> = vec![(0, 0); chunk.len()];
            let mut rows = st.raw_query();
            while let Some(r) = rows.next()? {
                let sku: String = r.get(0)?;
                let i = chunk
                    .iter()
                    .position(|(s, _)| s.as_str() == sku)
                    .ok_or_else(|| JournalError::Corrupt(format!("stock counter query returned SKU {sku}")))?;
                totals[i] = (r.get(1)?, r.get(2)?);
            }
            drop(rows);
            let sql = multi_row_sql(
                "INSERT INTO stock_counters (sku, actor_store, actor_epoch, p, n)",
                5,
                chunk.len(),
                "ON CONFLICT DO UPDATE SET p = excluded.p, n = excluded.n",
            );
            let mut st = tx.prepare_cached(&sql)?;
            for (i, ((sku, (plus, minus)), (p, n))) in chunk.iter().zip(totals).enumerate() {
                let overflow = || JournalError::Corrupt(format!("stock counter of {sku} overflows"));
                let (p, n) = (p.checked_add(*plus).ok_or_else(overflow)?, n.checked_add(*minus).ok_or_else(overflow)?);
                st.raw_bind_parameter(i * 5 + 1, sku.as_str())?;
                st.raw_bind_parameter(i * 5 + 2, self.actor.store.0)?;
                st.raw_bind_parameter(i * 5 + 3, self.actor.epoch)?;
                st.raw_bind_parameter(i * 5 + 4, p)?;
                st.raw_bind_parameter(i * 5 + 5, n)?;
                out.push(CounterEntry { location: self.store, sku: (*sku).clone(), actor: self.actor, p, n });
            }
            st.raw_execute()?;
        }
        Ok(out)
    }

    /// The id of the last basket of `terminal` that ended here: paid by a sale or voided.
    /// A basket the till saved with this id or a lower one is over and never restored.
    pub fn basket_ended(&self, terminal: u16) -> Result<u64, JournalError> {
        let conn = self.conn();
        // The terminal's documents newest first, by the (terminal, receipt_number) key;
        // returns in between carry no basket.
        let paid: Option<i64> = query_row(
            &conn,
            "SELECT basket_id FROM docs WHERE terminal = ?1 AND basket_id IS NOT NULL
             ORDER BY receipt_number DESC LIMIT 1",
            [terminal],
            |r| r.get(0),
        )
        .optional()?;
        let voided = super::meta(&conn, &voided_basket_key(terminal))?;
        Ok(voided.max(paid.unwrap_or(0).max(0) as u64))
    }

    pub fn sale(&self, seq: u64) -> Result<Option<Sale>, JournalError> {
        let conn = self.conn();
        match doc(&conn, seq)? {
            Some(Record::Sale { sale, .. }) => Ok(Some(sale)),
            _ => Ok(None),
        }
    }

    /// The sequence of a sale or return by its receipt number (`0001-01-000007`) or by
    /// the code its receipt's QR carries (`KASSA:1:7`, signed or not).
    pub fn find_doc(&self, code: &str) -> Result<Option<u64>, JournalError> {
        if code.trim().starts_with("KASSA:") {
            return Ok(match kassa_protocol::receipt_proof::parse_code(code) {
                Some(Ok(c)) if c.sale.store == self.store => Some(c.sale.seq),
                _ => None,
            });
        }
        // `SSSS-TT-NNNNNN`: looked up by terminal and number, whose key is unique; the
        // text must still match exactly.
        let code = code.trim();
        let mut parts = code.split('-');
        let (Some(_store), Some(terminal), Some(number), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let (Ok(terminal), Ok(number)) = (terminal.parse::<u16>(), number.parse::<i64>()) else { return Ok(None) };
        let seq: Option<i64> = query_row(
            &self.conn(),
            "SELECT seq FROM docs WHERE terminal = ?1 AND receipt_number = ?2 AND receipt_no = ?3",
            params![terminal, number, code],
            |r| r.get(0),
        )
        .optional()?;
        Ok(seq.map(|s| s as u64))
    }

    /// What is left to return of each line of a sale.
    pub fn returnable(&self, seq: u64) -> Result<Option<(Sale, Vec<i64>)>, JournalError> {
        let conn = self.conn();
        let Some(Record::Sale { sale, .. }) = doc(&conn, seq)? else { return Ok(None) };
        let left = returns::left_to_return(&sale, &returned_of(&conn, seq)?);
        Ok(Some((sale, left)))
    }

    /// Another store's sale as its signed receipt proves it, for a return taken with HQ
    /// out of reach: the sale (named from this store's catalog), what this store itself
    /// returned of each line, and what HQ's limits leave to refund for this receipt and
    /// in `terminal`'s open shift (nothing without one).
    pub fn sale_offline(
        &self,
        proof: &kassa_protocol::receipt_proof::ReceiptProof,
        terminal: u16,
    ) -> Result<OfflineSale, WriteError> {
        let conn = self.conn();
        let (sale, returned, _) = proven_sale(&conn, proof)?;
        let shift = super::shifts::open_shift(&conn, terminal)?.map_or(0, |s| s.id);
        let (receipt, in_shift) = super::return_terms::offline_refunded(&conn, sale.id, shift)?;
        let (receipt_left, shift_left) = super::return_terms::return_limits(&conn)?.left(receipt, in_shift);
        Ok(OfflineSale {
            returnable: returns::left_to_return(&sale, &returned),
            sale,
            receipt_left,
            shift_left: if shift == 0 { Kopecks::ZERO } else { shift_left },
        })
    }

    /// The sales and returns of `terminal`'s open shift (or, with none open, its last
    /// one), newest first, at most [`SHIFT_DOCS_MAX`].
    pub fn shift_docs(&self, terminal: u16) -> Result<Vec<DocSummary>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT d.seq, d.receipt_no, d.kind, d.total_kopecks, r.at_ms, d.sale_seq, d.cancels FROM docs d
               JOIN records r ON r.seq = d.record_seq
             WHERE d.terminal = ?1 AND d.shift_id = (SELECT MAX(id) FROM shifts WHERE terminal = ?1)
             ORDER BY d.seq DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![terminal, SHIFT_DOCS_MAX as i64], |r| {
            Ok(DocSummary {
                seq: r.get::<_, i64>(0)? as u64,
                receipt_no: r.get(1)?,
                kind: r.get(2)?,
                total_kopecks: r.get(3)?,
                at_ms: r.get(4)?,
                sale_seq: r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
                cancels: r.get::<_, i64>(6)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn docs_count(&self) -> Result<(u64, u64), JournalError> {
        let conn = self.conn();
        let count = |kind: &str| -> Result<u64, JournalError> {
            Ok(conn.query_row("SELECT COUNT(*) FROM docs WHERE kind = ?1", [kind], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok((count("sale")?, count("return")?))
    }

    pub fn next_print_job(&self) -> Result<Option<PrintJob>, JournalError> {
        let mut conn = self.conn();
        let job: Option<(i64, Vec<u8>, bool, Option<u32>)> = query_row(
            &conn,
            "SELECT id, doc, copy, format FROM print_jobs WHERE id >= ?1 AND state = 'pending' ORDER BY id LIMIT 1",
            [conn.print_low],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
        let Some((id, doc_blob, copy, f)) = job else {
            // Everything is printed: the next job will be above the last one.
            let next: i64 = query_row(&conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM print_jobs", [], |r| r.get(0))?;
            conn.print_low = conn.print_low.max(next);
            return Ok(None);
        };
        // Every job from the old mark up to this one was done.
        conn.print_low = id;
        let print_doc = super::format::decode_print_doc(&doc_blob, f, id)?;
        let printable = match print_doc {
            PrintDoc::Report { report, closing } => Printable::Report { report, closing },
            PrintDoc::Order { order, handover } => {
                let (order, taken) = super::order_and_handover(&conn, order)?
                    .ok_or_else(|| JournalError::Corrupt(format!("print job {id}: no order {order}")))?;
                Printable::Order { order: Box::new(order), taken: if handover { taken } else { None } }
            }
            PrintDoc::Prepayment { record } => Printable::Prepayment(Box::new(
                prepaid(&conn, record)?
                    .ok_or_else(|| JournalError::Corrupt(format!("print job {id}: no prepayment {record}")))?,
            )),
            PrintDoc::Doc { seq } => match doc(&conn, seq)? {
                Some(Record::Sale { sale, .. }) => Printable::Sale(sale),
                Some(Record::Return { ret, .. }) => Printable::Return(ret),
                _ => return Err(JournalError::Corrupt(format!("print job {id}: no document {seq}"))),
            },
        };
        let extras = print_extras(&conn, &printable)?;
        Ok(Some(PrintJob { id, printable, copy, extras }))
    }

    pub fn print_job_done(&self, id: i64, now_ms: i64) -> Result<(), JournalError> {
        self.conn()
            .execute("UPDATE print_jobs SET state = 'done', printed_at_ms = ?2 WHERE id = ?1", params![id, now_ms])?;
        Ok(())
    }

    /// A job whose receipt came out cut short: it stays pending and is printed again
    /// whole, marked as a copy.
    pub fn print_job_cut_short(&self, id: i64) -> Result<(), JournalError> {
        self.conn().execute("UPDATE print_jobs SET copy = 1 WHERE id = ?1 AND state = 'pending'", [id])?;
        Ok(())
    }

    /// Jobs not printed yet (for the status bar).
    pub fn pending_print_jobs(&self) -> Result<u64, JournalError> {
        let conn = self.conn();
        let n: i64 = query_row(
            &conn,
            "SELECT COUNT(*) FROM print_jobs WHERE id >= ?1 AND state = 'pending'",
            [conn.print_low],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Queues a copy of a sale's or return's receipt; `false` if there is no such document.
    pub fn reprint(&self, seq: u64, now_ms: i64) -> Result<bool, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if doc(&tx, seq)?.is_none() {
            return Ok(false);
        }
        queue_print(&tx, &PrintDoc::Doc { seq }, true, now_ms)?;
        tx.commit()?;
        Ok(true)
    }

    /// Queues an X report for printing.
    pub fn print_x_report(&self, report: &ShiftReport, now_ms: i64) -> Result<(), JournalError> {
        queue_report(&self.conn(), report, false, now_ms)
    }

    /// Checks the hash chain and that the query tables agree with it.
    pub fn verify(&self) -> Result<chain::VerifyReport, JournalError> {
        chain::verify(&self.conn(), self.actor)
    }
}

pub(super) fn item(conn: &Connection, sku: &Sku) -> Result<Option<kassa_protocol::catalog::CatalogItem>, JournalError> {
    let sql = format!("SELECT {} FROM catalog WHERE sku = ?1", super::ITEM_COLUMNS);
    Ok(conn.query_row(&sql, [sku.as_str()], super::item_from_row).optional()?)
}

/// The cashier's name, the returned sale's receipt number and the customer's balance, as
/// the journal knows them when the receipt prints.
fn print_extras(conn: &Connection, printable: &Printable) -> Result<PrintExtras, JournalError> {
    let name = |login: &str| -> Result<Option<String>, JournalError> {
        Ok(query_row(conn, "SELECT name FROM users WHERE id = ?1", [login], |r| r.get(0)).optional()?)
    };
    Ok(match printable {
        Printable::Sale(sale) => PrintExtras {
            cashier_name: name(&sale.cashier)?,
            original_receipt: None,
            points_balance: match &sale.loyalty {
                Some(l) => Some(super::loyalty::account(conn, &l.customer)?.balance()),
                None => None,
            },
            receipt_code: None,
        },
        Printable::Return(ret) => PrintExtras {
            cashier_name: name(&ret.cashier)?,
            original_receipt: match ret.kind.sale() {
                Some(id) if id.store == ret.id.store => {
                    query_row(conn, "SELECT receipt_no FROM docs WHERE seq = ?1", [id.seq as i64], |r| r.get(0))
                        .optional()?
                }
                // Another store's sale: its number as the return named it.
                Some(_) => query_row(
                    conn,
                    "SELECT r.sale_receipt_no FROM return_refs r JOIN docs d ON d.seq = r.doc_seq WHERE d.receipt_no = ?1",
                    [&ret.receipt_no],
                    |r| r.get(0),
                )
                .optional()?,
                None => None,
            },
            points_balance: None,
            receipt_code: None,
        },
        Printable::Prepayment(p) => PrintExtras { cashier_name: name(&p.cashier)?, ..PrintExtras::default() },
        Printable::Report { .. } | Printable::Order { .. } => PrintExtras::default(),
    })
}

/// The record of a sale or return by its sequence.
/// The prepayment in chain record `record`, as its receipt shows it.
fn prepaid(conn: &Connection, record: u64) -> Result<Option<super::types::Prepaid>, JournalError> {
    let row: Option<(u16, String, i64)> =
        query_row(conn, "SELECT terminal, user_id, at_ms FROM records WHERE seq = ?1", [record as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((terminal, cashier, at_ms)) = row else { return Ok(None) };
    Ok(match chain::record(conn, record as i64)? {
        Record::Prepayment { order, tenders, change, .. } => {
            Some(super::types::Prepaid { record, order: *order, tenders, change, terminal, cashier, at_ms })
        }
        _ => None,
    })
}

fn doc(conn: &Connection, seq: u64) -> Result<Option<Record>, JournalError> {
    let record_seq: Option<i64> =
        query_row(conn, "SELECT record_seq FROM docs WHERE seq = ?1", [seq as i64], |r| r.get(0)).optional()?;
    record_seq.map(|r| chain::record(conn, r)).transpose()
}

/// Per line of sale `seq`: quantity and amount already returned.
fn returned_of(conn: &Connection, seq: u64) -> Result<Returned, JournalError> {
    let mut st = conn.prepare_cached(
        "SELECT l.sale_line, SUM(l.quantity), SUM(l.amount_kopecks) FROM doc_lines l JOIN docs d ON d.seq = l.seq
         WHERE d.kind = 'return' AND d.sale_seq = ?1 GROUP BY l.sale_line",
    )?;
    let mut out: Returned = Vec::new();
    for row in st.query_map([seq as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
        let (line, q, amount) = row?;
        let line = line as usize;
        if out.len() <= line {
            out.resize(line + 1, (0, Kopecks::ZERO));
        }
        out[line] = (q, Kopecks(amount));
    }
    Ok(out)
}

/// The sale, what was returned of it, and the refunds already given for it.
/// A return without receipt: each line at the catalog's price, refunded in cash.
fn lines_without_receipt(tx: &Connection, lines: &[(Sku, i64)]) -> Result<Vec<ReturnLine>, WriteError> {
    if lines.is_empty() || lines.len() > RETURN_LINES_MAX {
        return Err(returns::ReturnError::Empty.into());
    }
    lines
        .iter()
        .map(|(sku, quantity)| {
            let item = item(tx, sku)?.ok_or_else(|| WriteError::UnknownSku(sku.clone()))?;
            if !(1..=kassa_protocol::basket::LINE_QUANTITY_MAX).contains(quantity) {
                return Err(returns::ReturnError::Quantity.into());
            }
            let amount = pricing::line_amount(item.price, item.unit, *quantity).ok_or(WriteError::Overflow)?;
            Ok(ReturnLine {
                sale_line: None,
                sku: item.sku,
                name: item.name,
                unit: item.unit,
                quantity: *quantity,
                vat: item.vat,
                amount,
            })
        })
        .collect::<Result<Vec<_>, WriteError>>()
}

/// Another store's sale read from its receipt with HQ out of reach ([`Journal::sale_offline`]).
#[derive(Debug, Clone)]
pub struct OfflineSale {
    pub sale: Sale,
    /// Per line, what is left to return as far as this store can see.
    pub returnable: Vec<i64>,
    /// What HQ's limits leave to refund for this receipt, and in the shift.
    pub receipt_left: Kopecks,
    pub shift_left: Kopecks,
}

/// A return's kind, lines, refunds and points (none: another store's sale carries no
/// card here).
type ReturnPlan =
    (ReturnKind, Vec<ReturnLine>, Vec<Tender>, Option<(kassa_protocol::loyalty::ReturnLoyalty, Vec<LoyaltyEntry>)>);

/// Another store's sale as its signed receipt proves it (named from this store's
/// catalog), with what this store itself returned of it and refunded: offline, all it
/// can see. A format-1 receipt of a card's sale proves that a card was used, not the
/// points its lines earned: it needs HQ.
fn proven_sale(
    conn: &Connection,
    proof: &kassa_protocol::receipt_proof::ReceiptProof,
) -> Result<(Sale, Returned, Vec<Tender>), WriteError> {
    if proof.loyalty == Some(ProofLoyalty::CardUsed) {
        return Err(WriteError::ReturnElsewhereLoyalty);
    }
    let sale = proof.to_sale(|sku| item(conn, sku).ok().flatten().map(|i| (i.name, i.category)));
    let (returned, earlier) = own_returns_after(conn, &sale, 0, false, Vec::new(), Vec::new())?;
    Ok((sale, returned, earlier))
}

/// What a return of a sale starts from: what was returned of it and refunded before,
/// what its latest return left owed for the customer's points, and whether HQ is in
/// reach (it answered the till's lookup).
struct Before {
    returned: Returned,
    earlier: Vec<Tender>,
    owed: Kopecks,
    online: bool,
}

/// A return worked out before it is written.
struct PlannedReturn {
    kind: ReturnKind,
    lines: Vec<ReturnLine>,
    refunds: Vec<Tender>,
    /// What the return does to the customer's points, and the entries it writes.
    loyalty: Option<(kassa_protocol::loyalty::ReturnLoyalty, Vec<LoyaltyEntry>)>,
    /// The returned sale's receipt number, kept with the return.
    sale_receipt: Option<String>,
}

fn sale_for_return(conn: &Connection, seq: u64) -> Result<(Sale, Returned, Vec<Tender>), WriteError> {
    let Some(Record::Sale { sale, .. }) = doc(conn, seq)? else {
        return Err(WriteError::NoSuchSale(seq.to_string()));
    };
    let returned = returned_of(conn, seq)?;
    let mut st = conn.prepare_cached(
        "SELECT t.kind, t.amount_kopecks FROM doc_tenders t JOIN docs d ON d.seq = t.seq WHERE d.kind = 'return' AND d.sale_seq = ?1",
    )?;
    let earlier = st
        .query_map([seq as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .map(|row| {
            let (kind, amount) = row?;
            let kind = sale::TenderKind::from_code(&kind)
                .ok_or_else(|| JournalError::Corrupt(format!("refund of sale {seq}: tender kind `{kind}`")))?;
            Ok(Tender { kind, amount: Kopecks(amount) })
        })
        .collect::<Result<Vec<_>, JournalError>>()?;
    Ok((sale, returned, earlier))
}

/// What HQ says was returned of `sale`, plus this store's returns of it HQ has not yet
/// acknowledged (their outbox entries are beyond HQ's acknowledgement): every return
/// counted once, or — an entry applied but its acknowledgement not yet back — counted
/// twice, which only ever refuses too much, never allows it.
/// Adds this store's returns of `sale` whose outbox entries are after `acked` (only
/// those made without a claim at HQ, when `unclaimed_only`: HQ's figures count the
/// others) to `returned` and `refunds`.
fn own_returns_after(
    conn: &Connection,
    sale: &Sale,
    acked: u64,
    unclaimed_only: bool,
    mut returned: Returned,
    mut refunds: Vec<Tender>,
) -> Result<(Returned, Vec<Tender>), WriteError> {
    let mut st = conn.prepare_cached(
        "SELECT doc_seq FROM return_refs WHERE sale_store = ?1 AND sale_seq = ?2 AND outbox_seq > ?3
           AND (?4 = 0 OR claimed = 0) ORDER BY doc_seq",
    )?;
    let docs: Vec<i64> = st
        .query_map(params![sale.id.store.0, sale.id.seq as i64, acked as i64, unclaimed_only], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in docs {
        if let Some(Record::Return { ret, .. }) = doc(conn, seq as u64)? {
            returns::add_returned(sale, &mut returned, &mut refunds, &ret);
        }
    }
    returned.resize(sale.lines.len().max(returned.len()), (0, Kopecks::ZERO));
    Ok((returned, refunds))
}

/// What the latest return of this store's sale `seq` left owed for the customer's
/// points (zero if none).
fn owed_here(conn: &Connection, seq: u64) -> Result<Kopecks, JournalError> {
    let record_seq: Option<i64> = conn
        .query_row(
            "SELECT record_seq FROM docs WHERE kind = 'return' AND sale_seq = ?1 ORDER BY seq DESC LIMIT 1",
            [seq as i64],
            |r| r.get(0),
        )
        .optional()?;
    Ok(owed_by(record_seq.map(|r| chain::record(conn, r)).transpose()?))
}

/// What this store's latest return of `sale` (of any store) that HQ has not
/// acknowledged (outbox entry after `acked`) left owed for the customer's points;
/// `None` if there is none.
fn last_owed(conn: &Connection, sale: &Sale, acked: u64) -> Result<Option<Kopecks>, JournalError> {
    let seq: Option<i64> = conn
        .prepare_cached(
            "SELECT doc_seq FROM return_refs WHERE sale_store = ?1 AND sale_seq = ?2 AND outbox_seq > ?3
             ORDER BY doc_seq DESC LIMIT 1",
        )?
        .query_row(params![sale.id.store.0, sale.id.seq as i64, acked as i64], |r| r.get(0))
        .optional()?;
    seq.map(|seq| Ok(owed_by(doc(conn, seq as u64)?))).transpose()
}

fn owed_by(record: Option<Record>) -> Kopecks {
    match record {
        Some(Record::Return { ret, .. }) => ret.loyalty.map_or(Kopecks::ZERO, |l| l.owed),
        _ => Kopecks::ZERO,
    }
}

/// What a sale or return reads before it writes, in one statement: five statements
/// cost more than the five index lookups they make.
struct Heads {
    /// The terminal's open shift.
    shift: Option<i64>,
    /// The last sale's or return's sequence (0: none yet).
    doc_seq: u64,
    /// The terminal's last receipt number (0: none yet).
    receipt_number: i64,
    /// The last outbox entry's sequence (0: none yet).
    outbox: u64,
    chain: chain::Head,
}

fn heads(conn: &Connection, terminal: u16) -> Result<Heads, JournalError> {
    Ok(query_row(
        conn,
        "SELECT (SELECT id FROM shifts WHERE terminal = ?1 AND closed_record IS NULL),
                (SELECT COALESCE(MAX(seq), 0) FROM docs),
                (SELECT COALESCE(MAX(receipt_number), 0) FROM docs WHERE terminal = ?1),
                (SELECT COALESCE(MAX(seq), 0) FROM outbox),
                (SELECT seq FROM records ORDER BY seq DESC LIMIT 1),
                (SELECT hash FROM records ORDER BY seq DESC LIMIT 1)",
        [terminal],
        |r| {
            Ok(Heads {
                shift: r.get(0)?,
                doc_seq: r.get::<_, i64>(1)? as u64,
                receipt_number: r.get(2)?,
                outbox: r.get::<_, i64>(3)? as u64,
                chain: chain::Head::from_columns(r.get(4)?, r.get(5)?),
            })
        },
    )?)
}

fn voided_basket_key(terminal: u16) -> String {
    format!("voided_basket:{terminal}")
}

/// Cash in a list of tenders or refunds, refused beyond `i64` (it cannot be that much).
pub(super) fn cash_total(tenders: &[Tender]) -> Result<Kopecks, WriteError> {
    tenders
        .iter()
        .filter(|t| t.kind == sale::TenderKind::Cash)
        .try_fold(Kopecks::ZERO, |acc, t| acc.checked_add(t.amount))
        .ok_or(WriteError::Payment(sale::PaymentError::Overflow))
}

/// Where a sale or return goes: its sequence, record, receipt and shift.
struct DocRow<'a> {
    seq: u64,
    record_seq: i64,
    receipt_no: &'a str,
    terminal: u16,
    receipt_number: i64,
    shift: i64,
}

fn insert_doc(
    tx: &Connection,
    d: &DocRow<'_>,
    kind: &str,
    total: Kopecks,
    sale_seq: Option<u64>,
    basket_id: Option<u64>,
) -> Result<(), JournalError> {
    exec(tx,
        "INSERT INTO docs (seq, record_seq, kind, receipt_no, terminal, receipt_number, shift_id, total_kopecks, sale_seq, basket_id)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        params![d.seq as i64, d.record_seq, kind, d.receipt_no, d.terminal, d.receipt_number, d.shift, total.0,
            sale_seq.map(|s| s as i64), basket_id.map(|b| b as i64)],
    )?;
    Ok(())
}

/// A document's lines: (line of the sale returned, SKU, quantity, amount, VAT rate).
type DocLine<'a> = (Option<u32>, &'a Sku, i64, Kopecks, kassa_protocol::catalog::VatRate);

/// The lines of document `seq`, several rows per statement.
fn insert_lines(tx: &Connection, seq: u64, lines: &[DocLine<'_>]) -> Result<(), JournalError> {
    for (c, chunk) in lines.chunks(ROWS_PER_INSERT).enumerate() {
        let sql = multi_row_sql(
            "INSERT INTO doc_lines (seq, line_no, sale_line, sku, quantity, amount_kopecks, vat)",
            7,
            chunk.len(),
            "",
        );
        let mut st = tx.prepare_cached(&sql)?;
        for (i, (sale_line, sku, quantity, amount, vat)) in chunk.iter().enumerate() {
            let line_no = (c * ROWS_PER_INSERT + i) as i64;
            st.raw_bind_parameter(i * 7 + 1, seq as i64)?;
            st.raw_bind_parameter(i * 7 + 2, line_no)?;
            st.raw_bind_parameter(i * 7 + 3, sale_line)?;
            st.raw_bind_parameter(i * 7 + 4, sku.as_str())?;
            st.raw_bind_parameter(i * 7 + 5, quantity)?;
            st.raw_bind_parameter(i * 7 + 6, amount.0)?;
            st.raw_bind_parameter(i * 7 + 7, vat.code())?;
        }
        st.raw_execute()?;
    }
    Ok(())
}

fn insert_tenders(tx: &Connection, seq: u64, tenders: &[Tender]) -> Result<(), JournalError> {
    for (i, t) in tenders.iter().enumerate() {
        exec(
            tx,
            "INSERT INTO doc_tenders (seq, idx, kind, amount_kopecks) VALUES (?1,?2,?3,?4)",
            params![seq as i64, i as i64, t.kind.code(), t.amount.0],
        )?;
    }
    Ok(())
}
