"""The index configuration as one typed object that round-trips through JSON (or YAML)."""

from __future__ import annotations

from pydantic import Field

from odqa.analysis.base import AnalyzerConfig, default_analyzer
from odqa.corpus import CorpusConfig
from odqa.retrieval.scoring import ScoringConfig
from odqa.settings import Settings


class IndexConfig(Settings):
    what = "index config"

    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    analyzer: AnalyzerConfig = Field(default_factory=default_analyzer)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
