#!/usr/bin/env bash
# Folding new interactions into a trained model against a full retrain, pgrec
# (benches/update.rs, the pure core that update_model() runs) and implicit
# (partial_fit_users / partial_fit_items) on the same amazon-book split, in one
# run: Recall@20 / NDCG@20 on test.txt and seconds. implicit comes from PyPI
# into a virtualenv outside the repository ($PGREC_BENCH_VENV, default
# ~/.cache/pgrec-bench-venv, as benches/recsys_peers.sh). Not part of CI.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

DATA="$REPO_ROOT/../shared/data/amazon-book"
if [ ! -f "$DATA/train.txt" ]; then
    echo "skipped: $DATA is absent"
    exit 0
fi
bench_venv
echo "== pgrec (update_model's core, default params) =="
cargo bench -q --bench update 2>/dev/null | grep -v '^$'
echo "== implicit, same split, same machine =="
OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" "$REPO_ROOT/benches/update_peers.py" "$DATA" \
    "$REPO_ROOT/target/bench-splits/amazon-book-update"
