//! The loyalty customer on the basket: found by card or phone (asked of HQ when
//! unknown here), issued at the till, and their points offer for the basket; and the
//! spending rights asked of HQ over the sync connection.

use kassa_protocol::basket::Basket;
use kassa_protocol::history::{CustomerHistory, HistoryRequest};
use kassa_protocol::loyalty::{self, Customer, CustomerId, LoyaltyRules};

use super::basket::OpenBasket;
use super::{CustomerView, Till, TillError, TillEvent};
use crate::journal::JournalError;

impl Till {
    pub(super) async fn customer_view(&self, basket: &Basket, c: &Customer) -> Result<CustomerView, TillError> {
        let rules = self.loyalty_rules().await?;
        let point_value_kopecks = rules.point_value_kopecks();
        let (card, lines) = (c.card.clone(), basket.lines.clone());
        let actor = self.journal.actor();
        let online = self.online();
        let offer = self
            .journal(move |j| {
                let account = j.loyalty_account(&card)?;
                let eligible = j.eligible_total(&rules, &lines)?;
                Ok::<_, JournalError>(loyalty::offline_offer(&rules, &account, actor, eligible))
            })
            .await?;
        Ok(CustomerView {
            card: c.card.as_str().to_owned(),
            name: c.name.clone(),
            balance: offer.balance,
            allowed: offer.allowed,
            spendable_now: offer.spendable_now,
            point_value_kopecks,
            message: offer.message(!online),
            limit: offer.limit(!online),
            max_share_percent: offer.max_share_percent,
        })
    }

    pub(super) async fn loyalty_rules(&self) -> Result<LoyaltyRules, JournalError> {
        self.journal(|j| j.loyalty_rules()).await
    }

    /// Asks HQ for rights to `points` of the customer's points (0: just tell us about the
    /// customer); `false` when offline or HQ did not answer in time.
    pub async fn ask_rights(&self, customer: &CustomerId, points: i64) -> bool {
        let request_id = self.rights_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let request = loyalty::RightsRequest { request_id, customer: customer.clone(), points };
        if self.rights.try_send(crate::sync_client::HqRequest::Rights(request, tx)).is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(loyalty::RIGHTS_REQUEST_TIMEOUT, rx).await,
            Ok(Ok(loyalty::RightsAnswer::Grant(_)))
        )
    }

    /// A customer's history as the cashier sees it: online, HQ's (every store and
    /// channel) with this store's own records HQ may not have yet; with HQ out of reach
    /// (or silent), this store's own — the flag says which (`true`: HQ's).
    pub async fn customer_history(&self, card: &CustomerId) -> Result<(CustomerHistory, bool), TillError> {
        let c = card.clone();
        let own = self.journal(move |j| j.customer_history(&c)).await?;
        Ok(match self.history_from_hq(card).await {
            Some(hq) => (hq.unwrap_or_default().with(own), true),
            None => (own, false),
        })
    }

    /// HQ's answer to a history lookup (`Some(None)`: HQ does not know the card);
    /// `None` when HQ is not reachable or does not answer in time.
    async fn history_from_hq(&self, card: &CustomerId) -> Option<Option<CustomerHistory>> {
        if !self.online() {
            return None;
        }
        let request_id = self.rights_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = HistoryRequest { request_id, customer: card.clone() };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rights.try_send(crate::sync_client::HqRequest::History(request, tx)).ok()?;
        tokio::time::timeout(super::payments::SALE_LOOKUP_TIMEOUT, rx).await.ok()?.ok()
    }

    /// Puts a customer on the basket by card or phone number; an unknown card is asked
    /// of HQ when online. A typo gives "no such customer", never a new one.
    pub async fn set_customer(&self, code: &str) -> Result<TillEvent, TillError> {
        let customer = self.find_customer(code).await?;
        self.attach(customer).await
    }

    /// The customer a card or phone number names, with their history
    /// ([`Till::customer_history`]; `true`: HQ's). HQ is asked about the card only if
    /// this store does not know it: the history's own request asks HQ for the rest.
    pub async fn find_customer_history(&self, code: &str) -> Result<(Customer, CustomerHistory, bool), TillError> {
        let c = code.trim().to_owned();
        let customer = match self.journal(move |j| j.find_customer(&c)).await? {
            Some(known) => known,
            None => self.find_customer(code).await?,
        };
        let (history, from_hq) = self.customer_history(&customer.card).await?;
        Ok((customer, history, from_hq))
    }

    /// The customer a card or phone number names; an unknown card is asked of HQ when
    /// online. A typo gives "no such customer", never a new one.
    async fn find_customer(&self, code: &str) -> Result<Customer, TillError> {
        let code = code.trim().to_owned();
        let c = code.clone();
        let mut found = self.journal(move |j| j.find_customer(&c)).await?;
        // Online, HQ is asked about the card every time: an unknown one may be another
        // store's, and a known one may have used a single-use coupon elsewhere (HQ's
        // answer brings the promotions the customer has had).
        let card = found.as_ref().map(|c| c.card.clone()).or_else(|| CustomerId::parse(&code).ok());
        if let Some(card) = card.filter(|_| found.is_none() || self.online()) {
            if self.ask_rights(&card, 0).await && found.is_none() {
                let c = code.clone();
                found = self.journal(move |j| j.find_customer(&c)).await?;
            }
        }
        found.ok_or(TillError::NoSuchCustomer)
    }

    /// Issues a new card at the till and puts it on the basket.
    pub async fn new_customer(&self, phone: String, name: Option<String>) -> Result<TillEvent, TillError> {
        let customer = self.journal(move |j| j.issue_customer(&phone, name.as_deref())).await?;
        tracing::info!(card = %customer.card, "loyalty card issued");
        self.committed().await;
        self.attach(customer).await
    }

    async fn attach(&self, customer: Customer) -> Result<TillEvent, TillError> {
        let card = customer.card.clone();
        let used = self.journal(move |j| j.promotions_used(&card)).await?;
        let mut open = self.basket.lock().await;
        open.customer = Some(customer);
        open.used = used;
        let OpenBasket { basket, customer, used, .. } = &mut *open;
        self.price(basket, customer.as_ref(), used);
        let ev = self.basket_ev(open.basket.clone(), open.customer.as_ref()).await;
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    pub async fn clear_customer(&self) -> TillEvent {
        let mut open = self.basket.lock().await;
        open.customer = None;
        open.used.clear();
        self.price(&mut open.basket, None, &Default::default());
        let ev = self.basket_ev(open.basket.clone(), None).await;
        drop(open);
        self.publish(ev.clone());
        ev
    }
}
