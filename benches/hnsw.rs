//! The in-memory HNSW core alone (no Postgres): build time, recall@10 against
//! exact search, the queries that found none of their true top 10, and
//! single-thread queries/s at several ef_search values, on three data sets:
//! the index issue's 50,000 × 128 `synth` vectors under L2, 100,000 × 384
//! under cosine, and the crash test's tangled curve beside a uniform blob.
//!
//! Each graph is searched twice: with the descent pgrec uses (a beam of
//! `UPPER_EF` through the upper layers) and with the HNSW paper's greedy
//! descent (1), which pgvector and hnswlib use, so the effect of that choice is
//! measured in the same run on the same graph. pgvector itself is compared
//! through SQL by `benches/hnsw_index.rs`.
//!
//! Run: cargo bench --bench hnsw [-- [l2] [cos384] [curve] [l2_1m] [QUERIES]]   (default: the first three, 1000
//! held-out queries; l2_1m, 1,000,000 × 128, only when named)

use std::cell::Cell;
use std::time::Instant;

use pgrec::ann::{BuildParams, Graph, Hnsw, Metric, Scored, UPPER_EF, search_with, synth};

struct Case {
    name: &'static str,
    metric: Metric,
    params: BuildParams,
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
}

/// Points of a 1-D curve that folds through 16 dimensions (its nearest
/// neighbours lie far apart along it) beside a uniform blob: the rows of
/// scripts/crash-test.sh. Queries are every 13th point.
fn curve_and_blob() -> Case {
    let mut rng = pgrec::rng::Rng::new(9);
    let mut base = Vec::new();
    for i in 1..=2000 {
        for k in 1..=16 {
            let (i, k) = (f64::from(i), f64::from(k));
            base.push(((i * 0.37 + k * 1.1).sin() + (i * k * 0.013).cos()) as f32);
        }
    }
    for _ in 0..4000 * 16 {
        base.push((rng.uniform() - 0.5) as f32);
    }
    let queries = base.chunks(16).step_by(13).flatten().copied().collect();
    Case {
        name: "curve + blob, L2, m 8, efc 32",
        metric: Metric::L2,
        params: BuildParams { m: 8, ef_construction: 32 },
        dim: 16,
        base,
        queries,
    }
}

fn synth_case(name: &'static str, metric: Metric, rows: usize, dim: usize, queries: usize) -> Case {
    let mut data = synth::embeddings(rows + queries, dim, 42);
    let queries = data.split_off(rows * dim);
    Case { name, metric, params: BuildParams::default(), dim, base: data, queries }
}

/// A graph that counts the distances a search computes: the cost that page
/// reads multiply once the graph lives in index pages. Counted in a pass of
/// its own, so the timed pass carries no counter.
struct Counting<'a> {
    g: &'a Hnsw,
    distances: Cell<u64>,
}

impl Graph for Counting<'_> {
    type Node = u32;
    type Visited = <Hnsw as Graph>::Visited;

    fn visited(&self) -> Self::Visited {
        self.g.visited()
    }
    fn entry(&self) -> Option<(u32, usize)> {
        self.g.entry()
    }
    fn distance(&self, query: &[f32], node: u32) -> f32 {
        self.distances.set(self.distances.get() + 1);
        self.g.distance(query, node)
    }
    fn neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        self.g.neighbors(node, level, out)
    }
}

fn run(c: &Case, threads: usize) {
    let dim = c.dim;
    let prepared: Vec<f32> =
        c.base.chunks(dim).flat_map(|v| c.metric.prepare(v).unwrap_or_else(|| vec![0.0; dim])).collect();
    let t = Instant::now();
    let g = Hnsw::build(c.metric, c.params, dim, prepared, threads, |_| Ok(())).expect("build");
    let build = t.elapsed().as_secs_f64();
    let qs: Vec<Vec<f32>> = c.queries.chunks(dim).filter_map(|q| c.metric.prepare(q)).collect();
    let truth: Vec<Vec<u32>> = qs
        .iter()
        .map(|q| {
            let mut all: Vec<Scored<u32>> =
                (0..g.len() as u32).map(|n| Scored { dist: g.distance(q, n), node: n }).collect();
            all.sort_unstable();
            all.into_iter().take(10).map(|s| s.node).collect()
        })
        .collect();
    println!();
    println!(
        "{}: {} rows x {dim}, {} queries, built in {build:.2} s with {threads} threads",
        c.name,
        g.len(),
        qs.len()
    );
    println!(
        "  ef_search | descent | recall@10 | queries with none of their top 10 | queries/s (1 thread) | distances/query"
    );
    for ef in [10, 20, 40, 80, 160] {
        for (label, upper) in [("beam", UPPER_EF), ("greedy", 1)] {
            let t = Instant::now();
            let mut hits = 0;
            let mut lost = 0;
            for (q, want) in qs.iter().zip(&truth) {
                let got = search_with(&g, q, ef.max(10), upper);
                let h = got.iter().take(10).filter(|s| want.contains(&s.node)).count();
                hits += h;
                lost += usize::from(h == 0);
            }
            let qps = qs.len() as f64 / t.elapsed().as_secs_f64();
            let recall = hits as f64 / (qs.len() * 10) as f64;
            let counting = Counting { g: &g, distances: Cell::new(0) };
            for q in &qs {
                search_with(&counting, q, ef.max(10), upper);
            }
            let per = counting.distances.get() as f64 / qs.len() as f64;
            println!("  {ef:>9} | {label:<7} | {recall:>9.4} | {lost:>33} | {qps:>20.0} | {per:>15.0}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let queries: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    let wants = |tag: &str| args.iter().all(|a| a.parse::<usize>().is_ok()) || args.iter().any(|a| a == tag);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "HNSW core in memory; pgrec's descent keeps {UPPER_EF} candidates per upper layer (beam), the paper's 1 (greedy)"
    );
    if wants("l2") {
        run(&synth_case("synth, L2, m 16, efc 64", Metric::L2, 50_000, 128, queries), threads);
    }
    if args.iter().any(|a| a == "l2_1m") {
        run(&synth_case("synth, L2, m 16, efc 64", Metric::L2, 1_000_000, 128, queries), threads);
    }
    if wants("cos384") {
        run(&synth_case("synth, cosine, m 16, efc 64", Metric::Cosine, 100_000, 384, queries), threads);
    }
    if wants("curve") {
        run(&curve_and_blob(), threads);
    }
}
