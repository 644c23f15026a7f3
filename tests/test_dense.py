"""Dense retrieval with a tiny random encoder: build, search, save → load → same hits, refusals."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")

from conftest import KOREAN_DOCS
from odqa.errors import OdqaError
from odqa.retrieval.dense import DenseIndex
from odqa.retrieval.encoder import DenseEncoder, EncoderConfig
from odqa.types import Passage, PassageSource

PASSAGES = [
    Passage(i, d["text"], d["title"], (PassageSource(d["id"], 0, len(d["text"])),)) for i, d in enumerate(KOREAN_DOCS)
]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, klue_tokenizer):
    from transformers import BertModel

    from conftest import tiny_bert_config

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dense-encoder")
    encoder = DenseEncoder(
        BertModel(tiny_bert_config(klue_tokenizer)), klue_tokenizer, EncoderConfig(pooling="mean", similarity="cosine")
    )
    encoder.save(path)
    return path


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_exact_passage_text_is_its_own_nearest_neighbour(encoder_dir, kind, tmp_path):
    encoder = DenseEncoder.load(encoder_dir)
    index = DenseIndex.build(PASSAGES, encoder, faiss=kind, encoder_path=str(encoder_dir))
    hits = index.search([p.text for p in PASSAGES], k=3)
    assert [row[0].passage_id for row in hits] == list(range(len(PASSAGES)))
    assert hits[0][0].score == pytest.approx(1.0, abs=1e-4)  # cosine of a text with itself
    index.save(tmp_path / "dense")
    loaded = DenseIndex.load(tmp_path / "dense")
    again = loaded.search([p.text for p in PASSAGES], k=3, fetch=True)
    assert [[h.passage_id for h in row] for row in again] == [[h.passage_id for h in row] for row in hits]
    assert again[2][0].passage.title == PASSAGES[2].title
    in_memory = DenseIndex.load(tmp_path / "dense", mmap=False).search([p.text for p in PASSAGES], k=3)
    assert [[(h.passage_id, h.score) for h in row] for row in in_memory] == [
        [(h.passage_id, h.score) for h in row] for row in loaded.search([p.text for p in PASSAGES], k=3)
    ]


def test_encoding_is_batch_order_independent(encoder_dir):
    encoder = DenseEncoder.load(encoder_dir, batch_size=2)
    texts = [p.text for p in PASSAGES]
    one_by_one = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(encoder.encode(texts), one_by_one, atol=1e-5)


def test_dense_index_refusals(encoder_dir, tmp_path):
    with pytest.raises(OdqaError, match="dense index not found"):
        DenseIndex.load(tmp_path / "none")
    encoder = DenseEncoder.load(encoder_dir)
    index = DenseIndex.build(PASSAGES, encoder, encoder_path=str(encoder_dir))
    with pytest.raises(OdqaError, match="k must be"):
        index.search(["질문"], k=0)
    with pytest.raises(OdqaError, match="empty query"):
        index.search([" "], k=1)
    index.save(tmp_path / "dense")
    other = DenseEncoder.load(encoder_dir, pooling="cls")
    with pytest.raises(OdqaError, match="pooling 'mean' at build, 'cls' now"):
        DenseIndex.load(tmp_path / "dense", encoder=other)
    with pytest.raises(OdqaError, match="query_prefix '' at build, 'query: ' now"):
        DenseIndex.load(tmp_path / "dense", encoder=DenseEncoder.load(encoder_dir, query_prefix="query: "))
    from transformers import BertModel

    from conftest import tiny_bert_config

    wider = DenseEncoder(BertModel(tiny_bert_config(encoder.tokenizer, hidden=32)), encoder.tokenizer, encoder.config)
    with pytest.raises(OdqaError, match="holds 64-dimensional vectors but the encoder makes 32"):
        DenseIndex.load(tmp_path / "dense", encoder=wider)
    with pytest.raises(OdqaError, match="unknown FAISS index kind"):
        DenseIndex.build(PASSAGES, encoder, faiss="ivf")


def test_an_imported_models_prefixes_and_pooling_are_used_and_recorded(encoder_dir, tmp_path):
    """An E5-style folder (odqa_model.json recommends prefixes, mean pooling, normalised vectors)."""
    import json
    import shutil

    e5 = tmp_path / "e5"
    shutil.copytree(encoder_dir, e5)
    (e5 / "odqa_encoder.json").unlink()
    recommended = {"pooling": "mean", "normalize": True, "query_prefix": "query: ", "passage_prefix": "passage: "}
    (e5 / "odqa_model.json").write_text(json.dumps({"encoder": recommended}), encoding="utf-8")
    encoder = DenseEncoder.load(e5)
    assert (encoder.config.pooling, encoder.config.similarity, encoder.config.query_prefix) == (
        "mean",
        "cosine",
        "query: ",
    )
    plain = DenseEncoder.load(encoder_dir)
    np.testing.assert_allclose(encoder.encode(["세종"], "query"), plain.encode(["query: 세종"], "query"), atol=1e-6)
    np.testing.assert_allclose(
        encoder.encode(["세종"], "passage"), plain.encode(["passage: 세종"], "passage"), atol=1e-6
    )
    index = DenseIndex.build(PASSAGES, encoder, encoder_path=str(e5))
    assert index.manifest["encoder"]["passage_prefix"] == "passage: "
    index.save(tmp_path / "dense")
    assert DenseIndex.load(tmp_path / "dense").encoder.config.query_prefix == "query: "


def test_ivfpq_compresses_and_still_finds_near_duplicates():
    from odqa.retrieval.dense import make_faiss_index

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = make_faiss_index(vectors, "ivfpq")
    queries = vectors[:50] + 0.01 * rng.normal(size=(50, 64)).astype(np.float32)
    _, ids = index.search(queries, 5)
    assert np.mean([i in row for i, row in enumerate(ids)]) >= 0.9


def test_an_index_encoded_in_bf16_records_it_and_encodes_its_queries_alike(encoder_dir, tmp_path):
    """`odqa index-dense --bf16`: passages encoded with bfloat16 weights (vectors within rounding of
    fp32's); the manifest records the precision, so the loaded index encodes queries (and added
    passages) in bf16 too; parts an fp32 run left behind are not resumed by a bf16 run."""
    import json

    from odqa.retrieval.build import build_dense_index

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in KOREAN_DOCS) + "\n", encoding="utf-8")
    fp32, _ = build_dense_index(corpus, tmp_path / "fp32", str(encoder_dir), quiet=True)
    # an fp32 run stopped after its first part, then the same output built in bf16
    assert build_dense_index(corpus, tmp_path / "bf16", str(encoder_dir), quiet=True, shards=2, shard=0)[0] is None
    bf16, _ = build_dense_index(corpus, tmp_path / "bf16", str(encoder_dir), quiet=True, shards=2, precision="bf16")
    assert bf16.manifest["encoder"]["precision"] == "bf16" and fp32.manifest["encoder"]["precision"] == "fp32"
    exact = fp32.faiss_index.reconstruct_n(0, fp32.n_passages)
    rounded = bf16.faiss_index.reconstruct_n(0, bf16.n_passages)
    assert (exact * rounded).sum(1).min() > 0.99  # cosine (normalised vectors)
    assert not np.array_equal(exact[:1], rounded[:1])  # part 0 was encoded again, not taken from the fp32 run

    loaded = DenseIndex.load(tmp_path / "bf16")
    assert loaded.encoder.precision == "bf16" and DenseIndex.load(tmp_path / "fp32").encoder.precision == "fp32"
    hits = loaded.search([d["text"] for d in KOREAN_DOCS], k=1)
    assert [row[0].passage_id for row in hits] == list(range(len(KOREAN_DOCS)))

    from typer.testing import CliRunner

    from odqa.cli import app

    args = ["index-dense", "--encoder", str(encoder_dir), "--corpus", str(corpus), "--out", str(tmp_path / "cli")]
    result = CliRunner().invoke(app, [*args, "--bf16", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "cli" / "manifest.json").read_text())["encoder"]["precision"] == "bf16"
