"""Reading-comprehension examples (question + context + answers with character offsets) from
SQuAD-family JSON, and prediction files ({id: answer}).

Answer offsets are checked against the context. Small quirks common in Korean data (an offset a
few characters off, spaces around the answer text) are repaired to the nearest exact occurrence;
an answer whose text is not near its offset is refused with a message naming the question."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from odqa.errors import OdqaError
from odqa.io.atomic import atomic_write_text
from odqa.io.files import load_json
from odqa.io.questions import iter_squad
from odqa.types import AnswerSpan

# How far (in characters) an offset may be off before the answer is refused.
OFFSET_TOLERANCE = 32


@dataclass(frozen=True, slots=True)
class QAExample:
    id: str
    question: str
    context: str
    answers: tuple[AnswerSpan, ...] = ()
    title: str = ""

    @property
    def answer_texts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.text for a in self.answers))


def locate_answer(context: str, text: str, start: int, where: str = "") -> AnswerSpan:
    """The answer as an exact span of `context`, repairing small offset/whitespace quirks."""
    if start >= 0 and context[start : start + len(text)] == text:
        return AnswerSpan(text, start)
    stripped = text.strip()
    if stripped:
        lead = len(text) - len(text.lstrip())
        if context[start + lead : start + lead + len(stripped)] == stripped:
            return AnswerSpan(stripped, start + lead)
        lo = max(0, start - OFFSET_TOLERANCE)
        hi = start + len(text) + OFFSET_TOLERANCE
        found, positions = context.find(stripped, lo, hi), []
        while found != -1:
            positions.append(found)
            found = context.find(stripped, found + 1, hi)
        if positions:
            return AnswerSpan(stripped, min(positions, key=lambda p: abs(p - start)))
    excerpt = context[max(0, start - 10) : start + len(text) + 10]
    raise OdqaError(
        f"{where}answer {text!r} does not match its offset {start}: the context there reads {excerpt!r} "
        f"and the answer text is not within {OFFSET_TOLERANCE} characters of it; fix answer_start"
    )


def read_qa_examples(path: str | Path, require_answers: bool = False) -> list[QAExample]:
    path = Path(path)
    examples = []
    for title, paragraph, qa in iter_squad(path):
        context = paragraph.get("context")
        qid = str(qa["id"])
        if not isinstance(context, str):
            raise OdqaError(f"{path}: the paragraph of question {qid} has no string 'context'")
        answers = []
        for answer in qa.get("answers") or []:
            if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
                raise OdqaError(f"{path}: question {qid}: each answer needs 'text' and 'answer_start'")
            answers.append(
                locate_answer(context, str(answer["text"]), int(answer["answer_start"]), f"{path}: question {qid}: ")
            )
        if require_answers and not answers:
            raise OdqaError(f"{path}: question {qid} has no answers; training needs one")
        examples.append(QAExample(qid, qa["question"], context, tuple(dict.fromkeys(answers)), title))
    if not examples:
        raise OdqaError(f"{path}: no questions found")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise OdqaError(f"{path}: question ids are not unique")
    return examples


def read_qa_files(paths: Iterable[str | Path], require_answers: bool = False) -> list[QAExample]:
    examples: list[QAExample] = []
    for path in paths:
        examples.extend(read_qa_examples(path, require_answers))
    return examples


def read_predictions(path: str | Path) -> dict[str, str]:
    data = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise OdqaError(f"{path}: expected a JSON object {{question id: answer text}}")
    return {str(k): v for k, v in data.items()}


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
