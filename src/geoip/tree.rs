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

/// A radix tree arena; index 0 is a sentinel so that 0 can mean "no child".
pub struct Tree {
    nodes: Vec<[u32; 2]>,
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

    /// Maps `net` (below `root`) to leaf `value`
    /// (< [`NO_DATA`]). A leaf met on the way is split; a subtree at the target is replaced.
    pub fn insert(&mut self, root: u32, net: &Network, value: u32) {
        debug_assert!(value < NO_DATA);
        self.set(root, net.bits, net.prefix, LEAF | value);
    }

    /// Links the node `subtree` under `prefix` bits of `bits` below `root`.
    pub fn link(&mut self, root: u32, bits: u128, prefix: u8, subtree: u32) {
        self.set(root, bits, prefix, subtree);
    }

    fn set(&mut self, root: u32, bits: u128, prefix: u8, child: u32) {
        if prefix == 0 {
            self.nodes[root as usize] = [child, child];
            return;
        }
        let mut node = root;
        for depth in 0..u32::from(prefix) - 1 {
            let b = (bits >> (127 - depth)) as usize & 1;
            let next = self.nodes[node as usize][b];
            node = if next != 0 && next & LEAF == 0 {
                next
            } else {
                let n = self.push([next, next]);
                self.nodes[node as usize][b] = n;
                n
            };
        }
        let b = (bits >> (127 - (u32::from(prefix) - 1))) as usize & 1;
        self.nodes[node as usize][b] = child;
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
                c
            } else {
                self.walk(c, shared, memo, post)
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

    #[test]
    fn an_empty_tree_has_one_node() {
        let mut t = Tree::new();
        let root = t.new_root();
        let f = t.finish(root, 0);
        assert_eq!(f.len(), 1);
        assert_eq!(lookup(&f, 0).0, NO_DATA);
    }
}
