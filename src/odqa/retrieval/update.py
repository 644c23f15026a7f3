"""Adding and deleting documents of a built sparse index (and of the dense index built beside it)
without analysing the rest of the collection again.

BM25's stored weights depend on collection statistics (passage count, average length, document
frequencies), so adding one document changes every weight: a delta segment scored with its own
statistics would rank differently from a rebuild. Instead the index keeps each passage's term
counts (`tf.npy`) and its documents in order (`documents.json`). An update analyses only the added
documents, merges their counts with the kept ones, reweighs the whole matrix (vectorised: seconds)
and places every passage where a fresh build of the final collection would: the old documents less
the deleted ones, then the added ones in file order. The result equals that rebuild: the same
passage ids, sources, scores and corpus fingerprint (tests/test_update.py proves it)."""

from __future__ import annotations

import json
import os
import time
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


def _merged_counts(index, change: CollectionChange, processes: int | None, quiet: bool):
    """The final (passages x terms) CSC count matrix, vocabulary and passage lengths: kept passages'
    counts moved to their new rows, added passages analysed, terms no passage holds any more dropped. The kept
    entries stay in their term-major order (only their rows are renumbered) and the few added
    ones are inserted at the end of each term's run (added passages follow every kept one):
    a handful of passes over the postings, never a sort of them."""
    import scipy.sparse as sp

    from odqa.analysis.corpus import analyze_corpus
    from odqa.retrieval.sparse import count_matrix

    a = index.arrays
    old_indptr = np.asarray(a["indptr"])
    n_old, n_terms_old, n_final = index.n_passages, len(index.vocab), len(change.old_ids)
    new_row = np.full(n_old, -1, dtype=np.int32)
    kept = np.nonzero(change.old_ids >= 0)[0]
    new_row[change.old_ids[kept]] = kept
    rows = new_row[np.asarray(a["passage_ids"])]
    tf = np.asarray(a["tf"])
    dropped = np.nonzero(rows < 0)[0]
    kept_df = np.diff(old_indptr)
    if len(dropped):
        kept_df = kept_df - np.bincount(np.searchsorted(old_indptr, dropped, side="right") - 1, minlength=n_terms_old)
        keep = np.ones(len(rows), dtype=bool)
        keep[dropped] = False
        rows, tf = rows[keep], tf[keep]

    added_rows = np.nonzero(change.old_ids < 0)[0]
    passage_len = np.zeros(n_final, dtype=np.int64)
    passage_len[kept] = np.asarray(a["passage_len"])[change.old_ids[kept]]
    vocab = list(index.vocab)
    if len(added_rows):
        # a few hundred passages already pay for a second process (forked: it starts at once)
        workers = processes or (1 if len(added_rows) < 200 else (os.cpu_count() or 1))
        analyzed = analyze_corpus(
            [p.text for p in change.new_passages],
            index.analyzer_config,
            workers,
            quiet,
            chunk=max(50, -(-len(added_rows) // (4 * workers))),
        )
        term_ids = dict(zip(vocab, range(len(vocab))))
        mapping = np.fromiter(
            (term_ids.setdefault(t, len(term_ids)) for t in analyzed.vocab), dtype=np.int64, count=len(analyzed.vocab)
        )
        vocab.extend(list(term_ids)[n_terms_old:])
        added = count_matrix(
            np.repeat(added_rows, np.diff(analyzed.offsets)),
            mapping[analyzed.ids] if len(analyzed.ids) else np.zeros(0, dtype=np.int64),
            n_final,
            len(vocab),
        )
        passage_len[added_rows] = np.diff(analyzed.offsets)
        kept_df = np.concatenate([kept_df, np.zeros(len(vocab) - n_terms_old, dtype=np.int64)])
        added_df = np.diff(added.indptr)
        df = kept_df + added_df
        # Each added entry goes after its term's kept ones: its final position is its own index
        # plus every kept entry up to its term's end; the kept entries fill the other positions.
        at = np.arange(len(added.indices)) + np.repeat(np.cumsum(kept_df), added_df)
        kept_slots = np.ones(len(rows) + len(at), dtype=bool)
        kept_slots[at] = False
        merged_rows = np.empty(len(kept_slots), dtype=np.int32)
        merged_rows[kept_slots], merged_rows[at] = rows, added.indices
        merged_tf = np.empty(len(kept_slots), dtype=np.float32)
        merged_tf[kept_slots], merged_tf[at] = tf, added.data
        rows, tf = merged_rows, merged_tf
    else:
        df = kept_df
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    present = np.nonzero(df)[0]
    if len(present) < len(vocab):  # a term without entries goes by dropping its boundary
        indptr = np.concatenate([[0], indptr[1:][present]])
        vocab = [vocab[i] for i in present]
    counts = sp.csc_matrix((tf.astype(np.float32, copy=False), rows, indptr), shape=(n_final, len(vocab)))
    # Kept passages that moved (their first document went) break each term's row order.
    if len(kept) and np.any(np.diff(change.old_ids[kept]) < 0):
        counts.has_sorted_indices = False
        counts.sort_indices()
    return counts, vocab, passage_len


@dataclass
class UpdateReport:
    added: int
    deleted: int
    replaced: int
    passages_before: int
    passages_after: int
    new_passages: int
    dense: list[str]
    seconds: float


def update_index(
    path: str | Path,
    add: str | Path | None = None,
    delete: Iterable[str] = (),
    replace: bool = False,
    dense: Sequence[str | Path] = (),
    processes: int | None = None,
    device: str | None = None,
    quiet: bool = False,
) -> UpdateReport:
    """Add the documents of file `add` to the sparse index at `path` and delete the documents with
    ids in `delete`; each dense index in `dense` (built from the same passages) follows, encoding
    only the new passages. Every index is computed in full before any is written, and each is
    replaced atomically: a failure leaves them as they were."""
    from odqa.io.documents import read_documents
    from odqa.retrieval.build import source_stamp
    from odqa.retrieval.sparse import SparseIndex

    start = time.perf_counter()
    path = Path(path)
    delete = list(delete)
    if add is None and not delete:
        raise OdqaError("nothing to update: give documents to add, ids to delete, or both")
    index = SparseIndex.load(path)
    if "shard" in index.manifest:
        raise OdqaError(
            f"{path} is one shard of a sharded index, weighted with the whole collection's statistics: "
            "rebuild the sharded index (`odqa index --shards N`) to add or delete documents"
        )
    if any(name not in index.arrays for name in TABLE):
        raise OdqaError(
            f"index {path} was built by an odqa that did not keep term counts; "
            "rebuild it once with `odqa index` to add and delete documents"
        )
    documents = read_document_list(path)
    corpus = index.manifest.get("corpus", {})
    config = CorpusConfig(**corpus.get("config", {}))
    added = list(read_documents(add)) if add is not None else []
    if add is not None and not added:
        raise OdqaError(f"{add} holds no documents to add")
    table = {name: np.asarray(index.arrays[name]) for name in TABLE if name not in ("tf", "passage_len")}
    change = plan_change(index.passages, table, documents, config, added, delete, replace)
    dense_indexes = [_check_dense(Path(d), corpus.get("fingerprint"), path) for d in dense]

    source = corpus.get("source", {})
    history = list(source.get("updates", [])) if isinstance(source, dict) else []
    history.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "added": source_stamp(add, None) if add is not None else None,
            "added_documents": change.added,
            "deleted_documents": change.deleted,
            "replaced_documents": change.replaced,
        }
    )
    info = {
        **corpus,
        "source": {"built_from": source.get("built_from", source), "updates": history},
        "documents": len(change.documents),
        "passages": len(change.old_ids),
        "fingerprint": change.fingerprint,
    }
    counts, vocab, passage_len = _merged_counts(index, change, processes, quiet)
    first_doc = change.table["source_doc"][change.table["source_ptr"][:-1]]
    # Passages are in document order, so numbering documents by first appearance is a running count.
    passage_docs = np.concatenate([[0], np.cumsum(first_doc[1:] != first_doc[:-1])]).astype(np.int32)
    updated = SparseIndex.from_counts(
        counts, vocab, index.analyzer_config, index.scoring, change.store, info, passage_docs, passage_len
    )
    updated.arrays |= change.table
    updated_dense = [_updated_dense(d, change, info, device, quiet) for d in dense_indexes]

    extra = {DOCUMENTS: document_list_text(change.documents)}
    if (path / "config.json").is_file():
        extra["config.json"] = (path / "config.json").read_text(encoding="utf-8")
    for dense_index, dense_path in zip(updated_dense, dense):
        dense_index.save(dense_path)
    updated.save(path, extra)
    return UpdateReport(
        change.added,
        change.deleted,
        change.replaced,
        index.n_passages,
        len(change.old_ids),
        int((change.old_ids < 0).sum()),
        [str(d) for d in dense],
        time.perf_counter() - start,
    )


def _check_dense(path: Path, sparse_fingerprint: str | None, sparse_path: Path) -> Path:
    from odqa.retrieval.manifest import read_manifest

    manifest = read_manifest(path, "odqa.dense")
    found = manifest.get("corpus", {}).get("fingerprint")
    if found != sparse_fingerprint:
        raise OdqaError(
            f"dense index {path} was not built from the passages of {sparse_path} (corpus fingerprint {found}, "
            f"the sparse index's {sparse_fingerprint}): update it with the index it was built beside, or rebuild it"
        )
    if manifest.get("faiss") not in ("flat", "hnsw"):
        raise OdqaError(
            f"dense index {path} is a {manifest.get('faiss')} index, which keeps no exact vectors to carry over; "
            "rebuild it with `odqa index-dense` after the update"
        )
    return path


def _updated_dense(path: Path, change: CollectionChange, info: dict, device: str | None, quiet: bool):
    """The dense index's kept vectors moved to their passages' new ids, the new passages encoded."""
    from odqa.retrieval.dense import DenseIndex

    index = DenseIndex.load(path, device=device, mmap=False)
    old = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    vectors = np.empty((len(change.old_ids), old.shape[1]), dtype=np.float32)
    kept = change.old_ids >= 0
    vectors[kept] = old[change.old_ids[kept]]
    added = [p.text for p in change.new_passages]
    if added:
        vectors[~kept] = index.encoder.encode(added, "passage", not quiet)
    return DenseIndex.build(
        change.store, index.encoder, index.manifest["faiss"], index.encoder_path, info, vectors=vectors
    )
