"""Opening plain, gzip and xz files by their suffix, with errors that name the file."""

from __future__ import annotations

import gzip
import json
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from odqa.errors import OdqaError


def open_text(path: str | Path) -> IO[str]:
    path = Path(path)
    if not path.exists():
        raise OdqaError(f"file not found: {path}")
    if path.is_dir():
        raise OdqaError(f"expected a file, got a folder: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def base_suffix(path: str | Path) -> str:
    """`.jsonl` for `x.jsonl.xz`: the format suffix under a compression suffix."""
    path = Path(path)
    suffixes = [s for s in path.suffixes if s not in (".gz", ".xz")]
    return suffixes[-1].lower() if suffixes else ""


def load_json(path: str | Path) -> Any:
    try:
        with open_text(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise OdqaError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise OdqaError(f"{path}: not UTF-8 text ({e})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line is an error naming it."""
    try:
        with open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise OdqaError(f"{path}:{lineno}: not valid JSON ({e})") from None
                if not isinstance(obj, dict):
                    raise OdqaError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
    except UnicodeDecodeError as e:
        raise OdqaError(f"{path}: not UTF-8 text ({e})") from None
    except (EOFError, lzma.LZMAError, gzip.BadGzipFile) as e:
        raise OdqaError(f"{path}: truncated or corrupt compressed file ({e})") from None
