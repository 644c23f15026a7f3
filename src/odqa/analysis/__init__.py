"""Text analyzers for sparse retrieval. Each is a small config object (serialised into the index
manifest) whose `build()` returns a callable `text -> list[str]`; heavy libraries load in `build()`."""

from odqa.analysis.base import (
    Analyzer,
    AnalyzerConfig,
    analyzer_from_dict,
    default_analyzer,
    parse_analyzer_spec,
)
from odqa.analysis.corpus import AnalyzedCorpus, analyze_corpus

__all__ = [
    "AnalyzedCorpus",
    "Analyzer",
    "AnalyzerConfig",
    "analyze_corpus",
    "analyzer_from_dict",
    "default_analyzer",
    "parse_analyzer_spec",
]
