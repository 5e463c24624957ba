"""Solve a pipeline placement instance and draw its stage timeline.

    python examples/pipeline_timeline.py                       # the bundled PipeEdge ViT-Base instance
    python examples/pipeline_timeline.py my.json --solver milp --micro-batches 6 --out timeline.png

The pipeline family's `evaluate` reports, per stage, its node, layer range, compute time and the time
to send its output on (`evaluation.metrics.stages[*]`: `start_s`, `end_s`, `compute_s`, `comm_out_s`).
From these durations the script builds the GPipe forward schedule of several micro-batches (element
`e` starts micro-batch `k` when both micro-batch `k` left element `e-1` and micro-batch `k-1` left
`e`), so the bottleneck element shows as the one that is never idle.

With matplotlib installed the timeline is saved as a PNG; without it, it is printed as text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import edgeplan

HERE = Path(__file__).resolve().parent
DEFAULT_INSTANCE = HERE.parent / "instances" / "pipeline" / "pipeedge-vit-base.json"


def elements(metrics: dict) -> list[tuple[str, str, float]]:
    """The chain of (row label, kind, duration s): input transfer, then stage, link, stage, ..."""
    chain = []
    if metrics.get("input_transfer_s"):
        chain.append(("input", "comm", metrics["input_transfer_s"]))
    stages = metrics["stages"]
    for i, s in enumerate(stages):
        label = f"stage {i}: {s['node']} [{s['first_layer']}..{s['last_layer']}]"
        chain.append((label, "compute", s["compute_s"]))
        if s.get("comm_out_s"):
            to = stages[i + 1]["node"] if i + 1 < len(stages) else "sink"
            chain.append((f"link {s['node']} -> {to}", "comm", s["comm_out_s"]))
    return chain


def schedule(chain: list[tuple[str, str, float]], micro_batches: int) -> list[list[tuple[float, float]]]:
    """GPipe forward schedule: `bars[e][k] = (start, end)` of micro-batch `k` on element `e`."""
    bars: list[list[tuple[float, float]]] = []
    for e, (_, _, d) in enumerate(chain):
        row = []
        for k in range(micro_batches):
            ready = bars[e - 1][k][1] if e > 0 else 0.0
            free = row[k - 1][1] if k > 0 else 0.0
            start = max(ready, free)
            row.append((start, start + d))
        bars.append(row)
    return bars


def print_text(chain, bars, width: int = 64) -> None:
    end = max((r[-1][1] for r in bars), default=0.0) or 1.0
    label_w = max(len(c[0]) for c in chain)
    print(f"{'element':<{label_w}}  {'time_ms':>9}  timeline (0 .. {end * 1e3:.3f} ms)")
    for (label, kind, d), row in zip(chain, bars):
        line = [" "] * width
        for k, (a, b) in enumerate(row):
            lo, hi = int(a / end * width), max(int(b / end * width), int(a / end * width) + 1)
            for x in range(lo, min(hi, width)):
                line[x] = str(k % 10) if kind == "compute" else "~"
        print(f"{label:<{label_w}}  {d * 1e3:9.3f}  |{''.join(line)}|")


def plot(chain, bars, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 0.5 * len(chain) + 1.5))
    cmap = plt.get_cmap("tab10")
    for y, ((label, kind, _), row) in enumerate(zip(chain, bars)):
        for k, (a, b) in enumerate(row):
            ax.barh(
                y,
                (b - a) * 1e3,
                left=a * 1e3,
                color=cmap(k % 10),
                alpha=1.0 if kind == "compute" else 0.45,
                hatch=None if kind == "compute" else "//",
                edgecolor="black",
                linewidth=0.4,
            )
    ax.set_yticks(range(len(chain)))
    ax.set_yticklabels([c[0] for c in chain])
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    print(f"timeline saved to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("instance", nargs="?", default=str(DEFAULT_INSTANCE))
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument(
        "--micro-batches",
        type=int,
        default=None,
        help="micro-batches (requests) to draw; default: the instance's (4 for a bottleneck objective), at most 8",
    )
    ap.add_argument("--out", default="pipeline_timeline.png")
    ap.add_argument("--text", action="store_true", help="print the timeline as text even if matplotlib is installed")
    args = ap.parse_args()

    r = edgeplan.solve(args.instance, solver=args.solver, time_limit=args.time_limit)
    print(r)
    if not r.ok:
        raise SystemExit(f"no feasible plan: {r.status}")
    metrics = r.evaluation["metrics"]
    if "stages" not in metrics:
        raise SystemExit("this instance's objective has no single-pipeline timeline (replicated placement)")
    m = args.micro_batches
    if m is None:
        m = int(metrics.get("micro_batches") or 1)
        if m == 1 and metrics.get("objective_kind") == "bottleneck":
            m = 4  # a throughput objective: show requests streaming through the pipeline
        m = max(1, min(m, 8))
    chain = elements(metrics)
    bars = schedule(chain, m)
    print(
        f"{len(metrics['stages'])} stages, bottleneck {metrics.get('bottleneck_element')} "
        f"({(metrics.get('bottleneck_s') or 0) * 1e3:.3f} ms), {m} micro-batch(es)"
    )
    title = f"{Path(args.instance).name}: {r.solver}, objective {r.objective:.6g} ({metrics.get('objective_kind')})"
    try:
        if args.text:
            raise ImportError
        plot(chain, bars, title, Path(args.out))
    except ImportError:
        print_text(chain, bars)


if __name__ == "__main__":
    main()
