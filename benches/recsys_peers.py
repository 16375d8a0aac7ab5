"""Peers on amazon-book (KGAT's split), for benches/recsys_peers.sh: implicit's
ALS and BPR and Cornac's BPR at 64 factors, timed per epoch, evaluated with the
same protocol as pgrec (all items ranked, training items excluded,
Recall@20 and standard NDCG@20 on the given test file)."""

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def read(path):
    users, items = [], []
    for line in Path(path).read_text().splitlines():
        ids = [int(x) for x in line.split()]
        users += [ids[0]] * (len(ids) - 1)
        items += ids[1:]
    return np.array(users), np.array(items)


def read_split(data_dir):
    """train.txt and test.txt of data_dir over pgrec's catalogue (see
    over_catalogue): the binary user × item training matrix, the test users
    and each one's items."""
    tu, ti = read(Path(data_dir) / "train.txt")
    su, si = read(Path(data_dir) / "test.txt")
    return over_catalogue(tu, ti, su, si)[:3]


def over_catalogue(tu, ti, su, si):
    """Training pairs (tu, ti) and test pairs (su, si) over pgrec's
    catalogue: the items with training interactions, renumbered (test items
    outside it cannot be ranked by anyone and are left out, as pgrec's bench
    does). Returns the binary user × item training matrix, the test users,
    each one's items, and the catalogue's original item ids."""
    items = np.unique(ti)
    index = {int(i): k for k, i in enumerate(items)}
    ti = np.array([index[int(i)] for i in ti])
    n_users, n_items = max(tu.max(), su.max()) + 1, len(items)
    train = sp.csr_matrix((np.ones(len(tu), dtype=np.float32), (tu, ti)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    test_items_of = {}
    for u, i in zip(su, si):
        if int(i) in index:
            test_items_of.setdefault(u, []).append(index[int(i)])
    return train, np.array(sorted(test_items_of)), test_items_of, items


def step_batches(opt, loss_of, order, batch, inter_of):
    """Adam steps over `order` in batches of `batch`: zero the gradients, the
    loss of the batch's interaction dict, backward, step. Returns the summed
    loss times batch sizes."""
    total = 0.0
    for s in range(0, len(order), batch):
        b = order[s:s + batch]
        opt.zero_grad()
        loss = loss_of(inter_of(b))
        loss.backward()
        opt.step()
        total += loss.item() * len(b)
    return total


def evaluate(score_batch, train, test_users, test_items_of, k=20):
    recalls, ndcgs = [], []
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for start in range(0, len(test_users), 1024):
        batch = test_users[start:start + 1024]
        s = score_batch(batch)
        rows = train[batch]
        s[np.repeat(np.arange(len(batch)), np.diff(rows.indptr)), rows.indices] = -np.inf
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.take_along_axis(s, top, axis=1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for b, u in enumerate(batch):
            rel = test_items_of[u]
            hits = np.isin(top[b], rel)
            recalls.append(hits.sum() / len(rel))
            ideal = disc[: min(k, len(rel))].sum()
            ndcgs.append((disc * hits).sum() / ideal)
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def time_bpr(data_dir, epochs):
    """Seconds per epoch of implicit's BPR at its defaults (64 factors), timing
    only: benches/recsys_peers.sh interleaves this with pgrec's BPR."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    tu, ti = read(Path(data_dir) / "train.txt")
    train = sp.csr_matrix((np.ones(len(tu), dtype=np.float32), (tu, ti)))
    train.sum_duplicates()
    train.data[:] = 1.0
    m = BayesianPersonalizedRanking(factors=64, iterations=epochs, random_state=42)
    t = time.perf_counter()
    m.fit(train, show_progress=False)
    print(f"implicit BPR (defaults)  {epochs} epochs  {(time.perf_counter() - t) / epochs:.3f} s/epoch", flush=True)


def main(data_dir):
    tu, ti = read(Path(data_dir) / "train.txt")
    su, si = read(Path(data_dir) / "test.txt")
    n_users, n_items = max(tu.max(), su.max()) + 1, max(ti.max(), si.max()) + 1
    train = sp.csr_matrix((np.ones(len(tu), dtype=np.float32), (tu, ti)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    test_items_of = {}
    for u, i in zip(su, si):
        test_items_of.setdefault(u, []).append(i)
    test_users = np.array(sorted(test_items_of))
    rows = []

    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    for label, make, iters in [
        ("implicit ALS (defaults)", lambda: AlternatingLeastSquares(factors=64, iterations=15, random_state=42), 15),
        ("implicit ALS (tuned: reg 5, alpha 40)",
         lambda: AlternatingLeastSquares(factors=64, regularization=5.0, alpha=40.0, iterations=20, random_state=42), 20),
        ("implicit BPR (defaults, 100 epochs)", lambda: BayesianPersonalizedRanking(factors=64, random_state=42), 100),
        ("implicit BPR (lr 0.05, reg 0.001, 100 epochs)",
         lambda: BayesianPersonalizedRanking(factors=64, learning_rate=0.05, regularization=0.001, random_state=42), 100),
    ]:
        m = make()
        t = time.perf_counter()
        m.fit(train, show_progress=False)
        secs = time.perf_counter() - t
        uf, itf = np.asarray(m.user_factors), np.asarray(m.item_factors)
        r, n = evaluate(lambda b: uf[b] @ itf.T, train, test_users, test_items_of)
        rows.append((label, secs / iters, iters, r, n))
        print(f"{label:<48} {secs / iters:7.3f} s/epoch  Recall@20 {r:.4f}  NDCG@20 {n:.4f}", flush=True)
        if label.startswith("implicit ALS (tuned"):
            # Batch serving, as pgrec's recommend_many in the pgrec lines above.
            users = np.arange(train.shape[0])
            t = time.perf_counter()
            ids, _ = m.recommend(users, train[users], N=20, filter_already_liked_items=True)
            print(f"implicit ALS recommend(all {len(users)} users, N 20): {time.perf_counter() - t:.2f} s", flush=True)

    import cornac
    from cornac.models import BPR

    triples = [(str(u), str(i), 1.0) for u, i in zip(tu, ti)]
    ds = cornac.data.Dataset.from_uir(triples, seed=42)
    for label, kw, iters in [("Cornac BPR (defaults, 100 epochs)", {}, 100),
                             ("Cornac BPR (lr 0.05, reg 0.001, 100 epochs)", {"learning_rate": 0.05, "lambda_reg": 0.001}, 100)]:
        m = BPR(k=64, max_iter=iters, seed=42, verbose=False, **kw)
        t = time.perf_counter()
        m.fit(ds)
        secs = time.perf_counter() - t
        uidx = np.array([ds.uid_map.get(str(u), -1) for u in range(n_users)])
        iidx = np.array([ds.iid_map.get(str(i), -1) for i in range(n_items)])
        uf = np.zeros((n_users, 64), dtype=np.float32)
        known = uidx >= 0
        uf[known] = m.u_factors[uidx[known]]
        itf = np.zeros((n_items, 64), dtype=np.float32)
        ib = np.full(n_items, -1e9, dtype=np.float32)
        kn = iidx >= 0
        itf[kn] = m.i_factors[iidx[kn]]
        ib[kn] = m.i_biases[iidx[kn]]
        r, n = evaluate(lambda b: uf[b] @ itf.T + ib, train, test_users, test_items_of)
        print(f"{label:<48} {secs / iters:7.3f} s/epoch  Recall@20 {r:.4f}  NDCG@20 {n:.4f}", flush=True)
    print(f"(implicit {implicit.__version__}, cornac {cornac.__version__})")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[2] == "--time-bpr":
        time_bpr(sys.argv[1], int(sys.argv[3]))
    else:
        main(sys.argv[1])
