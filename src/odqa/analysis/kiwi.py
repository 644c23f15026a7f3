"""Kiwi (kiwipiepy) morphemes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from odqa.errors import OdqaError

if TYPE_CHECKING:
    from odqa.analysis.base import KiwiConfig


class KiwiAnalyzer:
    def __init__(self, config: KiwiConfig, query: bool = False):
        try:
            from kiwipiepy import Kiwi
        except ImportError:
            raise OdqaError("the kiwi analyzer needs kiwipiepy: pip install 'odqa[korean]'") from None
        self._kiwi = Kiwi()
        self.config = config
        self.query = query
        self._exclude = tuple(config.exclude_pos)

    def __call__(self, text: str) -> list[str]:
        tokens = [t.form for t in self._kiwi.tokenize(text) if not t.tag.startswith(self._exclude)]
        return self.config.finish(tokens, self.query)
