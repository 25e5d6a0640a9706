#!/usr/bin/env bash
# Alternating rounds of ours and the peers (6 of batch-mid, 4 of the others), JSON lines on stdout;
# summarise with `python3 benches/peers/ratios.py FILE`. Usage:
#   PYTHON=/path/to/venv/python benches/peers/rounds.sh > results.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
cargo build --release -q -p lstm-cli
for r in 1 2 3 4 5 6; do
  for t in 1 2; do
    target/release/lstm bench --workload batch-mid --variant concat --threads $t --format json
    $PY benches/peers/peers.py --peer ort --workload batch-mid --threads $t
    $PY benches/peers/peers.py --peer torch --workload batch-mid --threads $t
  done
done
for r in 1 2 3 4; do
  for t in 1 2; do
    target/release/lstm bench --workload batch-large --variant concat --threads $t --format json
    $PY benches/peers/peers.py --peer ort --workload batch-large --threads $t
  done
  for w in stream seq-small; do
    target/release/lstm bench --workload $w --variant concat --threads 1 --format json
    $PY benches/peers/peers.py --peer ort --workload $w --threads 1
  done
done
