"""Accuracy against cell bandwidth for the token-pruning + radio/compute allocation optimum and the
baselines (issue 7 worked example: vision-language workload, 50 users, 20 MHz cell).

    python examples/token_radio_bandwidth.py                  # the bundled worked example
    python examples/token_radio_bandwidth.py my.json --out accuracy.png --mhz 2 5 10 20 40

For each bandwidth the instance is solved with `exact` (dual decomposition, certified duality gap)
and with the baselines `no-prune-equal` (all tokens, equal bandwidth and compute, users missing their
deadline dropped), `equal-prune` (equal shares, each user keeps what its share carries) and
`prop-fair` (proportional fairness). The table prints the mean accuracy over all users (dropped
users count 0) and the number of users served. With matplotlib installed the curves are saved as a
PNG; without it only the table is printed.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
DEFAULT_INSTANCE = HERE.parent / "instances" / "token_radio" / "vlm-50-users-20mhz.json"
SOLVERS = ["exact", "prop-fair", "equal-prune", "no-prune-equal"]


def mean_accuracy(result) -> tuple[float, int]:
    """Mean accuracy over all users (dropped = 0) and the number served, from `evaluate`'s metrics."""
    m = result.evaluation["metrics"]
    return m["mean_accuracy"], m["served_users"]


def sweep(instance: dict, mhz: list[float]) -> dict[str, list[tuple[float, int]]]:
    rows: dict[str, list[tuple[float, int]]] = {s: [] for s in SOLVERS}
    for b in mhz:
        inst = copy.deepcopy(instance)
        inst["bandwidth_hz"] = b * 1e6
        for s in SOLVERS:
            r = edgeplan.solve(inst, solver=s)
            if s == "exact":
                assert r.termination == "optimal", r.status
            rows[s].append(mean_accuracy(r) if r.evaluation else (float("nan"), 0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("instance", nargs="?", default=str(DEFAULT_INSTANCE))
    ap.add_argument("--mhz", type=float, nargs="+", default=[2, 5, 10, 15, 20, 30, 40])
    ap.add_argument("--out", default="token_radio_bandwidth.png")
    args = ap.parse_args()
    instance = json.loads(Path(args.instance).read_text())
    rows = sweep(instance, args.mhz)
    k = len(instance["users"])
    print(f"mean accuracy over {k} users (served users in brackets)")
    print("MHz    " + "  ".join(f"{s:>18}" for s in SOLVERS))
    for i, b in enumerate(args.mhz):
        cells = "  ".join(f"{rows[s][i][0]:>12.4f} [{rows[s][i][1]:>3}]" for s in SOLVERS)
        print(f"{b:<6g} {cells}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in SOLVERS:
        ax.plot(args.mhz, [r[0] for r in rows[s]], marker="o", label=s)
    ax.set_xlabel("cell bandwidth (MHz)")
    ax.set_ylabel(f"mean accuracy over {k} users")
    ax.set_title("token pruning + radio/compute allocation")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
