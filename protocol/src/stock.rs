//! Stock as a PN-counter: per actor, running totals of increments `p` and decrements `n`.
//!
//! The stock of a SKU at a store is `Σ_actors (p − n)`. Each actor only ever raises its
//! own totals, so merging two replicas is `max` per entry — exactly an SQL upsert with
//! `MAX`, which is how the agent and HQ store it. Resending an entry is harmless.

use serde::{Deserialize, Serialize};

use crate::ids::{ActorId, Sku, StoreId};

/// One actor's running totals for one SKU at one store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CounterEntry {
    /// Whose stock this is.
    pub location: StoreId,
    pub sku: Sku,
    /// Who counted: the store itself for sales and returns, HQ for deliveries.
    pub actor: ActorId,
    /// Running total of increases (returns, deliveries), in pieces or grams.
    pub p: i64,
    /// Running total of decreases (sales, write-offs), in pieces or grams.
    pub n: i64,
}

impl CounterEntry {
    pub fn value(&self) -> i64 {
        self.p.saturating_sub(self.n)
    }

    /// Running totals never go below zero; an entry that does is corrupt.
    pub fn is_valid(&self) -> bool {
        self.p >= 0 && self.n >= 0
    }

    /// Merges `other` into `self` when both name the same (location, SKU, actor).
    pub fn merge(&mut self, other: &CounterEntry) {
        debug_assert_eq!((self.location, &self.sku, self.actor), (other.location, &other.sku, other.actor));
        self.p = self.p.max(other.p);
        self.n = self.n.max(other.n);
    }
}

/// A summary of one actor's running totals at one location: if two replicas' digests
/// differ, one of them lacks something, and the actor's entries are sent again in full
/// (anti-entropy; max-merge makes the resend harmless).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorDigest {
    pub actor: ActorId,
    pub entries: u64,
    pub p: i64,
    pub n: i64,
}

/// Digests of `entries`, one per actor, in actor order.
pub fn digests<'a>(entries: impl IntoIterator<Item = &'a CounterEntry>) -> Vec<ActorDigest> {
    let mut by_actor: std::collections::BTreeMap<ActorId, ActorDigest> = std::collections::BTreeMap::new();
    for e in entries {
        let d = by_actor.entry(e.actor).or_insert(ActorDigest { actor: e.actor, entries: 0, p: 0, n: 0 });
        d.entries += 1;
        d.p = d.p.saturating_add(e.p);
        d.n = d.n.saturating_add(e.n);
    }
    by_actor.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdts::{CmRDT, CvRDT, PNCounter};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Replica = BTreeMap<u8, (i64, i64)>;

    fn merge(a: &mut Replica, b: &Replica) {
        for (actor, (p, n)) in b {
            let mut e = CounterEntry {
                location: StoreId(1),
                sku: Sku("1".into()),
                actor: ActorId { store: StoreId(u32::from(*actor)), epoch: 0 },
                p: 0,
                n: 0,
            };
            if let Some((p0, n0)) = a.get(actor) {
                (e.p, e.n) = (*p0, *n0);
            }
            e.merge(&CounterEntry { p: *p, n: *n, ..e.clone() });
            a.insert(*actor, (e.p, e.n));
        }
    }

    fn value(r: &Replica) -> i64 {
        r.values().map(|(p, n)| p - n).sum()
    }

    proptest! {
        /// Replicas that each apply their own ops and then merge in any order agree with
        /// each other and with the `crdts` crate's PN-counter fed the same ops.
        #[test]
        fn max_merge_matches_the_reference_pn_counter(
            ops in proptest::collection::vec((0u8..3, any::<bool>(), 1i64..50), 0..60),
            order in proptest::collection::vec(0usize..3, 0..12),
        ) {
            let mut replicas: Vec<Replica> = vec![Replica::new(); 3];
            let mut reference = PNCounter::<u8>::new();
            for (actor, inc, amount) in &ops {
                let e = replicas[*actor as usize].entry(*actor).or_insert((0, 0));
                if *inc { e.0 += amount } else { e.1 += amount }
                for _ in 0..*amount {
                    let op = if *inc { reference.inc(*actor) } else { reference.dec(*actor) };
                    reference.apply(op);
                }
            }
            // Some random gossip, then a full round so that everyone has everything.
            for w in order.windows(2) {
                let src = replicas[w[0]].clone();
                merge(&mut replicas[w[1]], &src);
                merge(&mut replicas[w[1]], &src); // idempotent
            }
            let all = replicas.clone();
            for r in replicas.iter_mut() {
                for other in all.iter().rev() {
                    merge(r, other);
                }
            }
            let expected: i64 = reference.read().try_into().unwrap();
            for r in &replicas {
                prop_assert_eq!(value(r), expected);
                prop_assert_eq!(r, &replicas[0]);
            }
            let mut reference2 = PNCounter::<u8>::new();
            reference2.merge(reference.clone());
            prop_assert_eq!(reference2.read(), reference.read());
        }
    }
}
