"""What an update of a built index will be, before anything is analysed: the documents kept,
deleted and added (ids checked: unknown deletions, duplicates, replacements refused or allowed),
and where every passage lands so that the result equals a fresh build of the final collection.
`odqa.retrieval.update` applies the plan; the index keeps what the plan needs (`TABLE`, the
document list) from its build on."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.corpus import CorpusConfig, PassageBuilder, fingerprint_of_digests, passage_digest, text_hash
from odqa.errors import OdqaError
from odqa.io.store import ComposedStore, PassageStore
from odqa.types import Document, Passage, PassageSource

DOCUMENTS = "documents.json"  # (id, title) of the indexed documents in order
# What an index keeps about its passages to be updated: each one's sources (document number into
# documents.json, start, end) as a ragged array, its text hash (dedup) and digest (fingerprint).
TABLE = ("tf", "passage_len", "source_ptr", "source_doc", "source_start", "source_end", "text_hash", "passage_digest")
_SHOWN = 5  # ids named in a refusal


def document_list_text(documents: list[tuple[str, str]]) -> str:
    return json.dumps([list(d) for d in documents], ensure_ascii=False)


def passage_table(
    passages: Sequence[Passage], documents: list[tuple[str, str]], digests: bytes | None = None
) -> dict[str, np.ndarray]:
    """The per-passage arrays of TABLE a fresh build keeps besides the counts (`tf`, `passage_len`);
    `digests` are the passages' digests when already computed (PassageBuilder.digests)."""
    if digests is None:
        digests = b"".join(passage_digest(p) for p in passages)
    number: dict[str, int] = {}
    for position, (doc_id, _) in enumerate(documents):
        number.setdefault(doc_id, position)
    sources = [s for p in passages for s in p.sources]
    return {
        "source_ptr": np.concatenate([[0], np.cumsum([len(p.sources) for p in passages])]).astype(np.int64),
        "source_doc": np.fromiter((number[s.doc_id] for s in sources), dtype=np.int32, count=len(sources)),
        "source_start": np.fromiter((s.start for s in sources), dtype=np.int32, count=len(sources)),
        "source_end": np.fromiter((s.end for s in sources), dtype=np.int32, count=len(sources)),
        "text_hash": np.fromiter((text_hash(p.text) for p in passages), dtype=np.uint64, count=len(passages)),
        "passage_digest": np.frombuffer(digests, dtype=np.uint8).reshape(-1, 16),
    }


@dataclass
class CollectionChange:
    """The collection after an update: its passages in rebuild order (`store`), where each came
    from (`old_ids`, -1 for a new one), its documents and the table arrays an index keeps."""

    store: ComposedStore
    old_ids: np.ndarray
    documents: list[tuple[str, str]]
    table: dict[str, np.ndarray]
    added: int
    deleted: int
    replaced: int

    @property
    def new_passages(self) -> list[Passage]:
        return [self.store.given[i] for i in np.nonzero(self.old_ids < 0)[0].tolist()]

    @property
    def fingerprint(self) -> str:
        return fingerprint_of_digests(self.table["passage_digest"].tobytes())


def _joined(array: np.ndarray, more: list[int]) -> np.ndarray:
    return np.concatenate([np.asarray(array, dtype=np.int64), np.asarray(more, dtype=np.int64)])


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def _check_ids(present: set[str], added: Sequence[Document], delete: list[str], replace: bool) -> list[str]:
    """The ids of indexed documents that added ones replace; refusals name the ids."""
    unknown = [d for d in delete if d not in present]
    if unknown:
        raise OdqaError(f"cannot delete {len(unknown)} document(s) the index does not hold: {_named(unknown)}")
    seen: set[str] = set()
    repeated = [d.id for d in added if d.id in seen or seen.add(d.id)]
    if repeated:
        raise OdqaError(f"the documents to add repeat ids {_named(list(dict.fromkeys(repeated)))}; ids must be unique")
    deleting = set(delete)
    clash = [d.id for d in added if d.id in present and d.id not in deleting]
    if clash and not replace:
        raise OdqaError(
            f"{len(clash)} document(s) to add are already in the index ({_named(clash)}): "
            "pass --replace to replace them, or --delete them first"
        )
    return clash


def plan_change(
    store: PassageStore,
    table: dict[str, np.ndarray],
    documents: list[tuple[str, str]],
    config: CorpusConfig,
    added: Sequence[Document] = (),
    delete: Iterable[str] = (),
    replace: bool = False,
) -> CollectionChange:
    """The collection in `store` (its `documents` in order, cut with `config`, described by
    `table`), less the documents in `delete`, followed by `added`: cut, deduplicated and numbered
    as a fresh build would, touching only the passages that change. Unknown ids to delete are
    refused; added ids already indexed are refused unless `replace` (then the old document is
    deleted and the new one appended)."""
    delete = list(dict.fromkeys(delete))
    clash = _check_ids({doc_id for doc_id, _ in documents}, added, delete, replace)
    deleting = set(delete) | set(clash)
    doc_kept = np.fromiter((doc_id not in deleting for doc_id, _ in documents), dtype=bool, count=len(documents))
    doc_number = np.cumsum(doc_kept) - 1  # old document number -> new
    doc_number[~doc_kept] = -1
    final_documents = [d for d, kept in zip(documents, doc_kept.tolist()) if kept] + [(d.id, d.title) for d in added]
    n_kept_docs = int(doc_kept.sum())

    # Old passages: which sources stay, which passages lose some or all, which lose their first.
    ptr = table["source_ptr"]
    n_old = len(ptr) - 1
    source_doc = doc_number[table["source_doc"]]
    alive = source_doc >= 0
    passage_of_source = np.repeat(np.arange(n_old), np.diff(ptr))
    n_alive = np.bincount(passage_of_source, weights=alive, minlength=n_old).astype(np.int64)
    survivors = np.nonzero(n_alive > 0)[0]
    lost_sources = n_alive[survivors] < np.diff(ptr)[survivors]
    first_alive = np.full(n_old, -1, dtype=np.int64)
    alive_at = np.nonzero(alive)[0]
    is_first = np.ones(len(alive_at), dtype=bool)
    is_first[1:] = passage_of_source[alive_at[1:]] != passage_of_source[alive_at[:-1]]
    first_alive[passage_of_source[alive_at[is_first]]] = alive_at[is_first]

    # Added documents: their passages, each a new passage or one more source of a surviving text.
    new, _ = PassageBuilder(config).build(added, allow_empty=True)
    added_number = {d.id: n_kept_docs + i for i, d in enumerate(added)}
    merged: dict[int, list[PassageSource]] = {}
    fresh: list[Passage] = []
    by_hash = dict(zip(table["text_hash"][survivors].tolist(), survivors.tolist())) if config.dedup else {}
    for passage in new:
        old = by_hash.get(text_hash(passage.text))
        if old is not None and store[old].text == passage.text:
            merged.setdefault(old, []).extend(passage.sources)
        else:
            fresh.append(passage)

    # Rebuild order: by first occurrence (document, start, end), survivors then fresh passages.
    s = first_alive[survivors]
    first_doc = _joined(source_doc[s], [added_number[p.sources[0].doc_id] for p in fresh])
    first_start = _joined(table["source_start"][s], [p.sources[0].start for p in fresh])
    first_end = _joined(table["source_end"][s], [p.sources[0].end for p in fresh])
    order = np.lexsort((first_end, first_start, first_doc))
    if len(order) == 0:
        raise OdqaError("the update would leave the index without passages; build a new index instead")
    old_ids = np.concatenate([survivors, np.full(len(fresh), -1, dtype=np.int64)])[order]
    final_id = np.empty(len(order), dtype=np.int64)
    final_id[order] = np.arange(len(order))  # candidate position -> final passage id

    # Sources of every final passage: the surviving ones, then merged ones, then fresh passages'.
    survivor_position = np.full(n_old, -1, dtype=np.int64)
    survivor_position[survivors] = np.arange(len(survivors))
    extra = [(old, src) for old, sources in merged.items() for src in sources]
    extra += [(-1 - i, src) for i, p in enumerate(fresh) for src in p.sources]
    extra_owner = np.asarray(
        [survivor_position[o] if o >= 0 else len(survivors) + (-1 - o) for o, _ in extra], dtype=np.int64
    )
    owner = final_id[np.concatenate([survivor_position[passage_of_source[alive]], extra_owner])]
    docs = _joined(source_doc[alive], [added_number[src.doc_id] for _, src in extra])
    starts = _joined(table["source_start"][alive], [src.start for _, src in extra])
    ends = _joined(table["source_end"][alive], [src.end for _, src in extra])
    by_owner = np.argsort(owner, kind="stable")  # within a passage: surviving order, then appended
    new_ptr = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(order)), out=new_ptr[1:])

    # Passages whose record changes are written anew: fresh ones, those with sources lost or merged.
    given: dict[int, Passage] = {}
    changed = set(survivors[lost_sources].tolist()) | set(merged)
    final_docs = docs[by_owner]
    final_starts, final_ends = starts[by_owner], ends[by_owner]

    def sources_of(i: int) -> tuple[PassageSource, ...]:
        return tuple(
            PassageSource(final_documents[d][0], int(a), int(b))
            for d, a, b in zip(
                final_docs[new_ptr[i] : new_ptr[i + 1]].tolist(),
                final_starts[new_ptr[i] : new_ptr[i + 1]],
                final_ends[new_ptr[i] : new_ptr[i + 1]],
            )
        )

    for old in changed:
        i = int(final_id[survivor_position[old]])
        passage, sources = store[old], sources_of(i)
        title, body_start = passage.title, passage.body_start
        if sources[0] != passage.sources[0]:  # its first source went: it now belongs to the next one's document
            title = final_documents[final_docs[new_ptr[i]]][1]
            body_start = len(f"{title}\n") if config.title and title else 0
        given[i] = Passage(i, passage.text, title, sources, body_start)
    for k, passage in enumerate(fresh):
        i = int(final_id[len(survivors) + k])
        given[i] = Passage(i, passage.text, passage.title, passage.sources, passage.body_start)
    copied = old_ids >= 0
    copied[list(given)] = False
    digests = np.zeros((len(order), 16), dtype=np.uint8)
    digests[copied] = table["passage_digest"][old_ids[copied]]
    hashes = np.zeros(len(order), dtype=np.uint64)
    hashes[old_ids >= 0] = table["text_hash"][old_ids[old_ids >= 0]]
    for i, passage in given.items():
        digests[i] = np.frombuffer(passage_digest(passage), dtype=np.uint8)
        hashes[i] = text_hash(passage.text)
    new_table = {
        "source_ptr": new_ptr,
        "source_doc": final_docs.astype(np.int32),
        "source_start": final_starts.astype(np.int32),
        "source_end": final_ends.astype(np.int32),
        "text_hash": hashes,
        "passage_digest": digests,
    }
    return CollectionChange(
        ComposedStore(store, old_ids, given), old_ids, final_documents, new_table, len(added), len(delete), len(clash)
    )


def read_document_list(path: Path) -> list[tuple[str, str]]:
    file = path / DOCUMENTS
    if not file.is_file():
        raise OdqaError(
            f"index {path} was built by an odqa that did not keep its document list; "
            "rebuild it once with `odqa index` to add and delete documents"
        )
    try:
        return [(str(doc_id), str(title)) for doc_id, title in json.loads(file.read_text(encoding="utf-8"))]
    except (ValueError, TypeError) as e:
        raise OdqaError(f"index {path}: {DOCUMENTS} is damaged ({e}); rebuild the index") from None
