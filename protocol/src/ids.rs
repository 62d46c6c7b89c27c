//! Identities: who wrote what.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A store. `StoreId(0)` is reserved for HQ itself, which is an actor too (deliveries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreId(pub u32);

impl StoreId {
    pub const HQ: StoreId = StoreId(0);

    /// The name a store's TLS certificate carries as its common name; HQ derives the
    /// store's identity from it and from nothing the store says.
    pub fn certificate_name(self) -> String {
        format!("kassa-store-{}", self.0)
    }

    pub fn from_certificate_name(name: &str) -> Option<StoreId> {
        let n: u32 = name.strip_prefix("kassa-store-")?.parse().ok()?;
        (n != 0).then_some(StoreId(n))
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// One writer of replicated counters: a store install (`store`, `epoch`). A store
/// restored from an old backup takes a new epoch so that its old running totals are
/// never mistaken for current ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId {
    pub store: StoreId,
    pub epoch: u32,
}

impl ActorId {
    /// HQ's own actor: deliveries into stores' stock, loyalty rights it holds and grants.
    pub const HQ: ActorId = ActorId { store: StoreId::HQ, epoch: 1 };
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.epoch)
    }
}

/// A sale: unique without coordination because the sequence is the store's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SaleId {
    pub store: StoreId,
    pub seq: u64,
}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.store, self.seq)
    }
}

/// A stock-keeping unit, HQ's article number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sku(pub String);

impl Sku {
    /// Longest SKU accepted; HQ's article numbers are short codes, and a bound keeps a
    /// hostile catalog row from growing every index it lands in.
    pub const LEN_MAX_BYTES: usize = 32;

    pub fn parse(s: &str) -> Option<Sku> {
        let ok = !s.is_empty()
            && s.len() <= Self::LEN_MAX_BYTES
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Sku(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_round_trip_and_reject_hq() {
        assert_eq!(StoreId::from_certificate_name(&StoreId(7).certificate_name()), Some(StoreId(7)));
        assert_eq!(StoreId::from_certificate_name("kassa-store-0"), None);
        assert_eq!(StoreId::from_certificate_name("kassa-store-x"), None);
        assert_eq!(StoreId::from_certificate_name("other-7"), None);
    }

    #[test]
    fn sku_is_bounded_and_plain() {
        assert!(Sku::parse("100001").is_some());
        assert!(Sku::parse("").is_none());
        assert!(Sku::parse("a b").is_none());
        assert!(Sku::parse(&"9".repeat(33)).is_none());
    }
}
