"""Place MoE experts on edge servers and compare EPLB, the greedy and the MILP.

    python examples/moe_placement_loads.py                     # the bundled EPLB README instance
    python examples/moe_placement_loads.py my.json --out loads.png

Every solver's result carries `evaluation.metrics.layers[*].utilization` (per server, per layer);
the script prints, per solver, the objective, the MILP's bound and the busiest server of each layer,
and with matplotlib installed draws per-layer server utilisation bars for each solver.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent / "instances" / "moe_placement" / "eplb-readme.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("instance", nargs="?", default=str(DEFAULT))
    ap.add_argument("--out", default=None, help="PNG path for the utilisation plot")
    args = ap.parse_args()
    doc = json.loads(Path(args.instance).read_text())
    results = {}
    for solver in ("eplb", "greedy", "lp-round", "milp"):
        try:
            r = edgeplan.solve(doc, solver=solver, time_limit=30)
        except edgeplan.NotApplicableError as e:
            print(f"{solver:9} not applicable: {e}")
            continue
        results[solver] = r
        layers = r.evaluation["metrics"]["layers"] if r.ok else []
        busiest = [max(l["utilization"]) for l in layers]
        print(
            f"{solver:9} {r.status!s:22} objective {r.objective} bound {r.bound} "
            f"max utilisation per layer {[round(b, 5) for b in busiest]}"
        )
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ok = {k: v for k, v in results.items() if v.ok}
    if not ok:
        return
    n_layers = len(next(iter(ok.values())).evaluation["metrics"]["layers"])
    fig, axes = plt.subplots(n_layers, 1, figsize=(8, 2.5 * n_layers), squeeze=False)
    width = 0.8 / len(ok)
    for l in range(n_layers):
        ax = axes[l][0]
        for k, (name, r) in enumerate(ok.items()):
            u = r.evaluation["metrics"]["layers"][l]["utilization"]
            ax.bar([s + k * width for s in range(len(u))], u, width=width, label=name)
        ax.set_title(f"layer {l}: server utilisation")
        ax.set_xlabel("server")
    axes[0][0].legend()
    fig.tight_layout()
    out = args.out or "moe_placement_loads.png"
    fig.savefig(out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
