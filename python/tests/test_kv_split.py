"""kv_split through the Python bindings: solve, statuses, evaluate, errors with JSON paths."""

import copy

import pytest

import edgeplan


@pytest.fixture(scope="module")
def instance():
    return edgeplan.generate("kv_split", "small", 1)


def test_generate_and_solve(instance):
    assert instance["family"] == "kv_split"
    r = edgeplan.solve(instance, "milp")
    assert r.termination == "optimal"
    assert r.ok
    assert len(r.solution["users"]) == len(instance["users"])
    assert r.bound <= r.objective * (1 + 1e-9)


def test_heuristic_not_better_than_milp(instance):
    best = edgeplan.solve(instance, "milp").objective
    for s in ("priced-search", "local-search", "greedy", "lagrangian"):
        r = edgeplan.solve(instance, s)
        assert r.ok
        assert r.objective >= best * (1 - 1e-6)


def test_bad_input_has_path(instance):
    bad = copy.deepcopy(instance)
    bad["users"][2]["uplink_bps"] = -5.0
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(bad)
    assert "$.users[2].uplink_bps" in str(e.value)
