"""Tests of the split_finetune family through the Python bindings."""

import copy
import json
import math
from pathlib import Path

import pytest

import edgeplan

ROOT = Path(__file__).resolve().parents[2]
WORKED = ROOT / "instances" / "split_finetune" / "llama2-7b-8phones.json"


@pytest.fixture(scope="module")
def worked():
    return json.loads(WORKED.read_text())


def test_family_is_registered():
    fam = next(f for f in edgeplan.families() if f["family"] == "split_finetune")
    names = {s["name"] for s in fam["solvers"]}
    assert {"exact", "brute-force", "coordinate-descent", "projected-gradient", "splitlora", "freeze-client", "equal-bandwidth"} <= names


def test_worked_example_is_optimal(worked):
    r = edgeplan.solve(worked)
    assert r.status == ("optimal", "optimal")
    assert r.evaluation["feasible"] is True
    m = r.evaluation["metrics"]
    assert math.isclose(
        m["total_time_s"], m["first_round_s"] + (m["rounds"] - 1) * m["later_round_s"], rel_tol=1e-12
    )


def test_uplink_moves_the_choice(worked):
    sols = []
    for bps in (10e6, 1e9):
        inst = copy.deepcopy(worked)
        for c in inst["clients"]:
            c["uplink_bps"] = bps
        r = edgeplan.solve(inst, solver="exact")
        sols.append((r.solution, r.evaluation["metrics"]["client_trains"]))
    assert sols[0][1] is False and sols[1][1] is True


def test_generated_small_every_solver():
    inst = edgeplan.generate("split_finetune", "small", 3)
    best = edgeplan.solve(inst, solver="exact").objective
    for name in ("brute-force", "coordinate-descent", "projected-gradient", "splitlora", "freeze-client", "equal-bandwidth"):
        r = edgeplan.solve(inst, solver=name)
        if r.objective is not None:
            assert r.objective >= best * (1 - 1e-9)


def test_nan_uplink_has_path(worked):
    bad = copy.deepcopy(worked)
    bad["clients"][2]["uplink_bps"] = math.nan
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(bad)
    assert e.value.path == "$.clients[2].uplink_bps"
