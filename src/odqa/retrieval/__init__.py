"""Retrievers: `search(queries, k) -> list[list[Hit]]`, `save(path)`, `load(path)`."""

from odqa.retrieval.base import Retriever

__all__ = ["Retriever"]
