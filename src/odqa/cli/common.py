"""What the command modules share: parsing of list options, config files and given options."""

from __future__ import annotations

from pathlib import Path

from odqa.errors import OdqaError

INDEX_HELP = "index folder (from `odqa index` / `odqa index-dense`); repeat to fuse several"


def parse_weights(text: str | None, option: str = "--fusion-weights") -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.replace(" ", ",").split(",") if w]
    except ValueError:
        raise OdqaError(f"{option} expects numbers like 1,0.5, got {text!r}") from None


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.replace(" ", ",").split(",") if k})
    except ValueError:
        raise OdqaError(f"-k expects numbers like 1,5,20,100, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise OdqaError(f"-k values must be ≥ 1, got {text!r}")
    return ks


def config_file(path: Path | None) -> dict:
    from odqa.settings import load_config_file

    return load_config_file(path) if path else {}


def given(**options) -> dict:
    return {k: v for k, v in options.items() if v is not None}
