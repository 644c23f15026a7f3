"""The sparse index on disk: round trip, memory-mapped load, refusals, atomic replacement."""

import json
import shutil

import numpy as np
import pytest

from odqa import OdqaError
from odqa.analysis.base import NgramConfig
from odqa.corpus import CorpusConfig
from odqa.retrieval.build import build_sparse_index
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex

QUERIES = ["대한민국의 수도는?", "훈민정음을 만든 왕", "김치 재료", "한강은 어디로 흐르나"]


@pytest.fixture
def built(corpus_file, tmp_path):
    out = tmp_path / "index"
    index, _ = build_sparse_index(corpus_file, out, CorpusConfig(title=True), cache_dir=tmp_path / "cache", quiet=True)
    return index, out


def test_round_trip_gives_same_results_memory_mapped(built):
    index, out = built
    loaded = SparseIndex.load(out)
    assert isinstance(loaded.arrays["weights"], np.memmap)
    before = index.search(QUERIES, k=3)
    after = loaded.search(QUERIES, k=3)
    assert [[(h.passage_id, round(h.score, 5)) for h in r] for r in before] == [
        [(h.passage_id, round(h.score, 5)) for h in r] for r in after
    ]
    top = loaded.search(["훈민정음을 창제한 왕은?"], k=1, fetch=True)[0][0]
    assert top.passage.title == "세종" and top.passage.sources[0].doc_id == "5"
    assert json.loads((out / "config.json").read_text())["corpus"]["title"] is True


def test_manifest_records_what_built_it(built):
    _, out = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analyzer"]["name"] == "multi"
    assert manifest["scoring"]["method"] == "lucene"
    assert manifest["counts"]["passages"] == manifest["corpus"]["passages"] > 0
    assert len(manifest["corpus"]["fingerprint"]) == 16


@pytest.mark.parametrize(
    "change,message",
    [
        ({"format_version": 99}, "index format 99"),
        ({"analysis_version": 0}, "analyzer version 0"),
        ({"format": "odqa.dense"}, "not a sparse index"),
        ({"analyzer": {"name": "nori"}}, "unknown analyzer"),
    ],
)
def test_mismatched_manifest_is_refused(built, change, message):
    _, out = built
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update(change)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OdqaError, match=message):
        SparseIndex.load(out)


@pytest.mark.parametrize(
    "manifest,message",
    [
        ("[1, 2]", "not a JSON object"),
        ("{}", "names no index format"),
        ('{"format": "odqa.sparse", "format_version": 1}', "has no passage counts"),
        ("{broken", "is corrupt"),
    ],
)
def test_malformed_manifests_get_one_line(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(OdqaError, match=message):
        SparseIndex.load(tmp_path)


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda m: m.pop("counts"), "has no passage counts"),
        (lambda m: m.update(scoring={"method": "bm99"}), "scoring settings are invalid"),
        (lambda m: m.update(scoring={"k3": 1}), "scoring settings are invalid"),
    ],
)
def test_manifest_without_counts_or_with_bad_scoring_is_refused(built, tmp_path, damage, message):
    copy = tmp_path / "copy"
    shutil.copytree(built[1], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    damage(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OdqaError, match=message):
        SparseIndex.load(copy)


def test_truncated_array_is_named(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built[1], copy)
    idf = (copy / "idf.npy").read_bytes()
    (copy / "idf.npy").write_bytes(idf[: len(idf) // 2])
    with pytest.raises(OdqaError, match=r"idf.npy is damaged"):
        SparseIndex.load(copy)


def test_a_bare_string_is_not_a_batch_of_characters(built):
    with pytest.raises(OdqaError, match="list of queries"):
        built[0].search("김치", k=1)


def test_tampered_files_are_refused(built):
    _, out = built
    np.save(out / "weights.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(OdqaError, match="does not match its manifest"):
        SparseIndex.load(out)


def test_missing_index_and_non_index_folder(tmp_path):
    with pytest.raises(OdqaError, match="index not found"):
        SparseIndex.load(tmp_path / "nope")
    with pytest.raises(OdqaError, match="no manifest.json"):
        SparseIndex.load(tmp_path)


def test_failed_rebuild_leaves_the_old_index(built, tmp_path):
    index, out = built
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(OdqaError):
        build_sparse_index(bad, out, quiet=True)
    assert SparseIndex.load(out).search(["김치"], k=1)[0]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".index.")]


@pytest.mark.parametrize("query,message", [("", "empty query"), ("   ", "empty query"), ("가" * 100_000, "too long")])
def test_bad_queries(built, query, message):
    index, _ = built
    with pytest.raises(OdqaError, match=message):
        index.search([query], k=5)


@pytest.mark.parametrize("k", [0, -1, 10**9])
def test_bad_k(built, k):
    with pytest.raises(OdqaError, match="k must be"):
        built[0].search(["김치"], k=k)


def test_query_without_known_terms_returns_no_hits(built):
    assert built[0].search(["zzzz qqqq"], k=5) == [[]]


def test_analysis_cache_is_reused_and_keyed_by_config(corpus_file, tmp_path):
    cache = tmp_path / "cache"
    build_sparse_index(corpus_file, None, analyzer=NgramConfig(n=2), cache_dir=cache, quiet=True)
    build_sparse_index(
        corpus_file, None, analyzer=NgramConfig(n=2), scoring=ScoringConfig(k1=0.5), cache_dir=cache, quiet=True
    )
    assert len(list(cache.iterdir())) == 1
    build_sparse_index(corpus_file, None, analyzer=NgramConfig(n=3), cache_dir=cache, quiet=True)
    assert len(list(cache.iterdir())) == 2


def test_parallel_analysis_equals_serial(corpus_file):
    from odqa.analysis.base import MecabConfig
    from odqa.analysis.corpus import analyze_corpus

    texts = [f"{i}번째 문장은 서울과 부산을 말한다." for i in range(2500)]
    serial = analyze_corpus(texts, MecabConfig(), processes=1, quiet=True)
    parallel = analyze_corpus(texts, MecabConfig(), processes=2, quiet=True)
    assert all(serial.tokens(i) == parallel.tokens(i) for i in range(0, 2500, 97))


def test_query_only_options_do_not_invalidate_the_analysis_cache(corpus_file, tmp_path):
    from odqa.analysis.base import MecabConfig

    cache = tmp_path / "cache"
    build_sparse_index(corpus_file, None, analyzer=MecabConfig(), cache_dir=cache, quiet=True)
    build_sparse_index(corpus_file, None, analyzer=MecabConfig(query_stopwords=("김치",)), cache_dir=cache, quiet=True)
    assert len(list(cache.iterdir())) == 1


def test_sparse_index_follows_the_retriever_contract(built):
    from odqa.retrieval import Retriever

    index, out = built
    assert isinstance(index, Retriever) and isinstance(SparseIndex.load(out), Retriever)
    (hits,) = SparseIndex.load(out).search(["김치"], k=2)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and hits[0].score >= hits[-1].score


def test_manifest_records_analyzer_libraries_and_refuses_others(corpus_file, tmp_path, monkeypatch):
    """A dictionary upgrade must not silently analyse queries differently from the indexed passages,
    nor reuse an analysis cached with the old dictionary."""
    from importlib import metadata

    from odqa.analysis.base import MecabConfig

    cache = tmp_path / "cache"
    out = tmp_path / "mecab-index"
    build_sparse_index(corpus_file, out, analyzer=MecabConfig(), cache_dir=cache, quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analyzer_libraries"]["python-mecab-ko-dic"] == metadata.version("python-mecab-ko-dic")

    real_version = metadata.version
    fake = lambda name: "9.9.9" if name == "python-mecab-ko-dic" else real_version(name)
    monkeypatch.setattr(metadata, "version", fake)
    with pytest.raises(OdqaError, match=r"python-mecab-ko-dic .* at build, 9\.9\.9 now"):
        SparseIndex.load(out)
    build_sparse_index(corpus_file, None, analyzer=MecabConfig(), cache_dir=cache, quiet=True)
    assert len(list(cache.iterdir())) == 2  # analysed again under the new dictionary, not reused
