"""Tests of the offloading family through the Python bindings."""

import json
from pathlib import Path

import pytest

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


def test_ofdma_instance_shares_the_band():
    inst = json.loads((ROOT / "instances/offloading/cameras_phones_ofdma_5mhz.json").read_text())
    r = edgeplan.solve(inst, solver="exact")
    assert r.termination == "optimal"
    assert r.evaluation["feasible"]
    band = [d["bandwidth_hz"] for d in r.solution["devices"]]
    assert len(band) == 8 and all(b >= 0.0 for b in band)
    assert sum(band) <= inst["spectrum"]["bandwidth_hz"] * (1 + 1e-9)
    assert abs(r.objective - 0.66047) <= 1e-4
    # the same instance under TDMA: the slots need the full band, four devices at their cap
    inst["spectrum"]["access"] = "tdma"
    t = edgeplan.solve(inst, solver="exact")
    assert t.termination == "optimal"
    assert abs(t.objective - 0.66492) <= 1e-4
    assert all("bandwidth_hz" not in d for d in t.solution["devices"])


def test_threshold_policy_is_tdma_only():
    inst = json.loads((ROOT / "instances/offloading/classic_tdma_8users.json").read_text())
    inst["spectrum"]["access"] = "ofdma"
    with pytest.raises(edgeplan.NotApplicableError):
        edgeplan.solve(inst, solver="threshold")
    # You et al.'s classic model: every window is the whole frame, so OFDMA and TDMA coincide
    o = edgeplan.solve(inst, solver="exact")
    inst["spectrum"]["access"] = "tdma"
    t = edgeplan.solve(inst, solver="exact")
    assert abs(o.objective - t.objective) <= 1e-5 * t.objective


def test_bad_access_has_path():
    inst = json.loads((ROOT / "instances/offloading/cameras_phones_ofdma_5mhz.json").read_text())
    inst["spectrum"]["access"] = "fdma"
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(inst)
    assert "$.spectrum.access" in str(e.value)
