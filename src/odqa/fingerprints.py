"""What a file or folder is, by content: sha256 fingerprints of files, model folders and indexes
(`odqa.runs` records them for every input of a run; a saved model keeps those of its training
data), and the check that questions being scored were not trained on.

    fingerprint("indexes/kowiki-bm25")      # an index is known by its manifest
    training_overlap("runs/ko-reader", "validation.json")   # a warning line, or None
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from odqa.errors import OdqaError

RECORD_FILE = "odqa_run.json"  # the run record beside an output folder (odqa.runs): not part of what it is


def file_sha256(path: str | Path, cache: dict | None = None) -> str:
    """sha256 of a file's bytes; `cache` remembers (size, mtime) → digest by absolute path."""
    path, cache = Path(path), {} if cache is None else cache
    stat = path.stat()
    key = str(path.resolve())
    known = cache.get(key)
    if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
        return known[2]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    cache[key] = [stat.st_size, stat.st_mtime_ns, digest.hexdigest()]
    return digest.hexdigest()


def file_fingerprint(path: str | Path, cache: dict | None = None) -> dict:
    """{path, bytes, sha256} of one file: what a saved model records of its training data."""
    return {"path": str(path), "bytes": Path(path).stat().st_size, "sha256": file_sha256(path, cache)}


def fingerprint(path: str | Path, cache: dict | None = None) -> dict:
    """What a file or folder is, by content: {kind, path, bytes, sha256} (+ files for a folder).
    An index folder is known by its manifest (which holds its corpus fingerprint and config);
    checkpoints and hidden files inside a model folder are left out."""
    cache = {} if cache is None else cache
    path = Path(path)
    if path.is_file():
        return {"kind": "file", **file_fingerprint(path, cache)}
    manifest = path / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return {
            "kind": "index",
            "path": str(path),
            "format": data.get("format"),
            "corpus_fingerprint": (data.get("corpus") or {}).get("fingerprint"),
            "sha256": file_sha256(manifest, cache),
        }
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "checkpoint-")) for part in p.relative_to(path).parts)
        and p.name != RECORD_FILE
    )
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.relative_to(path).as_posix()}\0{file_sha256(p, cache)}\n".encode())
    return {
        "kind": "folder",
        "path": str(path),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "sha256": digest.hexdigest(),
    }


def training_data(model_folder: str | Path) -> list[dict]:
    """Fingerprints of the files a model folder says it was trained on (its odqa_*.json records;
    evaluation files used to pick the best checkpoint are not training data)."""
    found = []
    for path in sorted(Path(model_folder).glob("odqa_*.json")):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8")).get("data") or {}
            for name, value in data.items():
                if name == "eval" or value is None:
                    continue
                found += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)]
    return [f for f in found if f.get("sha256")]


def training_overlap(model_folder: str | Path, scored_file: str | Path, scored_ids: set[str] | None = None):
    """A warning when the questions scored were in the model's training data: the same file (by
    sha256), or — while the training files are still where they were, unchanged — the same
    question ids. None when neither holds or the model keeps no record of its data."""
    trained = training_data(model_folder)
    if not trained or not Path(scored_file).is_file():
        return None
    digest = file_sha256(scored_file)
    for item in trained:
        if item["sha256"] == digest:
            return (
                f"{scored_file} is the file {model_folder} was trained on ({item['path']}); "
                "these scores are not held out"
            )
    if not scored_ids:
        return None
    from odqa.io.questions import read_questions

    seen: set[str] = set()
    for item in trained:
        path = Path(item["path"])
        with contextlib.suppress(OSError, OdqaError, ValueError):
            if path.is_file() and file_sha256(path) == item["sha256"]:
                seen |= {q.id for q in read_questions(path)}
    common = len(seen & scored_ids)
    if common:
        return (
            f"{common:,} of the {len(scored_ids):,} questions scored (by id) were in the training data of "
            f"{model_folder}; these scores are not held out"
        )
    return None
