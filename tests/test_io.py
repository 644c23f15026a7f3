"""Reading documents, questions and qrels in every supported format; malformed input named."""

import gzip
import json
import lzma

import pytest

from odqa import OdqaError
from odqa.io import read_documents, read_qrels, read_questions


def write_lines(path, records, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("suffix,opener", [(".jsonl", open), (".jsonl.gz", gzip.open), (".jsonl.xz", lzma.open)])
def test_jsonl_documents(tmp_path, suffix, opener):
    path = tmp_path / f"docs{suffix}"
    write_lines(path, [{"id": 7, "title": "제목", "text": "본문"}, {"id": "8", "text": "둘째"}], opener)
    docs = list(read_documents(path))
    assert [(d.id, d.title, d.text) for d in docs] == [("7", "제목", "본문"), ("8", "", "둘째")]


def test_competition_wiki_dict_keeps_document_ids(tmp_path):
    corpus = {
        str(i): {
            "text": "같은 글" if i < 2 else f"글 {i}",
            "title": "t",
            "document_id": i,
            "corpus_source": "위키피디아",
        }
        for i in range(4)
    }
    path = tmp_path / "wikipedia_documents.json"
    path.write_text(json.dumps(corpus, ensure_ascii=False), encoding="utf-8")
    docs = list(read_documents(path))
    assert [d.id for d in docs] == ["0", "1", "2", "3"]
    from odqa.corpus import CorpusConfig, build_passages

    passages, _ = build_passages(docs, CorpusConfig())
    assert len(passages) == 3 and [s.doc_id for s in passages[0].sources] == ["0", "1"]


def test_squad_contexts_become_documents(squad_file):
    docs = list(read_documents(squad_file))
    assert len(docs) == 3 and docs[0].title == "세종" and docs[0].id == "5"


def test_squad_questions(squad_file):
    questions = read_questions(squad_file)
    assert [q.id for q in questions] == ["q1", "q2", "q3"]
    assert questions[0].answers == ("세종",) and questions[0].title == "세종"


def test_jsonl_questions_without_answers(tmp_path):
    path = tmp_path / "test_questions.jsonl"
    write_lines(path, [{"id": "mrc-1", "question": "무엇인가?"}])
    assert read_questions(path)[0].answers == ()


def test_topics_and_qrels(tmp_path):
    topics = tmp_path / "topics.tsv.gz"
    with gzip.open(topics, "wt", encoding="utf-8") as f:
        f.write("0\t질문 하나\n2\t질문 둘\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("0 Q0 11#0 1\n0 Q0 11#3 1\n2 Q0 5#1 1\n2 Q0 6#0 0\n")
    assert [q.text for q in read_questions(topics)] == ["질문 하나", "질문 둘"]
    assert read_qrels(qrels) == {"0": {"11"}, "2": {"5"}}
    assert read_qrels(qrels, article_level=False)["0"] == {"11#0", "11#3"}


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', encoding="utf-8")
    with pytest.raises(OdqaError, match=r"bad.jsonl:2"):
        list(read_documents(path))


def test_missing_text_field_is_named(tmp_path):
    path = tmp_path / "docs.jsonl"
    write_lines(path, [{"id": 1, "body": "x"}])
    with pytest.raises(OdqaError, match="'text'"):
        list(read_documents(path))


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(OdqaError, match="not found"):
        list(read_documents(tmp_path / "nope.jsonl"))
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"id": 1, "text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(OdqaError, match="UTF-8"):
        list(read_documents(path))


def test_truncated_xz_is_named(tmp_path):
    path = tmp_path / "docs.jsonl.xz"
    write_lines(path, [{"id": i, "text": "x" * 100} for i in range(100)], lzma.open)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(OdqaError, match="truncated or corrupt"):
        list(read_documents(path))


def test_qrels_with_a_bad_relevance_name_the_line(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("0 Q0 11#0 1\n0 Q0 11#3 yes\n")
    with pytest.raises(OdqaError, match=r"qrels.txt:2: relevance 'yes' is not a number"):
        read_qrels(qrels)
