"""KLUE-RE examples: reading and checking them, and the label list.

A file holds one JSON object per line, `{guid, sentence, subject_entity: {word, start_idx, end_idx,
type}, object_entity: {...}, label}` (.jsonl, .gz or .xz). KLUE's `end_idx` is inclusive; an `Entity`
here keeps Python's half-open `[start, end)`, so `sentence[start:end] == word` always holds (a file
where it does not is refused, naming the guid)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from odqa.errors import OdqaError

NO_RELATION = "no_relation"


@dataclass(frozen=True)
class Entity:
    word: str
    start: int  # first character in the sentence
    end: int  # one past the last character
    type: str


@dataclass(frozen=True)
class RelationExample:
    guid: str
    sentence: str
    subject: Entity
    object: Entity
    label: str | None = None

    @property
    def type_pair(self) -> tuple[str, str]:
        return self.subject.type, self.object.type


def _entity(raw, guid: str, role: str, sentence: str) -> Entity:
    if not isinstance(raw, dict):
        raise OdqaError(f"{guid}: {role} is missing or not an object with word, start_idx, end_idx, type")
    try:
        word, start, end, kind = raw["word"], int(raw["start_idx"]), int(raw["end_idx"]) + 1, str(raw["type"])
    except (KeyError, TypeError, ValueError) as e:
        raise OdqaError(f"{guid}: {role} needs word, start_idx, end_idx (inclusive) and type ({e})") from None
    if not 0 <= start < end <= len(sentence) or sentence[start:end] != word:
        found = sentence[start:end] if 0 <= start < end <= len(sentence) else "outside the sentence"
        raise OdqaError(
            f"{guid}: {role} offsets {start}..{end - 1} hold {found!r}, not its word {word!r} "
            "(start_idx and end_idx are character positions, end_idx inclusive)"
        )
    return Entity(word, start, end, kind)


def parse_example(raw: dict, where: str) -> RelationExample:
    """One KLUE-RE record; `where` names it in errors when it has no guid."""
    if not isinstance(raw, dict):
        raise OdqaError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    guid = str(raw.get("guid") or raw.get("id") or where)
    sentence = raw.get("sentence")
    if not isinstance(sentence, str) or not sentence.strip():
        raise OdqaError(f"{guid}: no sentence")
    label = raw.get("label")
    if label is not None and not isinstance(label, str):
        raise OdqaError(f"{guid}: label must be a relation name such as 'per:title', got {label!r}")
    subject = _entity(raw.get("subject_entity"), guid, "subject_entity", sentence)
    obj = _entity(raw.get("object_entity"), guid, "object_entity", sentence)
    return RelationExample(guid, sentence, subject, obj, label)


def read_relation_file(path: str | Path, labels: list[str] | None = None, require_labels: bool = False):
    """Every example of a KLUE-RE file. With `labels`, a label outside them is refused by name;
    `require_labels` refuses an example without one (training and gold files)."""
    from odqa.io.files import iter_jsonl

    path = Path(path)
    if not path.exists():
        raise OdqaError(f"relation file not found: {path}")
    known = set(labels) if labels is not None else None
    examples, guids = [], set()
    for number, raw in iter_jsonl(path):
        example = parse_example(raw, f"{path.name}:{number}")
        if example.guid in guids:
            raise OdqaError(f"{path}:{number}: guid {example.guid!r} appears twice")
        guids.add(example.guid)
        if example.label is None and require_labels:
            raise OdqaError(f"{path}:{number}: {example.guid} has no label")
        if known is not None and example.label is not None and example.label not in known:
            raise OdqaError(
                f"{path}:{number}: {example.guid} has the unknown label {example.label!r} "
                f"(the model knows {len(known)} labels, e.g. {', '.join(sorted(known)[:3])})"
            )
        examples.append(example)
    if not examples:
        raise OdqaError(f"{path}: no examples (expected one JSON object per line)")
    return examples


def relation_sentences(path: str | Path):
    """The sentences of a KLUE-RE file (for vocabulary trimming and TAPT), or None when the file
    is not one (its first record has no sentence and subject_entity)."""
    from odqa.io.files import base_suffix, iter_jsonl

    if base_suffix(path) != ".jsonl":
        return None
    first = next(iter_jsonl(path), (0, {}))[1]
    if "sentence" not in first or "subject_entity" not in first:
        return None
    return (str(record.get("sentence") or "") for _, record in iter_jsonl(path))


def read_label_list(path: str | Path) -> list[str]:
    """KLUE's `relation_list.json` ({"relations": [...]}) or a JSON list; `no_relation` first."""
    from odqa.io.files import load_json

    data = load_json(path)
    labels = data.get("relations") if isinstance(data, dict) else data
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise OdqaError(f"{path}: expected a list of relation names (or {{'relations': [...]}})")
    if len(set(labels)) != len(labels):
        raise OdqaError(f"{path}: a relation is listed twice")
    if labels[0] != NO_RELATION:
        raise OdqaError(f"{path}: the first relation must be {NO_RELATION!r} (KLUE's convention), got {labels[0]!r}")
    return labels


def labels_for(examples: list[RelationExample], listed: str | Path | None = None) -> list[str]:
    """The label list: from `listed` (a relation_list.json) when given, else the training
    examples' labels, `no_relation` first and the rest sorted."""
    if listed is not None:
        return read_label_list(listed)
    seen = {e.label for e in examples if e.label is not None}
    return [NO_RELATION] + sorted(seen - {NO_RELATION})
