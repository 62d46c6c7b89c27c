//! Money: paying the open basket (asking HQ for loyalty rights first when the points
//! tendered exceed this store's), returns, and reprints.

use kassa_protocol::receipt_proof;
use kassa_protocol::returns::ReturnClaim;
use kassa_protocol::returns::{Return, SaleAnswer, SaleRef};
use kassa_protocol::sale::{Sale, Tender, TenderKind};

use super::{now_ms, Till, TillError, TillEvent};
use crate::journal::{check_key, LoyaltyUse, ReturnRequest, User};

/// How long the till waits for HQ's answer to a sale lookup before it says HQ did not
/// answer.
pub const SALE_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Till {
    /// Pays basket `seen_basket` (the one the cashier saw; `None`: the open one). The
    /// basket stays locked until the sale is committed, so no scan slips in between
    /// totals and commit. A retried key returns the same sale, and the basket it paid is
    /// over: the sale records its id in the same commit, so even a crash right after it
    /// cannot bring the paid lines back.
    pub async fn pay(
        &self,
        user: &User,
        tenders: Vec<Tender>,
        seen_basket: Option<u64>,
        key: String,
    ) -> Result<(Sale, bool), TillError> {
        check_key(&key)?;
        let mut open = self.basket.lock().await;
        let (terminal, snapshot, cashier) = (self.terminal, open.basket.clone(), user.id.clone());
        let online = self.online();
        // The rules HQ published (the same code computes the points at every store and HQ).
        // The rules are read only for a sale with a customer: most sales have none.
        let loyalty = match &open.customer {
            Some(c) => Some(LoyaltyUse { customer: c.card.clone(), rules: self.loyalty_rules().await?, online }),
            None => None,
        };
        // Points beyond the rights held here: ask HQ first (a round trip with a timeout);
        // offline, the journal refuses with the offer that can be spent now.
        let points_kopecks: i64 = tenders.iter().filter(|t| t.kind == TenderKind::Points).map(|t| t.amount.0).sum();
        if let (Some(u), true, true) = (&loyalty, points_kopecks > 0, online) {
            let points = points_kopecks / u.rules.point_value_kopecks();
            let card = u.customer.clone();
            let actor = self.journal.actor();
            let held = self.journal(move |j| j.loyalty_account(&card).map(|a| a.rights(actor))).await?;
            if points > held {
                self.ask_rights(&u.customer, points - held).await;
            }
        }
        let started = std::time::Instant::now();
        let (sale, replayed) = self
            .journal(move |j| {
                j.commit_payment(terminal, &cashier, &snapshot, seen_basket, &tenders, loyalty.as_ref(), &key, now_ms())
            })
            .await?;
        if !replayed {
            self.sale_commit_seconds.observe(started.elapsed().as_secs_f64());
            open.next();
            open.keys.clear();
            let next = open.basket.clone();
            drop(open);
            tracing::info!(sale = %sale.id, receipt = %sale.receipt_no, total = %sale.total, "sale committed");
            self.committed().await;
            self.publish(TillEvent::SaleCommitted { sale: sale.clone() });
            self.publish(TillEvent::Basket { basket: next, totals: None, customer: None });
        }
        Ok((sale, replayed))
    }

    /// A return; cash is refunded only from what the drawer holds unless
    /// `drawer_override` names the manager who allowed more.
    pub async fn return_items(
        &self,
        user: &User,
        request: ReturnRequest,
        drawer_override: Option<User>,
        key: String,
    ) -> Result<(Return, bool), TillError> {
        check_key(&key)?;
        let mut request = request;
        // A sale of this store may have been returned in part at other stores: online,
        // HQ's figures count those too (return anywhere). A retry is answered from the
        // journal: it asks HQ for nothing.
        if let (ReturnRequest::WithReceipt { sale_seq, lines }, true) = (&request, self.online()) {
            if !self.key_used(&key).await? {
                let by = SaleRef::Id(kassa_protocol::SaleId { store: self.journal.store(), seq: *sale_seq });
                // HQ holds the lines for this store before it refunds them.
                let claim = claim(&key, lines);
                let claimed = claim.is_some();
                if let Some(SaleAnswer::Found { sale, returned, refunds, loyalty_owed }) =
                    self.sale_from_hq(by, claim).await
                {
                    let lines = lines.clone();
                    request = ReturnRequest::Anywhere { sale, returned, refunds, loyalty_owed, lines, claimed };
                }
            }
        }
        // The points the sale earned are taken back from this store's rights; online, ask
        // HQ for enough first, so the customer's refund is not cut for points HQ holds.
        if self.online() {
            let sale = match &request {
                ReturnRequest::WithReceipt { sale_seq, .. } => {
                    let seq = *sale_seq;
                    self.journal(move |j| j.sale(seq)).await?
                }
                ReturnRequest::Anywhere { sale, .. } => Some(sale.as_ref().clone()),
                _ => None,
            };
            if let Some(sl) = sale.as_ref().and_then(|s| s.loyalty.as_ref()) {
                let earned: i64 = sl.lines.iter().map(|l| l.earned_points).sum();
                if earned > 0 {
                    self.ask_rights(&sl.customer, earned).await;
                }
            }
        }
        let (terminal, cashier) = (self.terminal, user.id.clone());
        let manager = drawer_override.map(|m| m.id);
        let (ret, replayed) = self
            .journal(move |j| j.commit_return(terminal, &cashier, &request, manager.as_deref(), &key, now_ms()))
            .await?;
        if !replayed {
            tracing::info!(id = %ret.id, receipt = %ret.receipt_no, total = %ret.total, kind = ?ret.kind, "return committed");
            self.committed().await;
            self.publish(TillEvent::ReturnCommitted { ret: ret.clone() });
        }
        Ok((ret, replayed))
    }

    /// Asks HQ for a sale of any store with every store's returns of it (return
    /// anywhere), claiming the lines about to be refunded (`claim`); `None` when HQ is
    /// not reachable or does not answer in time.
    pub async fn sale_from_hq(&self, by: SaleRef, claim: Option<ReturnClaim>) -> Option<SaleAnswer> {
        if !self.online() {
            return None;
        }
        let seq = self.rights_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lookup = kassa_protocol::returns::SaleLookup { request_id: seq, sale: by, claim };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rights.try_send(crate::sync_client::HqRequest::Sale(lookup, tx)).ok()?;
        tokio::time::timeout(SALE_LOOKUP_TIMEOUT, rx).await.ok()?.ok()
    }

    /// Another store's sale named by `code` (its receipt's QR code or number): HQ's
    /// answer while it is reachable; otherwise what the receipt's signed code proves,
    /// verified with the keys this store holds. A signed code that does not verify is
    /// refused either way: the receipt was forged or altered. With a `claim`, HQ holds
    /// those lines for this store's return (online).
    pub async fn sale_elsewhere(&self, code: &str, claim: Option<ReturnClaim>) -> Result<ElsewhereSale, TillError> {
        let signed = receipt_proof::parse_code(code).transpose()?.filter(|c| c.signed.is_some());
        let proof = match &signed {
            Some(c) => {
                let store = c.sale.store;
                let keys = self.journal(move |j| j.store_keys(store)).await?;
                match receipt_proof::verify(c, &keys) {
                    Ok(proof) => Some(proof),
                    Err(receipt_proof::ProofError::UnknownStore(_)) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            None => None,
        };
        let by = kassa_protocol::sale::sale_ref(code).ok_or_else(|| no_such_sale(code))?;
        match self.sale_from_hq(by, claim).await {
            Some(SaleAnswer::Found { sale, returned, refunds, loyalty_owed }) => {
                Ok(ElsewhereSale::Online { sale, returned, refunds, loyalty_owed })
            }
            Some(SaleAnswer::NotFound) => Err(no_such_sale(code)),
            None => {
                // HQ out of reach: the receipt must prove itself.
                let proof = match (proof, signed) {
                    (Some(proof), _) => proof,
                    (None, Some(c)) => return Err(receipt_proof::ProofError::UnknownStore(c.sale.store).into()),
                    (None, None) => return Err(TillError::ReturnNeedsHq),
                };
                let terminal = self.terminal;
                let p = proof.clone();
                let view = self.journal(move |j| j.sale_offline(&p, terminal)).await?;
                Ok(ElsewhereSale::Offline { proof: Box::new(proof), view: Box::new(view) })
            }
        }
    }

    /// A return of lines of another store's sale, named by `code` (its receipt's QR code
    /// or number): online, within what every store returned of it (HQ's figures); with
    /// HQ out of reach, of a signed receipt only, within HQ's limits.
    pub async fn return_elsewhere(
        &self,
        user: &User,
        code: &str,
        lines: Vec<(u32, i64)>,
        drawer_override: Option<User>,
        key: String,
    ) -> Result<(Return, bool), TillError> {
        // A retry is answered from the journal: it claims nothing again at HQ.
        let claim = if self.key_used(&key).await? { None } else { claim(&key, &lines) };
        let claimed = claim.is_some();
        let request = match self.sale_elsewhere(code, claim).await? {
            ElsewhereSale::Online { sale, returned, refunds, loyalty_owed } => {
                ReturnRequest::Anywhere { sale, returned, refunds, loyalty_owed, lines, claimed }
            }
            ElsewhereSale::Offline { proof, .. } => ReturnRequest::Offline { proof, lines },
        };
        self.return_items(user, request, drawer_override, key).await
    }

    /// Whether a write was already made under idempotency key `key`.
    async fn key_used(&self, key: &str) -> Result<bool, TillError> {
        let key = key.to_owned();
        Ok(self.journal(move |j| j.key_used(&key)).await?)
    }

    pub async fn reprint(&self, seq: u64) -> Result<bool, TillError> {
        let queued = self.journal(move |j| j.reprint(seq, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        Ok(queued)
    }
}

/// Another store's sale, as the till can know it ([`Till::sale_elsewhere`]).
#[derive(Debug)]
pub enum ElsewhereSale {
    /// HQ's answer: the sale and what every store's returns HQ holds took back of it.
    Online {
        sale: Box<kassa_protocol::sale::Sale>,
        returned: kassa_protocol::returns::Returned,
        refunds: Vec<kassa_protocol::sale::Tender>,
        /// What the sale's latest return left owed for the customer's points.
        loyalty_owed: kassa_protocol::Kopecks,
    },
    /// HQ out of reach: what the receipt's signed code proves, with this store's own
    /// returns of it and what HQ's limits leave.
    Offline { proof: Box<receipt_proof::ReceiptProof>, view: Box<crate::journal::OfflineSale> },
}

/// The claim of a return's lines for HQ to hold; none for a request HQ would refuse as
/// malformed (a line twice, nothing): the journal refuses it with the cashier's words,
/// and the link stays up.
fn claim(key: &str, lines: &[(u32, i64)]) -> Option<ReturnClaim> {
    Some(ReturnClaim { key: key.to_owned(), lines: lines.to_vec() }).filter(|c| c.validate().is_ok())
}

fn no_such_sale(code: &str) -> TillError {
    TillError::Write(crate::journal::WriteError::NoSuchSale(code.to_owned()))
}
