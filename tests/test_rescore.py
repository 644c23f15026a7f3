"""Re-scoring BM25's top passages with a bi-encoder on the fly: no dense index, the encoder's
similarity fused with the first stage's score (benchmarks/rescore_ko.py measures it)."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from odqa.errors import OdqaError
from odqa.retrieval.encoder import DenseEncoder
from odqa.retrieval.fusion import fuse
from odqa.retrieval.hybrid import HybridRetriever, load_index, open_retriever
from odqa.retrieval.rescore import DenseRescorer
from odqa.types import Hit

QUESTIONS = ["훈민정음을 창제한 왕은?", "한강은 어디로 흐르나?", "김치는 무엇으로 만드나?"]


def test_rescoring_fuses_bm25_with_the_encoders_similarity(retriever_folders):
    sparse = load_index(retriever_folders / "sparse")
    encoder = DenseEncoder.load(retriever_folders / "encoder")
    retriever = open_retriever(retriever_folders / "sparse", rescore=str(retriever_folders / "encoder"), rescore_top=4)
    assert isinstance(retriever, HybridRetriever)
    first = sparse.search(QUESTIONS, k=4, fetch=True)
    got = retriever.search(QUESTIONS, k=4, fetch=True)
    query_vectors = encoder.encode(QUESTIONS, "query")
    for hits, rescored, query_vector in zip(first, got, query_vectors):
        # the same candidates, re-sorted by combsum of min-max BM25 and min-max cosine (weight 1)
        passage_vectors = encoder.encode([h.passage.text for h in hits], "passage")
        dense = [Hit(h.passage_id, float(s), 0) for h, s in zip(hits, passage_vectors @ query_vector)]
        dense = [Hit(h.passage_id, h.score, r) for r, h in enumerate(sorted(dense, key=lambda h: -h.score), 1)]
        expected = fuse([hits, dense], len(hits), "combsum", [1.0, 1.0])
        assert [h.passage_id for h in rescored] == [h.passage_id for h in expected]
        assert [h.score for h in rescored] == pytest.approx([h.score for h in expected], abs=1e-5)
        assert [h.rank for h in rescored] == list(range(1, len(hits) + 1))
        assert all(h.passage is not None for h in rescored)


def test_weight_zero_keeps_bm25s_order_and_infinity_ranks_by_the_encoder(retriever_folders):
    sparse = load_index(retriever_folders / "sparse")
    encoder = DenseEncoder.load(retriever_folders / "encoder")
    bm25 = [[h.passage_id for h in hits] for hits in sparse.search(QUESTIONS, k=5)]
    kept = HybridRetriever([sparse], rescorer=DenseRescorer(encoder, weight=0.0, top=5)).search(QUESTIONS, k=5)
    assert [[h.passage_id for h in hits] for hits in kept] == bm25
    alone = HybridRetriever([sparse], rescorer=DenseRescorer(encoder, weight=float("inf"), top=5))
    query_vectors = encoder.encode(QUESTIONS, "query")
    for hits, query_vector in zip(alone.search(QUESTIONS, k=5, fetch=True), query_vectors):
        similarity = encoder.encode([h.passage.text for h in hits], "passage") @ query_vector
        assert np.all(np.diff(similarity) <= 1e-6)  # best first
        assert [h.score for h in hits] == pytest.approx(list(similarity), abs=1e-5)


def test_only_the_top_n_are_resorted_and_each_passage_is_encoded_once(retriever_folders):
    sparse = load_index(retriever_folders / "sparse")
    rescorer = DenseRescorer(DenseEncoder.load(retriever_folders / "encoder"), weight=float("inf"), top=2)
    encoded = []
    original = rescorer.encoder.encode

    def counting(texts, kind="passage", progress=False):
        if kind == "passage":
            encoded.extend(texts)
        return original(texts, kind, progress)

    rescorer.encoder.encode = counting
    retriever = HybridRetriever([sparse], rescorer=rescorer)
    bm25 = sparse.search(["한강"], k=5)[0]
    hits = retriever.search(["한강", "한강"], k=5)
    assert {h.passage_id for h in hits[0][:2]} == {h.passage_id for h in bm25[:2]}
    assert [h.passage_id for h in hits[0][2:]] == [h.passage_id for h in bm25[2:]]  # below the top 2: BM25's order
    assert len(encoded) == 2  # two questions, the same two passages: encoded once
    retriever.search(["한강"], k=5)
    assert len(encoded) == 2  # and kept for the next search


def test_a_saved_hybrid_with_a_rescorer_opens_the_same(retriever_folders, tmp_path):
    retriever = open_retriever(
        retriever_folders / "sparse", rescore=str(retriever_folders / "encoder"), rescore_weight=0.5, rescore_top=3
    )
    retriever.save(tmp_path / "rescored")
    manifest = json.loads((tmp_path / "rescored" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["retriever"]["rescore"]["weight"] == 0.5 and manifest["retriever"]["rescore"]["top"] == 3
    reopened = load_index(tmp_path / "rescored")
    assert reopened.rescorer.weight == 0.5 and reopened.rescorer.top == 3
    assert [[h.passage_id for h in hits] for hits in reopened.search(QUESTIONS, k=4)] == [
        [h.passage_id for h in hits] for hits in retriever.search(QUESTIONS, k=4)
    ]


def test_bad_rescoring_settings_are_refused(retriever_folders, tmp_path):
    encoder = DenseEncoder.load(retriever_folders / "encoder")
    with pytest.raises(OdqaError, match="weight must be ≥ 0"):
        DenseRescorer(encoder, weight=-1)
    with pytest.raises(OdqaError, match="at least one candidate"):
        DenseRescorer(encoder, top=0)
    with pytest.raises(OdqaError, match="unknown fusion"):
        DenseRescorer(encoder, fusion="max")
    with pytest.raises(OdqaError, match="not found|does not exist|no such"):
        open_retriever(retriever_folders / "sparse", rescore=str(tmp_path / "no-encoder"))
    with pytest.raises(OdqaError, match="lives only in memory"):
        HybridRetriever([load_index(retriever_folders / "sparse")], rescorer=DenseRescorer(encoder)).to_dict()


def test_the_command_line_rescores(retriever_folders, tmp_path):
    from typer.testing import CliRunner

    from odqa.cli import app

    result = CliRunner().invoke(
        app,
        ["search", "--index", str(retriever_folders / "sparse"), "--rescore", str(retriever_folders / "encoder"),
         "--rescore-weight", "2", "--json", "-k", "3", "한강은 어디로 흐르나?"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = open_retriever(
        retriever_folders / "sparse", rescore=str(retriever_folders / "encoder"), rescore_weight=2
    ).search(["한강은 어디로 흐르나?"], k=3)[0]
    assert [line["passage_id"] for line in lines] == [h.passage_id for h in expected] and expected
    assert [line["rank"] for line in lines] == list(range(1, len(expected) + 1))


def test_ask_reads_the_rescored_passages_as_make_demo_does(retriever_folders, korean_reader):
    """`make demo` asks with `--rescore models/me5-small -k 10`: the reader reads the passages in
    the re-scored order, and the answer is the one the same pipeline built in code gives."""
    from typer.testing import CliRunner

    from odqa.cli import app
    from odqa.pipeline import Pipeline, PipelineConfig

    sparse, encoder = retriever_folders / "sparse", retriever_folders / "encoder"
    question = "한강이 흘러가는 바다는?"  # the tiny random encoder swaps BM25's top two for it
    result = CliRunner().invoke(
        app,
        ["ask", "--index", str(sparse), "--rescore", str(encoder), "--reader", str(korean_reader),
         "-k", "2", "--json", question],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    asked = json.loads(result.stdout.splitlines()[-1])
    config = PipelineConfig(index=str(sparse), reader=str(korean_reader), k=2, rescore=str(encoder))
    expected = Pipeline(config).warm_up().ask(question)
    assert asked["answer"]["text"] == expected.text == "황해"
    rescored = open_retriever(sparse, rescore=str(encoder)).search([question], k=2)[0]
    bm25 = open_retriever(sparse).search([question], k=2)[0]
    assert [h.passage_id for h in rescored] == [h.passage_id for h in reversed(bm25)]
    rank = asked["answer"]["passage_rank"]
    assert rescored[rank - 1].passage_id == asked["answer"]["passage_id"] != bm25[rank - 1].passage_id


def test_bf16_rescoring_encodes_in_bfloat16_and_ranks_as_fp32_does(retriever_folders, tmp_path):
    """`--rescore-bf16` (`rescore_precision` in a pipeline config): the encoder's weights in
    bfloat16, its vectors float32 and within rounding of fp32's; the setting is saved with the
    retriever; a rounded encoder refuses to be saved over its fp32 weights."""
    import torch
    from typer.testing import CliRunner

    from odqa.cli import app

    fp32 = DenseEncoder.load(retriever_folders / "encoder")
    bf16 = DenseEncoder.load(retriever_folders / "encoder", precision="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    texts = [doc for question in QUESTIONS for doc in (question, question * 3)]
    exact, rounded = fp32.encode(texts, "passage"), bf16.encode(texts, "passage")
    assert rounded.dtype == np.float32
    cosine = (exact * rounded).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(rounded, axis=1)
    assert cosine.min() > 0.99 and not np.array_equal(exact, rounded)
    with pytest.raises(OdqaError, match="rounded to bf16"):
        bf16.save(tmp_path / "rounded")
    with pytest.raises(OdqaError, match="unknown encoder precision 'fp8'"):
        DenseEncoder.load(retriever_folders / "encoder", precision="fp8")

    retriever = open_retriever(
        retriever_folders / "sparse", rescore=str(retriever_folders / "encoder"), rescore_precision="bf16"
    )
    assert retriever.rescorer.encoder.precision == "bf16"
    retriever.save(tmp_path / "rescored")
    assert load_index(tmp_path / "rescored").rescorer.encoder.precision == "bf16"
    result = CliRunner().invoke(
        app,
        ["search", "--index", str(retriever_folders / "sparse"), "--rescore", str(retriever_folders / "encoder"),
         "--rescore-bf16", "--json", "-k", "3", QUESTIONS[1]],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = retriever.search([QUESTIONS[1]], k=3)[0]
    assert [json.loads(line)["passage_id"] for line in result.stdout.splitlines()] == [h.passage_id for h in expected]


def test_ask_reads_and_rescores_in_bf16_as_the_config_says(retriever_folders, korean_reader):
    """`odqa ask --bf16 --rescore-bf16` is the pipeline config with `reader_options: {precision: bf16}`
    and `rescore_precision: bf16`: the same answer as that pipeline built in code, both in bf16."""
    import torch
    from typer.testing import CliRunner

    from odqa.cli import app
    from odqa.cli.common import pipeline_from_options
    from odqa.pipeline import Pipeline, PipelineConfig

    sparse, encoder = retriever_folders / "sparse", retriever_folders / "encoder"
    question = "한강이 흘러가는 바다는?"
    result = CliRunner().invoke(
        app,
        ["ask", "--index", str(sparse), "--rescore", str(encoder), "--reader", str(korean_reader),
         "-k", "2", "--json", "--bf16", "--rescore-bf16", question],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    asked = json.loads(result.stdout.splitlines()[-1])
    config = PipelineConfig(
        index=str(sparse), reader=str(korean_reader), k=2, rescore=str(encoder), rescore_precision="bf16"
    )
    config.reader_options = {"precision": "bf16"}
    assert asked["answer"]["text"] == Pipeline(config).warm_up().ask(question).text
    # what the two flags set, as the commands load it
    flags = pipeline_from_options(
        None, [sparse], [str(korean_reader)], 2, None, rescore=str(encoder), rescore_bf16=True, bf16=True
    )
    assert next(flags.reader.model.parameters()).dtype == torch.bfloat16
    assert flags.open_index().rescorer.encoder.precision == "bf16"
    plain = pipeline_from_options(None, [sparse], [str(korean_reader)], 2, None, rescore=str(encoder))
    assert next(plain.reader.model.parameters()).dtype == torch.float32
    assert plain.open_index().rescorer.encoder.precision == "fp32"
