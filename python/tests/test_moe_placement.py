"""Tests of the moe_placement family through the Python bindings."""

import copy
import json
from pathlib import Path

import pytest

import edgeplan

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = ROOT / "instances" / "moe_placement"


@pytest.fixture(scope="module")
def instance():
    return edgeplan.generate("moe_placement", "small", 1)


def test_family_listed_with_solvers():
    fam = next(f for f in edgeplan.families() if f["family"] == "moe_placement")
    names = {s["name"] for s in fam["solvers"]}
    assert {"milp", "brute-force", "lp-round", "greedy", "migration", "eplb"} <= names


def test_auto_solves_small_to_optimality(instance):
    r = edgeplan.solve(instance, time_limit=30)
    assert r.ok
    assert r.evaluation["feasible"] is True
    assert r.termination == "optimal"
    assert len(r.solution["layers"]) == 2


def test_greedy_not_worse_than_eplb_on_max_load():
    doc = json.loads((INSTANCES / "eplb-readme.json").read_text())
    g = edgeplan.solve(doc, solver="greedy")
    e = edgeplan.solve(doc, solver="eplb")
    assert g.ok and e.ok
    assert g.objective <= e.objective * (1 + 1e-9)


def test_migration_needs_current_placement(instance):
    with pytest.raises(edgeplan.NotApplicableError):
        edgeplan.solve(instance, solver="migration")
    doc = json.loads((INSTANCES / "migration-4x16x4.json").read_text())
    r = edgeplan.solve(doc, solver="migration")
    assert r.ok
    assert r.evaluation["metrics"]["migration_bytes"] >= 0


def test_bad_input_has_path(instance):
    bad = copy.deepcopy(instance)
    bad["groups"][0]["tokens_per_s"] = -5.0
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.validate(bad)
    assert "$.groups[0].tokens_per_s" in str(e.value)
