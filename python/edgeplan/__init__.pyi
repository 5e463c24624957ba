"""Type stubs for the `edgeplan` package."""

import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Union

from ._edgeplan import (
    EdgeplanError as EdgeplanError,
    InvalidInstanceError as InvalidInstanceError,
    NotApplicableError as NotApplicableError,
    SolverError as SolverError,
    UnknownNameError as UnknownNameError,
)

__version__: str
__all__: List[str]

Instance = Union[Mapping[str, Any], str, bytes, os.PathLike[str]]
CatalogArg = Union[
    None,
    Mapping[str, Any],
    str,
    os.PathLike[str],
    Iterable[Union[Mapping[str, Any], str, os.PathLike[str]]],
]

class Status(NamedTuple):
    termination: str
    solution: str

class Result:
    def __init__(self, data: Dict[str, Any]) -> None: ...
    @property
    def family(self) -> str: ...
    @property
    def solver(self) -> str: ...
    @property
    def solver_kind(self) -> str: ...
    @property
    def status(self) -> Status: ...
    @property
    def termination(self) -> str: ...
    @property
    def solution_status(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def objective(self) -> Optional[float]: ...
    @property
    def bound(self) -> Optional[float]: ...
    @property
    def gap(self) -> Optional[float]: ...
    @property
    def solve_time(self) -> float: ...
    @property
    def iterations(self) -> int: ...
    @property
    def nodes(self) -> int: ...
    @property
    def solution(self) -> Optional[Dict[str, Any]]: ...
    @property
    def evaluation(self) -> Optional[Dict[str, Any]]: ...
    @property
    def notes(self) -> List[str]: ...
    def to_dict(self) -> Dict[str, Any]: ...

class Rows(List[Dict[str, Any]]):
    def to_pandas(self) -> Any: ...

class Report(Dict[str, Any]):
    @property
    def layers(self) -> Rows: ...
    def to_pandas(self) -> Any: ...
    def table(self) -> str: ...

def solve(
    instance: Instance,
    solver: str = "auto",
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    *,
    catalog: CatalogArg = None,
) -> Result: ...
def validate(instance: Instance, *, catalog: CatalogArg = None) -> str: ...
def compare(
    instance: Instance,
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    *,
    catalog: CatalogArg = None,
) -> Rows: ...
def generate(family: str, size: Union[str, int] = "small", seed: int = 0) -> Dict[str, Any]: ...
def schema(family: str, solution: bool = False) -> Dict[str, Any]: ...
def families() -> Rows: ...
def catalog(kind: Optional[str] = None, *, catalog: CatalogArg = None) -> Rows: ...
def add_card(kind: str, card: Union[Mapping[str, Any], str, os.PathLike[str]]) -> str: ...
def reset_catalog() -> None: ...
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
) -> Report: ...
