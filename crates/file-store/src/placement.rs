//! Where the parts of a new file go: the least used nodes first (ties in random order), a
//! distinct node per part where enough nodes exist, otherwise spread as evenly as possible
//! with the least used nodes taking the extra parts. Pure: no IO.

use std::collections::BTreeMap;

use rand::Rng;

use crate::{PARITY_PARTS, TOTAL_PARTS};

/// A candidate node and the bytes it is believed to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    pub node_id: String,
    pub address: String,
    pub estimated_used_bytes: u64,
}

/// The node of each part, by part index, and the fault tolerance achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `nodes[i]` receives part `i`.
    pub nodes: Vec<NodeLoad>,
    /// How many nodes may be lost with the file still readable.
    pub fault_tolerance: u32,
}

/// Returns the placement of [`TOTAL_PARTS`] parts on `candidates`, or `None` without any.
pub fn place_parts(candidates: &[NodeLoad], random: &mut impl Rng) -> Option<Placement> {
    if candidates.is_empty() {
        return None;
    }
    let mut ordered: Vec<(u64, u64, &NodeLoad)> =
        candidates.iter().map(|candidate| (candidate.estimated_used_bytes, random.random::<u64>(), candidate)).collect();
    ordered.sort_by_key(|(used, tie_breaker, _)| (*used, *tie_breaker));
    let chosen: Vec<&NodeLoad> = ordered.iter().take(TOTAL_PARTS).map(|(_, _, candidate)| *candidate).collect();
    let nodes: Vec<NodeLoad> = (0..TOTAL_PARTS).map(|part_index| chosen[part_index % chosen.len()].clone()).collect();
    let fault_tolerance = nodes_that_may_fail(&nodes);
    Some(Placement { nodes, fault_tolerance })
}

/// Returns how many nodes may fail, whichever they are, without losing more parts than
/// there are parity parts.
pub fn nodes_that_may_fail(nodes_by_part: &[NodeLoad]) -> u32 {
    let mut parts_per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for node in nodes_by_part {
        *parts_per_node.entry(node.node_id.as_str()).or_default() += 1;
    }
    let mut counts: Vec<usize> = parts_per_node.into_values().collect();
    counts.sort_unstable_by(|left, right| right.cmp(left));
    let mut lost_parts = 0;
    let mut tolerated_nodes = 0;
    for count in counts {
        lost_parts += count;
        if lost_parts > PARITY_PARTS {
            break;
        }
        tolerated_nodes += 1;
    }
    tolerated_nodes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn loads(used: &[u64]) -> Vec<NodeLoad> {
        used.iter()
            .enumerate()
            .map(|(index, used)| NodeLoad { node_id: format!("n{index}"), address: format!("a{index}"), estimated_used_bytes: *used })
            .collect()
    }

    #[test]
    fn eight_or_more_nodes_get_one_part_each_least_used_first() {
        let placement = place_parts(&loads(&[9, 1, 2, 3, 4, 5, 6, 7, 8]), &mut rand::rng()).expect("placed");
        let distinct: HashSet<&str> = placement.nodes.iter().map(|node| node.node_id.as_str()).collect();
        assert_eq!(distinct.len(), 8);
        assert!(!distinct.contains("n0"), "the most used node is skipped");
        assert_eq!(placement.fault_tolerance, 2);
    }

    #[test]
    fn fewer_nodes_spread_evenly_and_lower_the_fault_tolerance() {
        let six = place_parts(&loads(&[0; 6]), &mut rand::rng()).expect("placed");
        assert_eq!(six.nodes.iter().map(|node| &node.node_id).collect::<HashSet<_>>().len(), 6);
        assert_eq!(six.fault_tolerance, 1);
        assert_eq!(place_parts(&loads(&[0; 4]), &mut rand::rng()).expect("placed").fault_tolerance, 1);
        assert_eq!(place_parts(&loads(&[0; 2]), &mut rand::rng()).expect("placed").fault_tolerance, 0);
        assert!(place_parts(&[], &mut rand::rng()).is_none());
    }

    #[test]
    fn ties_are_broken_in_varying_order() {
        let candidates = loads(&[0; 10]);
        let first_nodes: HashSet<String> =
            (0..50).map(|_| place_parts(&candidates, &mut rand::rng()).expect("placed").nodes[0].node_id.clone()).collect();
        assert!(first_nodes.len() > 3, "{first_nodes:?}");
    }
}
