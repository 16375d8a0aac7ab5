"""Item-item peers on amazon-book (KGAT's split), for benches/item_item_peers.sh:
EASE as its paper's code writes it in numpy (float64 Gram matrix, np.linalg.inv,
dense B), and implicit's CosineRecommender and BM25Recommender, timed and
evaluated with pgrec's protocol (all items ranked, training items excluded,
Recall@20 and standard NDCG@20 on the given test file)."""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from recsys_peers import evaluate, read_split  # noqa: E402


def main(data_dir, lam, neighbors):
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    train, test_users, test_items_of = read_split(data_dir)
    n_items = train.shape[1]

    import implicit
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    # implicit keeps K neighbours counting the item itself; pgrec's
    # `neighbors` counts the others, so K is one more.
    for label, make in [
        (f"implicit CosineRecommender (K {neighbors + 1})", lambda: CosineRecommender(K=neighbors + 1)),
        (f"implicit BM25Recommender (K {neighbors + 1}, K1 1.2, B 0.75)", lambda: BM25Recommender(K=neighbors + 1)),
    ]:
        m = make()
        t = time.perf_counter()
        m.fit(train, show_progress=False)
        secs = time.perf_counter() - t
        sim = m.similarity.tocsr()
        r, n = evaluate(lambda b: (train[b] @ sim).toarray(), train, test_users, test_items_of)
        print(f"{label:<52} train {secs:7.1f} s  Recall@20 {r:.4f}  NDCG@20 {n:.4f}", flush=True)

    if lam is None:
        # pgrec's default: 4 × the mean training interactions per item.
        lam = 4.0 * train.nnz / np.count_nonzero(np.asarray(train.sum(axis=0)).ravel())
    t = time.perf_counter()
    g = (train.T @ train).toarray().astype(np.float64)
    g[np.diag_indices(n_items)] += lam
    p = np.linalg.inv(g)
    del g
    b = p / (-np.diag(p))
    b[np.diag_indices(n_items)] = 0.0
    del p
    secs = time.perf_counter() - t
    b32 = b.astype(np.float32)
    del b
    r, n = evaluate(lambda batch: np.asarray(train[batch] @ b32), train, test_users, test_items_of)
    print(f"{f'numpy EASE (float64, lambda {lam:.4g}, dense B)':<52} train {secs:7.1f} s  Recall@20 {r:.4f}  NDCG@20 {n:.4f}",
          flush=True)
    print(f"(implicit {implicit.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main(sys.argv[1], None if sys.argv[2] == "auto" else float(sys.argv[2]), int(sys.argv[3]))
