#!/usr/bin/env bash
# Runs `lstm bench` and ONNX Runtime (and PyTorch) alternately, ROUNDS times, for 1 and 2 threads,
# printing every JSON line; compare ratios within one run. Usage:
#   PYTHON=/path/to/venv/python benches/peers/side_by_side.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ROUNDS=${1:-2}
cargo build --release -q -p lstm-cli
for round in $(seq "$ROUNDS"); do
  for threads in 1 2; do
    for w in stream seq-small batch-mid batch-large; do
      target/release/lstm bench --workload "$w" --variant concat --threads "$threads" --format json
      "$PY" benches/peers/peers.py --peer ort --workload "$w" --threads "$threads"
      if [ "$w" = batch-mid ]; then
        "$PY" benches/peers/peers.py --peer torch --workload "$w" --threads "$threads"
      fi
    done
  done
done
