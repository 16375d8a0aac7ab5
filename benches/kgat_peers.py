"""RecBole's KGAT (the class from PyPI's recbole) trained as RecBole's KGAT
trainer does — per epoch every training interaction once in shuffled CF
batches (one uniformly drawn unseen item each), then TransR batches over the
knowledge graph's triples, then the attention refreshed — with one Adam over
all parameters, on the KGAT authors' split files (train.txt, test.txt,
kg_final.txt), for benches/kgat_peers.sh.

A shim stands in for RecBole's Config and Dataset. The collaborative
knowledge graph is built here as the KGAT authors build it (user→item and
item→user edges, every KG triple in both directions, the inverse a relation
of its own), as pgrec builds it; one method is replaced: `init_graph`, which
needs DGL (not installed) to build the per-relation row-normalised adjacency,
is rebuilt with scipy to the same matrix. Evaluated with pgrec's protocol
over pgrec's catalogue (the items with training interactions; all of them
ranked, training items excluded, Recall@20 and NDCG@20).

Usage: python kgat_peers.py DATA_DIR USERS EPOCHS LR BATCH THREADS [SEED]"""

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from recsys_peers import evaluate, over_catalogue, step_batches  # noqa: E402


def pairs(path, users):
    """(user, item) rows of an authors' split file, users below `users`."""
    out = []
    for line in open(path):
        r = [int(x) for x in line.split()]
        if len(r) > 1 and r[0] < users:
            out.extend((r[0], i) for i in r[1:])
    return np.array(out, dtype=np.int64).reshape(-1, 2)


class Shim:
    """What RecBole's KGAT asks of its Dataset: four counts and the CKG."""

    def __init__(self, counts, ckg):
        self.counts, self.ckg = counts, ckg

    def num(self, field):
        return self.counts[field]

    def ckg_graph(self, form="coo", value_field=None):
        # The "dgl" form feeds only init_graph, replaced below.
        return self.ckg if form == "coo" else None


def main(data_dir, users, epochs, lr, batch, threads, seed=42):
    import torch
    from recbole.model.knowledge_aware_recommender.kgat import KGAT

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    d = Path(data_dir)
    train, test = pairs(d / "train.txt", users), pairs(d / "test.txt", users)
    kg = np.loadtxt(d / "kg_final.txt", dtype=np.int64).reshape(-1, 3)
    n_users = int(max(train[:, 0].max(), test[:, 0].max())) + 1
    n_items = int(max(train[:, 1].max(), test[:, 1].max())) + 1
    n_ent = max(n_items, int(kg[:, [0, 2]].max()) + 1)
    n_kg_rel = int(kg[:, 1].max()) + 1
    # Relation ids: 0 RecBole's padding, 1 user→item, 2 item→user, then the
    # KG's relations, then their inverses.
    n_rel = 3 + 2 * n_kg_rel
    u, i = train[:, 0], train[:, 1] + n_users
    h, r, t = kg[:, 0] + n_users, kg[:, 1] + 3, kg[:, 2] + n_users
    rows = np.concatenate([u, i, h, t])
    cols = np.concatenate([i, u, t, h])
    rels = np.concatenate([np.full(len(u), 1), np.full(len(u), 2), r, r + n_kg_rel])
    size = n_users + n_ent
    ckg = sp.coo_matrix((rels, (rows, cols)), shape=(size, size))

    def init_graph(self):
        total = None
        for rel in range(1, self.n_relations):
            m = rels == rel
            if not m.any():
                continue
            a = sp.coo_matrix((np.ones(m.sum()), (rows[m], cols[m])), shape=(size, size)).tocsr()
            deg = np.asarray(a.sum(1)).flatten()
            inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
            a = sp.diags(inv) @ a
            total = a if total is None else total + a
        total = total.tocoo()
        idx = torch.LongTensor(np.vstack([total.row, total.col]))
        return torch.sparse_coo_tensor(idx, torch.FloatTensor(total.data), self.matrix_size).coalesce()

    KGAT.init_graph = init_graph
    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
              "ENTITY_ID_FIELD": "entity_id", "RELATION_ID_FIELD": "relation_id",
              "HEAD_ENTITY_ID_FIELD": "head_id", "TAIL_ENTITY_ID_FIELD": "tail_id",
              "device": torch.device("cpu"), "embedding_size": 64, "kg_embedding_size": 64,
              "layers": [64, 32, 16], "aggregator_type": "bi", "mess_dropout": 0.1, "reg_weight": 1e-5}
    counts = {"user_id": n_users, "item_id": n_items, "entity_id": n_ent, "relation_id": n_rel}
    model = KGAT(config, Shim(counts, ckg))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    seen = [set() for _ in range(n_users)]
    for a, b in train:
        seen[a].add(b)
    # RecBole's KG phase reads entity embeddings only: the KG triples, both
    # directions, in entity ids.
    kh = np.concatenate([kg[:, 0], kg[:, 2]])
    kr = np.concatenate([kg[:, 1] + 3, kg[:, 1] + 3 + n_kg_rel])
    kt = np.concatenate([kg[:, 2], kg[:, 0]])
    spent = 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(train))
        neg = rng.integers(0, n_items, len(train))
        for k in range(len(train)):
            while neg[k] in seen[train[k, 0]]:
                neg[k] = rng.integers(0, n_items)
        korder = rng.permutation(len(kh))
        kneg = rng.integers(0, n_ent, len(kh))
        # Sampling is not timed (RecBole's own sampler is not what is compared).
        clock = time.perf_counter()
        model.train()
        cf = step_batches(opt, model.calculate_loss, order, batch,
                          lambda b: {"user_id": torch.from_numpy(train[b, 0]),
                                     "item_id": torch.from_numpy(train[b, 1]), "neg_item_id": torch.from_numpy(neg[b])})
        kgl = step_batches(opt, model.calculate_kg_loss, korder, 2048,
                           lambda b: {"head_id": torch.from_numpy(kh[b]), "relation_id": torch.from_numpy(kr[b]),
                                      "tail_id": torch.from_numpy(kt[b]), "neg_tail_id": torch.from_numpy(kneg[b])})
        model.eval()
        with torch.no_grad():
            model.update_attentive_A()
        spent += time.perf_counter() - clock
        print(f"  recbole kgat epoch {epoch}/{epochs}: cf loss {cf / len(order):.5f}, kg loss {kgl / len(korder):.5f}, "
              f"{spent:.1f} s", flush=True)
    model.eval()
    with torch.no_grad():
        ue, ee = model.forward()
    tr, test_users, test_items_of, items = over_catalogue(train[:, 0], train[:, 1], test[:, 0], test[:, 1])
    ue, ie = ue.numpy(), ee.numpy()[items]
    rec, ndcg = evaluate(lambda bt: ue[bt] @ ie.T, tr, test_users, test_items_of)
    import recbole
    print(f"RecBole {recbole.__version__} KGAT (torch {torch.__version__}, {threads} threads)  {epochs} epochs  "
          f"{spent / epochs:.3f} s/epoch  Recall@20 {rec:.4f}  NDCG@20 {ndcg:.4f}", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), float(a[3]), int(a[4]), int(a[5]), int(a[6]) if len(a) > 6 else 42)
