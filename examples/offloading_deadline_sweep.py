"""Deadline sweep of the offloading worked example through the Python bindings: phones and Jetsons
running Llama-3.1-8B (int4) requests against an L4 edge server; device energy per request and chosen
modes as the deadline tightens; then TDMA vs OFDMA as the band narrows. (The tables in
docs/offloading.md were produced by the Rust twin,
`cargo run --release --example offloading_deadline_sweep`.)"""

import copy
import json
from pathlib import Path

import edgeplan

ROOT = Path(__file__).resolve().parents[1]
base = json.loads((ROOT / "instances/offloading/llama8b_phones_jetsons_l4.json").read_text())
rows = []
for deadline in [40.0, 20.0, 10.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0]:
    inst = copy.deepcopy(base)
    for d in inst["devices"]:
        d["deadline_s"] = deadline
    r = edgeplan.solve(inst, solver="exact")
    ev = r.evaluation or {}
    if ev.get("feasible"):
        devs = ev["metrics"]["devices"]
        mean = ev["metrics"]["device_energy_j"] / len(devs)
        modes = ", ".join(f'{d["device"]}:{d["mode"]}' for d in devs)
        print(f"{deadline:5.1f} s  {mean:8.3f} J/request  {modes}")
        rows.append((deadline, mean))
    else:
        print(f"{deadline:5.1f} s  {r.termination}")

try:
    import matplotlib.pyplot as plt

    plt.plot([r[0] for r in rows], [r[1] for r in rows], marker="o")
    plt.xscale("log")
    plt.xlabel("deadline (s)")
    plt.ylabel("mean device energy per request (J)")
    plt.savefig("offloading_deadline_sweep.png", dpi=120)
except ImportError:
    pass

# TDMA vs OFDMA on the camera / phone instance as the band narrows (the second table of
# docs/offloading.md): device energy and how many devices transmit at their power cap.
cams = json.loads((ROOT / "instances/offloading/cameras_phones_ofdma_5mhz.json").read_text())
caps = [d.get("max_tx_power_w") for d in cams["devices"]]
for mhz in [20.0, 10.0, 5.0, 3.0, 2.0]:
    cells = []
    for access in ["ofdma", "tdma"]:
        inst = copy.deepcopy(cams)
        inst["spectrum"]["bandwidth_hz"] = mhz * 1e6
        inst["spectrum"]["access"] = access
        r = edgeplan.solve(inst, solver="exact")
        devs = r.evaluation["metrics"]["devices"]
        at_cap = sum(1 for d, c in zip(devs, caps) if c and d["tx_power_w"] >= c * (1 - 1e-6))
        cells.append(f"{access} {r.objective:.4f} J ({at_cap} at cap)")
    print(f"{mhz:5.1f} MHz  " + "  ".join(cells))
