"""Tests of the offloading family through the Python bindings."""

import json
from pathlib import Path

import edgeplan

ROOT = Path(__file__).resolve().parents[2]


def test_classic_exact_matches_threshold():
    inst = json.loads((ROOT / "instances/offloading/classic_tdma_8users.json").read_text())
    e = edgeplan.solve(inst, solver="exact")
    t = edgeplan.solve(inst, solver="threshold")
    assert e.termination == "optimal"
    assert abs(e.objective - t.objective) <= 1e-5 * e.objective


def test_worked_example_is_feasible():
    inst = json.loads((ROOT / "instances/offloading/llama8b_phones_jetsons_l4.json").read_text())
    r = edgeplan.solve(inst)
    assert r.termination == "optimal"
    assert r.evaluation["feasible"]
    modes = [d["mode"] for d in r.solution["devices"]]
    assert len(modes) == 6


def test_bad_input_has_path():
    inst = json.loads((ROOT / "instances/offloading/classic_tdma_8users.json").read_text())
    inst["spectrum"]["frame_s"] = -1.0
    try:
        edgeplan.solve(inst)
    except Exception as e:  # noqa: BLE001
        assert "$.spectrum.frame_s" in str(e)
    else:
        raise AssertionError("expected an error")
