"""edgeplan: optimization toolkit for deploying LLMs at the mobile network edge.

The solvers, the catalog and the cost model are Rust (``edgeplan._edgeplan``); this module gives them
a Python face::

    import edgeplan
    r = edgeplan.solve("instances/pipeline/small.json", time_limit=10)
    print(r.status, r.objective, r.gap)
    rows = edgeplan.compare("instances/pipeline/small.json")   # every solver of the family
    edgeplan.catalog("device").to_pandas()

Instances may be given as a dict, a JSON string or a path (``str`` or ``os.PathLike``); a ``str`` whose
first non-blank character is ``{`` is JSON, any other ``str`` is a path.

Errors raise :class:`EdgeplanError` subclasses: :class:`InvalidInstanceError` (``.path`` is the JSON
path of the offending field), :class:`UnknownNameError`, :class:`SolverError`,
:class:`NotApplicableError`. Solves release the GIL and stop on Ctrl-C (``KeyboardInterrupt``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from . import _edgeplan
from ._edgeplan import (
    EdgeplanError,
    InvalidInstanceError,
    NotApplicableError,
    SolverError,
    UnknownNameError,
)

__version__: str = _edgeplan.__version__

__all__ = [
    "EdgeplanError",
    "InvalidInstanceError",
    "NotApplicableError",
    "Report",
    "Result",
    "Rows",
    "SolverError",
    "Status",
    "UnknownNameError",
    "add_card",
    "catalog",
    "compare",
    "families",
    "generate",
    "profile",
    "reset_catalog",
    "schema",
    "solve",
    "validate",
]

Instance = Union[Mapping, str, bytes, "os.PathLike[str]"]
CatalogArg = Union[None, Mapping, str, "os.PathLike[str]", Iterable[Union[Mapping, str, "os.PathLike[str]"]]]

# --------------------------------------------------------------------------------------------------
# helpers


def _nonfinite_path(v: Any, path: str = "$") -> Optional[str]:
    """JSON path of the first NaN or infinity in a nested dict/list, if any."""
    if isinstance(v, float) and not math.isfinite(v):
        return path
    if isinstance(v, Mapping):
        for k, x in v.items():
            p = _nonfinite_path(x, f"{path}.{k}")
            if p:
                return p
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            p = _nonfinite_path(x, f"{path}[{i}]")
            if p:
                return p
    return None


def _invalid(message: str, path: Optional[str]) -> InvalidInstanceError:
    e = InvalidInstanceError(f"invalid input at {path}: {message}" if path else message)
    e.kind = "invalid_instance"
    e.path = path
    return e


def _dumps(obj: Any) -> str:
    bad = _nonfinite_path(obj)
    if bad:
        raise _invalid("NaN and infinity are not valid JSON numbers", bad)
    try:
        return json.dumps(obj)
    except TypeError as e:
        raise _invalid(str(e), "$") from None


def _instance_text(instance: Instance) -> Tuple[str, str]:
    """(JSON text, display name) of an instance given as a dict, JSON text or a path."""
    if isinstance(instance, Mapping):
        return _dumps(instance), "instance"
    if isinstance(instance, bytes):
        instance = instance.decode("utf-8")
    if isinstance(instance, str) and instance.lstrip().startswith("{"):
        return instance, "instance"
    if isinstance(instance, (str, os.PathLike)):
        path = os.fspath(instance)
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    raise TypeError(
        f"instance must be a dict, a JSON string or a path, not {type(instance).__name__}"
    )


def _catalog_args(catalog: CatalogArg) -> Dict[str, Any]:
    """Splits a ``catalog=`` argument into inline cards (JSON) and directories."""
    if catalog is None:
        return {}
    items = (
        [catalog]
        if isinstance(catalog, (Mapping, str, os.PathLike))
        else list(catalog)
    )
    cards: Dict[str, List[Any]] = {}
    dirs: List[str] = []
    for item in items:
        if isinstance(item, Mapping):
            for kind, value in item.items():
                lst = list(value) if isinstance(value, (list, tuple)) else [value]
                cards.setdefault(kind, []).extend(lst)
        elif isinstance(item, (str, os.PathLike)):
            dirs.append(os.fspath(item))
        else:
            raise TypeError(
                "catalog must be a dict {kind: [cards]}, a directory, or a list of those"
            )
    out: Dict[str, Any] = {}
    if cards:
        out["catalog_cards"] = _dumps(cards)
    if dirs:
        out["catalog_dirs"] = dirs
    return out


# --------------------------------------------------------------------------------------------------
# results


class Status(NamedTuple):
    """Why the solver stopped (``termination``) and what solution the result holds (``solution``)."""

    termination: str
    solution: str

    def __str__(self) -> str:
        return f"{self.termination}/{self.solution}"


class Result:
    """The result of one solve, checked by the family's ``evaluate``.

    ``objective`` is the evaluated objective of the returned solution (``None`` without a feasible one),
    ``bound`` the best proved bound, ``gap`` their relative gap, ``solve_time`` wall seconds.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Dict[str, Any]):
        self._data = data

    @property
    def family(self) -> str:
        return self._data["family"]

    @property
    def solver(self) -> str:
        return self._data["solver"]

    @property
    def solver_kind(self) -> str:
        return self._data.get("solver_kind", "")

    @property
    def status(self) -> Status:
        s = self._data["status"]
        return Status(s["termination"], s["solution"])

    @property
    def termination(self) -> str:
        return self._data["status"]["termination"]

    @property
    def solution_status(self) -> str:
        return self._data["status"]["solution"]

    @property
    def ok(self) -> bool:
        """Whether the result holds a feasible solution (optimal or not)."""
        return self.solution_status in ("optimal", "feasible")

    @property
    def objective(self) -> Optional[float]:
        return self._data.get("objective")

    @property
    def bound(self) -> Optional[float]:
        return self._data.get("bound")

    @property
    def gap(self) -> Optional[float]:
        return self._data.get("gap")

    @property
    def solve_time(self) -> float:
        return self._data.get("wall_time_s", 0.0)

    @property
    def iterations(self) -> int:
        return self._data.get("iterations", 0)

    @property
    def nodes(self) -> int:
        return self._data.get("nodes", 0)

    @property
    def solution(self) -> Optional[Dict[str, Any]]:
        return self._data.get("solution")

    @property
    def evaluation(self) -> Optional[Dict[str, Any]]:
        return self._data.get("evaluation")

    @property
    def notes(self) -> List[str]:
        return list(self._data.get("notes", []))

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain JSON-compatible data (a deep copy)."""
        return json.loads(json.dumps(self._data))

    def __repr__(self) -> str:
        def num(x: Optional[float]) -> str:
            return "None" if x is None else f"{x:.6g}"

        return (
            f"Result(family={self.family!r}, solver={self.solver!r}, status='{self.status}', "
            f"objective={num(self.objective)}, bound={num(self.bound)}, gap={num(self.gap)}, "
            f"solve_time={self.solve_time:.3f})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]


class Rows(list):
    """A list of row dicts (compare rows, catalog cards) with :meth:`to_pandas`."""

    def to_pandas(self):  # -> pandas.DataFrame
        """The rows as a ``pandas.DataFrame`` (pandas is imported here, on first use)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "Rows.to_pandas() needs pandas, which is not installed: pip install pandas"
            ) from None
        return pd.DataFrame(list(self))


class Report(dict):
    """A cost-model profile report (a dict) with :meth:`to_pandas` for its per-layer rows."""

    @property
    def layers(self) -> Rows:
        """One row per layer; nested times are flattened (``time_fwd_s``, ``decode_time_fwd_j``, ...)."""
        rows = Rows()
        for layer in self.get("layers") or []:
            row: Dict[str, Any] = {}
            for k, v in layer.items():
                if isinstance(v, Mapping):
                    row.update({f"{k}_{kk}": vv for kk, vv in v.items()})
                else:
                    row[k] = v
            rows.append(row)
        return rows

    def to_pandas(self):  # -> pandas.DataFrame
        """The per-layer rows as a ``pandas.DataFrame``."""
        return self.layers.to_pandas()

    def table(self) -> str:
        """The report rendered as the CLI prints it."""
        return self.get("table", "")


# --------------------------------------------------------------------------------------------------
# the API


def solve(
    instance: Instance,
    solver: str = "auto",
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    *,
    catalog: CatalogArg = None,
) -> Result:
    """Solves an instance (dict, JSON string or path) with a named solver (``"auto"`` picks one).

    ``time_limit`` is in seconds; ``mip_gap`` is the relative gap at which MILP solvers stop.
    Raises :class:`InvalidInstanceError` (with ``.path``) for a malformed instance.
    """
    text, _ = _instance_text(instance)
    out = _edgeplan.solve(
        text,
        solver=solver,
        time_limit=time_limit,
        mip_gap=mip_gap,
        threads=threads,
        seed=seed,
        **_catalog_args(catalog),
    )
    return Result(json.loads(out))


def validate(instance: Instance, *, catalog: CatalogArg = None) -> str:
    """Checks an instance completely; returns its family name or raises :class:`InvalidInstanceError`."""
    text, _ = _instance_text(instance)
    return _edgeplan.validate(text, **_catalog_args(catalog))


def compare(
    instance: Instance,
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    *,
    catalog: CatalogArg = None,
) -> Rows:
    """Runs every solver of the instance's family; one row per solver (status, objective, bound,
    ``gap_to_best_bound``, ``wall_time_s``, ``feasible``)."""
    text, name = _instance_text(instance)
    out = _edgeplan.compare(
        text,
        instance=name,
        time_limit=time_limit,
        mip_gap=mip_gap,
        threads=threads,
        seed=seed,
        **_catalog_args(catalog),
    )
    return Rows(json.loads(out))


def generate(family: str, size: Union[str, int] = "small", seed: int = 0) -> Dict[str, Any]:
    """A random instance of a family (``size``: ``"small"``, ``"medium"``, ``"large"`` or a number)."""
    return json.loads(_edgeplan.generate(family, str(size), seed))


def schema(family: str, solution: bool = False) -> Dict[str, Any]:
    """The JSON Schema of a family's instances (or, with ``solution=True``, its solutions)."""
    return json.loads(_edgeplan.schema(family, solution))


def families() -> Rows:
    """Every problem family with its schema version and solvers."""
    return Rows(json.loads(_edgeplan.families()))


def _value(x: Any) -> Any:
    """The figure of a sourced value (``{"value": v, "source": ...}``)."""
    return x.get("value") if isinstance(x, Mapping) else x


def _card_row(card: Dict[str, Any]) -> Dict[str, Any]:
    kind = card.get("kind")
    if kind == "llm":
        return {
            "kind": "llm",
            "name": card["name"],
            "family": card.get("family"),
            "arch": card.get("arch"),
            "params": card.get("published_params"),
            "active_params": card.get("published_active_params"),
            "layers": card.get("n_layers", 0) + (card.get("decoder_layers") or 0),
            "d_model": card.get("d_model"),
            "n_heads": card.get("n_heads"),
            "n_kv_heads": card.get("n_kv_heads"),
            "d_ff": card.get("d_ff"),
            "vocab_size": card.get("vocab_size"),
            "max_context": card.get("max_context"),
            "moe": card.get("moe") is not None,
            "card": card,
        }
    if kind == "device":
        peaks = {k: _value(v) for k, v in card.get("peak_flops", {}).items()}
        return {
            "kind": "device",
            "name": card["name"],
            "class": card.get("class"),
            "peak_fp16_flops": peaks.get("fp16", peaks.get("bf16")),
            "peak_flops": peaks,
            "memory_bytes": _value(card.get("memory_bytes")),
            "memory_bandwidth_bytes_per_s": _value(card.get("memory_bandwidth_bytes_per_s")),
            "idle_power_w": _value(card.get("idle_power_w")),
            "peak_power_w": _value(card.get("peak_power_w")),
            "card": card,
        }
    return {
        "kind": "runtime",
        "name": card["name"],
        "compute_efficiency": _value(card.get("compute_efficiency")),
        "bandwidth_efficiency": _value(card.get("bandwidth_efficiency")),
        "per_op_latency_s": _value(card.get("per_op_latency_s")),
        "supports_training": card.get("supports_training", False),
        "card": card,
    }


def catalog(kind: Optional[str] = None, *, catalog: CatalogArg = None) -> Rows:
    """Catalog cards as rows with their key numbers (``kind``: ``"llm"``, ``"device"``, ``"runtime"``
    or ``None`` for all). Each row keeps the full card under ``"card"``."""
    cards = json.loads(_edgeplan.catalog_cards(kind, **_catalog_args(catalog)))
    return Rows(_card_row(c) for c in cards)


def add_card(kind: str, card: Union[Mapping, str, "os.PathLike[str]"]) -> str:
    """Adds (or replaces) a card in the process-wide catalog, from a dict, JSON text or a JSON file;
    returns its name. Cards are validated; a bad one raises :class:`InvalidInstanceError`."""
    if isinstance(card, Mapping):
        text = _dumps(card)
    elif isinstance(card, str) and card.lstrip().startswith("{"):
        text = card
    elif isinstance(card, (str, os.PathLike)):
        with open(os.fspath(card), encoding="utf-8") as f:
            text = f.read()
    else:
        raise TypeError(f"card must be a dict, JSON text or a path, not {type(card).__name__}")
    return _edgeplan.add_card(kind, text)


def reset_catalog() -> None:
    """Forgets cards added with :func:`add_card`."""
    _edgeplan.reset_catalog()


_RECIPES = {
    "inference": {"kind": "inference"},
    "full-fp32-adam": {"kind": "full", "preset": "fp32_adam"},
    "full-mixed-adam": {"kind": "full", "preset": "mixed_adam"},
    "full-pure16-adam": {"kind": "full", "preset": "pure16_adam"},
    "full-sgd": {"kind": "full", "preset": "sgd"},
}


def _recipe(name: str, dtype: str, rank: Optional[int], targets: Optional[Iterable[str]]) -> Dict[str, Any]:
    if name in ("lora", "qlora"):
        return {
            "kind": "lora",
            "rank": 8 if rank is None else rank,
            "targets": [t.strip().lower() for t in (targets or ["q", "v"])],
            "base_dtype": "int4" if name == "qlora" else dtype,
        }
    if rank is not None or targets is not None:
        raise _invalid("LoRA options need recipe='lora' or 'qlora'", "$.recipe")
    if name not in _RECIPES:
        raise _invalid(
            f"unknown recipe {name!r}; use one of {', '.join([*_RECIPES, 'lora', 'qlora'])}",
            "$.recipe",
        )
    return dict(_RECIPES[name])


def profile(
    model: str,
    device: Optional[str] = None,
    runtime: Optional[str] = None,
    dtype: str = "fp16",
    batch: int = 1,
    seq: int = 512,
    recipe: str = "inference",
    lora_rank: Optional[int] = None,
    lora_targets: Optional[Iterable[str]] = None,
    gen_tokens: int = 128,
    *,
    measured: Optional[Union[str, os.PathLike[str]]] = None,
    catalog: CatalogArg = None,
) -> Report:
    """The analytic cost model for one model (and device): parameters, memory, per-layer FLOPs, bytes and
    time, and with a device prefill / decode / training speed and energy.

    ``recipe``: inference, full-fp32-adam, full-mixed-adam, full-pure16-adam, full-sgd, lora, qlora
    (LoRA defaults: rank 8, targets q, v). ``seq`` is the prompt (training: sequence) length and
    ``gen_tokens`` the tokens decoded after it. The report is a dict (``params``, ``memory``,
    ``layers``, ``prefill``, ``decode``, ``training``, ...) with ``"table"`` as the CLI prints it.

    ``measured``: path of a measured per-layer CSV (docs/cost-model.md, "Measured profiles"; needs a
    ``device``); layers with a matching row take its time and energy, each layer's ``time_source`` /
    ``decode_time_source`` says ``"measured"`` or ``"analytic"`` and ``measured_layers`` counts them.
    Relative paths resolve against the current directory.
    """
    request = {
        "model": model,
        "device": device,
        "runtime": runtime,
        "dtype": dtype.lower(),
        "batch": batch,
        "seq_len": seq,
        "gen_tokens": gen_tokens,
        "recipe": _recipe(recipe, dtype.lower(), lora_rank, lora_targets),
        "measured": None if measured is None else os.fspath(measured),
    }
    out = _edgeplan.profile(json.dumps(request), **_catalog_args(catalog))
    return Report(json.loads(out))
