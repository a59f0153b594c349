#!/usr/bin/env bash
# Every figure issue #3 asks for, one bench/quality.py run each; JSON lines to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
Q="$PY bench/quality.py --parties 5 --task digits-mlp --rounds 30 --seeds 0-4 --threshold 2/3 --output json"
run() { echo "# $*" >&2; $Q "$@" | tail -1; }
run --partition dirichlet:0.5 --mode aggregate
run --partition dirichlet:0.5 --mode solo
run --partition iid --mode solo
run --partition iid --mode aggregate
run --partition dirichlet:0.1 --mode aggregate
run --partition dirichlet:0.1 --mode solo
for kind in label_flip random nan scaled approve_all; do
  run --partition dirichlet:0.5 --mode aggregate --byzantine "$kind:1"
  run --partition dirichlet:0.5 --mode solo --byzantine "$kind:1"
done
run --partition dirichlet:0.5 --mode aggregate --dp-epsilon 3
run --partition dirichlet:0.5 --mode solo --dp-epsilon 3
run --partition dirichlet:0.5 --mode aggregate --task digits-cnn
