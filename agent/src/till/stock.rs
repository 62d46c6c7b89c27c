//! Stock operations at the store: receiving, write-offs, transfers out and stock counts.
//! Each commit wakes the sync client like a sale; none touches the open basket.

use kassa_protocol::movements::Movement;

use super::{now_ms, Till, TillError};
use crate::journal::{CountReport, CountScope, MovementRequest, User};

impl Till {
    /// Records a receipt, write-off or transfer out, approved by `manager` where the
    /// rules ask for one (the journal says when).
    pub async fn record_movement(
        &self,
        user: &User,
        request: MovementRequest,
        manager: Option<User>,
        note: String,
        key: String,
    ) -> Result<(Movement, bool), TillError> {
        let (terminal, id) = (self.terminal, user.id.clone());
        let approved_by = manager.map(|m| m.id);
        let done = self
            .journal(move |j| j.record_movement(terminal, &id, &request, approved_by.as_deref(), &note, &key, now_ms()))
            .await?;
        if !done.1 {
            tracing::info!(movement = %done.0.id, reason = done.0.kind.reason(), lines = done.0.lines.len(), "stock movement");
            self.outbox_changed.send_modify(|g| *g += 1);
        }
        Ok(done)
    }

    pub async fn start_count(
        &self,
        user: &User,
        scope: CountScope,
        key: String,
    ) -> Result<(CountReport, bool), TillError> {
        let id = user.id.clone();
        Ok(self.journal(move |j| j.start_count(&id, scope, &key, now_ms())).await?)
    }

    pub async fn count_scan(
        &self,
        user: &User,
        count: u64,
        sku: kassa_protocol::Sku,
        quantity: i64,
        key: String,
    ) -> Result<(CountReport, bool), TillError> {
        let id = user.id.clone();
        Ok(self.journal(move |j| j.count_scan(count, &id, &sku, quantity, &key, now_ms())).await?)
    }

    /// Posts a count's adjustments; a manager approves.
    pub async fn post_count(&self, manager: &User, count: u64, key: String) -> Result<(CountReport, bool), TillError> {
        let (terminal, id) = (self.terminal, manager.id.clone());
        let done = self.journal(move |j| j.post_count(terminal, count, &id, &key, now_ms())).await?;
        if !done.1 {
            tracing::info!(
                count,
                adjusted = done.0.lines.iter().filter(|l| l.difference != 0).count(),
                "stock count posted"
            );
            self.outbox_changed.send_modify(|g| *g += 1);
        }
        Ok(done)
    }
}
