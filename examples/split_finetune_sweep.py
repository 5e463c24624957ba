"""The split_finetune worked example: optimal cut and freezing ratios as the uplink goes from
10 Mbit/s to 1 Gbit/s (LLaMA-2-7B LoRA, 8 phone-class clients, RTX 3090 edge server, SFL).

    python examples/split_finetune_sweep.py            # prints a markdown table
    python examples/split_finetune_sweep.py --plot sweep.png

The same table comes from `cargo run --example split_finetune_sweep` (the one in
docs/split_finetune.md was produced by the Rust example).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
INSTANCE = HERE.parent / "instances" / "split_finetune" / "llama2-7b-8phones.json"
UPLINKS_MBPS = [10, 20, 30, 50, 100, 200, 500, 1000]


def sweep(base: dict) -> list[dict]:
    rows = []
    for mbps in UPLINKS_MBPS:
        inst = copy.deepcopy(base)
        for c in inst["clients"]:
            c["uplink_bps"] = mbps * 1e6
        r = edgeplan.solve(inst, solver="exact")
        b = edgeplan.solve(inst, solver="splitlora")
        m = r.evaluation["metrics"]
        s = r.solution
        rows.append(
            {
                "uplink_mbps": mbps,
                "cut": s["cut"],
                "client_freeze": s["client_freeze"],
                "client_frozen_blocks": m["client_frozen_blocks"],
                "server_freeze": s["server_freeze"],
                "server_frozen_blocks": m["server_frozen_blocks"],
                "phi": m["trainable_fraction"],
                "rounds": m["rounds"],
                "first_round_s": m["first_round_s"],
                "later_round_s": m["later_round_s"],
                "total_h": m["total_time_s"] / 3600,
                "splitlora_h": b.objective / 3600 if b.objective is not None else None,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instance", type=Path, default=INSTANCE)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    rows = sweep(json.loads(args.instance.read_text()))
    print("| uplink Mbit/s | cut | client freeze (blocks) | server freeze (blocks) | φ | rounds | round 1 s | later s | total h | SplitLoRA h |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        sl = "infeasible" if r["splitlora_h"] is None else f"{r['splitlora_h']:.2f}"
        print(
            f"| {r['uplink_mbps']} | {r['cut']} | {r['client_freeze']} ({r['client_frozen_blocks']}) "
            f"| {r['server_freeze']} ({r['server_frozen_blocks']}) | {r['phi']:.3f} | {r['rounds']:.1f} "
            f"| {r['first_round_s']:.2f} | {r['later_round_s']:.2f} | {r['total_h']:.2f} | {sl} |"
        )
    if args.plot:
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib not installed; no plot")
            return
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = [r["uplink_mbps"] for r in rows]
        ax.plot(x, [r["cut"] for r in rows], "o-", label="cut (client blocks)")
        ax.plot(x, [r["client_frozen_blocks"] for r in rows], "s-", label="client frozen blocks")
        ax.plot(x, [r["server_frozen_blocks"] for r in rows], "^-", label="server frozen blocks")
        ax.set_xscale("log")
        ax.set_xlabel("uplink (Mbit/s)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"saved {args.plot}")


if __name__ == "__main__":
    main()
