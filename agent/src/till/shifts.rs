//! The shift: opening and closing it, cash in and out of the drawer, the X report,
//! and its figures published to the page after every change.

use kassa_protocol::Kopecks;

use super::{now_ms, Till, TillError, TillEvent};
use crate::journal::{ShiftReport, User};

impl Till {
    /// Publishes the shift's figures (read off the executor).
    pub async fn publish_shift(&self) {
        let terminal = self.terminal;
        if let Ok(report) = self.journal(move |j| j.x_report(terminal)).await {
            self.publish(TillEvent::Shift { report });
        }
    }

    pub async fn open_shift(&self, user: &User, float: Kopecks, key: String) -> Result<ShiftReport, TillError> {
        let (terminal, id) = (self.terminal, user.id.clone());
        let (report, _) = self.journal(move |j| j.open_shift(terminal, &id, float, &key, now_ms())).await?;
        self.publish_shift().await;
        Ok(report)
    }

    /// Cash in or out. Out needs a manager (the user, or `manager`) where the store's
    /// limits say so, and only of what the drawer holds unless `drawer_override` (the
    /// manager allowed more).
    pub async fn cash_move(
        &self,
        user: &User,
        amount: Kopecks,
        reason: String,
        manager: Option<User>,
        drawer_override: bool,
        key: String,
    ) -> Result<ShiftReport, TillError> {
        let is_manager = user.role == crate::journal::Role::Manager;
        let manager = manager.or_else(|| is_manager.then(|| user.clone()));
        if amount.0 < 0 && self.limits.cash_out_needs_manager && manager.is_none() {
            return Err(TillError::NeedsManager);
        }
        let (terminal, id) = (self.terminal, user.id.clone());
        let manager = if drawer_override { Some(manager.ok_or(TillError::NeedsManager)?.id) } else { None };
        let (report, replayed) = self
            .journal(move |j| j.cash_move(terminal, &id, amount, &reason, manager.as_deref(), &key, now_ms()))
            .await?;
        if !replayed && amount.0 > 0 {
            let _ = self.print_wake.try_send(());
        }
        self.publish_shift().await;
        Ok(report)
    }

    pub async fn x_report(&self, print: bool) -> Result<Option<ShiftReport>, TillError> {
        let terminal = self.terminal;
        let report = self.journal(move |j| j.x_report(terminal)).await?;
        if let (true, Some(r)) = (print, &report) {
            let r = r.clone();
            self.journal(move |j| j.print_x_report(&r, now_ms())).await?;
            let _ = self.print_wake.try_send(());
        }
        Ok(report)
    }

    pub async fn close_shift(&self, manager: &User, counted: Kopecks, key: String) -> Result<ShiftReport, TillError> {
        let (terminal, id) = (self.terminal, manager.id.clone());
        let (z, _) = self.journal(move |j| j.close_shift(terminal, &id, counted, &key, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        self.publish(TillEvent::Shift { report: None });
        Ok(z)
    }
}
