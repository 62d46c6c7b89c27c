//! Orders for pickup at the till: moving one on (picking, ready, cancelled at the
//! customer's word) and handing it over — a prepaid order as it is, an order paid at
//! pickup as a sale of what the customer takes. None touches the open basket.

use kassa_protocol::orders::{Handover, OrderId, OrderState, StoreStep};
use kassa_protocol::sale::Tender;

use super::{now_ms, Till, TillError};
use crate::journal::{Collected, User};

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
