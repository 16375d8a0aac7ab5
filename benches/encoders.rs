//! Encoder throughput in the pure core (no Postgres): all-MiniLM-L6-v2
//! sentences per second at batch 1 and 32 for short and 128-token inputs,
//! tiny-CLIP images per second, the machine's measured f32 matrix-multiply
//! GFLOP/s through candle (the ceiling for any encoder here), and from it the
//! estimated images per second of CLIP ViT-B/32. `benches/encoders.sh` adds
//! the same through SQL and sentence-transformers on PyTorch side by side.
//!
//! Run: PGREC_MINILM_DIR=target/models/all-MiniLM-L6-v2 cargo bench --bench encoders

use std::path::PathBuf;
use std::time::Instant;

use pgrec::embed::{Encoder, ModelFiles};

/// Short inputs: a product title each.
pub const SHORT: [&str; 8] = [
    "Red cotton polo shirt",
    "Stainless steel chef knife",
    "Wireless noise-cancelling headphones",
    "Trail running shoes for wet weather",
    "Cast iron skillet, 12 inch",
    "Bluetooth portable speaker",
    "Slim fit denim jeans",
    "Hiking backpack, 30 litres",
];

/// About 128 word pieces once tokenized.
fn long_text(k: usize) -> String {
    (0..12)
        .map(|i| format!("item {k} review part {i}: sturdy, comfortable and good value"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `f` (which processes `per_call` inputs) for about `secs` seconds.
fn rate(secs: f64, per_call: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < secs {
        f();
        n += per_call;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SAFETY: main has started no thread yet.
    unsafe { pgrec::embed::set_candle_environment(threads) };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    // Matrix multiply ceiling: 1024³ f32 through candle, as the models run.
    let n = 1024;
    let a = candle_core::Tensor::randn(0f32, 1.0, (n, n), &candle_core::Device::Cpu).expect("tensor");
    let mm = pool.install(|| rate(3.0, 1, || drop(a.matmul(&a).expect("matmul"))));
    let gflops = mm * 2.0 * (n * n * n) as f64 / 1e9;
    println!("candle f32 matmul 1024x1024x1024: {gflops:.1} GFLOP/s ({threads} threads)");
    // CLIP ViT-B/32: 50 tokens of width 768, 12 layers, MLP 3072, plus the
    // patch embedding; two FLOPs per multiply-add.
    let (t, d, l, m) = (50f64, 768f64, 12f64, 3072f64);
    let vit_flops = 2.0 * (l * (4.0 * t * d * d + 2.0 * t * d * m + 2.0 * t * t * d) + 49.0 * 3072.0 * d);
    println!(
        "CLIP ViT-B/32 image tower: {:.1} GFLOP per image -> at most {:.1} images/s at that rate",
        vit_flops / 1e9,
        gflops * 1e9 / vit_flops
    );

    let dir = std::env::var("PGREC_MINILM_DIR").unwrap_or_else(|_| "target/models/all-MiniLM-L6-v2".into());
    match ModelFiles::from_dir(&PathBuf::from(&dir)).and_then(|f| Encoder::load(&f)) {
        Err(e) => println!("skipped MiniLM: {e} (run ./scripts/test.sh or ./scripts/demo.sh once to fetch it)"),
        Ok(enc) => {
            let longs: Vec<String> = (0..32).map(long_text).collect();
            let tokens = enc.tokenizer().count(&longs[0], &mut || Ok(())).expect("count");
            let short32: Vec<&str> = SHORT.iter().cycle().take(32).copied().collect();
            let long32: Vec<&str> = longs.iter().map(String::as_str).collect();
            for (label, inputs) in [("short", &short32), (&*format!("{tokens}-token"), &long32)] {
                let mut k = 0;
                let one = pool.install(|| {
                    rate(5.0, 1, || {
                        k = (k + 1) % inputs.len();
                        enc.embed_texts(&inputs[k..k + 1]).expect("embed");
                    })
                });
                let batch = pool.install(|| rate(5.0, 32, || drop(enc.embed_texts(inputs).expect("embed"))));
                println!(
                    "pgrec core all-MiniLM-L6-v2, {label} inputs: batch 1 {one:.1} sentences/s, batch 32 {batch:.1} sentences/s"
                );
            }
        }
    }

    let clip_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let enc = Encoder::load(&ModelFiles::from_dir(&clip_dir).expect("fixture")).expect("tiny clip");
    let clip = enc.clip("tiny-clip").expect("clip");
    let png = std::fs::read(clip_dir.join("shapes.png")).expect("image");
    let imgs: Vec<&[u8]> = (0..32).map(|_| png.as_slice()).collect();
    let per_s = pool.install(|| rate(3.0, 32, || drop(clip.embed_images(&imgs, 1 << 24).expect("embed"))));
    println!("pgrec core tiny CLIP (32x32, 2 layers): {per_s:.0} images/s at batch 32 (decode + preprocess + forward)");
}
