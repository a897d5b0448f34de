//! The binary radix tree of a legacy GeoIP file, built in one arena (`Vec<[u32; 2]>`, no
//! per-node allocation). A child is empty (0), a node index, or a leaf value tagged with
//! [`LEAF`]. IPv4 and IPv6 trees can share one arena so a v6 tree links the v4 tree's root
//! under several prefixes; [`Tree::finish`] folds equal sibling leaves and numbers the nodes
//! reachable from a root in the order libGeoIP walks them (root = node 0).

use super::network::Network;

/// Tags a child as a leaf value.
pub const LEAF: u32 = 1 << 31;
/// The leaf value of "no data" in a finished tree.
pub const NO_DATA: u32 = LEAF - 1;

/// On a leaf: a value the slot inherits from a less specific network around it, not one a
/// network was inserted with. On a node reference: the slot is exactly an inserted network,
/// refined below by more specific ones. Either way the slot is covered by an inserted network.
const MARK: u32 = 1 << 30;

/// Leaf values must be below this (the two tag bits hold [`LEAF`] and the mark).
pub const MAX_VALUE: u32 = MARK - 1;

/// What [`Tree::insert`] found where the network goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// No network inserted before shares an address with it.
    Alone,
    /// It overlaps networks inserted before (around it or inside it); each address keeps the
    /// answer of the most specific network holding it, whatever the order of insertion.
    Overlapping,
    /// The same network was inserted before; the tree is unchanged.
    Duplicate,
}

/// A radix tree arena; index 0 is a sentinel so that 0 can mean "no child".
///
/// Invariant: the most specific inserted network holding an address gives its leaf. A slot is
/// 0 (no data), a leaf inserted there, a leaf inherited (marked) from a less specific network
/// above, or a node reference, marked when the slot is itself an inserted network. Inside a
/// covered region no slot is 0, so a fill from a less specific network stops at what is marked
/// or inserted below it and only replaces inherited leaves, which come from further up.
pub struct Tree {
    nodes: Vec<[u32; 2]>,
    /// Roots that a `/0` network was inserted at (a root has no parent slot to mark).
    covered_roots: Vec<u32>,
}

/// A finished tree: nodes in post-order, each child either a post-order index or a leaf.
pub struct Finished {
    /// Node records in post-order; the root is the last one.
    pub post: Vec<[u32; 2]>,
}

impl Finished {
    /// The number of nodes (libGeoIP's segment for record-based editions).
    pub fn len(&self) -> u32 {
        self.post.len() as u32
    }

    /// Always false: a finished tree has at least its root.
    pub fn is_empty(&self) -> bool {
        self.post.is_empty()
    }

    /// The nodes in file order (root first), each child as `Ok(node index)` or `Err(leaf)`
    /// where a leaf is a value or [`NO_DATA`].
    pub fn file_order(&self) -> impl Iterator<Item = [Result<u32, u32>; 2]> + '_ {
        let last = self.post.len() as u32 - 1;
        self.post.iter().rev().map(move |rec| {
            rec.map(|c| {
                if c & LEAF != 0 {
                    Err(c & !LEAF)
                } else {
                    Ok(last - c)
                }
            })
        })
    }
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty arena.
    pub fn new() -> Self {
        Tree {
            nodes: vec![[0, 0]],
            covered_roots: Vec::new(),
        }
    }

    /// Allocates a new, empty root.
    pub fn new_root(&mut self) -> u32 {
        self.push([0, 0])
    }

    fn push(&mut self, rec: [u32; 2]) -> u32 {
        self.nodes.push(rec);
        (self.nodes.len() - 1) as u32
    }

    /// Maps `net` (below `root`) to leaf `value` (at most [`MAX_VALUE`]), most specific
    /// network first: inside `net`, addresses that more specific networks inserted before
    /// hold keep their answers, and networks inserted later inside `net` take theirs.
    pub fn insert(&mut self, root: u32, net: &Network, value: u32) -> Inserted {
        debug_assert!(value <= MAX_VALUE);
        let inherited = LEAF | MARK | value;
        if net.prefix == 0 {
            if self.covered_roots.contains(&root) {
                return Inserted::Duplicate;
            }
            let before = self.nodes[root as usize] != [0, 0];
            self.fill(root, inherited);
            self.covered_roots.push(root);
            return if before {
                Inserted::Overlapping
            } else {
                Inserted::Alone
            };
        }
        let (node, b, mut overlap) = self.descend(root, net.bits, net.prefix);
        let slot = self.nodes[node as usize][b];
        if slot == 0 {
            self.nodes[node as usize][b] = LEAF | value;
        } else if slot & LEAF != 0 {
            if slot & MARK == 0 {
                return Inserted::Duplicate;
            }
            // Inherited from a less specific network: this one is more specific.
            self.nodes[node as usize][b] = LEAF | value;
            overlap = true;
        } else if slot & MARK != 0 {
            return Inserted::Duplicate;
        } else {
            // More specific networks were inserted inside this one: fill around them.
            self.fill(slot, inherited);
            self.nodes[node as usize][b] = slot | MARK;
            overlap = true;
        }
        if overlap {
            Inserted::Overlapping
        } else {
            Inserted::Alone
        }
    }

    /// Links the node `subtree` under `prefix` (at least 1) bits of `bits` below `root`.
    pub fn link(&mut self, root: u32, bits: u128, prefix: u8, subtree: u32) {
        let (node, b, _) = self.descend(root, bits, prefix.max(1));
        self.nodes[node as usize][b] = subtree;
    }

    /// Walks from `root` towards the slot of `prefix` (at least 1) bits of `bits`, making
    /// nodes on the way and splitting leaves met there (their halves inherit the value).
    /// Returns the slot's node and side, and whether a network around the slot was met.
    fn descend(&mut self, root: u32, bits: u128, prefix: u8) -> (u32, usize, bool) {
        let mut node = root;
        let mut covered = self.covered_roots.contains(&root);
        for depth in 0..u32::from(prefix) - 1 {
            let b = (bits >> (127 - depth)) as usize & 1;
            let next = self.nodes[node as usize][b];
            node = if next == 0 {
                let n = self.push([0, 0]);
                self.nodes[node as usize][b] = n;
                n
            } else if next & LEAF == 0 {
                covered |= next & MARK != 0;
                next & !MARK
            } else {
                covered = true;
                let half = next | MARK;
                let n = self.push([half, half]);
                // A leaf inserted right here stays marked as that network's slot.
                self.nodes[node as usize][b] = if next & MARK == 0 { n | MARK } else { n };
                n
            };
        }
        let b = (bits >> (127 - (u32::from(prefix) - 1))) as usize & 1;
        (node, b, covered)
    }

    /// Gives `leaf` (an inherited leaf) to every slot below `node` that no more specific
    /// network holds: empty slots and leaves inherited from further up.
    fn fill(&mut self, node: u32, leaf: u32) {
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for b in 0..2 {
                let c = self.nodes[n as usize][b];
                if c == 0 || (c & LEAF != 0 && c & MARK != 0) {
                    self.nodes[n as usize][b] = leaf;
                } else if c & LEAF == 0 && c & MARK == 0 {
                    stack.push(c);
                }
            }
        }
    }

    /// Numbers the nodes reachable from `root`, folding nodes whose two children are the same
    /// leaf. `shared` is a node reached more than once (the v4 root in a v6 tree), or 0.
    pub fn finish(&self, root: u32, shared: u32) -> Finished {
        let mut post = Vec::with_capacity(self.nodes.len() / 2 + 1);
        let mut memo = None;
        let top = self.walk(root, shared, &mut memo, &mut post);
        if top & LEAF != 0 {
            post.push([top, top]);
        }
        Finished { post }
    }

    fn walk(
        &self,
        node: u32,
        shared: u32,
        memo: &mut Option<u32>,
        post: &mut Vec<[u32; 2]>,
    ) -> u32 {
        if node == shared {
            if let Some(done) = *memo {
                return done;
            }
        }
        let [l, r] = self.nodes[node as usize].map(|c| {
            if c == 0 {
                LEAF | NO_DATA
            } else if c & LEAF != 0 {
                LEAF | (c & MAX_VALUE)
            } else {
                self.walk(c & !MARK, shared, memo, post)
            }
        });
        let out = if l == r && l & LEAF != 0 {
            l
        } else {
            post.push([l, r]);
            (post.len() - 1) as u32
        };
        if node == shared {
            *memo = Some(out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a finished tree like libGeoIP: the leaf for `bits`, and the depth it was found at.
    fn lookup(f: &Finished, bits: u128) -> (u32, u32) {
        let nodes: Vec<_> = f.file_order().collect();
        let mut n = 0;
        for depth in 0..128 {
            match nodes[n][(bits >> (127 - depth)) as usize & 1] {
                Ok(next) => n = next as usize,
                Err(leaf) => return (leaf, depth + 1),
            }
        }
        panic!("no leaf within 128 bits")
    }

    fn net(s: &str) -> Network {
        Network::parse(s).unwrap()
    }

    #[test]
    fn finds_inserted_networks_and_folds_siblings() {
        let mut t = Tree::new();
        let root = t.new_root();
        t.insert(root, &net("10.0.0.0/9"), 7);
        t.insert(root, &net("10.128.0.0/9"), 7);
        t.insert(root, &net("192.168.1.0/24"), 3);
        let f = t.finish(root, 0);
        assert_eq!(lookup(&f, net("10.200.0.0/32").bits), (7, 8));
        assert_eq!(lookup(&f, net("192.168.1.77/32").bits), (3, 24));
        assert_eq!(lookup(&f, net("192.168.2.1/32").bits).0, NO_DATA);
        // 10/8 became one leaf: 8 nodes down to it, 24 down to 192.168.1/24 sharing 1.
        assert_eq!(f.len(), 8 + 23);
    }

    #[test]
    fn splits_a_leaf_for_a_more_specific_network() {
        let mut t = Tree::new();
        let root = t.new_root();
        t.insert(root, &net("0.0.0.0/0"), 1);
        t.insert(root, &net("8.8.8.0/24"), 2);
        let f = t.finish(root, 0);
        assert_eq!(lookup(&f, net("8.8.8.8/32").bits).0, 2);
        assert_eq!(lookup(&f, net("8.8.9.8/32").bits).0, 1);
        assert_eq!(lookup(&f, net("200.1.1.1/32").bits).0, 1);
    }

    #[test]
    fn a_linked_subtree_is_written_once() {
        let mut t = Tree::new();
        let v4 = t.new_root();
        t.insert(v4, &net("1.2.3.0/24"), 5);
        let v6 = t.new_root();
        t.insert(v6, &net("2001:db8::/32"), 6);
        t.link(v6, 0, 96, v4);
        t.link(v6, 0xffff << 32, 96, v4);
        t.link(v6, 0x2002 << 112, 16, v4);
        let alone = t.finish(v4, 0).len();
        let f = t.finish(v6, v4);
        let v4_in_v6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
        assert_eq!(lookup(&f, v4_in_v6("::1.2.3.4")).0, 5);
        assert_eq!(lookup(&f, v4_in_v6("::ffff:1.2.3.4")).0, 5);
        assert_eq!(lookup(&f, v4_in_v6("2002:102:304::1")).0, 5);
        assert_eq!(lookup(&f, v4_in_v6("::ffff:1.2.4.4")).0, NO_DATA);
        assert_eq!(lookup(&f, v4_in_v6("2001:db8::1")).0, 6);
        // The v4 nodes appear once; the rest are the paths to the three links and 2001:db8::/32.
        assert!(f.len() < alone + 96 + 96 + 16 + 32, "{}", f.len());
    }

    /// Every order of `items`.
    fn orders<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in orders(&rest) {
                tail.insert(0, first.clone());
                out.push(tail);
            }
        }
        out
    }

    #[test]
    fn the_most_specific_network_wins_whatever_the_order() {
        let nets = [
            ("1.0.0.0/8", 1),
            ("1.0.1.0/24", 2),
            ("1.0.0.0/16", 3),
            ("1.0.1.128/25", 4),
            ("0.0.0.0/0", 5),
            ("1.0.3.0/24", 6),
        ];
        let probes = [
            ("1.0.1.1", 2),
            ("1.0.1.200", 4),
            ("1.0.2.1", 3),
            ("1.0.3.3", 6),
            ("1.5.0.0", 1),
            ("9.9.9.9", 5),
            ("0.0.0.0", 5),
        ];
        let all = orders(&nets);
        assert_eq!(all.len(), 720);
        let mut sizes = Vec::new();
        for order in all {
            let mut t = Tree::new();
            let root = t.new_root();
            let mut overlapping = 0;
            for (n, v) in &order {
                match t.insert(root, &net(n), *v) {
                    Inserted::Alone => {}
                    Inserted::Overlapping => overlapping += 1,
                    Inserted::Duplicate => panic!("{n} is no duplicate ({order:?})"),
                }
            }
            // Only the first network and one of the two disjoint /24s before their /16 can be
            // alone: every other one meets a network around or inside it.
            assert!(overlapping >= nets.len() - 2, "{order:?}");
            let f = t.finish(root, 0);
            for (addr, want) in probes {
                let got = lookup(&f, net(&format!("{addr}/32")).bits).0;
                assert_eq!(got, want, "{addr} after {order:?}");
            }
            sizes.push(f.len());
        }
        sizes.dedup();
        assert_eq!(sizes.len(), 1, "the same tree in every order: {sizes:?}");
    }

    #[test]
    fn disjoint_networks_are_alone_and_a_repeated_one_is_a_duplicate() {
        let mut t = Tree::new();
        let root = t.new_root();
        assert_eq!(t.insert(root, &net("1.0.1.0/24"), 2), Inserted::Alone);
        assert_eq!(t.insert(root, &net("1.0.2.0/24"), 3), Inserted::Alone);
        assert_eq!(t.insert(root, &net("1.0.1.0/24"), 9), Inserted::Duplicate);
        assert_eq!(t.insert(root, &net("1.0.0.0/8"), 1), Inserted::Overlapping);
        assert_eq!(t.insert(root, &net("1.0.0.0/8"), 9), Inserted::Duplicate);
        assert_eq!(t.insert(root, &net("0.0.0.0/0"), 5), Inserted::Overlapping);
        assert_eq!(t.insert(root, &net("0.0.0.0/0"), 9), Inserted::Duplicate);
        assert_eq!(t.insert(root, &net("1.0.4.0/24"), 4), Inserted::Overlapping);
        let f = t.finish(root, 0);
        for (addr, want) in [
            ("1.0.1.1", 2),
            ("1.0.2.1", 3),
            ("1.0.4.1", 4),
            ("1.9.0.0", 1),
            ("8.8.8.8", 5),
        ] {
            assert_eq!(
                lookup(&f, net(&format!("{addr}/32")).bits).0,
                want,
                "{addr}"
            );
        }
    }

    #[test]
    fn an_empty_tree_has_one_node() {
        let mut t = Tree::new();
        let root = t.new_root();
        let f = t.finish(root, 0);
        assert_eq!(f.len(), 1);
        assert_eq!(lookup(&f, 0).0, NO_DATA);
    }
}
