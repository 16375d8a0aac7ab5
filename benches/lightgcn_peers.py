"""RecBole's LightGCN (the class from PyPI's recbole, unchanged) trained the way
RecBole's trainer does — each epoch every training interaction once, shuffled,
with one uniformly drawn item the user has not seen, mini-batches of Adam — on
the split pgrec's bench read, for benches/lightgcn_peers.sh. A small shim
stands in for RecBole's Config and Dataset (the model reads five config keys,
two counts and the interaction matrix from them). Evaluated with pgrec's
protocol (all items ranked, training items excluded, Recall@20 and NDCG@20).

Usage: python lightgcn_peers.py DATA_DIR EPOCHS LAYERS LR REG BATCH THREADS [SEED]"""

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from recsys_peers import evaluate, read_split, step_batches  # noqa: E402


class Shim:
    """What RecBole's LightGCN asks of its Dataset."""

    def __init__(self, train, n_users, n_items):
        self.train, self.counts = train, {"user_id": n_users, "item_id": n_items}

    def num(self, field):
        return self.counts[field]

    def inter_matrix(self, form="coo"):
        return self.train.tocoo()


def main(data_dir, epochs, layers, lr, reg, batch, threads, seed=42):
    import torch
    from recbole.model.general_recommender.lightgcn import LightGCN

    # RecBole 1.2.1 fills its adjacency with dok_matrix._update, which scipy
    # 1.13 removed (the entries moved to ._dict): the one patch it needs.
    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = lambda self, entries: self._dict.update(entries)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train, test_users, test_items_of = read_split(data_dir)
    n_users, n_items = train.shape

    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
              "device": torch.device("cpu"), "embedding_size": 64, "n_layers": layers,
              "reg_weight": reg, "require_pow": True}
    model = LightGCN(config, Shim(train, n_users, n_items))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    coo = train.tocoo()
    users, pos = coo.row.astype(np.int64), coo.col.astype(np.int64)
    rng = np.random.default_rng(seed)
    seen = [set(train.indices[train.indptr[u]:train.indptr[u + 1]]) for u in range(n_users)]
    spent = 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(users))
        neg = rng.integers(0, n_items, len(users))
        for k in range(len(users)):
            u = users[k]
            while neg[k] in seen[u]:
                neg[k] = rng.integers(0, n_items)
        # Sampling is not timed (RecBole's own sampler is not what is compared).
        t = time.perf_counter()
        model.train()
        total = step_batches(opt, model.calculate_loss, order, batch,
                             lambda b: {"user_id": torch.from_numpy(users[b]), "item_id": torch.from_numpy(pos[b]),
                                        "neg_item_id": torch.from_numpy(neg[b])})
        spent += time.perf_counter() - t
        print(f"  recbole lightgcn epoch {epoch}/{epochs}: loss {total / len(users):.5f}, {spent:.1f} s", flush=True)
    model.eval()
    with torch.no_grad():
        ue, ie = model.forward()
    ue, ie = ue.numpy(), ie.numpy()
    r, n = evaluate(lambda bt: ue[bt] @ ie.T, train, test_users, test_items_of)
    import recbole
    print(f"RecBole {recbole.__version__} LightGCN (torch {torch.__version__}, {threads} threads)  {layers} layers  "
          f"{epochs} epochs  {spent / epochs:.3f} s/epoch  Recall@20 {r:.4f}  NDCG@20 {n:.4f}", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), float(a[3]), float(a[4]), int(a[5]), int(a[6]), int(a[7]) if len(a) > 7 else 42)
