"""Adding and deleting documents of a built index: the result equals a fresh build of the final
collection (passage ids, sources, scores, fingerprint), refusals name the ids, failures keep the old index."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import KOREAN_DOCS
from odqa import OdqaError
from odqa.corpus import CorpusConfig
from odqa.retrieval.build import build_sparse_index
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex
from odqa.retrieval.update import update_index

# Small passages (several per document); no titles, so equal texts of different documents merge.
CORPUS = CorpusConfig(title=False, target_chars=20, max_chars=40)
BUSAN = KOREAN_DOCS[1]["text"]
BASE = KOREAN_DOCS + [
    {"id": "7", "title": "부산 (다시)", "text": BUSAN},  # the same passages as document 2
    {"id": "8", "title": "빈 문서", "text": ""},  # no passages, still a document
]
ADDED = [
    {"id": "9", "title": "제주도", "text": "제주도는 대한민국에서 가장 큰 섬이다.\n한라산이 섬 가운데에 있다."},
    {"id": "10", "title": "서울 (다시)", "text": KOREAN_DOCS[0]["text"]},  # merges into document 1's passages
]
QUERIES = ["대한민국의 수도는?", "한강은 어디로 흐르나", "제주도 한라산", "훈민정음 창제", "섬 가운데 산"]


def write_docs(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


def build(tmp_path: Path, name: str, docs: list[dict], scoring: ScoringConfig) -> Path:
    out = tmp_path / name
    build_sparse_index(write_docs(tmp_path / f"{name}.jsonl", docs), out, CORPUS, scoring=scoring, quiet=True)
    return out


def passages(index: SparseIndex) -> list[tuple]:
    return [
        (p.id, p.text, p.title, p.sources, p.body_start) for p in (index.passages[i] for i in range(index.n_passages))
    ]


def hits(index: SparseIndex) -> list[list[tuple[int, float]]]:
    return [[(h.passage_id, h.score) for h in row] for row in index.search(QUERIES, k=20)]


def assert_same_index(updated: Path, rebuilt: Path) -> None:
    a, b = SparseIndex.load(updated), SparseIndex.load(rebuilt)
    assert passages(a) == passages(b)
    assert hits(a) == hits(b)  # exactly: same statistics, same weights
    assert a.manifest["corpus"]["fingerprint"] == b.manifest["corpus"]["fingerprint"]
    for key in ("documents", "passages"):
        assert a.manifest["corpus"][key] == b.manifest["corpus"][key]
    assert a.manifest["counts"] == b.manifest["counts"]
    assert sorted(a.vocab) == sorted(b.vocab)  # terms of deleted passages leave with them


@pytest.mark.parametrize(
    "scoring",
    [ScoringConfig(), ScoringConfig(method="bm25l", document_weight=0), ScoringConfig(method="tfidf")],
    ids=["lucene+documents", "bm25l", "tfidf"],
)
def test_add_and_delete_equal_a_rebuild_of_the_final_collection(tmp_path, scoring):
    index = build(tmp_path, "index", BASE, scoring)
    before = SparseIndex.load(index).n_passages
    # Document 2 is the first source of the passages it shares with 7; deleting it moves them back.
    report = update_index(index, write_docs(tmp_path / "added.jsonl", ADDED), delete=["6", "2"])
    assert (report.added, report.deleted, report.passages_before) == (2, 2, before)
    final = [d for d in BASE if d["id"] not in ("2", "6")] + ADDED
    assert_same_index(index, build(tmp_path, "rebuilt", final, scoring))
    merged = SparseIndex.load(index).passages
    shared = [merged[i] for i in range(len(merged)) if merged[i].sources[0].doc_id == "7"]
    assert [p.title for p in shared] == ["부산 (다시)"] * 2 and all(len(p.sources) == 1 for p in shared)
    assert shared[0].id > len(merged) // 2  # it moved behind documents 3 to 5


def test_updates_compose_and_an_index_can_shrink_back(tmp_path):
    index = build(tmp_path, "index", BASE, ScoringConfig())
    update_index(index, write_docs(tmp_path / "a.jsonl", ADDED[:1]))
    update_index(index, write_docs(tmp_path / "b.jsonl", ADDED[1:]), delete=["1"])
    update_index(index, delete=["9", "10"])
    final = [d for d in BASE if d["id"] != "1"]
    assert_same_index(index, build(tmp_path, "rebuilt", final, ScoringConfig()))
    updates = SparseIndex.load(index).manifest["corpus"]["source"]["updates"]
    assert [(u["added_documents"], u["deleted_documents"]) for u in updates] == [(1, 0), (1, 1), (0, 2)]


def test_added_ids_already_indexed_are_refused_unless_replaced(tmp_path):
    index = build(tmp_path, "index", BASE, ScoringConfig())
    new_seoul = {"id": "1", "title": "서울특별시", "text": "서울특별시는 대한민국의 수도이며 가장 큰 도시이다."}
    added = write_docs(tmp_path / "added.jsonl", [new_seoul])
    before = (index / "weights.npy").read_bytes()
    with pytest.raises(OdqaError, match=r"already in the index \('1'\): pass --replace"):
        update_index(index, added)
    assert (index / "weights.npy").read_bytes() == before
    report = update_index(index, added, replace=True)
    assert report.replaced == 1
    # A replaced document leaves its place and joins the end, as if deleted and added.
    final = [d for d in BASE if d["id"] != "1"] + [new_seoul]
    assert_same_index(index, build(tmp_path, "rebuilt", final, ScoringConfig()))


@pytest.mark.parametrize(
    "add, delete, message",
    [
        (None, ["404", "1", "405"], r"does not hold: '404', '405'"),
        ([ADDED[0], ADDED[0]], [], r"repeat ids '9'"),
        (None, [d["id"] for d in BASE], "without passages"),
        (None, [], "nothing to update"),
        ([], [], "holds no documents"),
    ],
)
def test_bad_updates_are_refused_and_leave_the_index(tmp_path, add, delete, message):
    index = build(tmp_path, "index", BASE, ScoringConfig())
    before = {f.name: f.read_bytes() for f in index.iterdir()}
    add_file = write_docs(tmp_path / "added.jsonl", add) if add is not None else None
    with pytest.raises(OdqaError, match=message):
        update_index(index, add_file, delete=delete)
    assert {f.name: f.read_bytes() for f in index.iterdir()} == before


def test_a_crash_while_writing_leaves_the_old_index(tmp_path, monkeypatch):
    index = build(tmp_path, "index", BASE, ScoringConfig())
    expected = hits(SparseIndex.load(index))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("odqa.retrieval.sparse.write_passages", crash)
    with pytest.raises(OSError, match="disk full"):
        update_index(index, write_docs(tmp_path / "added.jsonl", ADDED))
    assert hits(SparseIndex.load(index)) == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".index")] == []


def test_an_index_without_kept_counts_is_refused(tmp_path):
    index = build(tmp_path, "index", BASE, ScoringConfig())
    old = tmp_path / "old"
    shutil.copytree(index, old)
    (old / "tf.npy").unlink()  # as odqa built it before updates existed
    assert hits(SparseIndex.load(old)) == hits(SparseIndex.load(index))  # still searchable
    with pytest.raises(OdqaError, match="did not keep term counts; rebuild it once"):
        update_index(old, delete=["1"])
    (index / "documents.json").unlink()
    with pytest.raises(OdqaError, match="did not keep its document list"):
        update_index(index, delete=["1"])


def test_cli_updates_in_one_line_and_refuses_in_one(tmp_path):
    from typer.testing import CliRunner

    from odqa.cli import app

    index = build(tmp_path, "index", BASE, ScoringConfig())
    ids = tmp_path / "ids.txt"
    ids.write_text("2\n\n6\n", encoding="utf-8")
    added = write_docs(tmp_path / "added.jsonl", ADDED)
    result = CliRunner().invoke(app, ["index", "--out", str(index), "--add", str(added), "--delete", f"@{ids}", "-q"])
    assert result.exit_code == 0, result.output
    assert "+2 documents, -2 documents" in result.output and "passages" in result.output
    final = [d for d in BASE if d["id"] not in ("2", "6")] + ADDED
    assert_same_index(index, build(tmp_path, "rebuilt", final, ScoringConfig()))
    result = CliRunner().invoke(app, ["index", "--out", str(index), "--delete", "2,3"])
    assert isinstance(result.exception, OdqaError) and "'2'" in str(result.exception)
    result = CliRunner().invoke(app, ["index", "--out", str(index), "--corpus", str(added), "--add", str(added)])
    assert "give --corpus to build an index, or --add/--delete" in str(result.exception)


def test_the_dense_index_beside_follows_with_only_new_passages_encoded(tmp_path, klue_tokenizer, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("faiss")
    from transformers import BertModel

    from conftest import tiny_bert_config
    from odqa.retrieval.build import build_dense_index
    from odqa.retrieval.dense import DenseIndex
    from odqa.retrieval.encoder import DenseEncoder, EncoderConfig

    torch.manual_seed(0)
    encoder_dir = tmp_path / "encoder"
    DenseEncoder(
        BertModel(tiny_bert_config(klue_tokenizer)), klue_tokenizer, EncoderConfig(pooling="mean", similarity="cosine")
    ).save(encoder_dir)
    base_file = write_docs(tmp_path / "base.jsonl", BASE)
    sparse = build(tmp_path, "index", BASE, ScoringConfig())
    build_dense_index(base_file, tmp_path / "dense", str(encoder_dir), CORPUS, quiet=True)
    shutil.copytree(tmp_path / "dense", tmp_path / "dense-stale")
    encoded: list[int] = []
    original = DenseEncoder.encode
    monkeypatch.setattr(
        DenseEncoder,
        "encode",
        lambda self, texts, *a, **k: encoded.append(len(texts)) or original(self, texts, *a, **k),
    )

    report = update_index(sparse, write_docs(tmp_path / "added.jsonl", ADDED), delete=["6"], dense=[tmp_path / "dense"])
    assert encoded == [report.new_passages] and report.new_passages > 0  # old passages keep their vectors
    monkeypatch.setattr(DenseEncoder, "encode", original)
    final_file = write_docs(tmp_path / "final.jsonl", [d for d in BASE if d["id"] != "6"] + ADDED)
    build_dense_index(final_file, tmp_path / "dense-rebuilt", str(encoder_dir), CORPUS, quiet=True)
    updated, rebuilt = DenseIndex.load(tmp_path / "dense"), DenseIndex.load(tmp_path / "dense-rebuilt")
    assert updated.manifest["corpus"]["fingerprint"] == rebuilt.manifest["corpus"]["fingerprint"]
    assert updated.manifest["corpus"]["fingerprint"] == SparseIndex.load(sparse).manifest["corpus"]["fingerprint"]
    a, b = updated.search(QUERIES, k=5), rebuilt.search(QUERIES, k=5)
    assert [[h.passage_id for h in row] for row in a] == [[h.passage_id for h in row] for row in b]
    np.testing.assert_allclose([[h.score for h in row] for row in a], [[h.score for h in row] for row in b], atol=1e-5)
    with pytest.raises(OdqaError, match="was not built from the passages of"):
        update_index(sparse, delete=["1"], dense=[tmp_path / "dense-stale"])  # still of the old passages
