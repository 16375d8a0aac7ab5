//! Distance kernels: SIMD (AVX2+FMA / NEON, whichever this CPU has) against the
//! portable fallback, at the dimensions real embeddings use. Criterion reports
//! throughput in "elements", counted as floating-point operations, so Gelem/s
//! reads as GFLOP/s; a summary table of both sets side by side closes the run.
//!
//! Run: cargo bench --bench kernels

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use pgrec::kernels::{self, Kernels};

const DIMS: [usize; 4] = [128, 384, 768, 1536];

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0).collect()
}

/// (name, flops per element, kernel call)
type Case = (&'static str, u64, fn(&Kernels, &[f32], &[f32]) -> f32);

const CASES: [Case; 4] = [
    ("dot", 2, |k, a, b| (k.dot)(a, b)),
    ("l2_squared", 3, |k, a, b| (k.l2_squared)(a, b)),
    ("l1", 3, |k, a, b| (k.l1)(a, b)),
    ("cosine(dot+norms)", 6, |k, a, b| (k.dot_norms)(a, b).dot),
];

fn sets() -> Vec<&'static Kernels> {
    let best = kernels::best();
    let portable = kernels::portable();
    if std::ptr::eq(best, portable) { vec![portable] } else { vec![best, portable] }
}

fn bench(c: &mut Criterion) {
    for (name, flops, f) in CASES {
        let mut g = c.benchmark_group(name);
        for d in DIMS {
            let (a, b) = (data(d, 1), data(d, 7));
            g.throughput(Throughput::Elements(flops * d as u64));
            for k in sets() {
                g.bench_with_input(BenchmarkId::new(k.name, d), &d, |bch, _| {
                    bch.iter(|| f(k, black_box(&a), black_box(&b)))
                });
            }
        }
        g.finish();
    }
}

/// GFLOP/s of one kernel at one size, timed directly so the summary needs no
/// parsing of criterion's files: enough calls for ~50 ms, best of 5.
fn gflops(k: &Kernels, f: fn(&Kernels, &[f32], &[f32]) -> f32, flops: u64, d: usize) -> f64 {
    let (a, b) = (data(d, 1), data(d, 7));
    let calls = (50_000_000 / d).max(1000);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..calls {
            black_box(f(k, black_box(&a), black_box(&b)));
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    (flops * d as u64 * calls as u64) as f64 / best / 1e9
}

fn summary() {
    let best = kernels::best();
    let portable = kernels::portable();
    println!("\nGFLOP/s, {} vs {} (same run, one core):", best.name, portable.name);
    println!("{:<18} {:>6} {:>12} {:>12} {:>8}", "kernel", "dims", best.name, portable.name, "speedup");
    for (name, flops, f) in CASES {
        for d in DIMS {
            let s = gflops(best, f, flops, d);
            let p = gflops(portable, f, flops, d);
            println!("{name:<18} {d:>6} {s:>12.2} {p:>12.2} {:>7.1}x", s / p);
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
