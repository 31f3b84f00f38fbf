//! Folding a stack of layers into one layer's worth of operations (what publish and the
//! overlay views apply).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Layer, Op};

/// One entry of a folded stack: the op and the layer tree that holds its data.
#[derive(Clone, Debug)]
pub(crate) struct Folded {
    /// The op.
    pub(crate) op: Op,
    /// The file or link in a layer tree (for data-carrying ops).
    pub(crate) source: PathBuf,
}

/// Folds `stack` (oldest first) into one layer's worth of operations relative to the
/// repository: the net effect of generations 1..=n on every path they touch.
pub(crate) fn fold(stack: &[Arc<Layer>]) -> BTreeMap<String, Folded> {
    let mut acc: BTreeMap<String, Folded> = BTreeMap::new();
    for layer in stack {
        for (path, &op) in &layer.ops {
            let source = layer.tree.join(path);
            let previous = acc.get(path).map(|f| f.op);
            let op = match op {
                Op::Dir => match previous {
                    Some(Op::Dir) | Some(Op::Opaque) => continue,
                    Some(_) => Op::Opaque,
                    None => Op::Dir,
                },
                other => other,
            };
            if op.hides_below() {
                let prefix = format!("{path}/");
                let below: Vec<String> = acc
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in below {
                    acc.remove(&p);
                }
            }
            acc.insert(path.clone(), Folded { op, source });
        }
    }
    acc
}
