"""Cornac's VBPR on the split and item vectors that benches/multimodal.sh
exported from the database, evaluated with pgrec's protocol: warm test items
ranked among the warm items (training items excluded), cold test items among
the cold items; Recall@20 and NDCG@20 averaged over test users the model
knows. Hyperparameters are pgrec's vbpr defaults (or the JSON given), mapped
onto Cornac's names.

Usage: python multimodal_peers.py DIR [VBPR_PARAMS_JSON]
"""
import json
import sys
import time
from collections import defaultdict

import numpy as np
import cornac
from cornac.data import Dataset, ImageModality

K = 20


def pairs(path):
    out = []
    with open(path) as f:
        for line in f:
            u, i = line.split()
            out.append((u, i))
    return out


def ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def evaluate(score, users, test, pool, train_of):
    """score(user_idx, item_ids) -> scores; test: user -> set of items."""
    recalls, ndcgs = [], []
    disc = 1.0 / np.log2(np.arange(2, K + 2))
    for u, rel in test.items():
        if u not in users:
            continue
        cand = [i for i in pool if i not in train_of[u]]
        s = score(users[u], cand)
        top = [cand[k] for k in np.argsort(-s, kind="stable")[:K]]
        hits = np.array([i in rel for i in top], dtype=float)
        recalls.append(hits.sum() / len(rel))
        ideal = disc[: min(len(rel), K)].sum()
        ndcgs.append((disc[: len(hits)] * hits).sum() / ideal)
    return float(np.mean(recalls)), float(np.mean(ndcgs)), len(recalls)


def main(d, params):
    p = {"factors": 32, "content_factors": 8, "iterations": 50, "learning_rate": 0.005,
         "regularization": 0.02, "bias_regularization": 0.01, "content_regularization": 0.02,
         "batch_size": 256, "seed": 42}
    p.update({k: v for k, v in params.items() if k in p})
    train = pairs(f"{d}/train.tsv")
    warm_test, cold_test = defaultdict(set), defaultdict(set)
    for u, i in pairs(f"{d}/warm_test.tsv"):
        warm_test[u].add(i)
    for u, i in pairs(f"{d}/cold_test.tsv"):
        cold_test[u].add(i)
    warm_items, cold_items = ids(f"{d}/warm_items.tsv"), ids(f"{d}/cold_items.tsv")
    feats = {}
    with open(f"{d}/features.tsv") as f:
        for line in f:
            item, vec = line.rstrip("\n").split("\t")
            feats[item] = np.array(vec.split(), dtype=np.float32)
    train_of = defaultdict(set)
    for u, i in train:
        train_of[u].add(i)

    train_set = Dataset.from_uir([(u, i, 1.0) for u, i in train], seed=p["seed"])
    feat_ids = list(feats)
    image = ImageModality(features=np.stack([feats[i] for i in feat_ids]), ids=feat_ids)
    image.build(id_map=train_set.iid_map)
    train_set.add_modalities(item_image=image)
    model = cornac.models.VBPR(
        k=p["factors"], k2=p["content_factors"], n_epochs=p["iterations"], batch_size=p["batch_size"],
        learning_rate=p["learning_rate"], lambda_w=p["regularization"], lambda_b=p["bias_regularization"],
        lambda_e=p["content_regularization"], use_gpu=False, verbose=False, seed=p["seed"])
    t = time.perf_counter()
    model.fit(train_set)
    seconds = time.perf_counter() - t

    iid = train_set.iid_map

    def warm_score(u, items):
        s = model.score(u)
        return s[[iid[i] for i in items]]

    # Cold items are not in Cornac's training set: their scores come from
    # content alone, θ_u · (E f_i) + β'·f_i, as VBPR defines them.
    E, Bp = model.emb_matrix, model.beta_prime.ravel()

    def cold_score(u, items):
        f = np.stack([feats[i] for i in items])
        return f @ E @ model.theta_user[u] + f @ Bp

    users = train_set.uid_map
    wr, wn, wu = evaluate(warm_score, users, warm_test, warm_items, train_of)
    cr, cn, cu = evaluate(cold_score, users, cold_test, cold_items, train_of)
    print(f"Cornac {cornac.__version__} VBPR  warm Recall@20 {wr:.4f}  NDCG@20 {wn:.4f} ({wu} users)  "
          f"cold Recall@20 {cr:.4f}  NDCG@20 {cn:.4f} ({cu} users)  "
          f"train {seconds:.2f} s ({seconds / p['iterations']:.3f} s/epoch)  params {json.dumps(p)}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
