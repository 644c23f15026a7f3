"""The extractive reader: windows with character offsets, n-best decoding, Korean clean-up, and
the model wrapper. Importing this package does not import torch."""

from odqa.reader.decode import aggregate, top_spans
from odqa.reader.features import WindowConfig, Windows, build_windows
from odqa.reader.model import Reader, ReaderConfig, ReaderResult
from odqa.types import Span

__all__ = [
    "Reader",
    "ReaderConfig",
    "ReaderResult",
    "Span",
    "WindowConfig",
    "Windows",
    "aggregate",
    "build_windows",
    "top_spans",
]
