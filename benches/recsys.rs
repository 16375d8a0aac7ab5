//! ALS and BPR (or any algorithm named) on amazon-book (KGAT's train/test
//! split, `../shared/data`), in the pure core (no Postgres): seconds per epoch,
//! the whole training's seconds, and Recall@20 / NDCG@20 on the given test
//! file, all items ranked, training items excluded, default params.
//! `benches/recsys_peers.sh` and `benches/item_item_peers.sh` run the same
//! with implicit, Cornac and a numpy EASE and print the side-by-side table.
//!
//! Run: cargo bench --bench recsys [-- ALGORITHM [PARAMS_JSON]]
//! (`BENCH_THREADS=N` sets the number of worker threads; default all cores;
//! `BENCH_SET=ml100k` or `music` runs on MovieLens 100K (every rating an
//! interaction) or music-kgcn's listened artists instead, a random 20% of
//! each user's items held out with seed 42 and written as
//! `target/bench-splits/SET/{train,test}.txt` for the peers' scripts).

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::read;
use pgrec::recsys::{Algorithm, Dataset, Params, Row, data::Csr, metrics};

/// A param as the run used it ("-" if the algorithm has no such key).
fn param(p: &Params, key: &str) -> String {
    p.to_json().get(key).map_or("-".into(), |v| v.to_string())
}

/// Reads one line of a raw interactions file as (user, item), if it is one.
type LineParser = fn(&str) -> Option<(i64, i64)>;

/// The dataset's folder of train.txt and test.txt (one line per user: the
/// user, then the items), writing the split first for a set without one;
/// None (with a line saying so) when the data is absent.
fn data_dir() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("../shared/data");
    let set = std::env::var("BENCH_SET").unwrap_or_else(|_| "amazon-book".into());
    let (source, pairs): (_, LineParser) = match set.as_str() {
        "amazon-book" => {
            let dir = data.join("amazon-book");
            let ok = dir.join("train.txt").exists();
            if !ok {
                println!("skipped: {} is absent (the datasets are not part of the repository)", dir.display());
            }
            return ok.then_some(dir);
        }
        "ml100k" => (data.join("ml-100k/u.data"), |l| {
            let mut it = l.split_whitespace().map(|x| x.parse::<i64>().ok());
            Some((it.next()??, it.next()??))
        }),
        "music" => (data.join("music-kgcn/preprocessed/ratings_final.txt"), |l| {
            let v: Vec<i64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3 && v[2] == 1).then(|| (v[0], v[1]))
        }),
        other => panic!("unknown BENCH_SET {other}: use amazon-book, ml100k or music"),
    };
    let Ok(text) = std::fs::read_to_string(&source) else {
        println!("skipped: {} is absent (the datasets are not part of the repository)", source.display());
        return None;
    };
    let rows: Vec<Row> =
        text.lines().filter_map(pairs).map(|(user, item)| Row { user, item, weight: 1.0, ts: None }).collect();
    let ds = Dataset::from_rows(&rows).expect("dataset");
    let parts = pgrec::recsys::split::split(&ds, 0.2, 42);
    let dir = root.join("target/bench-splits").join(&set);
    std::fs::create_dir_all(&dir).expect("split folder");
    // Test items no training row has cannot be ranked by anyone: left out,
    // as the evaluation below leaves them out.
    let mut trained = vec![false; ds.n_items()];
    parts.train.iter().for_each(|&k| trained[ds.items[k] as usize] = true);
    let test: Vec<usize> = parts.test.iter().copied().filter(|&k| trained[ds.items[k] as usize]).collect();
    for (name, keep) in [("train.txt", &parts.train), ("test.txt", &test)] {
        let m = ds.user_items(Some(keep));
        let mut out = String::new();
        for u in 0..m.n_rows {
            let items = m.row(u).0;
            if !items.is_empty() {
                out.push_str(&ds.user_ids[u].to_string());
                items.iter().for_each(|&i| out.push_str(&format!(" {}", ds.item_ids[i as usize])));
                out.push('\n');
            }
        }
        std::fs::write(dir.join(name), out).expect("split file");
    }
    Some(dir)
}

fn main() {
    let Some(dir) = data_dir() else { return };
    let set = dir.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let algos: Vec<Algorithm> = match args.first() {
        Some(a) => vec![Algorithm::parse(a).expect("algorithm")],
        None => vec![Algorithm::parse("als").expect("als"), Algorithm::parse("bpr").expect("bpr")],
    };
    let json = args.get(1).cloned().unwrap_or_else(|| "{}".into());
    let train = read(&dir.join("train.txt"));
    let test = read(&dir.join("test.txt"));
    let rows: Vec<Row> = train.iter().map(|&(user, item)| Row { user, item, weight: 1.0, ts: None }).collect();
    let ds = Dataset::from_rows(&rows).expect("dataset");
    let uidx: HashMap<i64, u32> = ds.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
    let iidx: HashMap<i64, u32> = ds.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
    let test_csr = Csr::from_triples(
        ds.n_users(),
        ds.n_items(),
        test.iter().filter_map(|(u, i)| Some((*uidx.get(u)?, *iidx.get(i)?, 1.0))),
    );
    let train_csr = ds.user_items(None);
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    println!(
        "{set}: {} users, {} items, {} train / {} test interactions, {threads} threads",
        ds.n_users(),
        ds.n_items(),
        train_csr.nnz(),
        test_csr.nnz()
    );
    for algorithm in algos {
        let mut p = Params::parse(algorithm, &json).expect("params");
        p.protocol.test_fraction = 0.0;
        let mut epochs = Vec::new();
        let mut loss = f64::NAN;
        let started = std::time::Instant::now();
        let t = pgrec::recsys::fit(&ds, &p, threads, &mut |pr| {
            if !pr.checkpoint {
                epochs.push(pr.elapsed);
                loss = pr.loss;
            }
            Ok(())
        })
        .expect("training");
        let seconds = started.elapsed().as_secs_f64();
        let per_epoch = epochs.last().copied().unwrap_or(0.0) / epochs.len().max(1) as f64;
        let m = metrics::evaluate(&t.model, &train_csr, &test_csr, None, &[20]);
        println!(
            "pgrec {:<8} {:>3} factors {:>3} epochs  {:.3} s/epoch  train {:.1} s  Recall@20 {:.4}  NDCG@20 {:.4}  (KGAT NDCG {:.4}, last loss {loss:.5})  params {json}",
            algorithm.name(),
            param(&p, "factors"),
            param(&p, "iterations"),
            per_epoch,
            seconds,
            m["recall@20"],
            m["ndcg@20"],
            m["ndcg_kgat@20"]
        );
        // Batch serving: top 20 for every user, seen items excluded, as
        // implicit's recommend(userids, N=20) in benches/recommend_sql.sh.
        let users: Vec<u32> = (0..ds.n_users() as u32).collect();
        let t0 = std::time::Instant::now();
        let recs = t.model.recommend_many(&users, 20, true, None);
        println!(
            "pgrec {:<8} recommend(all {} users, k 20): {:.2} s",
            algorithm.name(),
            recs.len(),
            t0.elapsed().as_secs_f64()
        );
    }
}
