//! What stores and HQ say to each other about points. These are ready for the wire;
//! `crate::wire` does not carry them yet (see the module documentation of
//! [`crate::loyalty`] for the intended variants).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::account::{LoyaltyAccount, LoyaltyEntry};
use super::customer::CustomerId;
use crate::ids::ActorId;

/// How long a till waits for HQ's answer to a rights request before it falls back to
/// the offline offer: far above a healthy round trip (tens of milliseconds), short
/// enough that a cashier barely notices.
pub const RIGHTS_REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Loyalty entries per message, like `wire::COUNTERS_PAGE_MAX`: an entry is under 64
/// bytes encoded, so a page stays far below the frame cap.
pub const LOYALTY_ENTRIES_PAGE_MAX: usize = 2048;

/// A store asks HQ for the rights to spend `points` of `customer`'s points (a
/// redemption, or a return taking back points the store does not hold).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsRequest {
    /// The store's own number for the request, echoed in the answer so that a late
    /// answer to an abandoned request is recognised (its rights are kept all the same).
    pub request_id: u64,
    pub customer: CustomerId,
    pub points: i64,
}

/// HQ's answer to a [`RightsRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RightsAnswer {
    /// HQ handed `granted` points of its rights to the store (possibly fewer than asked,
    /// possibly none), and sends the account's entries, the grant's transfer first, so
    /// the store sees the current balance.
    Grant(RightsGrant),
    /// HQ has no account for this card.
    UnknownCustomer { request_id: u64, customer: CustomerId },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsGrant {
    pub request_id: u64,
    pub customer: CustomerId,
    pub granted: i64,
    pub entries: Vec<LoyaltyEntry>,
}

/// HQ's side of a rights request from `store`: hands over what it can of the rights HQ
/// (`hq`) holds. HQ's shell commits the changed account before sending the answer.
///
/// A request repeated after a lost answer may be granted twice. That is harmless: a
/// grant only moves rights, it never creates points, and the store keeps whatever it
/// got for later redemptions (or hands it back as spare).
pub fn answer_rights_request(
    account: &mut LoyaltyAccount,
    hq: ActorId,
    store: ActorId,
    request: &RightsRequest,
) -> RightsAnswer {
    if &request.customer != account.customer() {
        return RightsAnswer::UnknownCustomer { request_id: request.request_id, customer: request.customer.clone() };
    }
    let wanted = request.points.min(account.rights(hq));
    let mut entries = Vec::new();
    let granted = match account.transfer(hq, store, wanted) {
        Ok(entry) => {
            entries.push(entry);
            wanted
        }
        Err(_) => 0, // nothing to give, or a malformed request: grant nothing
    };
    let first = entries.first().map(|e| e.kind);
    entries.extend(account.entries().into_iter().filter(|e| Some(e.kind) != first));
    entries.truncate(LOYALTY_ENTRIES_PAGE_MAX);
    RightsAnswer::Grant(RightsGrant {
        request_id: request.request_id,
        customer: request.customer.clone(),
        granted,
        entries,
    })
}
