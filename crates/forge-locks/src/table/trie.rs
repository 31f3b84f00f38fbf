//! The lock index: a trie keyed by path components. A held or queued pattern is filed at its
//! literal prefix (a literal at itself, a glob at its longest literal directory prefix), so a
//! request only meets patterns filed at its ancestors or in its own subtree: disjoint parts of
//! the repository never look at each other.

use super::fast_hash::FastMap;

/// Index of a node in the arena.
pub(crate) type NodeId = u32;

/// What a node files: held entries and queued request items.
#[derive(Debug, Default)]
pub(crate) struct Node {
    parent: NodeId,
    children: FastMap<Box<str>, NodeId>,
    /// Held entries (indexes into the entry slab).
    pub(crate) held: Vec<u32>,
    /// Queued items: (request sequence number, item index).
    pub(crate) queued: Vec<(u64, u32)>,
    /// Held plus queued filings in this node's subtree, itself included.
    count: u32,
}

/// The component trie. Node 0 is the repository root and is never freed.
#[derive(Debug)]
pub(crate) struct Trie {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    /// Live nodes whose subtree files nothing. They are kept so that locking the same path
    /// again does not rebuild it, and swept once they outnumber the rest.
    n_empty: usize,
}

impl Default for Trie {
    fn default() -> Trie {
        Trie {
            nodes: vec![Node::default()],
            free: Vec::new(),
            n_empty: 0,
        }
    }
}

impl Trie {
    /// The node for `prefix`, created on the way down, with the subtree counts of it and its
    /// ancestors raised by one (the caller files one thing there).
    pub(crate) fn file(&mut self, prefix: &[Box<str>]) -> NodeId {
        let mut at: NodeId = 0;
        self.raise(0);
        for name in prefix {
            let next = match self.nodes[at as usize].children.get(name) {
                Some(&child) => child,
                None => {
                    let node = Node {
                        parent: at,
                        ..Node::default()
                    };
                    let child = match self.free.pop() {
                        Some(id) => {
                            self.nodes[id as usize] = node;
                            id
                        }
                        None => {
                            self.nodes.push(node);
                            NodeId::try_from(self.nodes.len() - 1)
                                .expect("fewer than 2^32 trie nodes")
                        }
                    };
                    self.nodes[at as usize].children.insert(name.clone(), child);
                    self.n_empty += 1;
                    child
                }
            };
            at = next;
            self.raise(at);
        }
        at
    }

    fn raise(&mut self, id: NodeId) {
        let node = &mut self.nodes[id as usize];
        if node.count == 0 && id != 0 {
            self.n_empty -= 1;
        }
        node.count += 1;
    }

    pub(crate) fn add_held(&mut self, prefix: &[Box<str>], entry: u32) -> NodeId {
        let node = self.file(prefix);
        self.nodes[node as usize].held.push(entry);
        node
    }

    pub(crate) fn add_queued(&mut self, prefix: &[Box<str>], seq: u64, item: u32) -> NodeId {
        let node = self.file(prefix);
        self.nodes[node as usize].queued.push((seq, item));
        node
    }

    pub(crate) fn remove_held(&mut self, node: NodeId, entry: u32) {
        let held = &mut self.nodes[node as usize].held;
        if let Some(pos) = held.iter().position(|&e| e == entry) {
            held.swap_remove(pos);
            self.unfile(node);
        }
    }

    pub(crate) fn remove_queued(&mut self, node: NodeId, seq: u64, item: u32) {
        let queued = &mut self.nodes[node as usize].queued;
        if let Some(pos) = queued.iter().position(|&q| q == (seq, item)) {
            queued.swap_remove(pos);
            self.unfile(node);
        }
    }

    /// Lowers the counts from `node` to the root; sweeps empty nodes when they pile up.
    fn unfile(&mut self, mut node: NodeId) {
        loop {
            let n = &mut self.nodes[node as usize];
            n.count -= 1;
            if n.count == 0 && node != 0 {
                self.n_empty += 1;
            }
            if node == 0 {
                break;
            }
            node = n.parent;
        }
        let n_live = self.nodes.len() - self.free.len();
        if self.n_empty > 1024 && self.n_empty * 2 > n_live {
            self.sweep();
        }
    }

    /// Frees every node whose subtree files nothing.
    fn sweep(&mut self) {
        let mut stack: Vec<NodeId> = vec![0];
        while let Some(id) = stack.pop() {
            let children: Vec<(Box<str>, NodeId)> = self.nodes[id as usize]
                .children
                .iter()
                .map(|(k, &v)| (k.clone(), v))
                .collect();
            for (name, child) in children {
                if self.nodes[child as usize].count == 0 {
                    self.nodes[id as usize].children.remove(&name);
                    self.free_subtree(child);
                } else {
                    stack.push(child);
                }
            }
        }
        self.n_empty = 0;
    }

    fn free_subtree(&mut self, root: NodeId) {
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            let node = std::mem::take(&mut self.nodes[id as usize]);
            stack.extend(node.children.values().copied());
            self.free.push(id);
        }
    }

    /// Calls `visit` on every non-empty node that can hold a pattern overlapping one filed at
    /// `prefix`: the existing ancestors of `prefix` (root first), then, if the whole prefix
    /// exists, the nodes of its subtree.
    pub(crate) fn visit(&self, prefix: &[Box<str>], mut visit: impl FnMut(&Node)) {
        let mut at: NodeId = 0;
        if self.nodes[0].count == 0 {
            return;
        }
        for name in prefix {
            let node = &self.nodes[at as usize];
            if !node.held.is_empty() || !node.queued.is_empty() {
                visit(node);
            }
            match node.children.get(name) {
                Some(&child) => at = child,
                None => return,
            }
        }
        let mut stack = vec![at];
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id as usize];
            if !node.held.is_empty() || !node.queued.is_empty() {
                visit(node);
            }
            stack.extend(
                node.children
                    .values()
                    .copied()
                    .filter(|&c| self.nodes[c as usize].count > 0),
            );
        }
    }

    /// Number of nodes that file something (for tests).
    #[cfg(test)]
    pub(crate) fn live_nodes(&self) -> usize {
        self.nodes.len() - self.free.len() - self.n_empty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<Box<str>> {
        s.split('/')
            .filter(|c| !c.is_empty())
            .map(Box::from)
            .collect()
    }

    fn visited(trie: &Trie, prefix: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.visit(&path(prefix), |n| out.extend(&n.held));
        out.sort_unstable();
        out
    }

    #[test]
    fn visits_ancestors_and_subtree_only() {
        let mut trie = Trie::default();
        let root = trie.add_held(&path(""), 0);
        let src = trie.add_held(&path("src"), 1);
        let api = trie.add_held(&path("src/api"), 2);
        let docs = trie.add_held(&path("docs"), 3);
        assert_eq!(visited(&trie, "src"), [0, 1, 2]);
        assert_eq!(visited(&trie, "src/api/x"), [0, 1, 2]);
        assert_eq!(visited(&trie, "docs/x"), [0, 3]);
        assert_eq!(visited(&trie, "other"), [0]);
        assert_eq!(visited(&trie, ""), [0, 1, 2, 3]);
        trie.remove_held(api, 2);
        trie.remove_held(docs, 3);
        trie.remove_held(src, 1);
        trie.remove_held(root, 0);
        assert_eq!(trie.live_nodes(), 1);
        assert_eq!(visited(&trie, ""), Vec::<u32>::new());
    }
}
