"""train-dense → index-dense → search with fusion, and train-reranker → search --rerank, as a user runs them."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from test_cli import odqa


def word_embeddings(folder):
    """The word-embedding matrix in a model folder's safetensors (any head, any prefix)."""
    from safetensors.torch import load_file

    tensors = load_file(str(next(folder.glob("*.safetensors"))))
    return next(t for name, t in tensors.items() if name.endswith("word_embeddings.weight"))


@pytest.mark.slow  # several odqa processes, each importing torch
def test_dense_and_hybrid_commands(tiny_encoder, korean_qa_file, korean_docs_index, corpus_file, tmp_path):
    run = odqa(
        "train-dense",
        "--model",
        tiny_encoder,
        "--train",
        korean_qa_file,
        "--out",
        tmp_path / "enc",
        "--hard-negatives",
        korean_docs_index,
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--cache-chunk",
        "2",
        "--freeze-embeddings",
        "-q",
    )
    assert run.returncode == 0, run.stderr
    assert "encoder in" in run.stdout
    assert word_embeddings(tmp_path / "enc").equal(word_embeddings(tiny_encoder))
    # the sparse index of the same corpus file and config, so passages line up
    sparse = tmp_path / "sparse"
    assert odqa("index", "--corpus", corpus_file, "--out", sparse, "--cache-dir", tmp_path / "cache").returncode == 0
    run = odqa("index-dense", "--encoder", tmp_path / "enc", "--corpus", corpus_file, "--out", tmp_path / "dense", "-q")
    assert run.returncode == 0, run.stderr
    assert "encoded 6 passages" in run.stdout
    run = odqa(
        "search",
        "--index",
        sparse,
        "--index",
        tmp_path / "dense",
        "--fusion",
        "rrf",
        "-k",
        "3",
        "--json",
        "훈민정음을 창제한 왕은?",
    )
    assert run.returncode == 0, run.stderr
    hits = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(hits) == 3 and hits[0]["title"] == "세종"
    # fusion tuned on (here: the same toy) questions, then used: the same scores come back
    run = odqa(
        "tune-fusion",
        "--index",
        sparse,
        "--index",
        tmp_path / "dense",
        "--questions",
        korean_qa_file,
        "-k",
        "1,3",
        "--out",
        tmp_path / "tuned.json",
    )
    assert run.returncode == 0, run.stderr
    tuned = json.loads((tmp_path / "tuned.json").read_text(encoding="utf-8"))
    assert len(tuned["candidates"]) == 3 * 6 and "best: --fusion" in run.stdout
    best = tuned["best"]
    weights = ",".join(str(w) for w in best["weights"])
    run = odqa(
        "eval-retrieval",
        "--index",
        sparse,
        "--index",
        tmp_path / "dense",
        "--questions",
        korean_qa_file,
        "-k",
        "1,3",
        "--fusion",
        best["fusion"],
        "--fusion-weights",
        weights,
        "--out",
        tmp_path / "ev.json",
    )
    assert run.returncode == 0, run.stderr
    scored = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))["has_answer"]
    assert (scored["top1"], scored["top3"]) == (best["top1"], best["top3"])
    for bad, message in (("1,x", "expects numbers"), ("1", "1 fusion weights for 2 retrievers")):
        run = odqa("search", "--index", sparse, "--index", tmp_path / "dense", "--fusion-weights", bad, "질문")
        assert run.returncode == 2 and message in run.stderr
    run = odqa("tune-fusion", "--index", sparse, "--questions", korean_qa_file)
    assert run.returncode == 2 and "at least two indexes" in run.stderr
    run = odqa(
        "train-reranker",
        "--model",
        tiny_encoder,
        "--train",
        korean_qa_file,
        "--index",
        sparse,
        "--out",
        tmp_path / "rr",
        "--negatives",
        "2",
        "--max-steps",
        "2",
        # the loop settings every trainer shares
        "--freeze-embeddings",
        "--mixed-precision",
        "no",
        "--seed",
        "3",
        "--save-steps",
        "1",
        "-q",
    )
    assert run.returncode == 0, run.stderr
    assert word_embeddings(tmp_path / "rr").equal(word_embeddings(tiny_encoder))
    settings = json.loads((tmp_path / "rr" / "training_config.json").read_text(encoding="utf-8"))
    assert (settings["mixed_precision"], settings["seed"], settings["save_steps"]) == ("no", 3, 1)

    def search(*options):
        return odqa("search", "--index", sparse, *options, "--json", "대한민국의 도시")

    run = search("--rerank", tmp_path / "rr", "--rerank-top", "3", "-k", "2")
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
    # at weight 0 the reranker's score only breaks the first stage's ties: BM25's order stays
    bm25 = search("-k", "3")
    run = search("--rerank", tmp_path / "rr", "--rerank-weight", "0", "-k", "3")
    assert run.returncode == 0, run.stderr
    ids = [[json.loads(line)["passage_id"] for line in r.stdout.splitlines()] for r in (bm25, run)]
    assert ids[0] == ids[1]
    # tune-rerank prints the options that score best on training questions; eval-retrieval with them agrees
    run = odqa(
        "tune-rerank", "--index", sparse, "--rerank", tmp_path / "rr", "--questions", korean_qa_file,
        "--rerank-top", "3", "-k", "1,3", "--out", tmp_path / "tuned.json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    best = json.loads((tmp_path / "tuned.json").read_text(encoding="utf-8"))["best"]
    options = next(line for line in run.stdout.splitlines() if line.startswith("best: ")).split()[1:]
    assert options[:4] == ["--rerank", str(tmp_path / "rr"), "--rerank-top", "3"]
    run = odqa(
        "eval-retrieval",
        "--index",
        sparse,
        "--questions",
        korean_qa_file,
        "-k",
        "1,3",
        *options,
        "--out",
        tmp_path / "ev-rr.json",
    )
    assert run.returncode == 0, run.stderr
    scored = json.loads((tmp_path / "ev-rr.json").read_text(encoding="utf-8"))["has_answer"]
    assert (scored["top1"], scored["top3"]) == (best["top1"], best["top3"])
    run = odqa(
        "tune-rerank", "--index", sparse, "--rerank", tmp_path / "rr", "--questions", korean_qa_file, "-k", "1,50"
    )
    assert run.returncode == 2 and "beyond the 20 candidates" in run.stderr
    run = odqa("search", "--index", sparse, "--rerank", tmp_path / "rr", "--rerank-weight", "-1", "질문")
    assert run.returncode == 2 and "must be a number ≥ 0" in run.stderr
    run = odqa("search", "--index", sparse, "--index", tmp_path / "missing", "질문")
    assert run.returncode == 2 and "index not found" in run.stderr
