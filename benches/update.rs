//! `update_model()`'s fold-in against a full retrain, in the pure core, on
//! amazon-book (KGAT's split, `../shared/data`): a random 90% of the training
//! rows (seed 42) trains the base model; the other 10% is then folded in
//! (`pgrec::recsys::update`), and, beside it in the same run, the model is
//! trained again on all of them. Each is scored on test.txt (all items the
//! model knows ranked, every training row of the user excluded; users and
//! items a model lacks are left out): Recall@20 and NDCG@20, and the seconds each
//! took. Default params, as `train()` uses them.
//!
//! Run: cargo bench --bench update [-- ALGORITHM...]   (default: als bpr);
//! `benches/update_peers.sh` runs it and implicit's `partial_fit_users` /
//! `partial_fit_items` on the same split (written to
//! `target/bench-splits/amazon-book-update/`).

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::read;
use pgrec::recsys::update::{UpdateParams, update};
use pgrec::recsys::{Csr, Dataset, Model, Row, fit_json, metrics};

/// Recall@20 and NDCG@20 of `m` on `test`, masking each user's `train`
/// items; users and items the model lacks are left out (for the base model
/// of the default run: 1 user and 12 items).
fn score(m: &Model, train: &[(i64, i64)], test: &[(i64, i64)]) -> (f64, f64) {
    let users: HashMap<i64, u32> = m.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
    let items: HashMap<i64, u32> = m.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
    let index = |rows: &[(i64, i64)]| {
        Csr::from_triples(
            m.n_users(),
            m.n_items(),
            rows.iter().filter_map(|(u, i)| Some((*users.get(u)?, *items.get(i)?, 1.0))),
        )
    };
    let got = metrics::evaluate(m, &index(train), &index(test), None, &[20]);
    (got["recall@20"], got["ndcg@20"])
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/amazon-book");
    if !dir.join("train.txt").exists() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let algos: Vec<String> = if args.is_empty() { vec!["als".into(), "bpr".into()] } else { args };
    let train = read(&dir.join("train.txt"));
    let test = read(&dir.join("test.txt"));
    let mut rng = pgrec::rng::Rng::new(42);
    let (mut base, mut later) = (Vec::new(), Vec::new());
    for &(user, item) in &train {
        let r = Row { user, item, weight: 1.0, ts: None };
        if rng.uniform() < 0.1 { later.push(r) } else { base.push(r) }
    }
    let all: Vec<Row> = train.iter().map(|&(user, item)| Row { user, item, weight: 1.0, ts: None }).collect();
    // The split, for benches/update_peers.py (implicit's partial_fit on the same rows).
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-splits/amazon-book-update");
    std::fs::create_dir_all(&out).expect("split folder");
    for (name, rows) in [("base.tsv", &base), ("later.tsv", &later)] {
        let text: String = rows.iter().map(|r| format!("{}\t{}\n", r.user, r.item)).collect();
        std::fs::write(out.join(name), text).expect("split file");
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    println!(
        "amazon-book: {} training rows, {} as the base (90%), {} folded in; {threads} threads",
        all.len(),
        base.len(),
        later.len()
    );
    for algo in algos {
        let json = r#"{"test_fraction": 0}"#;
        let t0 = Instant::now();
        let m = fit_json(&Dataset::from_rows(&base).expect("dataset"), &algo, json, threads).expect("base").model;
        let base_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (u, done) = update(&m, &later, &UpdateParams::default(), &pool, &mut || Ok(())).expect("update");
        let update_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let full = fit_json(&Dataset::from_rows(&all).expect("dataset"), &algo, json, threads).expect("full").model;
        let full_s = t0.elapsed().as_secs_f64();
        for (what, model, secs) in [
            ("base (90%)", &m, base_s),
            ("base + update_model (10%)", &u, update_s),
            ("full retrain (100%)", &full, full_s),
        ] {
            let (r, n) = score(model, &train, &test);
            println!("{algo:<4} {what:<26} Recall@20 {r:.4}  NDCG@20 {n:.4}  {secs:>7.1} s");
        }
        println!(
            "{algo:<4} update: {} new users, {} new items, {} users updated",
            done.new_users, done.new_items, done.users_updated
        );
    }
}
