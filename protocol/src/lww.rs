//! HQ-versioned last-writer-wins registers: catalog items, prices, rules.
//!
//! HQ is the only writer and numbers every publication; a replica keeps the value with
//! the highest version. Because HQ never reuses a version for a different value, the
//! merge needs no tie-break: equal versions carry equal values. The store's journal
//! applies the same rule in SQL (`apply_catalog` ignores a version it has already
//! passed).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

impl<T: Clone> Versioned<T> {
    /// Keeps the higher version; returns whether `self` changed.
    pub fn merge(&mut self, other: &Versioned<T>) -> bool {
        if other.version > self.version {
            *self = other.clone();
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdts::{CvRDT, LWWReg};
    use proptest::prelude::*;

    // HQ's publications: version n always carries value f(n), as HQ never reuses one.
    fn publication(n: u64) -> Versioned<u64> {
        Versioned { version: n, value: n.wrapping_mul(2_654_435_761) }
    }

    proptest! {
        /// Merging in any order and any number of times gives the same register, the one
        /// the `crdts` crate's LWW register gives for the same updates.
        #[test]
        fn merge_is_commutative_associative_idempotent(
            a in 0u64..50, b in 0u64..50, c in 0u64..50,
            order in Just(()).prop_perturb(|_, mut rng| { let mut v = vec![0, 1, 2]; for i in (1..3).rev() { v.swap(i, (rng.next_u32() as usize) % (i + 1)); } v }),
        ) {
            let regs = [publication(a), publication(b), publication(c)];
            let mut left = regs[order[0]].clone();
            left.merge(&regs[order[1]]);
            left.merge(&regs[order[2]]);
            left.merge(&regs[order[1]]); // idempotent
            let mut right = regs[2].clone();
            let mut bc = regs[1].clone();
            bc.merge(&regs[0]);
            right.merge(&bc);
            prop_assert_eq!(&left, &right);
            let mut reference = LWWReg { val: regs[0].value, marker: regs[0].version };
            for r in &regs[1..] {
                reference.merge(LWWReg { val: r.value, marker: r.version });
            }
            prop_assert_eq!((left.version, left.value), (reference.marker, reference.val));
        }
    }
}
