"""Per-client decisions of the split_finetune family through the Python bindings."""

import copy
import json
from pathlib import Path

import pytest

import edgeplan

ROOT = Path(__file__).resolve().parents[2]
PER_CLIENT = ROOT / "instances" / "split_finetune" / "per-client-8-heterogeneous.json"


@pytest.fixture(scope="module")
def inst():
    return json.loads(PER_CLIENT.read_text())


def test_per_client_solvers_are_registered():
    fam = next(f for f in edgeplan.families() if f["family"] == "split_finetune")
    names = {s["name"] for s in fam["solvers"]}
    assert {"milp", "per-client-brute-force", "per-client-descent"} <= names


def test_milp_beats_common_decisions(inst):
    r = edgeplan.solve(inst)  # auto = milp for per-client round latency
    assert r.status == ("optimal", "optimal")
    assert r.evaluation["feasible"] is True
    per = r.solution["per_client"]
    assert len(per) == len(inst["clients"])
    assert len({d["cut"] for d in per}) > 1
    common = copy.deepcopy(inst)
    common["decisions"] = "common"
    c = edgeplan.solve(common, solver="exact")
    assert c.status == ("optimal", "optimal")
    assert "per_client" not in c.solution
    assert r.objective < 0.95 * c.objective
    d = edgeplan.solve(inst, solver="per-client-descent")
    assert r.objective * (1 - 1e-9) <= d.objective <= c.objective * (1 + 1e-9)


def test_exact_does_not_apply_to_per_client(inst):
    with pytest.raises(edgeplan.NotApplicableError):
        edgeplan.solve(inst, solver="exact")
