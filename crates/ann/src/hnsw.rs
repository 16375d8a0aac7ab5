//! The in-memory HNSW graph and its parallel construction.
//!
//! Nodes are inserted by rayon workers concurrently, each neighbour list behind
//! its own lock, as in hnswlib. The caller drives the build in batches from its
//! own thread ([`Hnsw::build`] calls `between_batches` there), so a Postgres
//! backend can check for cancellation and report progress without any worker
//! thread touching Postgres.

use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Mutex, RwLock};

use rayon::prelude::*;

use super::Metric;
use super::heuristic::{BuildParams, select_neighbors_flagged};
use super::huge;
use super::search::{Graph, Scored, Visited};
use super::update::{GraphMut, link_unreachable, plan_links, repair_after_delete};
use pgrec_base::error::{Error, ErrorKind, Result};
use pgrec_base::kernels::{self, Kernels};

/// An HNSW graph over vectors held in memory; nodes are `0..len()` in insertion order.
pub struct Hnsw {
    metric: Metric,
    params: BuildParams,
    dim: usize,
    kernels: &'static Kernels,
    data: Vec<f32>,
    levels: Vec<u8>,
    /// `upper[node][level - 1]`: the node's neighbours on upper levels.
    upper: Vec<Vec<RwLock<Links>>>,
    /// Layer 0, flat (every node has a list there, and nearly every search
    /// step reads one): per node a slot of 1 + 2·m words, its length then its
    /// ids, and beside it in `info0` each neighbour's [`Links::info`] packed
    /// in a word. The length word's top bit is the list's writer lock
    /// ([`LOCKED`]); searches read a slot without it, so one may see a list
    /// half rewritten, and as every word always holds some node's id that
    /// costs at most a detour. Against a lock and two vectors per node this
    /// is one cache miss instead of three dependent ones per list read, and
    /// reading writes nothing, so the other worker's cache keeps the line.
    layer0: Vec<AtomicU32>,
    info0: Vec<AtomicU64>,
    entry: RwLock<Option<(u32, usize)>>,
    /// Held while a node that raises the top level is inserted.
    promote: Mutex<()>,
    /// Nodes the build's last step linked again after concurrent inserts'
    /// pruning had cut them off.
    relinked: usize,
}

/// One neighbour list of the in-memory graph, nearest first. Beside each id
/// it keeps the neighbour's distance to the list's node and whether the
/// heuristic keeps it (`Some(true)`) or it only fills the list
/// (`Some(false)`), `None` until known: with these a full list takes one
/// more neighbour with a few dozen distances ([`Links::admit`]) instead of a
/// re-selection over every pair, which is what lets layer-0 lists stay full.
#[derive(Default)]
struct Links {
    ids: Vec<u32>,
    info: Vec<(f32, Option<bool>)>,
}

/// Bytes one layer-0 link takes in the in-memory graph (its id and its
/// packed [`Links::info`] entry), for the build's memory estimate.
pub const LINK_BYTES: usize = std::mem::size_of::<AtomicU32>() + std::mem::size_of::<AtomicU64>();

/// The writer lock bit of a layer-0 slot's length word.
const LOCKED: u32 = 1 << 31;

/// How many ids a layer-0 slot holds, from its length word (lock bit
/// masked, capped to the slot, as a reader may see a word mid-change).
fn listed(slot: &[AtomicU32], word: u32) -> usize {
    ((word & !LOCKED) as usize).min(slot.len() - 1)
}

/// A held layer-0 slot lock; dropping it publishes `keep` as the length and
/// releases the lock.
struct SlotLock<'a> {
    len: &'a AtomicU32,
    keep: u32,
}

impl Drop for SlotLock<'_> {
    fn drop(&mut self) {
        self.len.store(self.keep, Release);
    }
}

/// A [`Links::info`] entry as one word: the distance's bits, then the
/// standing (0 unknown, 1 fills the list, 2 kept).
fn pack(info: (f32, Option<bool>)) -> u64 {
    let standing = match info.1 {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    (u64::from(info.0.to_bits()) << 32) | standing
}

fn unpack(word: u64) -> (f32, Option<bool>) {
    let standing = match word & 3 {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    };
    (f32::from_bits((word >> 32) as u32), standing)
}

impl Links {
    /// A list from the heuristic's choice (`(neighbour, kept)`).
    fn chosen(mut chosen: Vec<(Scored<u32>, bool)>) -> Links {
        chosen.sort_unstable_by_key(|c| c.0);
        Links {
            ids: chosen.iter().map(|c| c.0.node).collect(),
            info: chosen.iter().map(|c| (c.0.dist, Some(c.1))).collect(),
        }
    }

    /// Adds `q` at its place by distance, its standing unknown.
    fn insert(&mut self, q: u32, dq: f32) {
        let at = self.info.partition_point(|&(d, _)| d <= dq);
        self.ids.insert(at, q);
        self.info.insert(at, (dq, None));
    }

    /// Takes `q` (at distance `dq`) into a full list of `cap` whose standings
    /// are all known, with the result the heuristic would give over the list
    /// plus `q` when it fills lists to `cap`: the kept neighbours, then the
    /// nearest others, so the farthest of those others leaves (or the
    /// farthest of all, if all are kept). Only what `q` can change is
    /// measured: `q` against the kept neighbours nearer than it; each kept one
    /// farther than `q` against the neighbours newly kept; and, once one of
    /// those lost its place, the others farther on afresh.
    fn admit(&mut self, q: u32, dq: f32, dist: impl Fn(u32, u32) -> f32) {
        let at = self.info.partition_point(|&(d, _)| d <= dq);
        let kept = |info: &[(f32, Option<bool>)], i: usize| info[i].1 == Some(true);
        let q_kept = (0..at).filter(|&i| kept(&self.info, i)).all(|i| dist(q, self.ids[i]) > dq);
        self.ids.insert(at, q);
        self.info.insert(at, (dq, Some(q_kept)));
        let mut added: Vec<u32> = if q_kept { vec![q] } else { Vec::new() };
        let mut lost_one = false;
        for i in at + 1..self.ids.len() {
            let (e, d) = (self.ids[i], self.info[i].0);
            if kept(&self.info, i) {
                if added.iter().any(|&a| dist(e, a) <= d) {
                    self.info[i].1 = Some(false);
                    lost_one = true;
                }
            } else if lost_one && (0..i).filter(|&j| kept(&self.info, j)).all(|j| dist(e, self.ids[j]) > d) {
                self.info[i].1 = Some(true);
                added.push(e);
            }
        }
        let last = self.ids.len() - 1;
        let out = (0..=last).rev().find(|&i| !kept(&self.info, i)).unwrap_or(last);
        self.ids.remove(out);
        self.info.remove(out);
    }
}

/// A visited set as a bitmap over node ids. Every insert of a build searches
/// once per level with a fresh set, and zeroing a bitmap over the whole
/// graph each time (125 kB per set for a million nodes) cost more than the
/// search's own bookkeeping; so a dropped bitmap clears only the words it set
/// and goes back to a small pool on its thread, and the next set is taken
/// from there.
pub struct Bitmap(Bits);

/// A bitmap's storage: its words and which of them are not zero.
#[derive(Default)]
struct Bits {
    words: Vec<u64>,
    touched: Vec<u32>,
}

thread_local! {
    static BITMAPS: std::cell::RefCell<Vec<Bits>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Bitmaps a thread keeps for reuse: a search holds two at once.
const POOLED_BITMAPS: usize = 4;

impl Bitmap {
    pub fn with_capacity(nodes: usize) -> Bitmap {
        let words = nodes.div_ceil(64);
        let mut b = BITMAPS.try_with(|p| p.borrow_mut().pop()).ok().flatten().unwrap_or_default();
        if b.words.len() < words {
            b.words.resize(words, 0);
        }
        Bitmap(b)
    }

    /// Frees the bitmaps this thread keeps (after a build, so a backend does
    /// not hold a large graph's bitmaps for the rest of its life).
    pub fn release_pool() {
        let _ = BITMAPS.try_with(|p| p.borrow_mut().clear());
    }
}

impl Drop for Bitmap {
    fn drop(&mut self) {
        let mut b = std::mem::take(&mut self.0);
        for &w in &b.touched {
            b.words[w as usize] = 0;
        }
        b.touched.clear();
        let _ = BITMAPS.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOLED_BITMAPS {
                p.push(b);
            }
        });
    }
}

impl Visited<u32> for Bitmap {
    #[inline]
    fn insert(&mut self, n: u32) -> bool {
        let (w, b) = ((n / 64) as usize, n % 64);
        let bits = &mut self.0;
        let word = bits.words[w];
        if word == 0 {
            bits.touched.push(w as u32);
        }
        bits.words[w] = word | (1 << b);
        word & (1 << b) == 0
    }
}

impl Graph for Hnsw {
    type Node = u32;
    type Visited = Bitmap;

    fn visited(&self) -> Bitmap {
        Bitmap::with_capacity(self.levels.len())
    }

    fn entry(&self) -> Option<(u32, usize)> {
        *self.entry.read().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn distance(&self, query: &[f32], node: u32) -> f32 {
        self.metric.distance(self.kernels, query, self.vector(node))
    }

    /// Starts loading every row before comparing the first (see
    /// `kernels::prefetch`): builds 15–20% faster and queries 8–26% more
    /// per second, in memory (`cargo bench --bench hnsw`).
    fn distances(&self, query: &[f32], nodes: &[u32], out: &mut Vec<f32>) {
        for &n in nodes {
            self.prefetch_row(n);
        }
        out.extend(nodes.iter().map(|&n| self.distance(query, n)));
    }

    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        if level == 0 {
            let slot = self.slot(node);
            let len = listed(slot, slot[0].load(Relaxed));
            out.extend(slot[1..=len].iter().map(|id| id.load(Relaxed)));
            return;
        }
        if let Some(l) = self.upper[node as usize].get(level - 1) {
            out.extend_from_slice(&l.read().unwrap_or_else(|e| e.into_inner()).ids);
        }
    }

    fn prefetch_neighbors(&self, node: u32, level: usize) {
        if level == 0 {
            let slot = self.slot(node);
            kernels::prefetch(slot.as_ptr().cast(), std::mem::size_of_val(slot));
        }
    }
}

/// The order in which one batch of a build is inserted: by the signs of
/// each vector's projections on [`LocalityOrder::BITS`] random directions
/// through the data's mean, so that one worker inserts near neighbours one
/// after another and finds most of the rows and lists its search reads still
/// in its caches, and the two halves a batch splits into lie apart. Which
/// rows form a batch is unchanged (the next ones in table order), so a build
/// still grows from a random sample of the data.
///
/// In memory, the same session (`cargo bench --bench hnsw`, 2 threads, with
/// huge pages): 100,000 × 384 cosine 12.6–13.1 s in table order, 6.9–8.4 s
/// ordered; 1,000,000 × 128 L2 145 s and 109 s; 50,000 × 128 L2 2.0–2.2 s and
/// 1.7–1.8 s. Recall@10 at ef_search 10 rose slightly (0.914 → 0.918 on 384
/// dimensions, 0.889 → 0.893 on the crash test's curve) and moved by at most
/// 0.0004 elsewhere. 12 to 32 directions measured alike.
struct LocalityOrder {
    /// `BITS` directions, `dim` wide each, and each one's projection of the mean.
    dirs: Vec<f32>,
    offsets: Vec<f32>,
}

impl LocalityOrder {
    const BITS: usize = 16;

    fn new(g: &Hnsw) -> LocalityOrder {
        let mut rng = pgrec_base::rng::Rng::new(0x10ca1);
        let dirs: Vec<f32> = (0..Self::BITS * g.dim).map(|_| rng.normal() as f32).collect();
        let mut mean = vec![0f64; g.dim];
        for v in g.data.chunks_exact(g.dim) {
            for (m, &x) in mean.iter_mut().zip(v) {
                *m += f64::from(x);
            }
        }
        let mean: Vec<f32> = mean.iter().map(|&m| (m / g.len().max(1) as f64) as f32).collect();
        let offsets = dirs.chunks_exact(g.dim).map(|d| (g.kernels.dot)(d, &mean)).collect();
        LocalityOrder { dirs, offsets }
    }

    /// The nodes of `batch`, ordered by their sign codes (ties by id).
    fn of(&self, g: &Hnsw, batch: std::ops::Range<usize>) -> Vec<u32> {
        let mut keyed: Vec<(u32, u32)> = batch
            .map(|i| {
                let v = g.vector(i as u32);
                let code = self
                    .dirs
                    .chunks_exact(g.dim)
                    .zip(&self.offsets)
                    .fold(0u32, |code, (d, &o)| code << 1 | u32::from((g.kernels.dot)(d, v) > o));
                (code, i as u32)
            })
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, i)| i).collect()
    }
}

impl Hnsw {
    /// Builds a graph over `vectors` (row-major, `dim` wide, already prepared with
    /// [`Metric::prepare`]) using `threads` workers. `between_batches(done)` runs on
    /// the calling thread after each batch; an error from it stops the build.
    pub fn build(
        metric: Metric,
        params: BuildParams,
        dim: usize,
        vectors: Vec<f32>,
        threads: usize,
        mut between_batches: impl FnMut(usize) -> Result<()>,
    ) -> Result<Hnsw> {
        if params.m < 2 || params.ef_construction < 1 || dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(Error::new(
                ErrorKind::InvalidParameterValue,
                format!("invalid hnsw build: m={}, ef_construction={}, dim={dim}", params.m, params.ef_construction),
            ));
        }
        let n = vectors.len() / dim;
        let seed = 0x5eed;
        let levels: Vec<u8> = (0..n).map(|i| params.level_for(i as u64, seed) as u8).collect();
        let upper = levels.iter().map(|&l| (0..l).map(|_| RwLock::new(Links::default())).collect()).collect();
        let layer0 = huge::filled(n * (1 + params.max_neighbors(0)), |_| AtomicU32::new(0));
        let info0 = huge::filled(n * params.max_neighbors(0), |_| AtomicU64::new(0));
        // Copied once into a buffer advised before it is touched (see
        // huge.rs); the caller's is freed at once.
        let data = huge::copy_of(&vectors);
        drop(vectors);
        let mut g = Hnsw {
            metric,
            params,
            dim,
            kernels: kernels::best(),
            data,
            levels,
            upper,
            layer0,
            info0,
            entry: RwLock::new(None),
            promote: Mutex::new(()),
            relinked: 0,
        };
        if n == 0 {
            return Ok(g);
        }
        g.insert(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| Error::new(ErrorKind::InvalidParameterValue, format!("cannot start build threads: {e}")))?;
        // Small first batches let the graph grow a backbone before wide
        // parallelism; later batches are large enough to keep workers busy.
        let mut done = 1;
        let order = LocalityOrder::new(&g);
        while done < n {
            let batch = (done / 4).clamp(256, 8192).min(n - done);
            let batch_order = order.of(&g, done..done + batch);
            pool.install(|| batch_order.par_iter().for_each(|&i| g.insert(i)));
            done += batch;
            between_batches(done)?;
        }
        let nodes: Vec<(u32, usize)> = (0..g.len() as u32).map(|n| (n, g.level(n))).collect();
        g.relinked = link_unreachable(&mut g, &nodes, |_| false, params);
        Bitmap::release_pool();
        Ok(g)
    }

    /// Nodes [`Hnsw::build`] linked again at its end (cut off by pruning).
    pub fn relinked(&self) -> usize {
        self.relinked
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn params(&self) -> BuildParams {
        self.params
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn level(&self, node: u32) -> usize {
        self.levels[node as usize] as usize
    }

    #[inline]
    pub fn vector(&self, node: u32) -> &[f32] {
        let i = node as usize * self.dim;
        &self.data[i..i + self.dim]
    }

    /// Starts loading `node`'s vector (see `kernels::prefetch`).
    fn prefetch_row(&self, node: u32) {
        let v = self.vector(node);
        kernels::prefetch(v.as_ptr().cast(), std::mem::size_of_val(v));
    }

    /// `node`'s slot in `layer0`.
    fn slot(&self, node: u32) -> &[AtomicU32] {
        let width = 1 + self.params.max_neighbors(0);
        let at = node as usize * width;
        &self.layer0[at..at + width]
    }

    /// Changes `node`'s list on `level` under its lock.
    fn update(&self, node: u32, level: usize, change: impl FnOnce(&mut Links)) {
        if level > 0 {
            let mut list = self.upper[node as usize][level - 1].write().unwrap_or_else(|e| e.into_inner());
            change(&mut list);
            return;
        }
        let slot = self.slot(node);
        let cap = slot.len() - 1;
        let info = &self.info0[node as usize * cap..(node as usize + 1) * cap];
        let mut word = slot[0].load(Relaxed);
        // Held for one list change (a few dozen distances at most), and two
        // workers rarely want the same list, so a spin serves.
        loop {
            if word & LOCKED == 0 {
                match slot[0].compare_exchange_weak(word, word | LOCKED, Acquire, Relaxed) {
                    Ok(_) => break,
                    Err(now) => word = now,
                }
            } else {
                std::hint::spin_loop();
                word = slot[0].load(Relaxed);
            }
        }
        // Released when this goes out of scope, also on unwind, so a panic
        // in `change` leaves the old list instead of a lock held forever.
        let mut held = SlotLock { len: &slot[0], keep: word };
        let len = listed(slot, word);
        let mut list = Links {
            ids: slot[1..=len].iter().map(|id| id.load(Relaxed)).collect(),
            info: info[..len].iter().map(|i| unpack(i.load(Relaxed))).collect(),
        };
        change(&mut list);
        let len = list.ids.len().min(cap);
        for (to, &id) in slot[1..].iter().zip(&list.ids[..len]) {
            to.store(id, Relaxed);
        }
        for (to, &i) in info.iter().zip(&list.info[..len]) {
            to.store(pack(i), Relaxed);
        }
        held.keep = len as u32;
    }

    fn dist(&self, a: u32, b: u32) -> f32 {
        self.metric.distance(self.kernels, self.vector(a), self.vector(b))
    }

    fn insert(&self, q: u32) {
        let level = self.level(q);
        let snapshot = self.entry();
        // A node that raises the top level is inserted alone, so the entry point
        // it installs is consistent with the links it made.
        let _guard = match snapshot {
            Some((_, top)) if level <= top => None,
            _ => Some(self.promote.lock().unwrap_or_else(|e| e.into_inner())),
        };
        let Some((ep, top)) = self.entry() else {
            *self.entry.write().unwrap_or_else(|e| e.into_inner()) = Some((q, level));
            return;
        };
        let plans = plan_links(self, q, self.vector(q), level, (ep, top), self.params, true, |a, b| self.dist(a, b));
        for (lv, chosen) in plans {
            let back: Vec<Scored<u32>> = chosen.iter().map(|c| c.0).collect();
            self.update(q, lv, |list| *list = Links::chosen(chosen));
            for s in back {
                self.connect(s.node, q, s.dist, lv);
            }
        }
        if level > top {
            *self.entry.write().unwrap_or_else(|e| e.into_inner()) = Some((q, level));
        }
    }

    /// Adds `q` to `node`'s list at `level`, re-selecting if the list overflows.
    fn connect(&self, node: u32, q: u32, dist: f32, level: usize) {
        let (cap, fill) = (self.params.max_neighbors(level), self.params.top_up(level));
        self.update(node, level, |list| {
            if list.ids.contains(&q) {
                return;
            }
            if list.ids.len() < cap {
                list.insert(q, dist);
                return;
            }
            if fill >= cap && list.info.iter().all(|i| i.1.is_some()) {
                for (&n, _) in list.ids.iter().zip(&list.info).filter(|(_, i)| i.1 == Some(true)) {
                    self.prefetch_row(n);
                }
                list.admit(q, dist, |a, b| self.dist(a, b));
                return;
            }
            let mut cands: Vec<Scored<u32>> =
                list.ids.iter().zip(&list.info).map(|(&n, i)| Scored { dist: i.0, node: n }).collect();
            cands.push(Scored { dist, node: q });
            cands.sort_unstable();
            *list = Links::chosen(select_neighbors_flagged(&cands, cap, fill, |a, b| self.dist(a, b)));
        });
    }

    /// Removes the nodes marked in `dead` (indexed by node id): no live list
    /// points to them afterwards, lists that did are repaired, and the entry point
    /// moves to a live node of the highest level left. This is what VACUUM does to
    /// the index, on the in-memory graph.
    pub fn remove(&mut self, dead: &[bool]) {
        let is_dead = |x: u32| dead.get(x as usize).copied().unwrap_or(false);
        let nodes: Vec<(u32, usize)> = (0..self.len() as u32).map(|n| (n, self.level(n))).collect();
        let params = self.params;
        repair_after_delete(self, &nodes, is_dead, params);
        // Repairs read the dead nodes' lists, so those are cleared only afterwards.
        for &(node, _) in nodes.iter().filter(|(n, _)| is_dead(*n)) {
            for level in 0..=self.level(node) {
                self.update(node, level, |list| *list = Links::default());
            }
        }
        if nodes.iter().all(|(n, _)| is_dead(*n)) {
            *self.entry.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
        // Live nodes whose only in-links came from dead ones are linked again.
        link_unreachable(self, &nodes, is_dead, params);
    }
}

impl GraphMut for Hnsw {
    fn node_vector(&self, node: u32, out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(self.vector(node));
    }

    fn set_links(&mut self, node: u32, level: usize, links: &[u32]) {
        let mut list = Links::default();
        for &x in links {
            list.insert(x, self.dist(node, x));
        }
        self.update(node, level, |l| *l = list);
    }

    fn set_entry(&mut self, node: u32, level: usize) {
        *self.entry.write().unwrap_or_else(|e| e.into_inner()) = Some((node, level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{search, synth};

    fn build(metric: Metric, data: &[f32], dim: usize) -> Hnsw {
        build_with(metric, data, dim, 2)
    }

    fn build_with(metric: Metric, data: &[f32], dim: usize, threads: usize) -> Hnsw {
        let prepared: Vec<f32> = data.chunks(dim).flat_map(|v| metric.prepare(v).unwrap()).collect();
        Hnsw::build(metric, BuildParams::default(), dim, prepared, threads, |_| Ok(())).unwrap()
    }

    fn exact(g: &Hnsw, q: &[f32], k: usize) -> Vec<u32> {
        let mut all: Vec<Scored<u32>> =
            (0..g.len() as u32).map(|n| Scored { dist: g.distance(q, n), node: n }).collect();
        all.sort_unstable();
        all.into_iter().take(k).map(|s| s.node).collect()
    }

    fn recall(metric: Metric, n: usize, dim: usize, ef: usize) -> f64 {
        let data = synth::embeddings(n + 100, dim, 7);
        let (base, queries) = data.split_at(n * dim);
        let g = build(metric, base, dim);
        let mut hits = 0;
        for q in queries.chunks(dim) {
            let q = metric.prepare(q).unwrap();
            let want = exact(&g, &q, 10);
            let got: Vec<u32> = search(&g, &q, ef).into_iter().take(10).map(|s| s.node).collect();
            hits += got.iter().filter(|n| want.contains(n)).count();
        }
        hits as f64 / (queries.len() / dim * 10) as f64
    }

    #[test]
    fn tiny_graphs_are_exact_when_ef_covers_them() {
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let data = synth::embeddings(60, 8, 3);
            let g = build(metric, &data, 8);
            for q in data.chunks(8).take(20) {
                let q = metric.prepare(q).unwrap();
                let got: Vec<u32> = search(&g, &q, 64).into_iter().map(|s| s.node).collect();
                assert_eq!(got.len(), 60, "{metric:?}: every node reachable");
                assert_eq!(&got[..10], &exact(&g, &q, 10)[..], "{metric:?}");
            }
        }
    }

    #[test]
    fn recall_at_10_on_clustered_vectors() {
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let r = recall(metric, 10_000, 128, 40);
            assert!(r >= 0.99, "{metric:?}: recall@10 {r:.3} < 0.99 at ef_search 40");
        }
    }

    #[test]
    fn admitting_into_a_full_list_equals_reselecting_over_every_pair() {
        // Random points around a base (node 0): a full list chosen by the
        // heuristic, then one newcomer at a time, each admitted both ways.
        let dim = 8;
        let data = synth::embeddings(400, dim, 11);
        let v = |n: u32| &data[n as usize * dim..(n as usize + 1) * dim];
        let k = kernels::best();
        let dist = |a: u32, b: u32| Metric::L2.distance(k, v(a), v(b));
        let cap = 12;
        let scored = |ids: &mut dyn Iterator<Item = u32>| {
            let mut s: Vec<Scored<u32>> = ids.map(|n| Scored { dist: dist(0, n), node: n }).collect();
            s.sort_unstable();
            s
        };
        let first = scored(&mut (1..60));
        let mut list = Links::chosen(select_neighbors_flagged(&first, cap, cap, dist));
        assert_eq!(list.ids.len(), cap);
        let mut changed = 0;
        for q in 60..400u32 {
            let before = list.ids.clone();
            let mut all = list.ids.clone();
            all.push(q);
            let want = Links::chosen(select_neighbors_flagged(&scored(&mut all.into_iter()), cap, cap, dist));
            list.admit(q, dist(0, q), dist);
            assert_eq!(list.ids, want.ids, "newcomer {q}");
            assert_eq!(list.info, want.info, "newcomer {q}");
            changed += usize::from(list.ids != before);
        }
        assert!(changed > 20, "newcomers changed the list only {changed} times: the test shows nothing");
    }

    #[test]
    fn neighbour_lists_respect_their_caps_and_never_self_link() {
        let data = synth::embeddings(3000, 16, 5);
        let g = build(Metric::L2, &data, 16);
        for n in 0..g.len() as u32 {
            for lv in 0..=g.level(n) {
                let mut l = Vec::new();
                g.neighbors(n, lv, &mut l);
                assert!(l.len() <= g.params().max_neighbors(lv));
                assert!(!l.contains(&n));
                assert!(l.iter().all(|&m| g.level(m) >= lv), "links point to nodes present on the level");
            }
        }
        let (_, top) = g.entry().unwrap();
        assert_eq!(top, (0..g.len() as u32).map(|n| g.level(n)).max().unwrap());
    }

    #[test]
    fn every_node_is_reachable_after_a_build() {
        for seed in 0..3 {
            let data = synth::embeddings(5000, 8, seed);
            let g = build(Metric::L2, &data, 8);
            let q = &data[..8];
            let found = search(&g, q, 5000);
            assert_eq!(found.len(), 5000, "seed {seed}: a search as wide as the graph finds every node");
        }
    }

    #[test]
    fn a_batch_is_inserted_near_neighbours_together() {
        // Two tight clusters far apart, alternating in table order: a batch
        // ordered by locality holds each cluster in one run, so it switches
        // from one to the other once instead of at every row.
        let dim = 8;
        let mut data = Vec::new();
        for i in 0..400 {
            let centre = if i % 2 == 0 { 5.0 } else { -5.0 };
            data.extend((0..dim).map(|d| centre + ((i * 7 + d) % 5) as f32 * 0.01));
        }
        let g = build(Metric::L2, &data, dim);
        let order = LocalityOrder::new(&g);
        let batch = order.of(&g, 100..300);
        let mut sorted = batch.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (100..300).collect::<Vec<u32>>());
        let switches = batch.windows(2).filter(|w| w[0] % 2 != w[1] % 2).count();
        assert_eq!(switches, 1, "{batch:?}");
    }

    #[test]
    fn empty_and_single_node_graphs() {
        let g = Hnsw::build(Metric::L2, BuildParams::default(), 4, vec![], 1, |_| Ok(())).unwrap();
        assert!(search(&g, &[0.0; 4], 10).is_empty());
        let g = Hnsw::build(Metric::L2, BuildParams::default(), 2, vec![1.0, 2.0], 1, |_| Ok(())).unwrap();
        assert_eq!(search(&g, &[0.0, 0.0], 10).iter().map(|s| s.node).collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn cancellation_stops_the_build() {
        let data = synth::embeddings(2000, 8, 1);
        let r = Hnsw::build(Metric::L2, BuildParams::default(), 8, data, 2, |done| {
            if done > 500 { Err(Error::new(ErrorKind::DataException, "canceled")) } else { Ok(()) }
        });
        assert_eq!(r.err().map(|e| e.message), Some("canceled".to_string()));
    }

    #[test]
    fn recall_after_deleting_a_fifth_stays_close_to_a_fresh_build() {
        // At the default ef_search (40), as the index serves it.
        const EF: usize = 40;
        let (n, dim) = (10_000, 128);
        let data = synth::embeddings(n + 100, dim, 11);
        let (base, queries) = data.split_at(n * dim);
        let dead: Vec<bool> = (0..n).map(|i| i % 5 == 2).collect();
        // One build thread: a parallel build differs run to run, and so would
        // this comparison (by about ±0.01).
        let mut g = build_with(Metric::L2, base, dim, 1);
        g.remove(&dead);
        let alive: Vec<usize> = (0..n).filter(|&i| !dead[i]).collect();
        let kept: Vec<f32> = alive.iter().flat_map(|&i| base[i * dim..(i + 1) * dim].to_vec()).collect();
        let fresh = build_with(Metric::L2, &kept, dim, 1);
        let (mut hits_removed, mut hits_fresh) = (0, 0);
        for q in queries.chunks(dim) {
            let want_fresh = exact(&fresh, q, 10);
            let want: Vec<u32> = want_fresh.iter().map(|&i| alive[i as usize] as u32).collect();
            let got: Vec<u32> = search(&g, q, EF).into_iter().take(10).map(|s| s.node).collect();
            assert!(got.iter().all(|&x| !dead[x as usize]), "a deleted node was returned");
            hits_removed += got.iter().filter(|x| want.contains(x)).count();
            let got_fresh: Vec<u32> = search(&fresh, q, EF).into_iter().take(10).map(|s| s.node).collect();
            hits_fresh += got_fresh.iter().filter(|x| want_fresh.contains(x)).count();
        }
        let total = (queries.len() / dim * 10) as f64;
        let (r_removed, r_fresh) = (hits_removed as f64 / total, hits_fresh as f64 / total);
        eprintln!("recall@10 at ef {EF}: after deleting 20% {r_removed:.3}, fresh build {r_fresh:.3}");
        assert!(r_removed >= r_fresh - 0.02, "after delete {r_removed:.3} vs fresh {r_fresh:.3}");
    }

    #[test]
    fn cosine_skips_zero_vectors() {
        assert_eq!(Metric::Cosine.prepare(&[0.0, 0.0]), None);
        assert_eq!(Metric::Cosine.prepare(&[3.0, 4.0]), Some(vec![0.6, 0.8]));
        assert_eq!(Metric::L2.to_operator_value(25.0), 5.0);
    }
}
