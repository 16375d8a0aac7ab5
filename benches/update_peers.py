"""implicit's ALS and BPR folding in new interactions (partial_fit_users for
every user with new rows, with all their rows; partial_fit_items for the new
items; implicit's BPR has neither) against a full retrain, on the split benches/update.rs writes:
Recall@20 / NDCG@20 on amazon-book's test.txt and seconds, printed as
update.rs prints pgrec's. Params as in benches/recsys_peers.py's rows that
match pgrec's defaults. Run by benches/update_peers.sh."""
import sys
import time

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.bpr import BayesianPersonalizedRanking


def pairs(path):
    a = np.loadtxt(path, dtype=np.int64, ndmin=2)
    return a[:, 0], a[:, 1]


def lines(path):
    us, its = [], []
    for line in open(path):
        xs = [int(x) for x in line.split()]
        us += [xs[0]] * (len(xs) - 1)
        its += xs[1:]
    return np.array(us, dtype=np.int64), np.array(its, dtype=np.int64)


def score(uf, itf, users, items, train, test):
    """Recall@20 and NDCG@20 over test users the model knows (as update.rs)."""
    uix = {u: k for k, u in enumerate(users)}
    iix = {i: k for k, i in enumerate(items)}
    n_items = len(items)
    seen, want = {}, {}
    for u, i in zip(*train):
        if u in uix and i in iix:
            seen.setdefault(uix[u], []).append(iix[i])
    for u, i in zip(*test):
        if u in uix and i in iix:
            want.setdefault(uix[u], set()).add(iix[i])
    order = sorted(want)
    rec = ndcg = 0.0
    disc = 1.0 / np.log2(np.arange(2, 22))
    for s in range(0, len(order), 2048):
        chunk = order[s:s + 2048]
        sc = uf[chunk] @ itf.T
        for r, u in enumerate(chunk):
            sc[r, seen.get(u, [])] = -np.inf
        top = np.argpartition(-sc, 20, axis=1)[:, :20]
        for r, u in enumerate(chunk):
            t = top[r][np.argsort(-sc[r, top[r]])]
            hits = np.array([i in want[u] for i in t])
            rec += hits.sum() / len(want[u])
            ndcg += (hits * disc).sum() / disc[:min(len(want[u]), 20)].sum()
    return rec / len(order), ndcg / len(order)


def main(data, split):
    base, later, test = pairs(f"{split}/base.tsv"), pairs(f"{split}/later.tsv"), lines(f"{data}/test.txt")
    allu = np.concatenate([base[0], later[0]])
    alli = np.concatenate([base[1], later[1]])
    users, items = np.unique(allu), np.unique(alli)
    base_users, base_items = np.unique(base[0]), np.unique(base[1])
    for name, make in [
        ("als", lambda: AlternatingLeastSquares(factors=64, regularization=10.0, alpha=80.0, iterations=15,
                                                 random_state=42)),
        ("bpr", lambda: BayesianPersonalizedRanking(factors=64, learning_rate=0.05, regularization=0.05,
                                                    iterations=80, random_state=42)),
    ]:
        # The base model over the base rows' users and items only.
        bu = {u: k for k, u in enumerate(base_users)}
        bi = {i: k for k, i in enumerate(base_items)}
        m = sp.csr_matrix((np.ones(len(base[0]), dtype=np.float32),
                           ([bu[u] for u in base[0]], [bi[i] for i in base[1]])),
                          shape=(len(base_users), len(base_items)))
        t0 = time.time()
        model = make()
        model.fit(m, show_progress=False)
        base_s = time.time() - t0
        r0 = score(model.user_factors, model.item_factors, base_users, base_items, (allu, alli), test)
        # Fold in: new items get indices after the base ones, new users too.
        uix = dict(bu)
        for u in users:
            uix.setdefault(u, len(uix))
        iix = dict(bi)
        for i in items:
            iix.setdefault(i, len(iix))
        full = sp.csr_matrix((np.ones(len(allu), dtype=np.float32), ([uix[u] for u in allu], [iix[i] for i in alli])),
                             shape=(len(uix), len(iix)))
        touched = np.unique([uix[u] for u in later[0]])
        new_items = np.arange(len(bi), len(iix))
        uids = np.array(sorted(uix, key=uix.get))
        iids = np.array(sorted(iix, key=iix.get))
        if hasattr(model, "partial_fit_users"):
            t0 = time.time()
            if len(new_items):
                model.partial_fit_items(new_items, full.T.tocsr()[new_items])
            model.partial_fit_users(touched, full[touched])
            up_s = time.time() - t0
            r1 = score(model.user_factors, model.item_factors, uids, iids, (allu, alli), test)
        else:
            print(f"implicit {name:<4} has no partial_fit: new interactions need a retrain")
            r1, up_s = None, None
        t0 = time.time()
        again = make()
        again.fit(full, show_progress=False)
        full_s = time.time() - t0
        r2 = score(again.user_factors, again.item_factors, uids, iids, (allu, alli), test)
        for what, got, secs in [("base (90%)", r0, base_s), ("base + partial_fit (10%)", r1, up_s),
                                ("full retrain (100%)", r2, full_s)]:
            if got is not None:
                print(f"implicit {name:<4} {what:<26} Recall@20 {got[0]:.4f}  NDCG@20 {got[1]:.4f}  {secs:7.1f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
