//! The promotions the till prices with: HQ's published set as this store holds it,
//! validated and indexed once per version, and shared through a watch channel — the
//! sync client sends a new set, the till reads the current one on every change of the
//! basket. Neither knows the other.
//!
//! The set is checked at the store as HQ checked it, except against the catalog: HQ
//! checked the SKUs and categories against its own, and the store's may be a version
//! behind or ahead of it for a while. A promotion naming an item the store does not
//! sell yet simply never matches a line.

use std::sync::Arc;

use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::promotions::{Catalog, PromotionError, PromotionSet};
use kassa_protocol::Sku;
use tokio::sync::watch;

/// The set in use, with its version (0: none yet).
#[derive(Debug, Default)]
pub struct Active {
    pub version: u64,
    pub set: PromotionSet,
}

pub type Sender = watch::Sender<Arc<Active>>;
pub type Receiver = watch::Receiver<Arc<Active>>;

/// HQ already checked SKUs and categories against its catalog.
struct TrustHq;

impl Catalog for TrustHq {
    fn has_sku(&self, _: &Sku) -> bool {
        true
    }

    fn has_category(&self, _: &str) -> bool {
        true
    }
}

/// Validates and indexes a published set.
pub fn build(version: u64, definitions: &[Definition]) -> Result<Active, PromotionError> {
    let promotions = definitions.iter().map(Definition::to_promotion).collect::<Result<Vec<_>, _>>()?;
    Ok(Active { version, set: PromotionSet::new(promotions, &TrustHq)? })
}

/// A channel starting with what the journal holds (a set that no longer validates —
/// which HQ would not have published — is logged and not used).
pub fn channel(version: u64, definitions: &[Definition]) -> (Sender, Receiver) {
    let active = build(version, definitions).unwrap_or_else(|e| {
        tracing::error!(version, error = %e, "the stored promotions do not validate: selling without them");
        Active::default()
    });
    watch::channel(Arc::new(active))
}
