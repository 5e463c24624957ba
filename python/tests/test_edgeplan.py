"""Tests of the Python package: solve from every input form, statuses, errors with JSON paths, the
catalog, the cost model, pandas export and the type stubs."""

import ast
import copy
import inspect
import json
import math
import sys
from pathlib import Path

import pytest

import edgeplan

TERMINATIONS = {
    "optimal",
    "completed",
    "infeasible",
    "unbounded",
    "infeasible_or_unbounded",
    "time_limit",
    "iteration_limit",
    "interrupted",
    "error",
}
SOLUTION_STATUSES = {"optimal", "feasible", "infeasible", "no_solution"}
PKG = Path(edgeplan.__file__).parent


@pytest.fixture(scope="module")
def instance():
    return edgeplan.generate("pipeline", "small", 1)


def device_names():
    return {r["name"] for r in edgeplan.catalog("device")}


# ------------------------------------------------------------------------------------------------
# solve


def test_solve_from_dict_str_and_path(instance, tmp_path):
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(instance))
    results = [
        edgeplan.solve(instance),
        edgeplan.solve(json.dumps(instance)),
        edgeplan.solve(path),
        edgeplan.solve(str(path)),
    ]
    for r in results:
        assert r.family == "pipeline"
        assert isinstance(r.solver, str) and r.solver
        assert r.solve_time >= 0.0
    objectives = [r.objective for r in results]
    assert all(o is not None for o in objectives)
    assert max(objectives) - min(objectives) <= 1e-9 * max(1.0, abs(objectives[0]))


def test_result_statuses_and_fields(instance):
    r = edgeplan.solve(instance, time_limit=30)
    assert r.termination in TERMINATIONS
    assert r.solution_status in SOLUTION_STATUSES
    assert r.status == (r.termination, r.solution_status)
    assert str(r.status) == f"{r.termination}/{r.solution_status}"
    assert r.ok
    assert r.evaluation["feasible"] is True
    assert isinstance(r.solution, dict)
    if r.gap is not None:
        assert r.gap >= 0.0
    d = r.to_dict()
    for key in ("family", "solver", "status", "objective", "bound", "gap", "wall_time_s", "solution", "evaluation"):
        assert key in d
    d["family"] = "changed"
    assert r.family == "pipeline", "to_dict must return a copy"
    text = repr(r)
    assert text.startswith("Result(") and "pipeline" in text and str(r.status) in text


def test_every_solver_by_name(instance):
    fam = next(f for f in edgeplan.families() if f["family"] == "pipeline")
    assert fam["solvers"], "the pipeline family lists its solvers"
    for s in fam["solvers"]:
        try:
            r = edgeplan.solve(instance, solver=s["name"], time_limit=20)
        except edgeplan.NotApplicableError:
            continue
        assert r.solver == s["name"]
        assert r.termination in TERMINATIONS


def test_unknown_solver(instance):
    with pytest.raises(edgeplan.UnknownNameError) as e:
        edgeplan.solve(instance, solver="no-such-solver")
    assert e.value.kind == "unknown_name"


def test_bad_options(instance):
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(instance, time_limit=-1)
    assert e.value.path == "$.options.time_limit_s"


def test_instance_type_error():
    with pytest.raises(TypeError):
        edgeplan.solve(42)


def test_missing_path():
    with pytest.raises(FileNotFoundError):
        edgeplan.solve("/no/such/instance.json")


# ------------------------------------------------------------------------------------------------
# invalid instances carry a JSON path


def test_nan_in_dict_has_path(instance):
    bad = copy.deepcopy(instance)
    bad["catalog"] = {"device": [{"name": "x", "memory_bytes": {"value": math.nan}}]}
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.solve(bad)
    assert e.value.path == "$.catalog.device[0].memory_bytes.value"


def test_nan_literal_in_text_is_invalid():
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.validate('{"family": "pipeline", "x": NaN}')
    assert e.value.path.startswith("$")
    assert "line 1" in str(e.value)


def test_negative_memory_card_has_path(instance):
    card = copy.deepcopy(next(r for r in edgeplan.catalog("device"))["card"])
    card["name"] = "broken-board"
    card["aliases"] = []
    card["memory_bytes"]["value"] = -1.0
    bad = dict(instance, catalog={"device": [card]})
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.validate(bad)
    assert e.value.path == "$.catalog.device[0].memory_bytes.value"
    assert isinstance(e.value, edgeplan.EdgeplanError)


def _replace_device_names(v, names, new):
    if isinstance(v, dict):
        return {k: _replace_device_names(x, names, new) for k, x in v.items()}
    if isinstance(v, list):
        return [_replace_device_names(x, names, new) for x in v]
    if isinstance(v, str) and v in names:
        return new
    return v


def test_unknown_device_name_has_path(instance):
    bad = _replace_device_names(instance, device_names(), "no-such-device")
    assert bad != instance, "the generated instance names at least one catalog device"
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.validate(bad)
    assert e.value.path and e.value.path.startswith("$.")
    assert "no-such-device" in str(e.value)


def test_unknown_family():
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.validate({"family": "nope"})
    assert e.value.path == "$.family"
    with pytest.raises(edgeplan.UnknownNameError):
        edgeplan.generate("nope")
    with pytest.raises(edgeplan.UnknownNameError):
        edgeplan.schema("nope")


# ------------------------------------------------------------------------------------------------
# compare, generate, schema


def test_compare_rows(instance):
    rows = edgeplan.compare(instance, time_limit=20)
    assert isinstance(rows, edgeplan.Rows) and isinstance(rows, list)
    assert rows
    for row in rows:
        for key in ("solver", "kind", "status", "objective", "bound", "gap_to_best_bound", "wall_time_s", "feasible"):
            assert key in row
    assert any(row["feasible"] for row in rows)


def test_generate_validate_round_trip():
    for seed in (0, 1, 2):
        doc = edgeplan.generate("pipeline", "small", seed)
        assert doc["family"] == "pipeline"
        assert edgeplan.validate(doc) == "pipeline"
    assert edgeplan.generate("pipeline", "small", 3) == edgeplan.generate("pipeline", "small", 3)


def test_schema():
    s = edgeplan.schema("pipeline")
    assert s["properties"]["family"] == {"const": "pipeline"}
    assert isinstance(edgeplan.schema("pipeline", solution=True), dict)


# ------------------------------------------------------------------------------------------------
# catalog


def test_catalog_rows():
    rows = edgeplan.catalog()
    assert {r["kind"] for r in rows} >= {"llm", "device"}
    assert all(r["name"] for r in rows)
    llm = {r["name"]: r for r in edgeplan.catalog("llm")}
    assert llm["llama-2-7b"]["layers"] == 32
    assert llm["llama-2-7b"]["d_model"] == 4096
    assert llm["llama-2-7b"]["params"] > 6e9
    dev = {r["name"]: r for r in edgeplan.catalog("device")}
    h100 = dev["h100-sxm"]
    assert h100["peak_fp16_flops"] > 1e14
    assert h100["memory_bytes"] == 8e10
    assert h100["memory_bandwidth_bytes_per_s"] > 1e12
    with pytest.raises(edgeplan.UnknownNameError):
        edgeplan.catalog("gpu")


def test_add_card_and_catalog_kwarg(tmp_path):
    base = copy.deepcopy(edgeplan.catalog("device")[0]["card"])
    base.pop("kind", None)
    base["name"] = "my-edge-board"
    base["aliases"] = []
    try:
        assert edgeplan.add_card("device", base) == "my-edge-board"
        assert "my-edge-board" in device_names()
    finally:
        edgeplan.reset_catalog()
    assert "my-edge-board" not in device_names()
    rows = edgeplan.catalog("device", catalog={"device": [base]})
    assert "my-edge-board" in {r["name"] for r in rows}
    # a directory of cards, as for `--catalog DIR`
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "dir-board.json").write_text(json.dumps(dict(base, name="dir-board")))
    rows = edgeplan.catalog("device", catalog=tmp_path)
    assert "dir-board" in {r["name"] for r in rows}
    bad = dict(base, memory_bytes={"value": -5, "source": "user"})
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.add_card("device", bad)
    assert e.value.path == "$.memory_bytes.value"


# ------------------------------------------------------------------------------------------------
# profile


def test_profile_keys():
    r = edgeplan.profile("llama-2-7b", device="h100-sxm")
    for key in ("model", "params", "weight_bytes", "memory", "layers", "prefill", "decode", "table"):
        assert key in r
    assert r["params"] > 6e9
    assert r["memory"]["total_bytes"] > r["memory"]["weights_bytes"] > 1e10
    assert r["prefill"]["tokens_per_s"] > 0
    assert len(r.layers) == len(r["layers"]) > 32
    assert "time_fwd_s" in r.layers[1]
    assert "llama-2-7b" in r.table()


def test_profile_recipes():
    inf = edgeplan.profile("llama-2-7b")
    full = edgeplan.profile("llama-2-7b", recipe="full-mixed-adam")
    qlora = edgeplan.profile("llama-2-7b", recipe="qlora", lora_rank=16, lora_targets=["q", "k", "v", "o"])
    assert full["memory"]["total_bytes"] > inf["memory"]["total_bytes"]
    assert qlora["memory"]["weights_bytes"] < inf["memory"]["weights_bytes"]
    assert 0 < qlora["trainable_params"] < 1e8
    with pytest.raises(edgeplan.InvalidInstanceError):
        edgeplan.profile("llama-2-7b", recipe="bogus")
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.profile("no-such-model")
    assert e.value.path == "$.model"


def test_profile_measured_csv(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        "model,device,phase,batch,seq_len,layer,time_s,energy_j\n"
        "llama-2-7b,rtx-4090,prefill,1,512,block.0,0.125,2.5\n"
    )
    base = edgeplan.profile("llama-2-7b", device="rtx-4090")
    r = edgeplan.profile("llama-2-7b", device="rtx-4090", measured=csv)
    assert base["measured_layers"] == 0 and r["measured_layers"] == 1
    assert r["request"]["measured"] == str(csv)
    assert [l["time_source"] for l in r["layers"][:3]] == ["analytic", "measured", "analytic"]
    t = r["layers"][1]["time"]
    assert abs(t["fwd_s"] + t["bwd_s"] - 0.125) < 1e-12
    assert r["layers"][2]["time"] == base["layers"][2]["time"]
    assert r.layers[1]["time_source"] == "measured"
    csv.write_text("model,device,phase,batch,seq_len,layer,time_s\nllama-2-7b,rtx-4090,warmup,1,512,0,0.1\n")
    with pytest.raises(edgeplan.InvalidInstanceError) as e:
        edgeplan.profile("llama-2-7b", device="rtx-4090", measured=str(csv))
    assert e.value.path == "$.measured"
    assert "line 2, column 'phase'" in str(e.value)


# ------------------------------------------------------------------------------------------------
# pandas


def test_to_pandas():
    pd = pytest.importorskip("pandas")
    df = edgeplan.catalog("device").to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert "name" in df.columns and len(df) == len(edgeplan.catalog("device"))
    layers = edgeplan.profile("gpt2-small").to_pandas()
    assert "fwd_flops" in layers.columns


def test_to_pandas_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        edgeplan.Rows([{"a": 1}]).to_pandas()


# ------------------------------------------------------------------------------------------------
# type stubs


def _stub_names(path: Path):
    tree = ast.parse(path.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                names[a.asname or a.name] = a
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node
    return names


def _check_signature(func, stub):
    params = list(inspect.signature(func).parameters)
    a = stub.args
    stub_params = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    assert params == stub_params, f"{func.__name__}: {params} != stub {stub_params}"


def test_stubs_cover_package():
    assert (PKG / "py.typed").exists()
    stubs = _stub_names(PKG / "__init__.pyi")
    missing = [n for n in edgeplan.__all__ if n not in stubs]
    assert not missing, f"__init__.pyi lacks {missing}"
    for name in edgeplan.__all__:
        obj = getattr(edgeplan, name)
        if inspect.isfunction(obj):
            _check_signature(obj, stubs[name])


def test_stubs_cover_core():
    core = edgeplan._edgeplan
    stubs = _stub_names(PKG / "_edgeplan.pyi")
    public = [n for n in dir(core) if not n.startswith("_")]
    missing = [n for n in public if n not in stubs]
    assert not missing, f"_edgeplan.pyi lacks {missing}"
    extra = [n for n, node in stubs.items() if isinstance(node, ast.FunctionDef) and not hasattr(core, n)]
    assert not extra, f"_edgeplan.pyi lists functions the module lacks: {extra}"
    for name in public:
        obj = getattr(core, name)
        if callable(obj) and not isinstance(obj, type):
            _check_signature(obj, stubs[name])


# ------------------------------------------------------------------------------------------------
# GIL and Ctrl-C

CTRL_C_SCRIPT = r"""
import signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive session
import edgeplan
spins = [0]
done = [False]
def spin():
    while not done[0]:
        spins[0] += 1
        time.sleep(0.001)
t = threading.Thread(target=spin)
t.start()
print("started", flush=True)
try:
    r = edgeplan.solve(sys.argv[1], solver="milp", time_limit=120)
    print("finished", r.status, flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
done[0] = True
t.join()
print("spins", spins[0], flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_interrupts_a_solve_and_gil_is_released(tmp_path):
    import signal
    import subprocess
    import time

    inst = Path(__file__).resolve().parents[2] / "instances" / "pipeline" / "pipeedge-vit-base.json"
    if not inst.exists():
        pytest.skip("bundled instance not found")
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(inst)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    time.sleep(1.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    if out.startswith("finished"):
        pytest.skip("the solve ended before the signal")
    assert out.startswith("interrupted"), out
    assert time.monotonic() - t0 < 10.0
    spins = int(out.split("spins")[1])
    assert spins > 100, "a Python thread must run while the solver holds no GIL"
