"""Adding and deleting documents of a built sparse index (and of the dense index built beside it)
without analysing the rest of the collection again.

BM25's stored weights depend on collection statistics (passage count, average length, document
frequencies), so adding one document changes every weight: a delta segment scored with its own
statistics would rank differently from a rebuild. Instead the index keeps each passage's term
counts (`tf.npy`) and its documents in order (`documents.json`). An update analyses only the added
documents, merges their counts with the kept ones, reweighs the whole matrix (vectorised: seconds)
and places every passage where a fresh build of the final collection would: the old documents less
the deleted ones, then the added ones in file order. The result equals that rebuild: the same
passage ids, sources, scores and corpus fingerprint (tests/test_update.py proves it). Where each
passage lands is planned first (`odqa.retrieval.change`); this module applies the plan."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.corpus import CorpusConfig
from odqa.errors import OdqaError
from odqa.retrieval.change import (
    DOCUMENTS,
    TABLE,
    CollectionChange,
    document_list_text,
    plan_change,
    read_document_list,
)


def _merged_counts(index, change: CollectionChange, processes: int | None, quiet: bool):
    """The final (passages x terms) CSC count matrix, vocabulary and passage lengths: kept passages'
    counts moved to their new rows, added passages analysed, terms no passage holds any more dropped. The kept
    entries stay in their term-major order (only their rows are renumbered) and the few added
    ones are inserted at the end of each term's run (added passages follow every kept one):
    a handful of passes over the postings, never a sort of them."""
    import scipy.sparse as sp

    from odqa.analysis.corpus import analyze_corpus
    from odqa.retrieval.postings import count_matrix

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
