//! Single-threaded graph updates over the [`GraphMut`] trait: linking one new
//! node into an existing graph (what an index insert does) and repairing lists
//! after deletions (what VACUUM does). The index pages implement the trait; the
//! parallel in-memory build in `hnsw.rs` uses the same neighbour heuristic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use super::heuristic::{BuildParams, repair, select_neighbors, select_neighbors_flagged};
use super::search::{Graph, Scored, UPPER_EF, search, search_layer};

/// Write access to a graph, for one writer at a time.
pub trait GraphMut: Graph {
    /// The stored (prepared) vector of `node`.
    fn node_vector(&self, node: Self::Node, out: &mut Vec<f32>);
    /// Replaces the links of `node` on `level`.
    fn set_links(&mut self, node: Self::Node, level: usize, links: &[Self::Node]);
    /// Makes `node` (on `level`) the entry point.
    fn set_entry(&mut self, node: Self::Node, level: usize);
}

/// Distances between stored nodes, fetching each vector once per update.
struct PairDistances<'g, G: GraphMut> {
    g: &'g G,
    cache: HashMap<G::Node, Vec<f32>>,
}

impl<G: GraphMut> PairDistances<'_, G>
where
    G::Node: Hash,
{
    fn between(&mut self, a: G::Node, b: G::Node) -> f32 {
        let g = self.g;
        let va = self.cache.entry(a).or_insert_with(|| {
            let mut v = Vec::new();
            g.node_vector(a, &mut v);
            v
        });
        g.distance(va, b)
    }
}

/// Links `node`, already stored with empty lists on levels `0..=level`, into the
/// graph: the same search, heuristic and back-links as the parallel build.
pub fn link_new_node<G>(g: &mut G, node: G::Node, vector: &[f32], level: usize, params: BuildParams)
where
    G: GraphMut,
    G::Node: Hash,
{
    let Some(entry) = g.entry() else {
        g.set_entry(node, level);
        return;
    };
    let plans = {
        let mut pairs = PairDistances { g: &*g, cache: HashMap::new() };
        plan_links(&*g, node, vector, level, entry, params, false, |a, b| pairs.between(a, b))
    };
    for (lv, chosen) in plans {
        let ids: Vec<G::Node> = chosen.iter().map(|c| c.0.node).collect();
        g.set_links(node, lv, &ids);
        for (s, _) in chosen {
            add_back_link(g, s.node, node, s.dist, lv, params);
        }
    }
    if level > entry.1 {
        g.set_entry(node, level);
    }
}

/// A node's planned links: per level, its neighbours, each marked kept by
/// the heuristic or not.
pub(super) type Plan<N> = Vec<(usize, Vec<(Scored<N>, bool)>)>;

/// The planning half of an HNSW insert, shared by the parallel build and
/// [`link_new_node`]: a narrow descent ([`UPPER_EF`]) from `entry` to the node's top level, then on
/// each of its levels (top down) a search with ef_construction and the neighbour
/// heuristic. Returns the links to give the node per level, each marked
/// kept by the heuristic or not (see [`select_neighbors_flagged`]); `dist`
/// measures between two stored nodes. `admits`: the graph takes back-links
/// into full lists cheaply, so lists are filled to [`BuildParams::top_up`]
/// rather than [`BuildParams::top_up_reselecting`].
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_links<G: Graph>(
    g: &G,
    node: G::Node,
    vector: &[f32],
    level: usize,
    (ep, top): (G::Node, usize),
    params: BuildParams,
    admits: bool,
    mut dist: impl FnMut(G::Node, G::Node) -> f32,
) -> Plan<G::Node> {
    let fill = |lv| if admits { params.top_up(lv) } else { params.top_up_reselecting(lv) };
    let mut cur = vec![Scored { dist: g.distance(vector, ep), node: ep }];
    for lv in (level + 1..=top).rev() {
        let mut visited = g.visited();
        cur = search_layer(g, vector, &cur, UPPER_EF, lv, &mut visited);
    }
    let mut plans = Vec::with_capacity(level.min(top) + 1);
    for lv in (0..=level.min(top)).rev() {
        let mut visited = g.visited();
        let found: Vec<Scored<G::Node>> = search_layer(g, vector, &cur, params.ef_construction, lv, &mut visited)
            .into_iter()
            .filter(|s| s.node != node)
            .collect();
        plans.push((lv, select_neighbors_flagged(&found, params.max_neighbors(lv), fill(lv), &mut dist)));
        if !found.is_empty() {
            cur = found;
        }
    }
    plans
}

/// Adds `new` to `target`'s list on `level`, re-selecting when the list is full.
fn add_back_link<G>(g: &mut G, target: G::Node, new: G::Node, dist: f32, level: usize, params: BuildParams)
where
    G: GraphMut,
    G::Node: Hash,
{
    let mut links = Vec::new();
    g.neighbors(target, level, &mut links);
    if links.contains(&new) {
        return;
    }
    let cap = params.max_neighbors(level);
    if links.len() < cap {
        links.push(new);
        g.set_links(target, level, &links);
        return;
    }
    let mut tv = Vec::new();
    g.node_vector(target, &mut tv);
    let mut cands: Vec<Scored<G::Node>> = links.iter().map(|&x| Scored { dist: g.distance(&tv, x), node: x }).collect();
    cands.push(Scored { dist, node: new });
    cands.sort_unstable();
    let chosen: Vec<G::Node> = {
        let mut pairs = PairDistances { g: &*g, cache: HashMap::new() };
        select_neighbors(&cands, cap, params.top_up_reselecting(level), |a, b| pairs.between(a, b))
            .into_iter()
            .map(|s| s.node)
            .collect()
    };
    g.set_links(target, level, &chosen);
}

/// Repairs every live node's lists after the nodes for which `is_dead` holds were
/// deleted, and moves the entry point off a dead node. `nodes` lists every stored
/// node with its level. Returns how many lists changed.
pub fn repair_after_delete<G>(
    g: &mut G,
    nodes: &[(G::Node, usize)],
    is_dead: impl Fn(G::Node) -> bool,
    params: BuildParams,
) -> usize
where
    G: GraphMut,
    G::Node: Hash,
{
    let mut changed = 0;
    for &(node, level) in nodes.iter().filter(|(n, _)| !is_dead(*n)) {
        for lv in 0..=level {
            let mut current = Vec::new();
            g.neighbors(node, lv, &mut current);
            let cap = params.max_neighbors(lv);
            let fixed = {
                let gr = &*g;
                let mut pairs = PairDistances { g: gr, cache: HashMap::new() };
                repair(
                    node,
                    &current,
                    &is_dead,
                    |x| {
                        let mut out = Vec::new();
                        gr.neighbors(x, lv, &mut out);
                        out
                    },
                    |a, b| pairs.between(a, b),
                    cap,
                    params.m.min(cap),
                )
            };
            if let Some(fixed) = fixed {
                g.set_links(node, lv, &fixed);
                changed += 1;
            }
        }
    }
    if g.entry().is_some_and(|(e, _)| is_dead(e))
        && let Some(&(n, l)) = nodes.iter().filter(|(n, _)| !is_dead(*n)).max_by_key(|(_, l)| *l)
    {
        g.set_entry(n, l);
    }
    changed
}

/// Links every live node that no search can reach on layer 0 any more (its
/// in-links were pruned away by concurrent inserts, or died with the nodes
/// VACUUM removed — a whole cluster can be cut off that way). Each such node
/// gets a link from the nearest node a search from the entry does reach:
/// appended if that list has room, else replacing its farthest member; what
/// the node itself links to becomes reachable with it. Returns the links added.
pub fn link_unreachable<G>(
    g: &mut G,
    nodes: &[(G::Node, usize)],
    is_dead: impl Fn(G::Node) -> bool,
    params: BuildParams,
) -> usize
where
    G: GraphMut,
    G::Node: Hash,
{
    let Some((entry, _)) = g.entry() else { return 0 };
    let mut seen: HashSet<G::Node> = HashSet::new();
    let mark_from = |g: &G, start: G::Node, seen: &mut HashSet<G::Node>| {
        if !seen.insert(start) {
            return;
        }
        let mut queue = VecDeque::from([start]);
        let mut nbrs = Vec::new();
        while let Some(x) = queue.pop_front() {
            nbrs.clear();
            g.neighbors(x, 0, &mut nbrs);
            for &y in &nbrs {
                if !is_dead(y) && seen.insert(y) {
                    queue.push_back(y);
                }
            }
        }
    };
    mark_from(g, entry, &mut seen);
    let cap = params.max_neighbors(0);
    let mut added = 0;
    let (mut v, mut own) = (Vec::new(), Vec::new());
    for &(u, _) in nodes {
        if is_dead(u) || seen.contains(&u) {
            continue;
        }
        g.node_vector(u, &mut v);
        // The node's own nearest reachable neighbour takes it back as a
        // back-link would have: its out-links were its nearest when it was
        // linked. A search from the entry (single-threaded, ef_construction
        // wide) only when none of them is reachable: on a 1M-row build, a
        // search for each of the unreachable nodes took twice the build.
        own.clear();
        g.neighbors(u, 0, &mut own);
        let nearest_own = own
            .iter()
            .copied()
            .filter(|&n| n != u && !is_dead(n) && seen.contains(&n))
            .map(|n| (g.distance(&v, n), n))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, n)| n);
        let Some(near) = nearest_own.or_else(|| {
            search(&*g, &v, params.ef_construction)
                .into_iter()
                .map(|s| s.node)
                .find(|&n| n != u && !is_dead(n) && seen.contains(&n))
        }) else {
            continue;
        };
        let mut links = Vec::new();
        g.neighbors(near, 0, &mut links);
        if links.len() < cap {
            links.push(u);
        } else {
            let mut nv = Vec::new();
            g.node_vector(near, &mut nv);
            let far = (0..links.len()).max_by(|&a, &b| g.distance(&nv, links[a]).total_cmp(&g.distance(&nv, links[b])));
            if let Some(far) = far {
                links[far] = u;
            }
        }
        g.set_links(near, 0, &links);
        added += 1;
        mark_from(g, u, &mut seen);
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::Bitmap;
    use crate::{Metric, search, synth};
    use pgrec_base::kernels;

    /// The simplest GraphMut: what the index pages will look like to the algorithm.
    struct VecGraph {
        metric: Metric,
        vectors: Vec<Vec<f32>>,
        links: Vec<Vec<Vec<u32>>>,
        entry: Option<(u32, usize)>,
    }

    impl Graph for VecGraph {
        type Node = u32;
        type Visited = Bitmap;
        fn visited(&self) -> Bitmap {
            Bitmap::with_capacity(self.vectors.len())
        }
        fn entry(&self) -> Option<(u32, usize)> {
            self.entry
        }
        fn distance(&self, q: &[f32], n: u32) -> f32 {
            self.metric.distance(kernels::best(), q, &self.vectors[n as usize])
        }
        fn neighbors(&self, n: u32, level: usize, out: &mut Vec<u32>) {
            if let Some(l) = self.links[n as usize].get(level) {
                out.extend_from_slice(l);
            }
        }
    }

    impl GraphMut for VecGraph {
        fn node_vector(&self, n: u32, out: &mut Vec<f32>) {
            out.clear();
            out.extend_from_slice(&self.vectors[n as usize]);
        }
        fn set_links(&mut self, n: u32, level: usize, links: &[u32]) {
            self.links[n as usize][level] = links.to_vec();
        }
        fn set_entry(&mut self, n: u32, level: usize) {
            self.entry = Some((n, level));
        }
    }

    fn grow(data: &[f32], dim: usize) -> VecGraph {
        let p = BuildParams::default();
        let mut g = VecGraph { metric: Metric::L2, vectors: vec![], links: vec![], entry: None };
        for (i, v) in data.chunks(dim).enumerate() {
            let level = p.level_for(i as u64, 1);
            g.vectors.push(v.to_vec());
            g.links.push(vec![Vec::new(); level + 1]);
            link_new_node(&mut g, i as u32, v, level, p);
        }
        g
    }

    fn recall(g: &VecGraph, queries: &[f32], dim: usize, skip: impl Fn(u32) -> bool) -> f64 {
        let mut hits = 0;
        let mut total = 0;
        for q in queries.chunks(dim) {
            let mut all: Vec<Scored<u32>> = (0..g.vectors.len() as u32)
                .filter(|&n| !skip(n))
                .map(|n| Scored { dist: g.distance(q, n), node: n })
                .collect();
            all.sort_unstable();
            let want: Vec<u32> = all.iter().take(10).map(|s| s.node).collect();
            let got = search(g, q, 40);
            assert!(got.iter().all(|s| !skip(s.node)), "search returned a deleted node");
            hits += got.iter().take(10).filter(|s| want.contains(&s.node)).count();
            total += 10;
        }
        hits as f64 / total as f64
    }

    #[test]
    fn one_at_a_time_inserts_reach_the_same_recall() {
        let dim = 64;
        let data = synth::embeddings(5_100, dim, 9);
        let (base, queries) = data.split_at(5_000 * dim);
        let g = grow(base, dim);
        let r = recall(&g, queries, dim, |_| false);
        assert!(r >= 0.95, "recall@10 {r:.3}");
        for (n, lists) in g.links.iter().enumerate() {
            for (lv, l) in lists.iter().enumerate() {
                assert!(l.len() <= BuildParams::default().max_neighbors(lv));
                assert!(!l.contains(&(n as u32)));
            }
        }
    }

    #[test]
    fn repair_after_delete_keeps_recall_and_drops_dead_links() {
        let dim = 64;
        let data = synth::embeddings(5_100, dim, 4);
        let (base, queries) = data.split_at(5_000 * dim);
        let mut g = grow(base, dim);
        let before = recall(&g, queries, dim, |_| false);
        let dead = |n: u32| n.is_multiple_of(5);
        let nodes: Vec<(u32, usize)> = g.links.iter().enumerate().map(|(i, l)| (i as u32, l.len() - 1)).collect();
        let changed = repair_after_delete(&mut g, &nodes, dead, BuildParams::default());
        assert!(changed > 0);
        for (n, lists) in g.links.iter().enumerate() {
            if !dead(n as u32) {
                assert!(lists.iter().flatten().all(|&x| !dead(x)), "node {n} still links to a dead node");
            }
        }
        let after = recall(&g, queries, dim, dead);
        assert!(after >= before - 0.02, "recall after deleting 20%: {after:.3}, before: {before:.3}");
    }

    #[test]
    fn a_cluster_cut_off_by_deletes_is_linked_again() {
        // Two far-apart clusters joined only through one bridge node.
        let dim = 2;
        let mut data: Vec<f32> = Vec::new();
        for i in 0..40 {
            data.extend([i as f32 * 0.01, 0.0]);
        }
        for i in 0..40 {
            data.extend([100.0 + i as f32 * 0.01, 0.0]);
        }
        let mut g = grow(&data, dim);
        let nodes: Vec<(u32, usize)> = g.links.iter().enumerate().map(|(i, l)| (i as u32, l.len() - 1)).collect();
        // Cut every link between the clusters, as VACUUM removing the bridges would.
        for (n, lists) in g.links.iter_mut().enumerate() {
            for l in lists.iter_mut() {
                l.retain(|&m| (m < 40) == (n < 40));
            }
        }
        let entry = g.entry.unwrap().0;
        let reach = |g: &VecGraph| {
            let mut seen = vec![false; g.vectors.len()];
            let mut stack = vec![entry];
            seen[entry as usize] = true;
            while let Some(x) = stack.pop() {
                for &y in &g.links[x as usize][0] {
                    if !std::mem::replace(&mut seen[y as usize], true) {
                        stack.push(y);
                    }
                }
            }
            seen.iter().filter(|&&s| s).count()
        };
        assert_eq!(reach(&g), 40, "the far cluster is cut off");
        let added = link_unreachable(&mut g, &nodes, |_| false, BuildParams::default());
        assert!(added >= 1);
        assert_eq!(reach(&g), 80, "every node reachable again");
    }

    #[test]
    fn a_node_cut_off_alone_is_taken_back_by_its_nearest_out_neighbour() {
        // 60 points on a line; node 30 loses every in-link but keeps its own.
        let data: Vec<f32> = (0..60).map(|i| i as f32).collect();
        let mut g = grow(&data, 1);
        let nodes: Vec<(u32, usize)> = g.links.iter().enumerate().map(|(i, l)| (i as u32, l.len() - 1)).collect();
        if g.entry.is_some_and(|(e, _)| e == 30) {
            g.entry = Some((0, g.links[0].len() - 1));
        }
        for lists in g.links.iter_mut() {
            for l in lists.iter_mut() {
                l.retain(|&m| m != 30);
            }
        }
        let own = g.links[30][0].clone();
        assert!(!own.is_empty());
        let nearest = *own.iter().min_by_key(|&&m| (m as i64 - 30).abs()).unwrap();
        assert_eq!(link_unreachable(&mut g, &nodes, |_| false, BuildParams::default()), 1);
        let holders: Vec<u32> = (0..60).filter(|&n| g.links[n as usize][0].contains(&30)).collect();
        assert_eq!(holders, [nearest], "only its nearest out-neighbour links to it");
    }

    #[test]
    fn first_node_becomes_the_entry() {
        let mut g = VecGraph { metric: Metric::L2, vectors: vec![vec![1.0]], links: vec![vec![vec![]]], entry: None };
        link_new_node(&mut g, 0, &[1.0], 0, BuildParams::default());
        assert_eq!(g.entry, Some((0, 0)));
    }
}
