//! Rendezvous (highest random weight) placement: each establishment goes to the live
//! node whose hash with it is highest. When a node leaves, only its establishments
//! move; when one joins, nothing moves by itself (the directory keeps an
//! establishment with its owner while the owner is live: sticky), so a join causes no
//! reshuffle at all.

use navaro_protocol::EstablishmentId;

/// FNV-1a over the node id then the establishment id: stable across processes and
/// versions (the std hasher is randomly seeded per process, which would make nodes
/// disagree).
fn weight(node: &str, id: EstablishmentId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain(id.0.as_bytes().iter().copied()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix, so ids that differ in their last bytes spread over the whole range.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// The node that should own `id` among `nodes` (ties broken by name); `None` if empty.
pub fn place<'a>(id: EstablishmentId, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .into_iter()
        .max_by(|a, b| weight(a, id).cmp(&weight(b, id)).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<EstablishmentId> {
        (0..n)
            .map(|i| EstablishmentId(uuid::Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))))
            .collect()
    }

    #[test]
    fn placement_spreads_and_only_a_leaving_nodes_establishments_move() {
        let three = ["a", "b", "c"];
        let two = ["a", "c"];
        let mut counts = [0usize; 3];
        for id in ids(3000) {
            let before = place(id, three).unwrap();
            counts[three.iter().position(|n| *n == before).unwrap()] += 1;
            let after = place(id, two).unwrap();
            if before != "b" {
                assert_eq!(before, after, "only b's establishments move");
            }
            // Order of the members does not matter.
            assert_eq!(place(id, ["c", "b", "a"]).unwrap(), before);
        }
        for n in counts {
            assert!((800..1200).contains(&n), "{counts:?}");
        }
        assert_eq!(place(ids(1)[0], []), None);
    }
}
