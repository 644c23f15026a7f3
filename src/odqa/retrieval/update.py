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
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.corpus import CorpusConfig, PassageBuilder, fingerprint
from odqa.errors import OdqaError
from odqa.retrieval.build import DOCUMENTS, document_list_text
from odqa.types import Document, Passage

_SHOWN = 5  # ids named in a refusal


@dataclass
class CollectionChange:
    """The passages of the collection after an update, in rebuild order, and where they came from."""

    passages: list[Passage]
    old_ids: np.ndarray  # each passage's id before the update, -1 for a new one
    documents: list[tuple[str, str]]
    added: int
    deleted: int
    replaced: int

    @property
    def new_passages(self) -> list[Passage]:
        return [p for p, old in zip(self.passages, self.old_ids) if old < 0]


def _named(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN])
    return shown + (f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else "")


def plan_change(
    passages: Sequence[Passage],
    documents: list[tuple[str, str]],
    config: CorpusConfig,
    added: Sequence[Document] = (),
    delete: Iterable[str] = (),
    replace: bool = False,
) -> CollectionChange:
    """The collection `passages` came from (its `documents` in order, cut with `config`), less the
    documents in `delete`, followed by `added`: cut, deduplicated and numbered as a fresh build
    would. Unknown ids to delete are refused; added ids already indexed are refused unless
    `replace` (then the old document is deleted and the new one appended)."""
    present = {doc_id for doc_id, _ in documents}
    delete = list(dict.fromkeys(delete))
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
    deleting.update(clash)
    kept = [(doc_id, title) for doc_id, title in documents if doc_id not in deleting]
    final_documents = kept + [(d.id, d.title) for d in added]
    rank: dict[str, int] = {}
    titles: dict[str, str] = {}
    for position, (doc_id, title) in enumerate(final_documents):
        rank.setdefault(doc_id, position)
        titles.setdefault(doc_id, title)

    survivors: list[Passage] = []
    old_ids: list[int] = []
    for i in range(len(passages)):
        passage = passages[i]
        sources = tuple(s for s in passage.sources if s.doc_id not in deleting)
        if not sources:
            continue
        title, body_start = passage.title, passage.body_start
        if sources[0] != passage.sources[0]:  # its first source went: it now belongs to the next one's document
            title = titles[sources[0].doc_id]
            body_start = len(f"{title}\n") if config.title and title else 0
        survivors.append(Passage(len(survivors), passage.text, title, sources, body_start))
        old_ids.append(i)
    by_text = {p.text: i for i, p in enumerate(survivors)} if config.dedup else {}
    new, _ = PassageBuilder(config).build(added, allow_empty=True)
    for passage in new:
        existing = by_text.get(passage.text)
        if existing is not None:  # the same text from an added document: one more source
            old = survivors[existing]
            survivors[existing] = Passage(old.id, old.text, old.title, old.sources + passage.sources, old.body_start)
            continue
        survivors.append(passage)
        old_ids.append(-1)
    if not survivors:
        raise OdqaError("the update would leave the index without passages; build a new index instead")

    # A fresh build numbers passages by their first occurrence: document order, then position.
    def first_occurrence(i: int) -> tuple[int, int, int]:
        source = survivors[i].sources[0]
        return rank[source.doc_id], source.start, source.end

    order = sorted(range(len(survivors)), key=first_occurrence)
    final = [
        Passage(new_id, p.text, p.title, p.sources, p.body_start)
        for new_id, p in enumerate(survivors[i] for i in order)
    ]
    return CollectionChange(
        final,
        np.asarray(old_ids, dtype=np.int64)[order] if order else np.zeros(0, dtype=np.int64),
        final_documents,
        added=len(added),
        deleted=len(delete),
        replaced=len(clash),
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
    """The final (passages x terms) count matrix and vocabulary: kept passages' counts moved to
    their new rows, added passages analysed, terms no passage holds any more dropped."""
    import scipy.sparse as sp

    from odqa.analysis.corpus import analyze_corpus

    a = index.arrays
    indptr = np.asarray(a["indptr"])
    n_old, n_terms_old = index.n_passages, len(index.vocab)
    new_row = np.full(n_old, -1, dtype=np.int64)
    kept = np.nonzero(change.old_ids >= 0)[0]
    new_row[change.old_ids[kept]] = kept
    rows_old = new_row[np.asarray(a["passage_ids"])]
    cols_old = np.repeat(np.arange(n_terms_old, dtype=np.int64), np.diff(indptr))
    keep = rows_old >= 0
    data_old = np.asarray(a["tf"])[keep].astype(np.float32)

    added_rows = np.nonzero(change.old_ids < 0)[0]
    analyzed = analyze_corpus(
        [change.passages[i].text for i in added_rows],
        index.analyzer_config,
        processes if processes else (1 if len(added_rows) < 2000 else None),
        quiet,
    )
    vocab = list(index.vocab)
    term_ids = {t: i for i, t in enumerate(vocab)}
    mapping = np.fromiter(
        (term_ids.setdefault(t, len(term_ids)) for t in analyzed.vocab), dtype=np.int64, count=len(analyzed.vocab)
    )
    vocab.extend(list(term_ids)[len(vocab) :])
    rows_new = np.repeat(added_rows, np.diff(analyzed.offsets))
    cols_new = mapping[analyzed.ids] if len(analyzed.ids) else np.zeros(0, dtype=np.int64)

    counts = sp.csc_matrix(
        (
            np.concatenate([data_old, np.ones(len(rows_new), dtype=np.float32)]),
            (np.concatenate([rows_old[keep], rows_new]), np.concatenate([cols_old[keep], cols_new])),
        ),
        shape=(len(change.passages), len(vocab)),
    )
    counts.sum_duplicates()
    present = np.nonzero(np.diff(counts.indptr))[0]
    if len(present) < len(vocab):
        counts = counts[:, present]
        counts.sum_duplicates()
        vocab = [vocab[i] for i in present]
    return counts, vocab


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
    from odqa.retrieval.sparse import SparseIndex

    start = time.perf_counter()
    path = Path(path)
    delete = list(delete)
    if add is None and not delete:
        raise OdqaError("nothing to update: give documents to add, ids to delete, or both")
    index = SparseIndex.load(path)
    if "tf" not in index.arrays:
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
    old_passages = [index.passages[i] for i in range(index.n_passages)]
    change = plan_change(old_passages, documents, config, added, delete, replace)
    dense_indexes = [_check_dense(Path(d), corpus.get("fingerprint"), path) for d in dense]

    source = corpus.get("source", {})
    history = list(source.get("updates", [])) if isinstance(source, dict) else []
    history.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "added": _stamp(add) if add is not None else None,
            "added_documents": change.added,
            "deleted_documents": change.deleted,
            "replaced_documents": change.replaced,
        }
    )
    info = {
        **corpus,
        "source": {"built_from": source.get("built_from", source), "updates": history},
        "documents": len(change.documents),
        "passages": len(change.passages),
        "fingerprint": fingerprint(change.passages),
    }
    counts, vocab = _merged_counts(index, change, processes, quiet)
    updated = SparseIndex.from_counts(counts, vocab, index.analyzer_config, index.scoring, change.passages, info)
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
        len(change.passages),
        int((change.old_ids < 0).sum()),
        [str(d) for d in dense],
        time.perf_counter() - start,
    )


def _stamp(file: str | Path) -> dict:
    stat = Path(file).stat()
    return {"path": str(Path(file).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


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
    vectors = np.empty((len(change.passages), old.shape[1]), dtype=np.float32)
    kept = change.old_ids >= 0
    vectors[kept] = old[change.old_ids[kept]]
    added = [p.text for p in change.new_passages]
    if added:
        vectors[~kept] = index.encoder.encode(added, "passage", not quiet)
    return DenseIndex.build(
        change.passages, index.encoder, index.manifest["faiss"], index.encoder_path, info, vectors=vectors
    )
