//! KGAT against BPR and popularity on the knowledge-graph sets of
//! `../shared/data`, in the pure core: seconds per epoch, Recall@20, standard
//! NDCG@20 and the KGAT code's NDCG@20, all items ranked, training items
//! excluded, peak memory of the process.
//! - `music`: music-kgcn (Last.FM + Satori KG; the listened artists of
//!   `ratings_final.txt`), a random 20% of each user's artists held out.
//! - `ml1m`: ml-1m-kgat with its DBpedia KG and its own train/test files.
//! - `fb943`: the first 943 users of ml-1m-kgat's Freebase variant (about
//!   100k training interactions, as MovieLens 100K) with its whole KG.
//! - `ml100k`: MovieLens 100K, every rating an interaction, no KG (kgat is
//!   skipped), a random 20% of each user's movies held out.
//!
//! Run: cargo bench --bench kgat -- [music|ml1m|fb943|ml100k] [KGAT_PARAMS_JSON] [BPR_PARAMS_JSON]
//! (`"pretrain": "bpr"` in the KGAT params starts it from the BPR model of the same run)
//! `BENCH_ALGORITHMS` names the runs (default `popular bpr kgat`), each
//! `name` or `name:PARAMS_JSON`; e.g. `popular bpr ease item_knn
//! item_knn:{"similarity":"bm25"}`.
//! (not part of CI; skips, saying so, when the data is absent)

use std::collections::HashMap;
use std::path::Path;

use pgrec::recsys::kgat::KnowledgeGraph;
use pgrec::recsys::{Algorithm, Dataset, Params, Row, Side, data::Csr, fit_with, metrics};

fn ints(path: &Path) -> Vec<Vec<i64>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| l.split_whitespace().map(|x| x.parse::<i64>().expect("integer")).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Training pairs, test pairs (empty: split in `fit`), KG triples.
type Loaded = (Vec<(i64, i64)>, Vec<(i64, i64)>, Vec<(i64, String, i64)>);

/// A split in the KGAT authors' files (`train.txt`, `test.txt`: a user and
/// their items per line; `kg_final.txt`), users below `users` only; `None`,
/// saying so, when absent.
fn kgat_split(dir: &Path, users: i64) -> Option<Loaded> {
    if !dir.join("train.txt").exists() {
        println!("skipped: {} is absent (the datasets are not part of the repository)", dir.display());
        return None;
    }
    let pairs = |f: &str| -> Vec<(i64, i64)> {
        ints(&dir.join(f))
            .into_iter()
            .filter(|r| r[0] < users)
            .flat_map(|r| r[1..].iter().map(|&i| (r[0], i)).collect::<Vec<_>>())
            .collect()
    };
    let kg = ints(&dir.join("kg_final.txt")).into_iter().map(|r| (r[0], r[1].to_string(), r[2])).collect();
    Some((pairs("train.txt"), pairs("test.txt"), kg))
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let set = args.first().map_or("music", String::as_str);
    let kgat_json = args.get(1).cloned().unwrap_or_else(|| "{}".into());
    let bpr_json = args.get(2).cloned().unwrap_or_else(|| "{}".into());
    let (train, test, kg): Loaded = match set {
        "music" => {
            let dir = data.join("music-kgcn/preprocessed");
            if !dir.join("ratings_final.txt").exists() {
                println!("skipped: {} is absent (the datasets are not part of the repository)", dir.display());
                return;
            }
            let pos = ints(&dir.join("ratings_final.txt")).into_iter().filter(|r| r[2] == 1).map(|r| (r[0], r[1]));
            let kg = ints(&dir.join("kg_final.txt")).into_iter().map(|r| (r[0], r[1].to_string(), r[2])).collect();
            (pos.collect(), Vec::new(), kg)
        }
        "ml1m" => match kgat_split(&data.join("ml-1m-kgat/dbpedia"), i64::MAX) {
            Some(loaded) => loaded,
            None => return,
        },
        // MovieLens-100K-sized: the first 943 users of ml-1m-kgat with the
        // whole Freebase KG (the 100k-interaction scale).
        "fb943" => match kgat_split(&data.join("ml-1m-kgat/freebase"), 943) {
            Some(loaded) => loaded,
            None => return,
        },
        "ml100k" => {
            let file = data.join("ml-100k/u.data");
            if !file.exists() {
                println!("skipped: {} is absent (the datasets are not part of the repository)", file.display());
                return;
            }
            (ints(&file).into_iter().map(|r| (r[0], r[1])).collect(), Vec::new(), Vec::new())
        }
        other => panic!("unknown set {other}: use music, ml1m, fb943 or ml100k"),
    };
    let rows: Vec<Row> = train.iter().map(|&(user, item)| Row { user, item, weight: 1.0, ts: None }).collect();
    let ds = Dataset::from_rows(&rows).expect("dataset");
    let graph =
        (!kg.is_empty()).then(|| KnowledgeGraph::build(&ds.item_ids, &kg, None, &ds.user_ids, &[]).expect("graph"));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "{set}: {} users, {} items, {} interactions; KG {} triples, {} relations, {} entities; {threads} threads",
        ds.n_users(),
        ds.n_items(),
        ds.len(),
        graph.as_ref().map_or(0, |g| g.triples.len()),
        graph.as_ref().map_or(0, |g| g.relations.len()),
        graph.as_ref().map_or(0, |g| g.n_entities)
    );
    // A fixed test file (ml1m) is evaluated here; otherwise fit's own split.
    let fixed = !test.is_empty();
    let test_csr = fixed.then(|| {
        let uidx: HashMap<i64, u32> = ds.user_ids.iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
        let iidx: HashMap<i64, u32> = ds.item_ids.iter().enumerate().map(|(k, &i)| (i, k as u32)).collect();
        Csr::from_triples(
            ds.n_users(),
            ds.n_items(),
            test.iter().filter_map(|(u, i)| Some((*uidx.get(u)?, *iidx.get(i)?, 1.0))),
        )
    });
    // `"pretrain"` in the KGAT params (any name) starts KGAT from the BPR
    // model trained just before it.
    let mut bpr_model = None;
    let runs: Vec<(String, String)> = std::env::var("BENCH_ALGORITHMS")
        .unwrap_or_else(|_| "popular bpr kgat".into())
        .split_whitespace()
        .map(|r| match r.split_once(':') {
            Some((n, j)) => (n.to_string(), j.to_string()),
            None if r == "kgat" => (r.to_string(), kgat_json.clone()),
            None if r == "bpr" => (r.to_string(), bpr_json.clone()),
            None => (r.to_string(), "{}".to_string()),
        })
        .collect();
    for (name, json) in &runs {
        let name = name.as_str();
        let algorithm = Algorithm::parse(name).expect("algorithm");
        if algorithm.needs().graph && graph.is_none() {
            println!("pgrec {name}: skipped, {set} has no knowledge graph");
            continue;
        }
        let mut p = Params::parse(algorithm, json).expect("params");
        if fixed {
            p.protocol.test_fraction = 0.0;
        }
        let mut epochs = Vec::new();
        let mut phases: Vec<(&str, f64)> = Vec::new();
        let pretrain = if algorithm.pretrain_of(&p).is_some() { bpr_model.as_ref() } else { None };
        let side = Side { graph: graph.as_ref(), pretrain, ..Side::default() };
        let started = std::time::Instant::now();
        let mut judged: Vec<String> = Vec::new();
        let t = fit_with(&ds, &p, &side, threads, &mut |pr| {
            if let Some(r) = pr.validation_recall.filter(|_| !pr.checkpoint) {
                judged.push(format!("{}: {r:.4}", pr.iteration));
            }
            if let Some(s) = pr.pretrain_seconds {
                println!("      start: bpr pretrained in {s:.1} s");
            }
            if !pr.checkpoint && pr.iteration > 0 {
                epochs.push(pr.elapsed);
                for (k, (name, s)) in pr.phases.iter().flat_map(|p| p.named()).enumerate() {
                    match phases.get_mut(k) {
                        Some(slot) => slot.1 += s,
                        None => phases.push((name, s)),
                    }
                }
            }
            Ok(())
        })
        .expect("training");
        let seconds = started.elapsed().as_secs_f64();
        let per_epoch = epochs.last().copied().unwrap_or(0.0) / epochs.len().max(1) as f64;
        let m = match &test_csr {
            Some(test) => metrics::evaluate(&t.model, &ds.user_items(None), test, None, &[20]),
            None => t.metrics.clone(),
        };
        println!(
            "pgrec {:<8} {:>4} of {:>4} epochs {:>8.3} s/epoch  train {:.1} s  Recall@20 {:.4}  NDCG@20 {:.4}  (KGAT NDCG {:.4})  peak RSS {:.0} MiB  params {json}",
            algorithm.name(),
            epochs.len(),
            p.to_json().get("iterations").map_or("-".into(), |v| v.to_string()),
            per_epoch,
            seconds,
            m["recall@20"],
            m["ndcg@20"],
            m["ndcg_kgat@20"],
            peak_rss_mib()
        );
        if !phases.is_empty() {
            let per: Vec<String> =
                phases.iter().map(|(n, s)| format!("{n} {:.2}", s / epochs.len().max(1) as f64)).collect();
            println!("      seconds per epoch by phase: {}", per.join(", "));
        }
        if !judged.is_empty() {
            println!("      validation recall@20 by epoch (0: the start): {}", judged.join(", "));
        }
        if name == "bpr" {
            bpr_model = Some(t.model);
        }
    }
}
