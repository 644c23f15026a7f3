"""The retriever contract every backend follows."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from odqa.types import Hit


@runtime_checkable
class Retriever(Protocol):
    def search(self, queries: list[str], k: int) -> list[list[Hit]]: ...

    def save(self, path: str | Path) -> None: ...
