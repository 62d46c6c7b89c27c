//! Customers and their points at the store: the bounded counter's running totals in
//! SQL, max-merged like stock counters.

use std::collections::HashMap;

use kassa_protocol::loyalty::{Customer, CustomerId, EntryKind, LoyaltyAccount, LoyaltyEntry, LoyaltyRules};
use kassa_protocol::wire::Change;
use kassa_protocol::{ActorId, StoreId};
use rusqlite::{params, Connection, OptionalExtension};

use super::{meta, set_meta, Journal, JournalError, WriteError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS customers (
    card TEXT PRIMARY KEY, phone TEXT NOT NULL, name TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS customers_by_phone ON customers (phone);
CREATE TABLE IF NOT EXISTS loyalty_entries (
    customer TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'transfer')),
    a_store INTEGER NOT NULL, a_epoch INTEGER NOT NULL, b_store INTEGER NOT NULL, b_epoch INTEGER NOT NULL,
    total INTEGER NOT NULL CHECK (total >= 0),
    PRIMARY KEY (customer, kind, a_store, a_epoch, b_store, b_epoch)
) STRICT;
";

/// Promotions a customer has had, kept per card so that a single-use coupon is honoured
/// once per customer: a grow-only set (an `INSERT OR IGNORE` union), from this store's
/// sales and from what HQ says of the others'. Every promotion on a sale with a card is
/// kept; the engine consults the set only for single-use coupons.
pub(super) fn record_promotions(conn: &Connection, card: &CustomerId, promotions: &[u32]) -> Result<(), JournalError> {
    let mut st = conn.prepare_cached("INSERT OR IGNORE INTO customer_promotions (card, promotion) VALUES (?1, ?2)")?;
    for p in promotions {
        st.execute(params![card.as_str(), p])?;
    }
    Ok(())
}

impl Journal {
    /// The promotions `card` has had here or (as HQ told us) anywhere.
    pub fn promotions_used(&self, card: &CustomerId) -> Result<std::collections::BTreeSet<u32>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT promotion FROM customer_promotions WHERE card = ?1")?;
        let rows = st.query_map([card.as_str()], |r| r.get::<_, u32>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds what HQ says `card` has had elsewhere (a union: nothing is ever removed).
    pub fn merge_promotions_used(&self, card: &CustomerId, promotions: &[u32]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        record_promotions(&tx, card, promotions)?;
        tx.commit()?;
        Ok(())
    }
}

/// The bounded counter's merge, in SQL: per running total, the larger wins.
pub(super) fn merge_entry(conn: &Connection, e: &LoyaltyEntry) -> Result<(), JournalError> {
    e.check().map_err(|err| JournalError::Corrupt(format!("loyalty entry: {err}")))?;
    let (kind, a, b) = e.kind.to_columns();
    conn.execute(
        "INSERT INTO loyalty_entries (customer, kind, a_store, a_epoch, b_store, b_epoch, total) VALUES (?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT DO UPDATE SET total = MAX(total, excluded.total)",
        params![e.customer.as_str(), kind, a.store.0, a.epoch, b.store.0, b.epoch, e.total],
    )?;
    Ok(())
}

pub(super) fn account(conn: &Connection, customer: &CustomerId) -> Result<LoyaltyAccount, JournalError> {
    let mut st = conn.prepare_cached(
        "SELECT kind, a_store, a_epoch, b_store, b_epoch, total FROM loyalty_entries WHERE customer = ?1",
    )?;
    let mut acc = LoyaltyAccount::new(customer.clone());
    let rows = st.query_map([customer.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?))
    })?;
    for row in rows {
        let (kind, a_store, a_epoch, b_store, b_epoch, total) = row?;
        let a = ActorId { store: StoreId(a_store), epoch: a_epoch };
        let b = ActorId { store: StoreId(b_store), epoch: b_epoch };
        let Some(kind) = EntryKind::from_columns(&kind, a, b) else {
            return Err(JournalError::Corrupt(format!("loyalty entry kind {kind}")));
        };
        acc.merge_entry(&LoyaltyEntry { customer: customer.clone(), kind, total })
            .map_err(|e| JournalError::Corrupt(format!("loyalty entry of {customer}: {e}")))?;
    }
    Ok(acc)
}

fn customer_row(conn: &Connection, card: &str) -> Result<Option<Customer>, JournalError> {
    let row: Option<(String, Option<String>)> = conn
        .query_row("SELECT phone, name FROM customers WHERE card = ?1", [card], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(phone, name)| {
        let card = CustomerId::parse(card).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        Customer::new(card, &phone, name.as_deref()).map_err(|e| JournalError::Corrupt(e.to_string()))
    })
    .transpose()
}

fn save_customer(conn: &Connection, c: &Customer) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO customers (card, phone, name) VALUES (?1, ?2, ?3)
         ON CONFLICT DO UPDATE SET phone = excluded.phone, name = excluded.name",
        params![c.card.as_str(), c.phone.digits(), c.name],
    )?;
    Ok(())
}

impl Journal {
    /// Issues a new card at the till: a number no other store can issue, recorded here
    /// and sent to HQ with the outbox.
    pub fn issue_customer(&self, phone: &str, name: Option<&str>) -> Result<Customer, WriteError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let probe = Customer::new(CustomerId::issued(self.store, 1)?, phone, name)?;
        let taken: Option<String> = tx
            .query_row("SELECT card FROM customers WHERE phone = ?1", [probe.phone.digits()], |r| r.get(0))
            .optional()?;
        if let Some(card) = taken {
            return Err(WriteError::PhoneTaken { card });
        }
        let seq = meta(&tx, "customer_seq")? + 1;
        let card = CustomerId::issued(self.store, seq)?;
        let customer = Customer { card, ..probe };
        save_customer(&tx, &customer)?;
        set_meta(&tx, "customer_seq", seq)?;
        super::outbox::push_outbox(&tx, Change::Loyalty { customer: Some(customer.clone()), entries: Vec::new() })?;
        tx.commit()?;
        Ok(customer)
    }

    /// A customer by card number or phone number, as this store knows them.
    pub fn find_customer(&self, code: &str) -> Result<Option<Customer>, JournalError> {
        let conn = self.conn();
        if let Ok(card) = CustomerId::parse(code.trim()) {
            if let Some(c) = customer_row(&conn, card.as_str())? {
                return Ok(Some(c));
            }
        }
        let Ok(phone) = kassa_protocol::loyalty::Phone::parse(code) else { return Ok(None) };
        let card: Option<String> =
            conn.query_row("SELECT card FROM customers WHERE phone = ?1", [phone.digits()], |r| r.get(0)).optional()?;
        card.map(|c| customer_row(&conn, &c)).transpose().map(Option::flatten)
    }

    /// HQ's loyalty rules, kept if newer than ours.
    pub fn set_loyalty_rules(&self, version: u64, rules: &LoyaltyRules) -> Result<bool, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if meta(&tx, "rules_version")? >= version {
            return Ok(false);
        }
        // Stored as JSON of the rules' format 1 (`kassa_protocol::format::v1`).
        let json = serde_json::to_string(&kassa_protocol::format::v1::LoyaltyRules::from(rules))
            .map_err(|e| JournalError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES ('loyalty_rules', ?1) ON CONFLICT DO UPDATE SET value = excluded.value",
            [json],
        )?;
        set_meta(&tx, "rules_version", version)?;
        tx.commit()?;
        Ok(true)
    }

    /// The loyalty rules HQ published, or the defaults until it has.
    pub fn loyalty_rules(&self) -> Result<LoyaltyRules, JournalError> {
        let json: Option<String> = self
            .conn()
            .query_row("SELECT value FROM settings WHERE key = 'loyalty_rules'", [], |r| r.get(0))
            .optional()?;
        json.map_or(Ok(LoyaltyRules::default()), |j| {
            let stored: kassa_protocol::format::v1::LoyaltyRules =
                serde_json::from_str(&j).map_err(|e| JournalError::Corrupt(format!("loyalty rules: {e}")))?;
            stored.try_into().map_err(|e| JournalError::Corrupt(format!("loyalty rules: {e}")))
        })
    }

    /// Customers and entries from HQ.
    pub fn merge_loyalty(&self, customers: &[Customer], entries: &[LoyaltyEntry]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in customers {
            save_customer(&tx, c)?;
        }
        for e in entries {
            // Our own totals are ours alone: what HQ echoes can never be ahead of them.
            if e.writer() != self.actor {
                merge_entry(&tx, e)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn loyalty_account(&self, customer: &CustomerId) -> Result<LoyaltyAccount, JournalError> {
        account(&self.conn(), customer)
    }

    /// What of these lines points may pay for and earn on (excluded categories aside).
    pub fn eligible_total(
        &self,
        rules: &kassa_protocol::loyalty::LoyaltyRules,
        lines: &[kassa_protocol::basket::BasketLine],
    ) -> Result<kassa_protocol::Kopecks, JournalError> {
        let skus: Vec<&kassa_protocol::Sku> = lines.iter().map(|l| &l.sku).collect();
        let categories = Journal::categories(&self.conn(), &skus)?;
        Ok(kassa_protocol::loyalty::eligible_total(rules, lines, |sku| categories.get(&sku.0).map(String::as_str)))
    }

    /// Categories of the catalog's SKUs in `skus` (loyalty rules exclude some).
    pub(super) fn categories(
        conn: &Connection,
        skus: &[&kassa_protocol::Sku],
    ) -> Result<HashMap<String, String>, JournalError> {
        let mut out = HashMap::new();
        for sku in skus {
            let cat: Option<String> = conn
                .query_row("SELECT category FROM catalog WHERE sku = ?1", [sku.as_str()], |r| r.get(0))
                .optional()?;
            if let Some(c) = cat {
                out.insert(sku.0.clone(), c);
            }
        }
        Ok(out)
    }
}
