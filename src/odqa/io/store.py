"""An on-disk passage store: one JSON record per line plus a memory-mapped array of byte offsets,
so a passage is read by id without loading the collection."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from odqa.types import Passage, PassageSource

RECORDS = "passages.jsonl"
OFFSETS = "passages.offsets.npy"


def _record(passage: Passage) -> bytes:
    record = {
        "text": passage.text,
        "title": passage.title,
        "body_start": passage.body_start,
        "sources": [[s.doc_id, s.start, s.end] for s in passage.sources],
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def write_passages(folder: Path, passages: Iterable[Passage]) -> int:
    """Write passages as a store; a store object that can copy itself (`write_to`) does."""
    if hasattr(passages, "write_to"):
        return passages.write_to(folder)
    offsets = [0]
    with open(folder / RECORDS, "wb") as f:
        for passage in passages:
            line = _record(passage)
            f.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(folder / OFFSETS, np.asarray(offsets, dtype=np.int64))
    return len(offsets) - 1


class PassageStore:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self._offsets = np.load(folder / OFFSETS, mmap_mode="r")
        self._blob = np.memmap(folder / RECORDS, dtype=np.uint8, mode="r")

        self.folder = folder

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def write_to(self, folder: Path) -> int:
        shutil.copyfile(self.folder / RECORDS, folder / RECORDS)
        shutil.copyfile(self.folder / OFFSETS, folder / OFFSETS)
        return len(self)

    def __getitem__(self, passage_id: int) -> Passage:
        if not 0 <= passage_id < len(self):
            raise IndexError(f"passage id {passage_id} out of range 0..{len(self) - 1}")
        start, end = int(self._offsets[passage_id]), int(self._offsets[passage_id + 1])
        record = json.loads(self._blob[start:end].tobytes())
        sources = tuple(PassageSource(str(d), int(s), int(e)) for d, s, e in record["sources"])
        return Passage(passage_id, record["text"], record["title"], sources, record["body_start"])


class ComposedStore:
    """Passages taken by id from an existing store, or given anew (`given`, by new id): how an
    updated index writes its passages, copying the stored bytes of the unchanged ones."""

    def __init__(self, base: PassageStore, old_ids: np.ndarray, given: Mapping[int, Passage]):
        self.base, self.old_ids, self.given = base, np.asarray(old_ids, dtype=np.int64), dict(given)
        missing = [i for i in np.nonzero(self.old_ids < 0)[0].tolist() if i not in self.given]
        if missing:
            raise ValueError(f"passages {missing[:5]} are neither in the base store nor given")

    def __len__(self) -> int:
        return len(self.old_ids)

    def __getitem__(self, passage_id: int) -> Passage:
        if not 0 <= passage_id < len(self):
            raise IndexError(f"passage id {passage_id} out of range 0..{len(self) - 1}")
        if passage_id in self.given:
            return self.given[passage_id]
        old = self.base[int(self.old_ids[passage_id])]
        return Passage(passage_id, old.text, old.title, old.sources, old.body_start)

    def write_to(self, folder: Path) -> int:
        records = {i: _record(p) for i, p in self.given.items()}
        copied = self.old_ids >= 0
        copied[list(records)] = False
        base_offsets = np.asarray(self.base._offsets)
        lengths = np.zeros(len(self), dtype=np.int64)
        lengths[copied] = np.diff(base_offsets)[self.old_ids[copied]]
        for i, line in records.items():
            lengths[i] = len(line)
        # Runs of consecutive base records are copied in one write each.
        follows = np.zeros(len(self), dtype=bool)
        follows[1:] = copied[1:] & copied[:-1] & (self.old_ids[1:] == self.old_ids[:-1] + 1)
        starts = np.nonzero(~follows)[0]
        ends = np.append(starts[1:], len(self))
        blob = self.base._blob
        with open(folder / RECORDS, "wb") as f:
            for start, end in zip(starts.tolist(), ends.tolist()):
                if copied[start]:
                    first, last = int(self.old_ids[start]), int(self.old_ids[end - 1])
                    f.write(memoryview(blob[base_offsets[first] : base_offsets[last + 1]]))
                else:
                    f.write(records[start])
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        np.save(folder / OFFSETS, offsets)
        return len(self)
