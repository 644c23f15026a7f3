"""An on-disk passage store: one JSON record per line plus a memory-mapped array of byte offsets,
so a passage is read by id without loading the collection."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from odqa.types import Passage, PassageSource

RECORDS = "passages.jsonl"
OFFSETS = "passages.offsets.npy"


def write_passages(folder: Path, passages: Iterable[Passage]) -> int:
    offsets = [0]
    with open(folder / RECORDS, "wb") as f:
        for passage in passages:
            record = {
                "text": passage.text,
                "title": passage.title,
                "body_start": passage.body_start,
                "sources": [[s.doc_id, s.start, s.end] for s in passage.sources],
            }
            line = json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"
            f.write(line)
            offsets.append(offsets[-1] + len(line))
    np.save(folder / OFFSETS, np.asarray(offsets, dtype=np.int64))
    return len(offsets) - 1


class PassageStore:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self._offsets = np.load(folder / OFFSETS, mmap_mode="r")
        self._blob = np.memmap(folder / RECORDS, dtype=np.uint8, mode="r")

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, passage_id: int) -> Passage:
        if not 0 <= passage_id < len(self):
            raise IndexError(f"passage id {passage_id} out of range 0..{len(self) - 1}")
        start, end = int(self._offsets[passage_id]), int(self._offsets[passage_id + 1])
        record = json.loads(self._blob[start:end].tobytes())
        sources = tuple(PassageSource(str(d), int(s), int(e)) for d, s, e in record["sources"])
        return Passage(passage_id, record["text"], record["title"], sources, record["body_start"])
