"""The one reader of index manifests. Every index folder has a `manifest.json` naming its format
and format version, its counts and the corpus it was built from; loading checks it here and
refuses anything else with one line that names the folder and what to do."""

from __future__ import annotations

import json
from pathlib import Path

from odqa import __version__
from odqa.errors import OdqaError

# format → (format version this odqa reads, the command that builds it)
FORMATS = {
    "odqa.sparse": (1, "odqa index"),
    "odqa.dense": (1, "odqa index-dense"),
    "odqa.hybrid": (1, "HybridRetriever.save"),
    "odqa.sharded": (1, "odqa index --shards N"),
}
KIND_NAMES = {"odqa.sparse": "sparse", "odqa.dense": "dense", "odqa.hybrid": "hybrid", "odqa.sharded": "sharded"}


def read_manifest(path: str | Path, kind: str | None = None) -> dict:
    """The manifest of the index at `path`, checked: a JSON object of a known format and version
    (`kind` if given), with passage counts."""
    path = Path(path)
    build = FORMATS[kind][1] if kind else "odqa index` or `odqa index-dense"
    if not path.exists():
        what = f"{KIND_NAMES[kind]} index" if kind else "index"
        raise OdqaError(f"{what} not found: {path} (build one with `{build}`)")
    file = path / "manifest.json"
    if not file.is_file():
        raise OdqaError(f"{path} is not an odqa index: it has no manifest.json")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OdqaError(f"{file} is corrupt ({e}); rebuild the index") from None
    if not isinstance(manifest, dict):
        raise OdqaError(f"{file} is not an index manifest (not a JSON object); rebuild the index")
    found = manifest.get("format")
    if found not in FORMATS:
        what = f"names an unknown index format {found!r}" if found else "names no index format"
        raise OdqaError(f"{file} {what}; rebuild the index with `{build}`")
    if kind and found != kind:
        raise OdqaError(f"{path} is a {KIND_NAMES[found]} index, not a {KIND_NAMES[kind]} index")
    version, command = FORMATS[found]
    if manifest.get("format_version") != version:
        raise OdqaError(
            f"{path} was built in {KIND_NAMES[found]} index format {manifest.get('format_version')} "
            f"(odqa {manifest.get('odqa_version')}); this odqa {__version__} reads format {version}: "
            f"rebuild it with `{command}`"
        )
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not isinstance(counts.get("passages"), int):
        raise OdqaError(f"{file} has no passage counts; rebuild the index with `{command}`")
    return manifest


def load_array(path: Path, name: str, mmap: bool = True):
    """One `.npy` file of an index, memory-mapped; a missing or damaged file is named."""
    import numpy as np

    file = path / f"{name}.npy"
    if not file.is_file():
        raise OdqaError(f"index {path} is incomplete: {file.name} is missing; rebuild it")
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise OdqaError(f"index {path}: {file.name} is damaged ({e}); rebuild it") from None
