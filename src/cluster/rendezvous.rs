//! Rendezvous (highest random weight) hashing: each key goes to the live node
//! with the highest `weight(key, node)`. Keys spread evenly, a node that leaves
//! moves only its own keys, and a node that returns gets the same keys back.
//!
//! The weight is a fixed mix of the two ids (no per-process hash seed), so
//! every node computes the same owner from the same set of live nodes.

use uuid::Uuid;

/// The node that should own `key` among `nodes`; `None` when there is none.
/// Ties (practically impossible) go to the larger node id, so the answer does
/// not depend on the order of `nodes`.
pub fn preferred_owner<'a>(key: u128, nodes: impl IntoIterator<Item = &'a Uuid>) -> Option<Uuid> {
    nodes
        .into_iter()
        .map(|node| (weight(key, *node), *node))
        .max()
        .map(|(_, node)| node)
}

/// The weight of `node` for `key`: a strong 64-bit mix of both ids. UUIDv7
/// node ids share their time prefix, so every input word goes through the
/// finalizer before it is combined.
pub fn weight(key: u128, node: Uuid) -> u64 {
    let node = node.as_u128();
    let mut h = mix(key as u64);
    for word in [(key >> 64) as u64, node as u64, (node >> 64) as u64] {
        h = mix(h ^ mix(word));
    }
    h
}

/// splitmix64's finalizer: every input bit flips about half the output bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// UUIDv7-shaped ids (shared millisecond prefix, random tail), deterministic.
    fn ids(n: usize, seed: u64) -> Vec<Uuid> {
        (0..n as u64)
            .map(|i| {
                let ms = 1_790_000_000_000u128 + u128::from(i / 16);
                let tail = u128::from(mix(seed ^ i)) << 16 | u128::from(mix(i) as u16);
                Uuid::from_u128(ms << 80 | 0x7 << 76 | (tail & ((1 << 76) - 1)))
            })
            .collect()
    }

    fn owners(keys: &[Uuid], nodes: &[Uuid]) -> Vec<Uuid> {
        keys.iter()
            .map(|k| preferred_owner(k.as_u128(), nodes).expect("nodes given"))
            .collect()
    }

    #[test]
    fn ten_thousand_keys_spread_evenly_over_three_nodes() {
        let keys = ids(10_000, 1);
        let nodes = ids(3, 2);
        let mut counts: HashMap<Uuid, usize> = HashMap::new();
        for owner in owners(&keys, &nodes) {
            *counts.entry(owner).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        let fair = 10_000.0 / 3.0;
        for (node, n) in counts {
            let off = (n as f64 - fair).abs() / fair;
            assert!(
                off <= 0.05,
                "node {node} got {n} keys ({:.1}% off)",
                off * 100.0
            );
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_keys_and_its_return_restores_them() {
        let keys = ids(10_000, 3);
        let nodes = ids(3, 4);
        let before = owners(&keys, &nodes);
        let survivors = [nodes[0], nodes[2]];
        let during = owners(&keys, &survivors);
        for (b, d) in before.iter().zip(&during) {
            if *b == nodes[1] {
                assert_ne!(*d, nodes[1]);
            } else {
                assert_eq!(b, d, "a key of a surviving node moved");
            }
        }
        assert_eq!(
            owners(&keys, &nodes),
            before,
            "the returning node got other keys"
        );
    }

    #[test]
    fn answer_ignores_node_order_and_needs_a_node() {
        let nodes = ids(5, 5);
        let mut reversed = nodes.clone();
        reversed.reverse();
        for key in ids(200, 6) {
            assert_eq!(
                preferred_owner(key.as_u128(), &nodes),
                preferred_owner(key.as_u128(), &reversed)
            );
        }
        assert_eq!(preferred_owner(1, &[]), None);
    }
}
