"""MeCab-ko analysis by parsing the lattice string (several times faster than building
python-mecab-ko's Morpheme objects)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from odqa.errors import OdqaError

if TYPE_CHECKING:
    from odqa.analysis.base import MecabConfig


class MecabAnalyzer:
    def __init__(self, config: MecabConfig, query: bool = False):
        try:
            import mecab
            from mecab.utils import create_lattice
        except ImportError:
            raise OdqaError("the mecab analyzer needs python-mecab-ko: pip install 'odqa[korean]'") from None
        self._tagger = mecab.MeCab()._tagger
        self._lattice = create_lattice
        self.config = config
        self.query = query
        self._exclude = tuple(config.exclude_pos)

    def morphemes(self, text: str) -> list[tuple[str, str, str, str]]:
        """(surface, POS, type, expression) for each morpheme."""
        lattice = self._lattice(text)
        if not self._tagger.parse(lattice):
            raise OdqaError(f"MeCab failed on text starting {text[:40]!r}: {self._tagger.what()}")
        out = []
        for line in lattice.to_string().split("\n"):
            surface, tab, feature = line.partition("\t")
            if not tab:
                continue  # EOS or blank
            fields = feature.split(",")
            out.append(
                (surface, fields[0], fields[4] if len(fields) > 4 else "*", fields[7] if len(fields) > 7 else "*")
            )
        return out

    def __call__(self, text: str) -> list[str]:
        exclude = self._exclude
        compound = self.config.compound
        tokens: list[str] = []
        for surface, pos, kind, expression in self.morphemes(text):
            if pos.startswith(exclude):
                continue
            if kind == "Compound" and compound != "none" and expression != "*":
                parts = [p.split("/", 1)[0] for p in expression.split("+")]
                if compound == "mixed":
                    tokens.append(surface)
                tokens.extend(p for p in parts if p)
            elif kind == "Inflect" and self.config.lemmas and expression != "*":
                tokens.append(surface)
                first, _, rest = expression.split("+", 1)[0].partition("/")
                if first and not rest.startswith(exclude):
                    tokens.append(first)
            else:
                tokens.append(surface)
        return self.config.finish(tokens, self.query)
