import json
import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def run_registry(tmp_path_factory):
    """Commands record their runs; the tests' records go to a registry of their own, not ~/.odqa."""
    os.environ["ODQA_RUNS"] = str(tmp_path_factory.mktemp("run-registry"))


KOREAN_DOCS = [
    {
        "id": "1",
        "title": "서울특별시",
        "text": "서울특별시는 대한민국의 수도이다.\n한강이 도시를 가로질러 흐른다. 인구는 약 천만 명이다.",
    },
    {"id": "2", "title": "부산광역시", "text": "부산광역시는 대한민국 제2의 도시이다.\n해운대 해수욕장이 유명하다."},
    {
        "id": "3",
        "title": "수학",
        "text": "수학은 수, 양, 구조, 공간을 다루는 학문이다.\n피타고라스 정리는 직각삼각형에 관한 정리이다.",
    },
    {"id": "4", "title": "김치", "text": "김치는 한국의 전통 발효 음식이다. 배추와 고춧가루로 만든다."},
    {
        "id": "5",
        "title": "세종",
        "text": "세종은 조선의 제4대 왕이다.\n훈민정음을 창제하였다. 훈민정음은 한글의 옛 이름이다.",
    },
    {"id": "6", "title": "한강", "text": "한강은 서울을 지나 황해로 흐르는 강이다."},
]


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in KOREAN_DOCS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    data = {
        "version": "test",
        "data": [
            {
                "title": "세종",
                "paragraphs": [
                    {
                        "context": KOREAN_DOCS[4]["text"],
                        "document_id": 5,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "훈민정음을 창제한 왕은?",
                                "answers": [{"text": "세종", "answer_start": 0}],
                            },
                        ],
                    }
                ],
            },
            {
                "title": "부산광역시",
                "paragraphs": [
                    {
                        "context": KOREAN_DOCS[1]["text"],
                        "qas": [
                            {
                                "id": "q2",
                                "question": "해운대 해수욕장이 있는 도시는?",
                                "answers": [{"text": "부산광역시", "answer_start": 0}],
                            },
                        ],
                    }
                ],
            },
            {
                "title": "없는 문서",
                "paragraphs": [
                    {
                        "context": "아무것도 없다.",
                        "qas": [
                            {
                                "id": "q3",
                                "question": "대한민국의 수도는?",
                                "answers": [{"text": "서울특별시", "answer_start": 0}],
                            },
                        ],
                    }
                ],
            },
        ],
    }
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(__import__("os").environ.get("ODQA_SHARED", ROOT.parent / "shared"))
KLUE_TOKENIZER = SHARED / "tokenizers" / "klue-bert-base"


def tiny_bert_config(tokenizer, layers: int = 2, hidden: int = 64):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )


@pytest.fixture(scope="session")
def klue_tokenizer():
    pytest.importorskip("transformers")
    if not KLUE_TOKENIZER.exists():
        pytest.skip(f"shared tokenizer not found at {KLUE_TOKENIZER} (set ODQA_SHARED)")
    from odqa.models.tokenizer import load_tokenizer

    return load_tokenizer(KLUE_TOKENIZER)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, klue_tokenizer) -> Path:
    """A randomly initialised 2-layer BERT for question answering with the KLUE tokenizer, saved
    the way a user's model folder is (safetensors + tokenizer)."""
    import torch
    from transformers import BertForQuestionAnswering

    from odqa.models.tokenizer import save_tokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-encoder")
    BertForQuestionAnswering(tiny_bert_config(klue_tokenizer)).save_pretrained(path)
    save_tokenizer(klue_tokenizer, path)
    return path


@pytest.fixture(scope="session")
def korquad_small(tmp_path_factory) -> Path:
    """32 KorQuAD dev questions on short contexts, as a SQuAD-format file."""
    source = SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
    if not source.exists():
        pytest.skip(f"KorQuAD dev not found at {source} (set ODQA_SHARED)")
    data = json.loads(source.read_text(encoding="utf-8"))
    articles, count = [], 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            if len(paragraph["context"]) < 400 and count < 32:
                articles.append(
                    {
                        "title": article["title"],
                        "paragraphs": [{"context": paragraph["context"], "qas": paragraph["qas"][:1]}],
                    }
                )
                count += 1
    path = tmp_path_factory.mktemp("korquad") / "small.json"
    path.write_text(json.dumps({"data": articles}, ensure_ascii=False), encoding="utf-8")
    return path


# Questions about KOREAN_DOCS, for a tiny reader that has learned them (pipeline and service tests).
KOREAN_QA = [
    ("5", "훈민정음을 창제한 왕은?", "세종"),
    ("5", "세종은 조선의 몇 대 왕인가?", "제4대"),
    ("1", "대한민국의 수도는?", "서울특별시"),
    ("2", "해운대 해수욕장이 유명한 도시는?", "부산광역시"),
    ("4", "김치는 무엇으로 만드는가?", "배추와 고춧가루"),
    ("6", "한강이 흘러가는 바다는?", "황해"),
    ("3", "직각삼각형에 관한 정리는?", "피타고라스 정리"),
    ("1", "서울의 인구는 약 몇 명인가?", "천만 명"),
]


@pytest.fixture(scope="session")
def korean_docs_index(tmp_path_factory):
    from odqa.retrieval.build import build_sparse_index

    folder = tmp_path_factory.mktemp("kodocs")
    corpus = folder / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in KOREAN_DOCS) + "\n", encoding="utf-8")
    build_sparse_index(corpus, folder / "index", cache_dir=None, processes=1, quiet=True)
    return folder / "index"


@pytest.fixture(scope="session")
def korean_qa_file(tmp_path_factory) -> Path:
    by_id = {d["id"]: d for d in KOREAN_DOCS}
    articles = []
    for n, (doc_id, question, answer) in enumerate(KOREAN_QA):
        doc = by_id[doc_id]
        context = f"{doc['title']}\n{doc['text']}"  # as the index's passages read: title first
        start = context.index(answer, len(doc["title"]) + 1)
        articles.append(
            {
                "title": doc["title"],
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {"id": f"k{n}", "question": question, "answers": [{"text": answer, "answer_start": start}]}
                        ],
                    }
                ],
            }
        )
    path = tmp_path_factory.mktemp("koqa") / "korean_qa.json"
    path.write_text(json.dumps({"data": articles}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def korean_reader(tmp_path_factory, tiny_encoder, korean_qa_file) -> Path:
    """The tiny encoder overfitted to KOREAN_QA: answers those questions from KOREAN_DOCS."""
    pytest.importorskip("accelerate")
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    out = tmp_path_factory.mktemp("korean-reader") / "reader"
    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(out),
        epochs=60,
        lr=3e-3,
        batch_size=8,
        warmup_ratio=0.0,
        save_steps=10**6,
        reader={"max_length": 128, "stride": 32, "max_question_tokens": 32},
    )
    train_reader(config, quiet=True, resume=False)
    return out


@pytest.fixture(scope="session")
def weak_reader(tmp_path_factory, korean_reader) -> Path:
    """korean_reader's weights with the records of a weak one: evaluated at F1 31.5 / EM 20.0 and
    its training stopped at step 30 of 100 (what `reader_report` and the CLI and page warn about)."""
    import shutil

    out = tmp_path_factory.mktemp("weak-reader") / "reader"
    shutil.copytree(korean_reader, out)
    saved = json.loads((out / "odqa_reader.json").read_text(encoding="utf-8"))
    saved["metrics"] = {"epoch": 0, "step": 30, "eval": {"exact": 20.0, "f1": 31.5, "count": 240}, "best": True}
    (out / "odqa_reader.json").write_text(json.dumps(saved, ensure_ascii=False), encoding="utf-8")
    (out / "trainer_state.json").write_text(json.dumps({"step": 30, "total_steps": 100, "finished": False}))
    return out


@pytest.fixture(scope="session")
def retriever_folders(tmp_path_factory, klue_tokenizer) -> Path:
    """KOREAN_DOCS (docs.jsonl) indexed sparse and dense (a random tiny encoder), and a random
    tiny reranker: every kind of retriever over the same passages."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("faiss")
    from transformers import BertForSequenceClassification, BertModel

    from odqa.retrieval.build import build_dense_index, build_sparse_index
    from odqa.retrieval.encoder import DenseEncoder, EncoderConfig
    from odqa.retrieval.rerank import Reranker

    folder = tmp_path_factory.mktemp("indexes")
    corpus = folder / "docs.jsonl"
    corpus.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in KOREAN_DOCS) + "\n", encoding="utf-8")
    build_sparse_index(corpus, folder / "sparse", processes=1, quiet=True)
    torch.manual_seed(0)
    encoder = DenseEncoder(BertModel(tiny_bert_config(klue_tokenizer)), klue_tokenizer, EncoderConfig(pooling="mean"))
    encoder.save(folder / "encoder")
    build_dense_index(corpus, folder / "dense", str(folder / "encoder"), quiet=True)
    config = tiny_bert_config(klue_tokenizer)
    config.num_labels = 1
    Reranker(BertForSequenceClassification(config), klue_tokenizer).save(folder / "reranker")
    return folder
