//! The open basket: every change applied all or nothing and remembered under its
//! idempotency key, the basket priced again with the promotions in force after each,
//! voids, and the basket put back after a restart.

use std::collections::VecDeque;

use kassa_protocol::basket::{Basket, BasketDiscount, BasketError};
use kassa_protocol::loyalty::Customer;
use kassa_protocol::promotions::{Channel, Context};
use kassa_protocol::Kopecks;
use serde::Serialize;

use super::{now_ms, Till, TillError, TillEvent};
use crate::journal::{check_key, JournalError, RequestDigest, User, WriteError};

/// Basket operations remembered by idempotency key (the basket is in memory, so are
/// its keys); a retry older than this many operations is applied again.
pub const BASKET_KEYS_MAX: usize = 256;

#[derive(Debug, Default)]
pub(super) struct OpenBasket {
    pub(super) basket: Basket,
    pub(super) customer: Option<Customer>,
    /// The promotions the customer has had (a single-use coupon is honoured once).
    pub(super) used: std::collections::BTreeSet<u32>,
    /// A quantity typed before a scan (`3 *`): the next item sold by the piece is added
    /// that many times.
    pub(super) multiplier: Option<i64>,
    /// Recent basket operations by idempotency key, with their request's digest and the
    /// event they answered.
    pub(super) keys: VecDeque<(String, RequestDigest, TillEvent)>,
}

impl OpenBasket {
    /// Ends the basket (paid or voided): the next one has the next id.
    pub(super) fn next(&mut self) {
        self.basket = Basket::new(self.basket.id + 1);
        self.customer = None;
        self.used.clear();
    }
}

/// A basket operation's idempotency key and what it asked for.
#[derive(Debug, Clone, Copy)]
pub struct OpKey<'a> {
    pub key: &'a str,
    pub digest: RequestDigest,
}

impl<'a> OpKey<'a> {
    pub fn new<T: Serialize + ?Sized>(key: &'a str, op: &str, request: &T) -> Self {
        OpKey { key, digest: RequestDigest::of(op, request) }
    }
}

impl Till {
    /// Puts back the basket left open when the agent stopped (or crashed), unless the
    /// journal says it ended (paid or voided) before the stop: a paid basket's lines must
    /// never come back as the next customer's. Returns whether it was put back.
    pub async fn restore(&self, saved: Option<(Basket, Option<String>)>) -> Result<bool, JournalError> {
        let terminal = self.terminal;
        let ended = self.journal(move |j| j.basket_ended(terminal)).await?;
        let mut open = self.basket.lock().await;
        match saved {
            Some((basket, customer)) if basket.id > ended => {
                let customer = match customer {
                    Some(card) => self.journal(move |j| j.find_customer(&card)).await.ok().flatten(),
                    None => None,
                };
                open.used = match &customer {
                    Some(c) => {
                        let card = c.card.clone();
                        self.journal(move |j| j.promotions_used(&card)).await?
                    }
                    None => Default::default(),
                };
                open.basket = basket;
                open.customer = customer;
                Ok(true)
            }
            saved => {
                let newest_saved = saved.map_or(0, |(b, _)| b.id);
                open.basket = Basket::new(ended.max(newest_saved) + 1);
                open.customer = None;
                open.used.clear();
                Ok(false)
            }
        }
    }

    /// Prices `basket` under the promotions in force, at this store, now, for
    /// `customer` (who has had the promotions `used`) — the engine HQ prices the online
    /// shop's baskets with.
    pub(super) fn price(
        &self,
        basket: &mut Basket,
        customer: Option<&Customer>,
        used: &std::collections::BTreeSet<u32>,
    ) {
        let active = self.promotions.borrow().clone();
        if active.set.is_empty() && basket.promotions_saved() == Kopecks::ZERO {
            return;
        }
        let coupons = basket.coupons.clone();
        let used_coupons = if customer.is_some() { used.clone() } else { Default::default() };
        let cx = Context {
            store: self.journal.actor().store,
            channel: Channel::Store,
            at: self.local_now(),
            customer: customer.map(|c| &c.card),
            coupons: &coupons,
            used_coupons: &used_coupons,
        };
        basket.apply_promotions(&active.set, &cx);
    }

    /// A coupon code the customer presented; the basket is priced again with it.
    pub async fn add_coupon(&self, code: String, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "coupon", &code);
        self.modify(Some(key), move |b| b.add_coupon(&code)).await
    }

    /// The promotions version the till prices with.
    pub fn promotions_version(&self) -> u64 {
        self.promotions.borrow().version
    }

    pub async fn basket_event(&self) -> TillEvent {
        let (basket, customer) = {
            let b = self.basket.lock().await;
            (b.basket.clone(), b.customer.clone())
        };
        self.basket_ev(basket, customer.as_ref()).await
    }

    /// A basket event, with the customer's points offer for this basket.
    pub(super) async fn basket_ev(&self, basket: Basket, customer: Option<&Customer>) -> TillEvent {
        let view = match customer {
            Some(c) => match self.customer_view(&basket, c).await {
                Ok(view) => Some(view),
                Err(e) => {
                    tracing::error!(card = %c.card, error = %e, "cannot read the customer's points");
                    None
                }
            },
            None => None,
        };
        TillEvent::Basket { totals: basket.totals(), basket, customer: view }
    }

    pub async fn set_quantity(&self, line: usize, quantity: i64, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "set_quantity", &(line, quantity));
        self.modify(Some(key), move |b| b.set_quantity(line, quantity)).await
    }

    /// Removes a line; logged with what it held (a removal after a scan is what a
    /// manager reviews).
    pub async fn remove_line(&self, line: usize, key: &str) -> Result<TillEvent, TillError> {
        let terminal = self.terminal;
        self.modify(Some(OpKey::new(key, "remove_line", &line)), move |b| {
            if let Some(l) = b.lines.get(line) {
                tracing::info!(terminal, basket = b.id, sku = %l.sku.0, quantity = l.quantity, amount = %l.amount, "line removed");
            }
            b.remove(line).map(|_| ())
        })
        .await
    }

    /// A manager's price override on one line.
    pub async fn override_price(
        &self,
        line: usize,
        price: Kopecks,
        manager: &User,
        key: &str,
    ) -> Result<TillEvent, TillError> {
        tracing::info!(line, %price, manager = %manager.id, "price override");
        let key = OpKey::new(key, "override_price", &(line, price, &manager.id));
        self.modify(Some(key), move |b| b.override_price(line, price)).await
    }

    pub async fn set_discount(
        &self,
        discount: Option<BasketDiscount>,
        manager: &User,
        key: &str,
    ) -> Result<TillEvent, TillError> {
        tracing::info!(?discount, manager = %manager.id, "basket discount");
        let key = OpKey::new(key, "discount", &(discount, &manager.id));
        self.modify(Some(key), move |b| b.set_discount(discount)).await
    }

    /// Sets the quantity of the next item scanned or typed (sold by the piece); `None`
    /// clears it.
    pub async fn set_multiplier(&self, quantity: Option<i64>) -> Result<Option<i64>, TillError> {
        if let Some(q) = quantity {
            if !(1..=kassa_protocol::basket::LINE_QUANTITY_MAX).contains(&q) {
                return Err(TillError::Basket(kassa_protocol::basket::BasketError::Quantity));
            }
        }
        self.basket.lock().await.multiplier = quantity;
        Ok(quantity)
    }

    /// The multiplier for an item being added, taken (it applies once): pieces only; a
    /// weighed item's quantity is its weight.
    pub(super) async fn take_multiplier(&self, unit: kassa_protocol::catalog::Unit, quantity: i64) -> i64 {
        let mut open = self.basket.lock().await;
        match (unit, open.multiplier.take()) {
            (kassa_protocol::catalog::Unit::Piece, Some(m)) => m,
            _ => quantity,
        }
    }

    /// Abandons the open basket; the void is recorded in the journal.
    pub async fn void(&self, user: &User, key: &str) -> Result<TillEvent, TillError> {
        self.void_approved(user, None, key).await
    }

    /// Abandons the open basket; one worth more than the store's limit needs a manager
    /// (the user, or `manager`).
    pub async fn void_approved(&self, user: &User, manager: Option<&User>, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "void", &());
        check_key(key.key)?;
        let mut open = self.basket.lock().await;
        if let Some(ev) = remembered(&open, key)? {
            return Ok(ev);
        }
        let total = open.basket.totals().map_or(0, |t| t.total.0);
        let approved = user.role == crate::journal::Role::Manager || manager.is_some();
        if total > self.limits.void_unapproved_max_kopecks && !approved {
            return Err(TillError::NeedsManager);
        }
        if let Some(m) = manager {
            tracing::info!(manager = %m.id, total, "void approved");
        }
        if !open.basket.is_empty() {
            let (terminal, basket, user) = (self.terminal, open.basket.clone(), user.id.clone());
            self.journal(move |j| j.void_basket(terminal, &user, &basket, now_ms())).await?;
            open.next();
        }
        let ev = TillEvent::Basket { basket: open.basket.clone(), totals: None, customer: None };
        remember(&mut open, key, &ev);
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    /// The answer to a basket operation seen before under `key`, if any.
    pub(super) async fn remembered(&self, key: OpKey<'_>) -> Result<Option<TillEvent>, TillError> {
        Ok(remembered(&*self.basket.lock().await, key)?)
    }

    /// Applies `f` to the open basket (all or nothing) and publishes the new basket.
    pub(super) async fn modify(
        &self,
        key: Option<OpKey<'_>>,
        f: impl FnOnce(&mut Basket) -> Result<(), BasketError>,
    ) -> Result<TillEvent, TillError> {
        if let Some(k) = key {
            check_key(k.key)?;
        }
        let mut open = self.basket.lock().await;
        if let Some(k) = key {
            if let Some(ev) = remembered(&open, k)? {
                return Ok(ev);
            }
        }
        let mut next = open.basket.clone();
        f(&mut next)?;
        self.price(&mut next, open.customer.as_ref(), &open.used);
        let ev = self.basket_ev(next.clone(), open.customer.as_ref()).await;
        open.basket = next;
        if let Some(k) = key {
            remember(&mut open, k, &ev);
        }
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }
}

/// The answer given before under `key`; the same key with another request is refused.
pub(super) fn remembered(open: &OpenBasket, key: OpKey<'_>) -> Result<Option<TillEvent>, WriteError> {
    match open.keys.iter().find(|(k, _, _)| k == key.key) {
        Some((_, digest, _)) if *digest != key.digest => Err(WriteError::KeyReuse),
        Some((_, _, ev)) => Ok(Some(ev.clone())),
        None => Ok(None),
    }
}

pub(super) fn remember(open: &mut OpenBasket, key: OpKey<'_>, ev: &TillEvent) {
    if open.keys.len() >= BASKET_KEYS_MAX {
        open.keys.pop_front();
    }
    open.keys.push_back((key.key.to_owned(), key.digest, ev.clone()));
}
