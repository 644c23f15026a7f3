"""The analyzer registry: a config type per analyzer name, and the shared token post-processing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from odqa.errors import OdqaError
from odqa.settings import describe_errors

Analyzer = Callable[[str], list[str]]

# Bump when any analyzer's output for the same config changes: it invalidates analysis caches.
ANALYSIS_VERSION = 1

# Interrogatives are rare in encyclopedic text, so BM25 gives them a high idf and they pull in
# passages that merely contain 'where' or 'who'. Dropped from queries only (as MeCab tokens:
# 누가 → 누+가, 어떻게 → 어떻+게).
KOREAN_QUESTION_WORDS = (
    "무엇",
    "무엇인가",
    "누구",
    "누",
    "어디",
    "언제",
    "어떤",
    "어느",
    "몇",
    "무슨",
    "왜",
    "어떻",
    "어떻게",
    "얼마",
    "얼마나",
    "뭐",
    "뭘",
)


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = True
    shingles: bool = Field(False, description="also emit adjacent token pairs joined by '_'")
    query_stopwords: tuple[str, ...] = Field((), description="tokens dropped from queries (not from passages)")

    def finish(self, tokens: list[str], query: bool = False) -> list[str]:
        if self.lowercase:
            tokens = [t.lower() for t in tokens]
        if query and self.query_stopwords:
            stop = set(self.query_stopwords)
            kept = [t for t in tokens if t not in stop]
            tokens = kept or tokens  # a question made only of stopwords still searches
        if self.shingles and len(tokens) > 1:
            tokens = tokens + [f"{a}_{b}" for a, b in zip(tokens, tokens[1:])]
        return tokens


class MecabConfig(_Common):
    """MeCab-ko morphemes (python-mecab-ko's bundled mecab-ko-dic).

    `exclude_pos`: tag prefixes to drop (J particles, E endings, punctuation...).
    `compound`: 'none' keeps a compound's surface form, 'discard' keeps only its parts, 'mixed'
    keeps both (like nori's decompound_mode=mixed). `lemmas` adds the base form of inflected
    words (갔 → 가)."""

    name: Literal["mecab"] = "mecab"
    exclude_pos: tuple[str, ...] = ("J", "E", "SF", "SP", "SS", "SE", "SO", "SW", "SC", "SY")
    compound: Literal["none", "mixed", "discard"] = "mixed"
    lemmas: bool = False
    query_stopwords: tuple[str, ...] = KOREAN_QUESTION_WORDS

    def build(self, query: bool = False) -> Analyzer:
        from odqa.analysis.mecab import MecabAnalyzer

        return MecabAnalyzer(self, query)


class KiwiConfig(_Common):
    """Kiwi (kiwipiepy) morphemes, filtered by tag prefix like Mecab."""

    name: Literal["kiwi"] = "kiwi"
    exclude_pos: tuple[str, ...] = ("J", "E", "SF", "SP", "SS", "SE", "SO", "SW", "W_")
    query_stopwords: tuple[str, ...] = KOREAN_QUESTION_WORDS

    def build(self, query: bool = False) -> Analyzer:
        from odqa.analysis.kiwi import KiwiAnalyzer

        return KiwiAnalyzer(self, query)


class NgramConfig(_Common):
    """Character n-grams inside each run of CJK/Hangul characters (Lucene's CJK bigrams for n=2);
    a run shorter than n is kept whole, other words are kept as words. No dependencies."""

    name: Literal["ngram"] = "ngram"
    n: int = Field(2, ge=1, le=5)
    query_stopwords: tuple[str, ...] = KOREAN_QUESTION_WORDS

    def build(self, query: bool = False) -> Analyzer:
        from odqa.analysis.simple import NgramAnalyzer

        return NgramAnalyzer(self, query)


class WhitespaceConfig(_Common):
    """Words: runs of letters and digits. Single characters are kept."""

    name: Literal["whitespace"] = "whitespace"

    def build(self, query: bool = False) -> Analyzer:
        from odqa.analysis.simple import WordAnalyzer

        return WordAnalyzer(self, query)


class MultiConfig(BaseModel):
    """Several analyzers into one bag of tokens, each part's tokens tagged by its position so they
    never collide (a one-field approximation of a multi-field index)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["multi"] = "multi"
    parts: tuple[
        Annotated[Union[MecabConfig, KiwiConfig, NgramConfig, WhitespaceConfig], Field(discriminator="name")], ...
    ]

    def build(self, query: bool = False) -> Analyzer:
        built = [part.build(query) for part in self.parts]

        def analyze(text: str) -> list[str]:
            tokens = list(built[0](text))
            for i, analyzer in enumerate(built[1:], 1):
                tokens.extend(f"{i}|{t}" for t in analyzer(text))
            return tokens

        return analyze


AnalyzerConfig = Annotated[
    Union[MecabConfig, KiwiConfig, NgramConfig, WhitespaceConfig, MultiConfig], Field(discriminator="name")
]
_ADAPTER: TypeAdapter = TypeAdapter(AnalyzerConfig)
NAMES = ("mecab", "kiwi", "ngram", "whitespace", "multi")


# analyzer name → the distributions whose versions decide its tokens (dictionary included)
LIBRARIES = {"mecab": ("python-mecab-ko", "python-mecab-ko-dic"), "kiwi": ("kiwipiepy", "kiwipiepy_model")}


def analyzer_libraries(config: AnalyzerConfig) -> dict[str, str]:
    """The installed versions of the libraries and dictionaries an analyzer's tokens depend on
    (empty for n-grams and whitespace): recorded in index manifests and analysis cache keys, so
    a dictionary upgrade is never silently mixed with tokens made by the old one."""
    from importlib.metadata import PackageNotFoundError, version

    names = [part.name for part in config.parts] if config.name == "multi" else [config.name]
    found = {}
    for name in names:
        for distribution in LIBRARIES.get(name, ()):
            try:
                found[distribution] = version(distribution)
            except PackageNotFoundError:
                found[distribution] = "not installed"
    return found


def analyzer_from_dict(data: dict) -> AnalyzerConfig:
    if not isinstance(data, dict) or data.get("name") not in NAMES:
        name = data.get("name") if isinstance(data, dict) else data
        raise OdqaError(f"unknown analyzer {name!r}: choose one of {', '.join(NAMES)}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise OdqaError(f"bad analyzer options for {data['name']!r}: {describe_errors(e)}") from None


def parse_analyzer_spec(spec: str) -> AnalyzerConfig:
    """From the command line: a name ('mecab'), name with options ('mecab:compound=none,shingles=true')
    or a JSON object."""
    spec = spec.strip()
    if spec.startswith("{"):
        try:
            return analyzer_from_dict(json.loads(spec))
        except json.JSONDecodeError as e:
            raise OdqaError(f"analyzer spec is not valid JSON: {e}") from None
    name, _, options = spec.partition(":")
    data: dict = {"name": name}
    for option in filter(None, options.split(",")):
        key, eq, value = option.partition("=")
        if not eq:
            raise OdqaError(f"analyzer option {option!r} should be key=value")
        try:
            data[key] = json.loads(value)
        except json.JSONDecodeError:
            data[key] = value  # a bare string such as compound=mixed
    return analyzer_from_dict(data)


def default_analyzer() -> AnalyzerConfig:
    """MeCab morphemes (compounds kept whole and split) plus CJK bigrams, chosen by
    benchmarks/tune_sparse.py on training questions."""
    return MultiConfig(parts=(MecabConfig(), NgramConfig(n=2)))
