"""Bi-encoder training: gradient caching gives the gradients of the full batch; a tiny encoder
learns to find its questions' contexts."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from conftest import tiny_bert_config
from odqa.io.squad import read_qa_examples
from odqa.training.dense import DenseTrainingConfig, bi_encoder, contrastive_step, evaluate_dense, train_dense


def _batch(tokenizer, examples):
    q = tokenizer([e.question for e in examples], padding=True, return_tensors="pt")
    p = tokenizer([e.context for e in examples], padding=True, truncation=True, max_length=64, return_tensors="pt")
    return {**{f"q_{k}": v for k, v in q.items()}, **{f"p_{k}": v for k, v in p.items()}}


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_gradient_cache_equals_full_batch_gradients(klue_tokenizer, korean_qa_file, similarity):
    from accelerate import Accelerator
    from transformers import BertModel

    examples = read_qa_examples(korean_qa_file)
    batch = _batch(klue_tokenizer, examples)
    grads = []
    for chunk in (None, 3):
        torch.manual_seed(0)
        config = tiny_bert_config(klue_tokenizer)
        # without dropout the chunked pass is the same function as the full one (with dropout the
        # masks differ from the full batch's, but the step replays them between its two passes)
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
        model = BertModel(config)
        module = bi_encoder(model, None, "mean")
        settings = DenseTrainingConfig(
            model="m", train=["t"], out="o", cache_chunk=chunk, temperature=0.5, encoder={"similarity": similarity}
        )
        loss = contrastive_step(settings)(module, batch, Accelerator(cpu=True))
        grads.append((float(loss), [p.grad.clone() for p in module.parameters() if p.grad is not None]))
    (full_loss, full), (cached_loss, cached) = grads
    assert cached_loss == pytest.approx(full_loss, rel=1e-5)
    assert len(full) == len(cached) > 0
    for a, b in zip(full, cached):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_tiny_bi_encoder_learns_its_contexts(tiny_encoder, korean_qa_file, korean_docs_index, tmp_path):
    from odqa.retrieval.encoder import DenseEncoder

    config = DenseTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(tmp_path / "dense"),
        epochs=25,
        lr=2e-3,
        batch_size=8,
        warmup_ratio=0.0,
        cache_chunk=4,
        hard_negatives_index=str(korean_docs_index),
        hard_negatives=1,
        encoder={"pooling": "mean", "passage_max_length": 64},
    )
    state = train_dense(config, quiet=True, resume=False)
    assert state["history"][-1]["loss"] < state["history"][0]["loss"]
    encoder = DenseEncoder.load(tmp_path / "dense")
    scores = evaluate_dense(encoder, read_qa_examples(korean_qa_file))
    assert scores["top1"] >= 75


def test_gradient_cache_replays_dropout(klue_tokenizer, korean_qa_file):
    """With dropout on, the cached step's gradients equal those of encoding the same chunks, in the
    same order, with gradients: the second pass reuses the first pass's dropout masks."""
    from accelerate import Accelerator
    from transformers import BertModel

    from odqa.training.dense import _chunks

    batch = _batch(klue_tokenizer, read_qa_examples(korean_qa_file))
    queries = {k[2:]: v for k, v in batch.items() if k.startswith("q_")}
    passages = {k[2:]: v for k, v in batch.items() if k.startswith("p_")}
    torch.manual_seed(0)
    config = tiny_bert_config(klue_tokenizer)
    config.hidden_dropout_prob = 0.3
    module = bi_encoder(BertModel(config), None, "cls")
    module.train()
    settings = DenseTrainingConfig(model="m", train=["t"], out="o", cache_chunk=3)

    torch.manual_seed(5)
    q = torch.cat([module.encode(c, "query") for c in _chunks(queries, 3)])
    p = torch.cat([module.encode(c, "passage") for c in _chunks(passages, 3)])
    torch.nn.functional.cross_entropy(q @ p.T, torch.arange(len(q))).backward()
    direct = [param.grad.clone() for param in module.parameters() if param.grad is not None]
    module.zero_grad()

    torch.manual_seed(5)
    contrastive_step(settings)(module, batch, Accelerator(cpu=True))
    cached = [param.grad.clone() for param in module.parameters() if param.grad is not None]
    assert len(direct) == len(cached) > 0
    for a, b in zip(direct, cached):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_tiny_reranker_learns_to_put_the_answer_first(tiny_encoder, korean_qa_file, korean_docs_index, tmp_path):
    from odqa.metrics import has_answer
    from odqa.retrieval.rerank import Reranker
    from odqa.retrieval.sparse import SparseIndex
    from odqa.training.rerank import RerankerTrainingConfig, train_reranker

    config = RerankerTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        index=str(korean_docs_index),
        out=str(tmp_path / "rr"),
        negatives=4,
        depth=6,
        epochs=40,
        lr=2e-3,
        batch_size=4,
        warmup_ratio=0.0,
        reranker={"max_length": 96},
    )
    state = train_reranker(config, quiet=True, resume=False)
    assert state["history"][-1]["loss"] < state["history"][0]["loss"] / 2
    index = SparseIndex.load(korean_docs_index)
    examples = read_qa_examples(korean_qa_file)
    everything = [index.passages[i] for i in range(index.n_passages)]

    def answered_first(reranker) -> int:
        hits = 0
        for example in examples:
            scores = reranker.score([example.question] * len(everything), [p.text for p in everything])
            hits += has_answer(everything[int(scores.argmax())].text, example.answer_texts)
        return hits

    from transformers import AutoModelForSequenceClassification

    from odqa.models.tokenizer import load_tokenizer

    torch.manual_seed(config.seed)
    untrained = Reranker(
        AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=1), load_tokenizer(tiny_encoder)
    )
    # 6 passages: chance puts the answer first for ~1.3 of the 8 questions
    assert answered_first(Reranker.load(tmp_path / "rr")) >= max(5, answered_first(untrained) + 3)


def test_separate_question_encoder_is_trained_and_saved(tiny_encoder, korean_qa_file, tmp_path):
    from odqa.retrieval.encoder import DenseEncoder

    config = DenseTrainingConfig(
        model=str(tiny_encoder),
        question_model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(tmp_path / "two"),
        max_steps=2,
        batch_size=4,
        lr=1e-3,
        warmup_ratio=0.0,
        encoder={"pooling": "mean", "passage_max_length": 48},
    )
    assert train_dense(config, quiet=True, resume=False)["step"] == 2
    encoder = DenseEncoder.load(tmp_path / "two")
    assert encoder.question_model is not encoder.model  # two encoders, each trained from the same start
    q_weights = dict(encoder.question_model.named_parameters())
    differs = [n for n, p in encoder.model.named_parameters() if n in q_weights and not torch.equal(p, q_weights[n])]
    assert differs


def test_an_imported_models_pooling_and_prefixes_are_trained_with_unless_given(tiny_encoder, korean_qa_file, tmp_path):
    import json
    import shutil

    from odqa.retrieval.encoder import DenseEncoder

    e5 = tmp_path / "e5"  # an E5-style folder: its manifest recommends mean pooling, cosine and prefixes
    shutil.copytree(tiny_encoder, e5)
    recommended = {"pooling": "mean", "normalize": True, "query_prefix": "query: ", "passage_prefix": "passage: "}
    (e5 / "odqa_model.json").write_text(json.dumps({"encoder": recommended}), encoding="utf-8")
    for given, expected in (({}, ("mean", "cosine", "query: ")), ({"pooling": "cls"}, ("cls", "cosine", "query: "))):
        config = DenseTrainingConfig(
            model=str(e5),
            train=[str(korean_qa_file)],
            out=str(tmp_path / "run"),
            max_steps=1,
            batch_size=4,
            encoder=given,
        )
        train_dense(config, quiet=True, resume=False)
        trained = DenseEncoder.load(tmp_path / "run").config
        assert (trained.pooling, trained.similarity, trained.query_prefix) == expected


def test_frozen_word_embeddings_stay_fixed_in_both_towers(tiny_encoder, korean_qa_file, tmp_path):
    from safetensors.torch import load_file

    from odqa.retrieval.encoder import DenseEncoder

    config = DenseTrainingConfig(
        model=str(tiny_encoder),
        question_model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(tmp_path / "frozen"),
        max_steps=2,
        batch_size=4,
        lr=1e-3,
        warmup_ratio=0.0,
        freeze_embeddings=True,  # a bi-encoder has no word embeddings of its own: each tower's are fixed
        encoder={"pooling": "mean", "passage_max_length": 48},
    )
    assert train_dense(config, quiet=True, resume=False)["step"] == 2
    start = {n.removeprefix("bert."): t for n, t in load_file(str(tiny_encoder / "model.safetensors")).items()}
    words = next(t for n, t in start.items() if n.endswith("word_embeddings.weight"))
    encoder = DenseEncoder.load(tmp_path / "frozen")
    for tower in (encoder.model, encoder.question_model):
        assert torch.equal(tower.get_input_embeddings().weight, words)
        trained = dict(tower.named_parameters())
        assert any(not torch.equal(trained[n], t) for n, t in start.items() if n in trained and "layer." in n)


def test_qrels_give_question_positive_and_negative_passages(korean_docs_index, tmp_path):
    from odqa.training.dense import qrels_pairs

    topics = tmp_path / "topics.tsv"
    topics.write_text(
        "q1\t훈민정음을 창제한 왕은?\nq2\t아무 문서에도 없는 질문\nq3\t서울을 지나 흐르는 강\n", encoding="utf-8"
    )
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 Q0 5 1\nq2 Q0 999 1\nq3 Q0 6 1\n")
    pairs = qrels_pairs(str(korean_docs_index), str(topics), str(qrels), n=2)
    assert [q for q, _, _ in pairs] == ["훈민정음을 창제한 왕은?", "서울을 지나 흐르는 강"]  # q2's article: not reached
    assert "훈민정음" in pairs[0][1]
    question, positive, negatives = pairs[1]
    assert positive.startswith("한강") and 1 <= len(negatives) <= 2
    assert not any(n.startswith("한강") for n in negatives)  # negatives come from other articles
