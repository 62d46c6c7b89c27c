//! Orders for pickup at the till: moving one on (picking, ready, cancelled at the
//! customer's word) and handing it over — a prepaid order as it is, an order paid at
//! pickup as a sale of what the customer takes. None touches the open basket.

use kassa_protocol::orders::{
    Handover, Order, OrderAnswer, OrderId, OrderRequest, OrderState, Payment, StoreStep, TILL_PAYMENT_TAKE_MS,
};
use kassa_protocol::sale::Tender;

use super::{now_ms, Till, TillError};

/// How long the till keeps an order placed to be paid now in memory (beyond the payment
/// window, to answer a retried payment).
const UNPAID_KEPT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How long the till waits for HQ to place an order before it says HQ did not answer.
pub const ORDER_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::journal::{Collected, Prepayment, User};

impl Till {
    /// Moves order `id` on; picking prints its picking list.
    pub async fn order_step(&self, user: &User, id: OrderId, step: StoreStep) -> Result<OrderState, TillError> {
        let by = user.id.clone();
        let state = self.journal(move |j| j.order_step(id, step, &by, now_ms())).await?;
        tracing::info!(order = %id, state = state.code(), by = %user.id, "order moved on");
        self.outbox_changed.send_modify(|g| *g += 1);
        let _ = self.print_wake.try_send(());
        Ok(state)
    }

    /// The endless aisle: asks HQ (over the sync connection) to place `request` — an
    /// order for pickup here or at another store — and waits for its answer. Needs HQ:
    /// offline, or without an answer in time, it is refused plainly.
    pub async fn place_order(&self, user: &User, mut request: OrderRequest) -> Result<Order, TillError> {
        // Unique across restarts: HQ keeps a till's request id as the order's request key.
        let seq = self.rights_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        request.request_id = (now_ms() as u64).saturating_mul(1000) + seq % 1000;
        request.validate()?;
        if !self.online() {
            return Err(TillError::OrderNeedsHq);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.rights.try_send(crate::sync_client::HqRequest::Order(request, tx)).is_err() {
            return Err(TillError::OrderNeedsHq);
        }
        match tokio::time::timeout(ORDER_REQUEST_TIMEOUT, rx).await {
            Ok(Ok(OrderAnswer::Placed(order))) => {
                tracing::info!(order = %order.id, to = order.store.0, by = %user.id, payment = order.payment.code(), "the till ordered for pickup");
                if order.payment == Payment::Prepaid {
                    let mut unpaid = self.unpaid_orders.lock().expect("unpaid orders lock");
                    // Kept a while after the payment window, to answer a retried payment.
                    unpaid.retain(|_, (_, placed, _)| placed.elapsed() < UNPAID_KEPT);
                    unpaid.insert(order.id, (order.clone(), std::time::Instant::now(), false));
                }
                Ok(order)
            }
            Ok(Ok(OrderAnswer::Refused { code, message })) if code == "not_available" => {
                Err(TillError::OrderNotAvailable(message))
            }
            Ok(Ok(OrderAnswer::Refused { message, .. })) => Err(TillError::OrderRefused(message)),
            Ok(Err(_)) | Err(_) => Err(TillError::OrderNeedsHq),
        }
    }

    /// Takes the payment of order `id`, placed at this till to be paid now (see
    /// `kassa_protocol::orders`, "Paid now"): within `TILL_PAYMENT_TAKE_MS` of HQ's
    /// answer, once.
    pub async fn prepay_order(
        &self,
        user: &User,
        id: OrderId,
        tenders: Vec<Tender>,
        key: String,
    ) -> Result<(Prepayment, bool), TillError> {
        let order = {
            let unpaid = self.unpaid_orders.lock().expect("unpaid orders lock");
            let (order, placed, paid) = unpaid.get(&id).ok_or(TillError::NotAwaitingPayment(id))?;
            // A paid one goes on to the journal: a retry answers the payment, another is refused.
            if !paid && placed.elapsed().as_millis() > TILL_PAYMENT_TAKE_MS as u128 {
                return Err(TillError::PaymentTooLate(id));
            }
            order.clone()
        };
        let (terminal, by) = (self.terminal, user.id.clone());
        let done = self.journal(move |j| j.prepay_order(terminal, &by, &order, &tenders, &key, now_ms())).await?;
        if let Some(entry) = self.unpaid_orders.lock().expect("unpaid orders lock").get_mut(&id) {
            entry.2 = true;
        }
        if !done.1 {
            tracing::info!(order = %id, total = done.0.total_kopecks, by = %user.id, "order paid now at the till");
            self.committed().await;
        }
        Ok(done)
    }

    /// Order `id`, if it was placed at this till and awaits its payment.
    pub fn unpaid_order(&self, id: OrderId) -> Option<Order> {
        self.unpaid_orders.lock().expect("unpaid orders lock").get(&id).map(|(o, ..)| o.clone())
    }

    /// The customer did not pay order `id` (placed at this till to be paid now): HQ
    /// cancels it and releases its stock.
    pub async fn abandon_order(&self, user: &User, id: OrderId) -> Result<(), TillError> {
        if !self.unpaid_orders.lock().expect("unpaid orders lock").contains_key(&id) {
            return Err(TillError::NotAwaitingPayment(id));
        }
        // The journal refuses it after a payment; once given up, it awaits nothing.
        self.journal(move |j| j.abandon_order(id, now_ms())).await?;
        self.unpaid_orders.lock().expect("unpaid orders lock").remove(&id);
        tracing::info!(order = %id, by = %user.id, "the customer did not pay the order; HQ cancels it");
        self.outbox_changed.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Expires the open orders whose time is up at `now_ms` (the store's clock; the
    /// agent runs this every minute and before every list), releasing their stock.
    pub async fn expire_orders(&self, now_ms: i64) -> Result<Vec<OrderId>, TillError> {
        let expired = self.journal(move |j| j.expire_orders(now_ms)).await?;
        if !expired.is_empty() {
            tracing::info!(orders = ?expired, "orders expired; their stock released");
            self.outbox_changed.send_modify(|g| *g += 1);
        }
        Ok(expired)
    }

    /// Prints order `id`'s picking list again.
    pub async fn print_picking_list(&self, id: OrderId) -> Result<(), TillError> {
        self.journal(move |j| j.print_picking_list(id, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        Ok(())
    }

    /// Hands order `id` over: what the customer takes of each line, paid with `tenders`
    /// when the order is paid at pickup (none when prepaid).
    pub async fn collect_order(
        &self,
        user: &User,
        id: OrderId,
        handover: Handover,
        tenders: Vec<Tender>,
        key: String,
    ) -> Result<(Collected, bool), TillError> {
        let (terminal, by) = (self.terminal, user.id.clone());
        let done =
            self.journal(move |j| j.collect_order(terminal, &by, id, &handover, &tenders, &key, now_ms())).await?;
        if !done.1 {
            tracing::info!(order = %id, sale = ?done.0.sale_seq, by = %user.id, "order handed over");
            self.committed().await;
        }
        Ok(done)
    }
}
