"""A record of every run: what was run (the command line and its full config), on what (fingerprints
of every input file, model folder and index), with what (library versions, odqa's git commit),
when, how it ended, and what it measured.

The record beside each output (`OUT/odqa_run.json` for a folder, `OUT.run.json` for a file) is the
source of truth; a copy goes into the local run registry (`$ODQA_RUNS`, default `~/.odqa/runs`),
which `odqa runs list / show / compare` reads, and, when `ODQA_MLFLOW_URI` is set and MLflow is
installed (the `runs` extra), into MLflow as a run whose UI browses them all.

    with recording("train-reader", {"model": "models/me5-small", "train": [...], "out": "runs/r1"}) as run:
        ...
        run.metrics.update({"exact_match": 47.1})

Folder fingerprints (`odqa.fingerprints`) hash every file once and remember (size, mtime) → sha256 in the registry, so a
2 GB index or a 470 MB model is hashed on its first use only; an index is known by its manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from odqa.errors import OdqaError
from odqa.fingerprints import RECORD_FILE, fingerprint
from odqa.io.atomic import atomic_write_text

REGISTRY_FORMAT, REGISTRY_VERSION = "odqa.runs", 1
_CURRENT: list[Run] = []


def registry_path() -> Path:
    return Path(os.environ.get("ODQA_RUNS") or Path.home() / ".odqa" / "runs").expanduser()


def git_commit() -> str | None:
    """The commit of the odqa checkout this code runs from (`+dirty` when it has local changes)."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in (
        "odqa",
        "numpy",
        "torch",
        "transformers",
        "tokenizers",
        "accelerate",
        "faiss-cpu",
        "python-mecab-ko",
        "kiwipiepy",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


# ---------------------------------------------------------------- the registry


class Registry:
    """A folder of run records (`records/ID.json`) under a `registry.json` naming its format."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else registry_path()

    def check(self, create: bool = False) -> bool:
        """True when the registry exists (created when `create`); refuses another format or version."""
        marker = self.path / "registry.json"
        if not marker.exists():
            if not create:
                return False
            atomic_write_text(marker, json.dumps({"format": REGISTRY_FORMAT, "format_version": REGISTRY_VERSION}))
            return True
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise OdqaError(f"{marker} is not a run registry's marker (unreadable JSON); move it away") from None
        if data.get("format") != REGISTRY_FORMAT:
            raise OdqaError(f"{self.path} is not an odqa run registry ({marker} says {data.get('format')!r})")
        if data.get("format_version") != REGISTRY_VERSION:
            raise OdqaError(
                f"{self.path} is a run registry of format version {data.get('format_version')}; this odqa reads "
                f"version {REGISTRY_VERSION} (set ODQA_RUNS to another folder, or upgrade odqa)"
            )
        return True

    def fingerprint_cache(self) -> dict:
        path = self.path / "fingerprints.json"
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(cache, dict):
                return cache
        return {}

    def save_fingerprint_cache(self, cache: dict) -> None:
        with contextlib.suppress(OSError):
            atomic_write_text(self.path / "fingerprints.json", json.dumps(cache))

    def add(self, record: dict) -> Path:
        self.check(create=True)
        path = self.path / "records" / f"{record['id']}.json"
        atomic_write_text(path, json.dumps(record, ensure_ascii=False, indent=1))
        return path

    def records(self) -> tuple[list[dict], list[str]]:
        """Every readable record, oldest first, and the names of the files that could not be read."""
        if not self.check():
            return [], []
        records, unreadable = [], []
        for path in sorted((self.path / "records").glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(record, dict) or "id" not in record:
                    raise ValueError
                records.append(record)
            except (OSError, ValueError):
                unreadable.append(path.name)
        records.sort(key=lambda r: (r.get("started", ""), r["id"]))
        return records, unreadable

    def find(self, prefix: str) -> dict:
        """The record whose id is `prefix` or starts with it (one, or the error names the choices)."""
        records, _ = self.records()
        exact = [r for r in records if r["id"] == prefix]
        matches = exact or [r for r in records if r["id"].startswith(prefix) or r["id"].endswith(prefix)]
        if not matches:
            raise OdqaError(f"no run {prefix!r} in the registry {self.path} (`odqa runs list` shows the ids)")
        if len(matches) > 1:
            raise OdqaError(f"{prefix!r} matches {len(matches)} runs: {', '.join(r['id'] for r in matches[:5])}")
        return matches[0]


# ---------------------------------------------------------------- recording a run


@dataclass
class Run:
    """The run in progress: commands add to `metrics`; `recording` writes it at the end."""

    record: dict
    metrics: dict = field(default_factory=dict)


def current() -> Run | None:
    return _CURRENT[-1] if _CURRENT else None


def log_metrics(metrics: dict) -> None:
    """Add metrics to the run being recorded, if any (a library call outside a command records nothing)."""
    run = current()
    if run is not None:
        run.metrics.update(_jsonable(metrics))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _paths(value) -> list[Path]:
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _paths(v)]
    if isinstance(value, (str, Path)) and str(value) and len(str(value)) < 4096:
        with contextlib.suppress(OSError):
            if Path(value).exists():
                return [Path(value)]
    return []


def _new_id(command: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{command.replace(' ', '-')}-{secrets.token_hex(3)}"


def _now(at: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.timezone.utc)
    return moment.isoformat(timespec="microseconds")


@contextlib.contextmanager
def recording(
    command: str,
    config: dict,
    outputs: Sequence[str] = ("out",),
    argv: Sequence[str] | None = None,
    registry: Registry | None = None,
    started: float | None = None,
) -> Iterator[Run]:
    """Record `command` run with `config` (its options by name). Options whose values are existing
    files or folders are fingerprinted as inputs, except those named in `outputs`, which say where
    the record is written beside the result. The record is written however the run ends.
    `started` (epoch seconds) dates a run that began before its recording did (a benchmark)."""
    registry = registry or Registry()
    config = _jsonable(config)
    record = {
        "format": "odqa.run",
        "format_version": 1,
        "id": _new_id(command),
        "command": command,
        "argv": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        "config": config,
        "inputs": {},
        "outputs": {name: config[name] for name in outputs if config.get(name) not in (None, "", [])},
        "versions": library_versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "started": _now(started),
    }
    try:
        registry.check()
    except OdqaError as e:  # the run goes on, recorded beside its output only
        print(f"warning: not registering this run: {e}", file=sys.stderr)
        registry = None
    cache = registry.fingerprint_cache() if registry else {}
    for name, value in config.items():
        if name in outputs:
            continue
        found = [fingerprint(p, cache) for p in _paths(value)]
        if found:
            record["inputs"][name] = found if isinstance(value, list) else found[0]
    if registry:
        registry.save_fingerprint_cache(cache)
    run = Run(record)
    _CURRENT.append(run)
    start = time.perf_counter() - (time.time() - started if started is not None else 0.0)
    status, error = "ok", None
    try:
        yield run
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted"
        raise
    except SystemExit as e:
        if e.code not in (None, 0):
            status, error = "failed", f"exit status {e.code}"
        raise
    except BaseException as e:
        if getattr(e, "exit_code", None) != 0:  # click's Exit(0) ends a command normally
            status, error = "failed", str(e).splitlines()[0] if str(e) else type(e).__name__
        raise
    finally:
        _CURRENT.remove(run)
        record |= {
            "ended": _now(),
            "seconds": round(time.perf_counter() - start, 3),
            "status": status,
            "error": error,
            "metrics": run.metrics,
        }
        _write(record, registry)


def _write(record: dict, registry: Registry | None) -> None:
    """Beside each output that exists, then into the registry (and MLflow when configured)."""
    text = json.dumps(record, ensure_ascii=False, indent=1)
    for value in record["outputs"].values():
        for out in value if isinstance(value, list) else [value]:
            out = Path(out)
            with contextlib.suppress(OSError):
                if out.is_dir():
                    atomic_write_text(out / RECORD_FILE, text)
                elif out.is_file():
                    atomic_write_text(out.with_name(out.name + ".run.json"), text)
    if registry is not None:
        try:
            registry.add(record)
        except OSError as e:
            print(f"warning: could not register the run in {registry.path}: {e}", file=sys.stderr)
    if os.environ.get("ODQA_MLFLOW_URI"):
        from odqa.runs_mlflow import log_to_mlflow

        log_to_mlflow(record, os.environ["ODQA_MLFLOW_URI"])


# ---------------------------------------------------------------- reading records


def flatten(value, prefix: str = "") -> dict:
    """{"a": {"b": 1}} → {"a.b": 1}; lists of scalars stay values."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}{key}.")
        return out
    return {prefix[:-1]: value}


def numbers(value: dict) -> dict[str, float]:
    """The numeric leaves of nested results, by flattened name."""
    return {k: float(v) for k, v in flatten(value).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def numeric_metrics(record: dict) -> dict[str, float]:
    return numbers(record.get("metrics") or {})
