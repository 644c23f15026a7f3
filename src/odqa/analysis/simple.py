"""Dependency-free analyzers: words, and character n-grams over CJK/Hangul runs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odqa.analysis.base import NgramConfig, WhitespaceConfig

_WORD = re.compile(r"\w+")
# Hangul syllables and jamo, CJK ideographs, kana: the scripts Lucene's CJK analyzer bigrams.
_CJK_RUN = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")


class WordAnalyzer:
    def __init__(self, config: WhitespaceConfig, query: bool = False):
        self.config = config
        self.query = query

    def __call__(self, text: str) -> list[str]:
        return self.config.finish(_WORD.findall(text), self.query)


class NgramAnalyzer:
    def __init__(self, config: NgramConfig, query: bool = False):
        self.config = config
        self.query = query
        self.n = config.n

    def __call__(self, text: str) -> list[str]:
        n = self.n
        tokens: list[str] = []
        for word in _WORD.findall(text):
            position = 0
            for run in _CJK_RUN.finditer(word):
                if run.start() > position:
                    tokens.append(word[position : run.start()])
                chunk = run.group()
                if len(chunk) <= n:
                    tokens.append(chunk)
                else:
                    tokens.extend(chunk[i : i + n] for i in range(len(chunk) - n + 1))
                position = run.end()
            if position < len(word):
                tokens.append(word[position:])
        return self.config.finish(tokens, self.query)
