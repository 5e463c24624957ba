"""Tests of the token_radio family through the Python bindings."""

import copy
import json
from pathlib import Path

import pytest

import edgeplan

ROOT = Path(__file__).resolve().parents[2]
WORKED = ROOT / "instances" / "token_radio" / "vlm-50-users-20mhz.json"


@pytest.fixture(scope="module")
def worked():
    return json.loads(WORKED.read_text())


def test_generated_instance_solves_to_a_certified_optimum():
    inst = edgeplan.generate("token_radio", "medium", 1)
    r = edgeplan.solve(inst)
    assert r.termination == "optimal"
    assert r.bound is not None and r.gap is not None and r.gap <= 1e-6
    assert r.evaluation["feasible"]


def test_worked_example_optimum_beats_baselines(worked):
    opt = edgeplan.solve(worked, solver="exact")
    assert opt.termination == "optimal"
    assert len(worked["users"]) == 50 and worked["bandwidth_hz"] == 20e6
    for s in ["no-prune-equal", "equal-prune", "prop-fair"]:
        r = edgeplan.solve(worked, solver=s)
        assert r.objective <= opt.objective * (1 + 1e-9)


def test_more_bandwidth_never_lowers_the_optimum(worked):
    last = -1.0
    for mhz in [2, 5, 10, 20]:
        inst = copy.deepcopy(worked)
        inst["bandwidth_hz"] = mhz * 1e6
        r = edgeplan.solve(inst, solver="exact")
        assert r.objective >= last - 1e-9
        last = r.objective


def test_bad_input_has_a_json_path(worked):
    inst = copy.deepcopy(worked)
    inst["users"][3]["deadline_s"] = -1.0
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(inst)
    assert e.value.path == "$.users[3].deadline_s"
