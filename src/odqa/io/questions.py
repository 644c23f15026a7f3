"""Question sets: SQuAD-family JSON (with answers), JSONL (id, question[, answers]), and
TREC-style topics (`id<TAB>question`) with qrels (`qid Q0 docid rel`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from odqa.errors import OdqaError
from odqa.io.files import base_suffix, iter_jsonl, load_json, open_text


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...] = ()
    title: str = ""  # the gold article's title, where the set names one
    doc_id: str = ""  # the gold document's id, where the set names one


def iter_squad(path: str | Path) -> Iterator[tuple[str, dict, dict]]:
    """(article title, paragraph, qa) for every question of a SQuAD-format file; a question
    without an id or a question text is an error naming its article."""
    data = load_json(path)
    if not (isinstance(data, dict) and isinstance(data.get("data"), list)):
        raise OdqaError(f"{path}: expected SQuAD-format JSON with a top-level 'data' list")
    for article in data["data"]:
        title = str(article.get("title") or "")
        for paragraph in article.get("paragraphs") or []:
            for qa in paragraph.get("qas") or []:
                if not qa.get("id") or not isinstance(qa.get("question"), str):
                    raise OdqaError(f"{path}: a question of {title!r} lacks 'id' or 'question'")
                yield title, paragraph, qa


def read_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    suffix = base_suffix(path)
    if suffix == ".jsonl":
        return [_jsonl_question(obj, path, lineno) for lineno, obj in iter_jsonl(path)]
    if suffix in (".tsv", ".txt"):
        return _read_topics(path)
    questions = []
    for title, paragraph, qa in iter_squad(path):
        answers = tuple(
            dict.fromkeys(a["text"] for a in qa.get("answers") or [] if isinstance(a, dict) and a.get("text"))
        )
        questions.append(Question(str(qa["id"]), qa["question"], answers, title, str(paragraph.get("document_id", ""))))
    if not questions:
        raise OdqaError(f"{path}: no questions found")
    return questions


def _jsonl_question(obj: dict, path: Path, lineno: int) -> Question:
    text = obj.get("question")
    if not isinstance(text, str):
        raise OdqaError(f"{path}:{lineno}: missing string field 'question'")
    answers = obj.get("answers") or ()
    if isinstance(answers, dict):  # HF datasets style {"text": [...], "answer_start": [...]}
        answers = answers.get("text") or ()
    answers = tuple(a["text"] if isinstance(a, dict) else str(a) for a in answers)
    return Question(id=str(obj.get("id", lineno)), text=text, answers=answers, title=str(obj.get("title") or ""))


def _read_topics(path: Path) -> list[Question]:
    questions = []
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) != 2:
                raise OdqaError(f"{path}:{lineno}: expected 'id<TAB>question'")
            questions.append(Question(id=parts[0], text=parts[1]))
    return questions


def read_qrels(path: str | Path, article_level: bool = True) -> dict[str, set[str]]:
    """Relevant document ids per query (relevance > 0). With `article_level`, `curid#k` → `curid`."""
    qrels: dict[str, set[str]] = defaultdict(set)
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise OdqaError(f"{path}:{lineno}: expected 'qid Q0 docid relevance'")
            qid, _, docid, rel = parts
            try:
                relevance = float(rel)
            except ValueError:
                raise OdqaError(f"{path}:{lineno}: relevance {rel!r} is not a number") from None
            if relevance > 0:
                qrels[qid].add(docid.split("#", 1)[0] if article_level else docid)
    return dict(qrels)
