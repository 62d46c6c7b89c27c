//! Baskets parked to serve the next customer, and recalled: kept in the basket file, so
//! a restart keeps them. A recalled basket takes the open (empty) basket's id, so that a
//! basket's id is still above every basket that ended on the terminal (the rule
//! `restore` relies on).

use kassa_protocol::sale::PaymentError;

use super::basket::{remember, remembered, OpKey};
use super::{now_ms, Till, TillError, TillEvent};
use crate::journal::{check_key, ParkedBasket, WriteError};

impl Till {
    /// Parks the open basket (lines, coupons, discount and customer) and starts a new one.
    pub async fn park(&self, key: &str) -> Result<TillEvent, TillError> {
        let op = OpKey::new(key, "park", &());
        check_key(op.key)?;
        let mut open = self.basket.lock().await;
        if let Some(ev) = remembered(&open, op)? {
            return Ok(ev);
        }
        if open.basket.is_empty() {
            return Err(WriteError::Payment(PaymentError::EmptyBasket).into());
        }
        let (terminal, basket) = (self.terminal, open.basket.clone());
        let customer = open.customer.as_ref().map(|c| c.card.as_str().to_owned());
        let store = self.baskets.clone();
        let slot = crate::blocking::run(move || store.park(terminal, &basket, customer.as_deref(), now_ms()))
            .await?
            .ok_or(TillError::TooManyParked)?;
        tracing::info!(terminal, slot, basket = open.basket.id, lines = open.basket.lines.len(), "basket parked");
        open.next();
        let ev = TillEvent::Basket { basket: open.basket.clone(), totals: None, customer: None };
        remember(&mut open, op, &ev);
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    /// The baskets parked on this terminal, oldest first.
    pub async fn parked(&self) -> Result<Vec<ParkedBasket>, TillError> {
        let (store, terminal) = (self.baskets.clone(), self.terminal);
        Ok(crate::blocking::run(move || store.parked(terminal)).await?)
    }

    /// Puts parked basket `slot` back on the counter, which must be empty.
    pub async fn recall(&self, slot: u32, key: &str) -> Result<TillEvent, TillError> {
        let op = OpKey::new(key, "recall", &slot);
        check_key(op.key)?;
        let mut open = self.basket.lock().await;
        if let Some(ev) = remembered(&open, op)? {
            return Ok(ev);
        }
        if !open.basket.is_empty() {
            return Err(TillError::BasketNotEmpty);
        }
        let (store, terminal) = (self.baskets.clone(), self.terminal);
        let parked = crate::blocking::run(move || store.unpark(terminal, slot)).await?;
        let parked = parked.ok_or(TillError::NoSuchParked(slot))?;
        let mut basket = parked.basket;
        basket.id = open.basket.id;
        let (customer, used) = match parked.customer {
            Some(card) => {
                let found = self.journal(move |j| j.find_customer(&card)).await?;
                let used = match &found {
                    Some(c) => {
                        let card = c.card.clone();
                        self.journal(move |j| j.promotions_used(&card)).await?
                    }
                    None => Default::default(),
                };
                (found, used)
            }
            None => (None, Default::default()),
        };
        self.price(&mut basket, customer.as_ref(), &used);
        tracing::info!(terminal, slot, basket = basket.id, "parked basket recalled");
        open.basket = basket;
        open.customer = customer;
        open.used = used;
        let ev = self.basket_ev(open.basket.clone(), open.customer.as_ref()).await;
        remember(&mut open, op, &ev);
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }
}
