"""Type stubs for the compiled core (`edgeplan._edgeplan`). Everything crosses as JSON text."""

from typing import List, Optional

__version__: str

class EdgeplanError(Exception):
    kind: str
    path: Optional[str]

class InvalidInstanceError(EdgeplanError): ...
class UnknownNameError(EdgeplanError):
    suggestions: List[str]

class SolverError(EdgeplanError): ...
class NotApplicableError(EdgeplanError): ...

def solve(
    doc: str,
    solver: str = "auto",
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    catalog_cards: Optional[str] = None,
    catalog_dirs: Optional[List[str]] = None,
) -> str: ...
def validate(
    doc: str,
    catalog_cards: Optional[str] = None,
    catalog_dirs: Optional[List[str]] = None,
) -> str: ...
def compare(
    doc: str,
    instance: str = "instance",
    time_limit: Optional[float] = None,
    mip_gap: Optional[float] = None,
    threads: Optional[int] = None,
    seed: int = 0,
    catalog_cards: Optional[str] = None,
    catalog_dirs: Optional[List[str]] = None,
) -> str: ...
def generate(family: str, size: str = "small", seed: int = 0) -> str: ...
def schema(family: str, solution: bool = False) -> str: ...
def families() -> str: ...
def catalog_cards(
    kind: Optional[str] = None,
    catalog_cards: Optional[str] = None,
    catalog_dirs: Optional[List[str]] = None,
) -> str: ...
def profile(
    request: str,
    catalog_cards: Optional[str] = None,
    catalog_dirs: Optional[List[str]] = None,
) -> str: ...
def add_card(kind: str, card: str) -> str: ...
def reset_catalog() -> None: ...
