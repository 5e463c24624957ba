"""Objective and accuracy against cell bandwidth for the token-pruning + radio/compute allocation
optimum and the baselines (issue 7 worked example: vision-language workload, 50 users, 20 MHz cell).

    python examples/token_radio_bandwidth.py                  # the bundled worked example
    python examples/token_radio_bandwidth.py my.json --out accuracy.png --mhz 2 5 10 20 40

For each bandwidth the instance is solved with `exact` (dual decomposition, certified duality gap)
and with the baselines `no-prune-equal` (all tokens, equal bandwidth and compute, users missing their
deadline dropped), `equal-prune` (equal shares, each user keeps what its share carries) and
`prop-fair` (proportional fairness). The table prints, per solver, the objective the solver
optimises as `evaluate` computes it (the weighted sum of accuracies `sum_k w_k A_k`, dropped users 0;
for a `max_min` instance the least accuracy), then the unweighted mean accuracy over all users and
the number of users served. `exact` maximises the objective column, not the mean: a baseline may
show a higher mean by serving low-weight users better. With matplotlib installed the objective
curves are saved as a PNG (default
`results/token_radio_bandwidth.png` under the repository root, directory created; `--out` to
change); without it only the table is printed.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
DEFAULT_INSTANCE = HERE.parent / "instances" / "token_radio" / "vlm-50-users-20mhz.json"
DEFAULT_OUT = HERE.parent / "results" / "token_radio_bandwidth.png"
SOLVERS = ["exact", "prop-fair", "equal-prune", "no-prune-equal"]


def summary(result) -> tuple[float, float, int]:
    """(objective, mean accuracy over all users with dropped = 0, users served) from `evaluate`."""
    e = result.evaluation
    m = e["metrics"]
    return e["objective"], m["mean_accuracy"], m["served_users"]


def sweep(instance: dict, mhz: list[float]) -> dict[str, list[tuple[float, float, int]]]:
    rows: dict[str, list[tuple[float, float, int]]] = {s: [] for s in SOLVERS}
    for b in mhz:
        inst = copy.deepcopy(instance)
        inst["bandwidth_hz"] = b * 1e6
        for s in SOLVERS:
            r = edgeplan.solve(inst, solver=s)
            if s == "exact":
                assert r.termination == "optimal", r.status
            nan = float("nan")
            rows[s].append(summary(r) if r.evaluation else (nan, nan, 0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("instance", nargs="?", default=str(DEFAULT_INSTANCE))
    ap.add_argument("--mhz", type=float, nargs="+", default=[2, 5, 10, 15, 20, 30, 40])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG path of the plot")
    args = ap.parse_args()
    instance = json.loads(Path(args.instance).read_text())
    rows = sweep(instance, args.mhz)
    k = len(instance["users"])
    maxmin = instance.get("objective") == "max_min"
    what = "min accuracy" if maxmin else "weighted sum of accuracies"
    print(f"objective = {what} (what the solvers are scored on), mean accuracy over {k} users")
    print("(dropped users count 0), [users served]")
    print("MHz    " + "  ".join(f"{s:>26}" for s in SOLVERS))
    for i, b in enumerate(args.mhz):
        cells = "  ".join(
            f"{rows[s][i][0]:>8.3f} / {rows[s][i][1]:.4f} [{rows[s][i][2]:>3}]" for s in SOLVERS
        )
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
    ax.set_ylabel(f"objective: {what} ({k} users)")
    ax.set_title("token pruning + radio/compute allocation")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
