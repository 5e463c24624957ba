"""kv_split worked example: how the optimal split and KV options move as the context grows.

    python examples/kv_split_context_sweep.py            # table on stdout (plot with matplotlib)

Llama-3.1-8B (int4 blocks, fp16 embedding/head and KV) for six end devices (two Snapdragon 8 Gen 3,
two A17 Pro, two Jetson Orin Nano 8 GB; the even ones accept no KV compression, the odd ones up to
int4) and one L4 edge server (22 GB usable), prompt 512 -> 32k tokens, 256 generated, mean per-token
latency minimised. The same sweep in Rust (which produced the table in docs/kv_split.md):
`cargo run --release --example kv_split_context_sweep`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
BASE = HERE.parent / "instances" / "kv_split" / "llama3.1-8b-phones-l4-512.json"


def sweep(prompts=(512, 2048, 8192, 16384, 32768)):
    base = json.loads(BASE.read_text())
    rows = []
    for prompt in prompts:
        inst = copy.deepcopy(base)
        for u in inst["users"]:
            u["prompt_len"] = prompt
        r = edgeplan.solve(inst)
        if not r.ok:
            rows.append((prompt, None, None, str(r.status)))
            continue
        users = r.evaluation["metrics"]["users"]
        splits = [u["split"] for u in r.solution["users"]]
        server_kv = [u.get("server_kv") or "-" for u in r.solution["users"]]
        mean_ms = 1e3 * sum(u["latency_s"] for u in users) / len(users)
        rows.append((prompt, splits, server_kv, f"{mean_ms:.1f} ms ({r.status})"))
    return rows


def main():
    rows = sweep()
    print("| prompt | splits | server KV | mean latency |")
    print("|---|---|---|---|")
    for prompt, splits, kv, lat in rows:
        print(f"| {prompt} | {splits} | {kv} | {lat} |")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [r[0] for r in rows if r[1]]
    ys = [sum(r[1]) / len(r[1]) for r in rows if r[1]]
    plt.semilogx(xs, ys, "o-", base=2)
    plt.xlabel("prompt tokens")
    plt.ylabel("mean layers on the device")
    plt.savefig("kv_split_context_sweep.png", dpi=120)


if __name__ == "__main__":
    main()
