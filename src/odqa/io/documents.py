"""Documents from the formats users have: SQuAD-family JSON (contexts become documents), the
competition's `wikipedia_documents.json` dict, and JSONL(.gz/.xz) with id/title/text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from odqa.errors import OdqaError
from odqa.io.files import base_suffix, iter_jsonl, load_json
from odqa.types import Document


def read_documents(path: str | Path, fmt: str = "auto") -> Iterator[Document]:
    """Yield documents from `path`. `fmt`: auto, jsonl, squad or wiki-dict."""
    path = Path(path)
    if fmt == "auto":
        fmt = "jsonl" if base_suffix(path) == ".jsonl" else "json"
    if fmt == "jsonl":
        yield from _read_jsonl(path)
        return
    if fmt not in ("json", "squad", "wiki-dict"):
        raise OdqaError(f"unknown document format {fmt!r}: use auto, jsonl, squad or wiki-dict")
    data = load_json(path)
    if isinstance(data, dict) and isinstance(data.get("data"), list) and fmt != "wiki-dict":
        yield from _squad_contexts(data, path)
    elif isinstance(data, dict) and fmt != "squad":
        yield from _wiki_dict(data, path)
    else:
        raise OdqaError(
            f"{path}: not a known document format (expected SQuAD JSON with 'data', "
            "a dict of {id: {text, title, ...}}, or JSONL with id/title/text)"
        )


def _read_jsonl(path: Path) -> Iterator[Document]:
    for lineno, obj in iter_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str):
            raise OdqaError(f"{path}:{lineno}: missing string field 'text'")
        doc_id = obj.get("id", obj.get("document_id", obj.get("docid")))
        if doc_id is None:
            raise OdqaError(f"{path}:{lineno}: missing field 'id'")
        yield Document(id=str(doc_id), text=text, title=str(obj.get("title") or ""))


def _wiki_dict(data: dict, path: Path) -> Iterator[Document]:
    """The competition corpus: {"0": {"text", "title", "document_id", ...}, ...}."""
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise OdqaError(f"{path}: entry {key!r} has no string 'text'")
        doc_id = entry.get("document_id", key)
        yield Document(id=str(doc_id), text=entry["text"], title=str(entry.get("title") or ""))


def _squad_contexts(data: dict, path: Path) -> Iterator[Document]:
    """Each distinct context is a document; its id is `document_id` when the file has one."""
    seen: set[str] = set()
    for a, article in enumerate(data["data"]):
        title = str(article.get("title") or "")
        for p, paragraph in enumerate(article.get("paragraphs") or []):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise OdqaError(f"{path}: data[{a}].paragraphs[{p}] has no string 'context'")
            doc_id = str(paragraph.get("document_id", f"{a}-{p}"))
            key = f"{doc_id}\x00{context}"
            if key in seen:
                continue
            seen.add(key)
            yield Document(id=doc_id, text=context, title=title)
