"""Summarises alternating rounds of JSON lines (from rounds.sh or side_by_side.sh).

Each line of ours opens a round; the peer lines after it (ort, torch) belong to that round. For
each workload and thread count, prints the medians and the median of the per-round ratios
ours / best peer (below 1: we are faster). Usage: python3 ratios.py results.jsonl
"""
import json
import statistics as st
import sys

rounds = {}
current = None
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r["variant"] not in ("ort", "torch"):
        current = {"ours": r["value"]}
        rounds.setdefault((r["workload"], r["threads"]), []).append(current)
    elif current is not None:
        current[r["variant"]] = r["value"]

for (workload, threads), rs in sorted(rounds.items()):
    rs = [g for g in rs if len(g) > 1]
    if not rs:
        continue
    ours = [g["ours"] for g in rs]
    ratio = [g["ours"] / min(v for k, v in g.items() if k != "ours") for g in rs]
    peers = " ".join(
        f"{p} {st.median([g[p] for g in rs if p in g]):.2f}"
        for p in ("ort", "torch")
        if any(p in g for g in rs)
    )
    print(
        f"{workload:12} threads {threads} rounds {len(rs)}: ours {st.median(ours):.2f}, {peers}; "
        f"ours/best {st.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
    )
