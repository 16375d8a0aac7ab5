//! Quality and behaviour of the trainers on planted structure: users and items
//! fall into groups, users interact mostly within their group, and some items
//! are popular everywhere. Personalised models must beat popularity there.

use super::init::init_factors;
use super::*;
use pgrec_base::error::{Error, ErrorKind};
use pgrec_base::rng::Rng;

const GROUPS: usize = 8;
const ITEMS_PER_GROUP: usize = 40;
const USERS: usize = 400;

fn group_of_item(i: i64) -> usize {
    (i as usize) % GROUPS
}

/// What users of group `g` interact with: their group's items and the ten
/// popular items of the next group.
fn in_taste(g: usize, item: i64) -> bool {
    group_of_item(item) == g || (group_of_item(item) == (g + 1) % GROUPS && item < 10 * GROUPS as i64)
}

/// ~30 interactions per user: 85% in the user's group, the rest among a few
/// globally popular items; ratings 4–5 in-group, 1–2 otherwise.
fn planted(seed: u64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    for u in 0..USERS as i64 {
        let g = u as usize % GROUPS;
        let mut seen = std::collections::HashSet::new();
        while seen.len() < 30 {
            let item = if rng.uniform() < 0.85 {
                (rng.next_u64() % ITEMS_PER_GROUP as u64) as i64 * GROUPS as i64 + g as i64
            } else {
                (rng.next_u64() % 10) as i64 * GROUPS as i64 + ((g + 1) % GROUPS) as i64
            };
            if seen.insert(item) {
                let rating = if group_of_item(item) == g { 4.0 + (rng.next_u64() % 2) as f32 } else { 1.0 };
                rows.push(Row { user: 1000 + u, item, weight: rating, ts: None });
            }
        }
    }
    rows
}

fn alg(name: &str) -> Algorithm {
    Algorithm::parse(name).unwrap()
}

fn train(algorithm: &str, json: &str) -> Trained {
    let ds = Dataset::from_rows(&planted(3)).unwrap();
    fit_json(&ds, algorithm, json, 2).unwrap()
}

#[test]
fn bpr_and_als_beat_popularity_on_planted_structure() {
    let pop = train("popular", "{}").metrics["recall@10"];
    let bpr = train("bpr", r#"{"factors": 16, "iterations": 40}"#).metrics["recall@10"];
    let als = train("als", r#"{"factors": 16, "iterations": 10}"#).metrics["recall@10"];
    eprintln!("recall@10: popular {pop:.3}, bpr {bpr:.3}, als {als:.3}");
    assert!(bpr > pop + 0.05, "bpr {bpr:.3} vs popular {pop:.3}");
    assert!(als > pop + 0.05, "als {als:.3} vs popular {pop:.3}");
}

#[test]
fn metrics_cover_the_protocol() {
    let t = train("als", r#"{"factors": 8, "iterations": 3}"#);
    for k in ["recall@10", "recall@20", "ndcg@20", "ndcg_kgat@20", "precision@10", "map@20", "hit_rate@10", "auc"] {
        let v = t.metrics[k];
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(t.metrics["users"], USERS as f64);
    assert_eq!(t.train_rows + t.test_rows, USERS * 30);
    assert!(t.metrics["auc"] > 0.8, "auc {}", t.metrics["auc"]);
}

#[test]
fn mf_predicts_ratings_better_than_the_mean() {
    let ds = Dataset::from_rows(&planted(5)).unwrap();
    let t = train("mf", r#"{"factors": 8, "iterations": 40}"#);
    let mean = ds.weights.iter().sum::<f32>() / ds.len() as f32;
    let sd = (ds.weights.iter().map(|w| (w - mean).powi(2)).sum::<f32>() / ds.len() as f32).sqrt();
    eprintln!("mf rmse {:.3} mae {:.3}, rating sd {sd:.3}", t.metrics["rmse"], t.metrics["mae"]);
    assert!(t.metrics["rmse"] < 0.8 * f64::from(sd), "rmse {} vs sd {sd}", t.metrics["rmse"]);
}

#[test]
fn recommendations_exclude_seen_items_and_follow_the_group() {
    let t = train("bpr", r#"{"factors": 16, "iterations": 40, "test_fraction": 0}"#);
    let m = &t.model;
    let u = 5u32;
    let g = (m.user_ids[u as usize] - 1000) as usize % GROUPS;
    let recs = m.recommend(u, 10, true, None);
    assert_eq!(recs.len(), 10);
    assert!(recs.iter().all(|(i, _)| !m.seen.contains(u as usize, *i)), "a seen item was recommended");
    assert!(recs.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
    let in_taste = recs.iter().filter(|(i, _)| in_taste(g, m.item_ids[*i as usize])).count();
    assert!(in_taste >= 9, "{in_taste} of 10 in what the user's group likes");
    let with_seen = m.recommend(u, 10, false, None);
    assert!(with_seen.iter().any(|(i, _)| m.seen.contains(u as usize, *i)));
    // A candidate pool is respected.
    let pool: Vec<u32> = (0..m.n_items() as u32).filter(|i| i % 3 == 0).collect();
    assert!(m.recommend(u, 10, true, Some(&pool)).iter().all(|(i, _)| i % 3 == 0));
}

#[test]
fn fold_in_and_similar_items_stay_in_the_group() {
    // ALS's default regularization (10) is sized for catalogues of tens of
    // thousands of users; this one has 400, so it gets a lighter one.
    for (algorithm, json) in [
        ("als", r#"{"factors": 16, "iterations": 20, "test_fraction": 0, "regularization": 1, "alpha": 20}"#),
        ("bpr", r#"{"factors": 16, "iterations": 20, "test_fraction": 0}"#),
    ] {
        let t = train(algorithm, json);
        let m = &t.model;
        let idx = |ext: i64| m.item_ids.iter().position(|&x| x == ext).unwrap() as u32;
        let liked: Vec<u32> = [3i64, 11, 19].iter().map(|&e| idx(e)).collect(); // group 3
        let v = m.fold_in(&liked);
        let mut s = vec![0f32; m.n_items()];
        m.score_vector(ndarray::ArrayView1::from(&v[..]), 0.0, &mut s);
        liked.iter().for_each(|&i| s[i as usize] = f32::NEG_INFINITY);
        let top = topk::top_k(&s, 10, None);
        let liked_too = top.iter().filter(|&&i| in_taste(3, m.item_ids[i as usize])).count();
        assert!(liked_too >= 8, "{algorithm:?} fold-in: {liked_too} of 10 in what group 3 likes");
        let sim = m.similar_items(idx(3), 10, None);
        assert!(sim.iter().all(|(i, _)| *i != idx(3)));
        let in_group = sim.iter().filter(|(i, _)| group_of_item(m.item_ids[*i as usize]) == 3).count();
        assert!(in_group >= 8, "{algorithm:?} similar: {in_group} of 10 in group");
    }
}

#[test]
fn models_round_trip_through_bytes_and_damage_is_reported() {
    for (a, j) in [("mf", r#"{"factors": 4, "iterations": 2}"#), ("popular", "{}")] {
        let m = train(a, j).model;
        let b = m.to_bytes();
        let back = Model::from_bytes(&b).unwrap();
        assert_eq!(back.to_bytes(), b);
        assert_eq!(back.recommend(3, 5, true, None), m.recommend(3, 5, true, None));
        let e = Model::from_bytes(&b[..b.len() - 3]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::DataCorrupted);
    }
}

#[test]
fn an_error_between_iterations_stops_training() {
    let ds = Dataset::from_rows(&planted(3)).unwrap();
    let p = Params::parse(alg("bpr"), r#"{"iterations": 50}"#).unwrap();
    let mut seen = 0;
    let r = fit(&ds, &p, 2, &mut |pr| {
        seen = pr.iteration;
        if pr.iteration == 3 { Err(Error::new(ErrorKind::DataException, "canceled")) } else { Ok(()) }
    });
    assert_eq!(r.err().map(|e| e.message), Some("canceled".into()));
    assert_eq!(seen, 3);
}

#[test]
fn batch_recommendations_equal_one_user_at_a_time_across_item_blocks() {
    // 1,300 items: the batch path scores items in blocks of 512, and users in
    // batches of 512, so blocks, a partial last block and two batches meet.
    let (n_users, n_items, f) = (600, 1300, 8);
    let mut rng = Rng::new(9);
    let seen = data::Csr::from_triples(
        n_users,
        n_items,
        (0..n_users as u32).flat_map(|u| (0..20).map(move |t| (u, (u * 37 + t * 61) % 1300, 1.0))),
    );
    let mut m = Model {
        algorithm: alg("bpr"),
        user_ids: (0..n_users as i64).collect(),
        item_ids: (0..n_items as i64).collect(),
        // Quarters: every product and sum is exact in f32, so both paths must
        // agree to the bit whatever order they add in, and ties are real ties.
        user_factors: init_factors(n_users, f, 1, 1.0).mapv(|x| (x * 4.0).round() / 4.0),
        item_factors: init_factors(n_items, f, 2, 1.0).mapv(|x| (x * 4.0).round() / 4.0),
        user_bias: Vec::new(),
        item_bias: (0..n_items).map(|_| (rng.normal() as f32 * 4.0).round() / 4.0).collect(),
        global: 0.0,
        seen,
        popular: (0..n_items as u32).collect(),
        regularization: 0.0,
        alpha: 1.0,
        content: None,
        weights: None,
    };
    // Ties go to the lower item index in both paths.
    let row3 = m.item_factors.row(3).to_owned();
    m.item_factors.row_mut(1299).assign(&row3);
    m.item_bias[1299] = m.item_bias[3];
    let users: Vec<u32> = (0..n_users as u32).collect();
    let u0 = m.recommend(0, 1300, false, None);
    assert!(u0.windows(2).filter(|w| w[0].1 == w[1].1).count() > 100, "the data has ties");
    for exclude in [true, false] {
        let batch = m.recommend_many(&users, 25, exclude, None);
        for &u in &users {
            assert_eq!(batch[u as usize], m.recommend(u, 25, exclude, None), "user {u}, exclude_seen {exclude}");
        }
    }
}

/// Content vectors for the planted items: the item's group as a one-hot
/// direction plus noise.
fn group_features(ids: &[i64], seed: u64) -> ndarray::Array2<f32> {
    let mut rng = Rng::new(seed);
    ndarray::Array2::from_shape_fn((ids.len(), GROUPS), |(k, c)| {
        f32::from(u8::from(group_of_item(ids[k]) == c)) + 0.3 * rng.normal() as f32
    })
}

#[test]
fn content_models_score_held_out_and_added_items_from_content() {
    let mut ds = Dataset::from_rows(&planted(3)).unwrap();
    // Items 5000.. have content but no interactions: they join the catalogue.
    let mut ids: Vec<i64> = (0..(GROUPS * ITEMS_PER_GROUP) as i64).collect();
    ids.extend(5000..5016);
    let f = content::ItemFeatures::new(ids.clone(), group_features(&ids, 4)).unwrap();
    let (x, missing) = f.align(&mut ds);
    assert_eq!((ds.n_items(), missing), (GROUPS * ITEMS_PER_GROUP + 16, 0));
    let side = Side { features: Some(&x), ..Side::default() };
    let fit_json_side =
        |a: &str, json: &str| fit_with(&ds, &Params::parse(alg(a), json).unwrap(), &side, 2, &mut |_| Ok(())).unwrap();
    let vbpr = fit_json_side("vbpr", r#"{"iterations": 20, "cold_items": 0.2}"#);
    let knn = fit_json_side("content_knn", r#"{"cold_items": 0.2}"#);
    let bpr = fit_json_side("bpr", r#"{"factors": 16, "iterations": 40, "cold_items": 0.2}"#);
    let cold = |t: &Trained| t.metrics["cold_recall@10"];
    eprintln!("cold recall@10: vbpr {:.3}, content_knn {:.3}, bpr {:.3}", cold(&vbpr), cold(&knn), cold(&bpr));
    assert!(cold(&vbpr) > cold(&bpr) + 0.1 && cold(&knn) > cold(&bpr) + 0.1);
    assert!(vbpr.metrics["recall@10"] > 0.2, "warm {}", vbpr.metrics["recall@10"]);

    for t in [&vbpr, &knn] {
        let mut m = Model::from_bytes(&t.model.to_bytes()).unwrap();
        assert_eq!(m.content, t.model.content, "the content map survives the byte form");
        // Two new items of group 2 and one known item: the known one is kept.
        let new_ids = [9001, 9002, 7];
        let nf = group_features(&[2, 10, 7], 5);
        assert_eq!(m.add_items(&new_ids, &nf).unwrap(), 2);
        assert_eq!(m.n_items(), ds.n_items() + 2);
        assert_eq!(m.add_items(&new_ids, &nf).unwrap(), 0, "added once");
        // User 1002 is in group 2: among the new items and 8 group-5 items,
        // the new ones come first.
        let pool: Vec<u32> = (0..m.n_items() as u32)
            .filter(|&i| m.item_ids[i as usize] > 9000 || m.item_ids[i as usize] % 8 == 5)
            .collect();
        let u = m.user_ids.iter().position(|&u| u == 1002).unwrap() as u32;
        let top: Vec<i64> = m.recommend(u, 2, true, Some(&pool)).iter().map(|r| m.item_ids[r.0 as usize]).collect();
        assert_eq!(top.iter().filter(|&&i| i > 9000).count(), 2, "{:?}: {top:?}", m.algorithm);
        let e = m.add_items(&[9003], &ndarray::Array2::zeros((1, 3))).unwrap_err();
        assert_eq!(e.message, "the item features have 3 dimensions, the model was trained on 8");
    }
    let mut b = bpr.model;
    let e = b.add_items(&[9001], &ndarray::Array2::zeros((1, 8))).unwrap_err();
    assert_eq!(e.message, "a bpr model cannot add items from content");
}

#[test]
fn diverged_factors_are_refused_with_the_fix_named() {
    let ds = Dataset::from_rows(&planted(7)).unwrap();
    let p = Params::parse(alg("bpr"), r#"{"iterations": 2}"#).unwrap();
    let mut t = fit(&ds, &p, 1, &mut |_| Ok(())).unwrap();
    assert!(t.model.check_finite().is_ok());
    t.model.item_factors[[3, 1]] = f32::NAN;
    let e = t.model.check_finite().unwrap_err();
    assert_eq!(e.kind, ErrorKind::NumericValueOutOfRange);
    assert_eq!(e.message, "bpr training diverged: the trained factors are not finite numbers; nothing was stored");
    assert_eq!(e.hint.as_deref(), Some("lower learning_rate, raise regularization, or scale the weights down"));
}

#[test]
fn models_from_a_newer_format_are_refused_by_name() {
    let ds = Dataset::from_rows(&planted(3)).unwrap();
    let p = Params::parse(alg("popular"), r#"{"test_fraction": 0}"#).unwrap();
    let t = fit(&ds, &p, 1, &mut |_| Ok(())).unwrap();
    let mut bytes = t.model.to_bytes();
    assert!(Model::from_bytes(&bytes).is_ok());
    // The format number follows the 8-byte magic.
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    let e = Model::from_bytes(&bytes).unwrap_err();
    assert_eq!(e.kind, ErrorKind::FeatureNotSupported);
    assert_eq!(
        e.message,
        "the stored model is in format 99, written by a newer pgrec; this library reads formats 1 to 3"
    );
}

#[test]
fn item_item_models_learn_the_groups_and_serve_like_the_others() {
    let pop = train("popular", "{}").metrics["recall@10"];
    for (name, json) in [
        ("ease", r#"{"regularization": 10}"#),
        ("item_knn", "{}"),
        ("item_knn", r#"{"similarity": "bm25", "neighbors": 30}"#),
    ] {
        let t = train(name, json);
        let recall = t.metrics["recall@10"];
        eprintln!("{name} {json}: recall@10 {recall:.3} (popular {pop:.3})");
        assert!(recall > pop + 0.05, "{name} {recall:.3} vs popular {pop:.3}");
        let m = &t.model;
        assert_eq!(m.factors(), 0);
        let w = m.weights.as_ref().expect("item-item weights");
        // The stored model serves every interaction, the evaluated one scored from training rows only.
        assert_eq!(m.seen.nnz(), USERS * 30);
        let u = 5u32;
        let g = (m.user_ids[u as usize] - 1000) as usize % GROUPS;
        let recs = m.recommend(u, 10, true, None);
        assert_eq!(recs.len(), 10);
        assert!(recs.iter().all(|(i, _)| !m.seen.contains(u as usize, *i)), "a seen item was recommended");
        let in_taste_n = recs.iter().filter(|(i, _)| in_taste(g, m.item_ids[*i as usize])).count();
        assert!(in_taste_n >= 8, "{name}: {in_taste_n} of 10 in the group's taste");
        // A user's score is the sum of the weights from their items.
        let mut s = vec![0f32; m.n_items()];
        m.score_user(u, &mut s);
        let (top, score) = recs[0];
        let by_hand: f32 = m
            .seen
            .row(u as usize)
            .0
            .iter()
            .filter_map(|&j| {
                let (cols, vals) = w.row(j as usize);
                cols.binary_search(&top).ok().map(|k| vals[k])
            })
            .sum();
        assert!((by_hand - score).abs() <= 1e-4 * score.abs().max(1.0), "{by_hand} vs {score}");
        // Batch equals one at a time.
        let users: Vec<u32> = (0..40).collect();
        let batch = m.recommend_many(&users, 7, true, None);
        for &u in &users {
            assert_eq!(batch[u as usize], m.recommend(u, 7, true, None));
        }
        // A few liked items, and similar items, stay in the group. (Items
        // below 80 are also liked by the previous group: these are not.)
        let idx = |ext: i64| m.item_ids.iter().position(|&x| x == ext).unwrap() as u32;
        let liked: Vec<u32> = [83i64, 91, 99].iter().map(|&e| idx(e)).collect();
        let mut s = vec![0f32; m.n_items()];
        assert!(m.score_liked(&liked, &mut s));
        liked.iter().for_each(|&i| s[i as usize] = f32::NEG_INFINITY);
        let top = topk::top_k(&s, 10, None);
        let liked_too = top.iter().filter(|&&i| in_taste(3, m.item_ids[i as usize])).count();
        assert!(liked_too >= 8, "{name}: {liked_too} of 10 from liked items in group 3's taste");
        let sim = m.similar_items(idx(83), 10, None);
        assert!(sim.iter().all(|(i, _)| *i != idx(83)) && sim.windows(2).all(|p| p[0].1 >= p[1].1));
        let in_group = sim.iter().filter(|(i, _)| in_taste(3, m.item_ids[*i as usize])).count();
        assert!(in_group >= 8, "{name} similar: {in_group} of 10");
        // The weights survive the byte form; damage to them is reported.
        let b = m.to_bytes();
        let back = Model::from_bytes(&b).unwrap();
        assert_eq!(back.weights.as_ref(), Some(w));
        assert_eq!(back.recommend(u, 10, true, None), recs);
        let mut bad = b.clone();
        let at = b.len() - 4 * w.data.len() - 4 - 4 * w.indices.len() - 4;
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Model::from_bytes(&bad).unwrap_err().kind, ErrorKind::DataCorrupted);
    }
}

#[test]
fn ease_keeps_its_largest_weights_and_refuses_an_empty_gram_matrix() {
    let t = train("ease", r#"{"neighbors": 5, "min_count": 20}"#);
    let w = t.model.weights.unwrap();
    assert!((0..w.n_rows).all(|r| w.row(r).0.len() <= 5));
    // Items with fewer than 20 training interactions have no row and no column.
    let ds = Dataset::from_rows(&planted(3)).unwrap();
    let e = fit_json(&ds, "ease", r#"{"min_count": 100000}"#, 2).err().unwrap();
    assert_eq!(e.message, "ease: no item has min_count (100000) training interactions");
}

#[test]
fn lightgcn_beats_popularity_and_follows_friends() {
    let pop = train("popular", "{}").metrics["recall@10"];
    let gcn = train("lightgcn", r#"{"factors": 16, "iterations": 30, "batch_size": 256, "learning_rate": 0.01}"#);
    let recall = gcn.metrics["recall@10"];
    assert!(recall > pop + 0.05, "lightgcn {recall:.3} vs popular {pop:.3}");
    // A newcomer who liked one item of group 0 and one of group 4, and
    // whose friends are users of group 0: with the friends, group 0 fills
    // more of the top 10.
    let mut rows = planted(3);
    rows.push(Row { user: 1, item: 0, weight: 1.0, ts: None });
    rows.push(Row { user: 1, item: 4, weight: 1.0, ts: None });
    let ds = Dataset::from_rows(&rows).unwrap();
    let newcomer = ds.user_ids.iter().position(|&u| u == 1).unwrap() as u32;
    let friends: Vec<(u32, u32)> = (0..USERS as i64)
        .filter(|&u| (u as usize).is_multiple_of(GROUPS))
        .map(|u| (newcomer, ds.user_ids.iter().position(|&x| x == 1000 + u).unwrap() as u32))
        .collect();
    let p = alg("lightgcn")
        .parse_params(
            r#"{"factors": 16, "iterations": 30, "batch_size": 256, "learning_rate": 0.01, "test_fraction": 0}"#,
        )
        .unwrap();
    let group0 = |social: Option<&[(u32, u32)]>| {
        let side = Side { social, ..Side::default() };
        let m = fit_with(&ds, &p, &side, 2, &mut |_| Ok(())).unwrap().model;
        let top = m.recommend(newcomer, 10, true, None);
        top.iter().filter(|(i, _)| group_of_item(m.item_ids[*i as usize]) == 0).count()
    };
    let (alone, with_friends) = (group0(None), group0(Some(&friends)));
    eprintln!(
        "lightgcn recall@10 {recall:.3} (popular {pop:.3}); group 0 in the top 10: {alone} alone, {with_friends} with friends"
    );
    assert!(with_friends >= alone + 3, "group 0 in the top 10: {alone} alone, {with_friends} with friends");
}
