//! The in-memory HNSW core alone (no Postgres): build time and recall@10 against
//! exact search at several ef_search values, with single-thread queries/s, on
//! embedding-shaped synthetic data (`ann::synth`). This is the ceiling the
//! `pgrec_hnsw` index builds on; the SQL benchmark compares with pgvector.
//!
//! Run: cargo bench --bench hnsw [-- ROWS]   (default 100000 rows, dims 128 and 384)

use std::time::Instant;

use pgrec::ann::{search, synth, BuildParams, Graph, Hnsw, Metric, Scored};

fn main() {
    let rows: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let params = BuildParams::default();
    println!("HNSW core, m={} ef_construction={}, {threads} build threads, cosine", params.m, params.ef_construction);
    println!(
        "{:>8} {:>5} {:>9} {:>8}  recall@10 (queries/s, 1 thread) at ef_search",
        "rows", "dims", "build s", "rows/s"
    );
    for dim in [128, 384] {
        let data = synth::embeddings(rows + 200, dim, 42);
        let (base, queries) = data.split_at(rows * dim);
        let metric = Metric::Cosine;
        let prepared: Vec<f32> =
            base.chunks(dim).flat_map(|v| metric.prepare(v).unwrap_or_else(|| vec![0.0; dim])).collect();
        let t = Instant::now();
        let g = Hnsw::build(metric, params, dim, prepared, threads, |_| Ok(())).expect("build");
        let build = t.elapsed().as_secs_f64();
        let qs: Vec<Vec<f32>> = queries.chunks(dim).filter_map(|q| metric.prepare(q)).collect();
        let truth: Vec<Vec<u32>> = qs
            .iter()
            .map(|q| {
                let mut all: Vec<Scored<u32>> =
                    (0..g.len() as u32).map(|n| Scored { dist: g.distance(q, n), node: n }).collect();
                all.select_nth_unstable(10);
                all.truncate(10);
                all.into_iter().map(|s| s.node).collect()
            })
            .collect();
        let mut line = format!("{rows:>8} {dim:>5} {build:>9.2} {:>8.0}  ", rows as f64 / build);
        for ef in [10, 20, 40, 80, 160] {
            let t = Instant::now();
            let mut hits = 0;
            for (q, want) in qs.iter().zip(&truth) {
                let got = search(&g, q, ef.max(10));
                hits += got.iter().take(10).filter(|s| want.contains(&s.node)).count();
            }
            let qps = qs.len() as f64 / t.elapsed().as_secs_f64();
            line += &format!("ef{ef}: {:.3} ({qps:.0}/s)  ", hits as f64 / (qs.len() * 10) as f64);
        }
        println!("{line}");
    }
    println!("pgvector 0.8.6 on this machine shape (issue #3): build 22.3 s (128d) / 30.6 s (384d);");
    println!("recall@10 at ef 10/20/40/80: 0.894/0.974/0.990/0.994 (128d), 0.840/0.938/0.975/0.979 (384d).");
}
