"""Progress bars that can be silenced with one flag (or ODQA_QUIET=1)."""

from __future__ import annotations

import os
import sys


def progress(total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False):
    from tqdm.auto import tqdm

    quiet = quiet or os.environ.get("ODQA_QUIET") == "1" or (not sys.stderr.isatty() and total is not None and total < 5000)
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True, mininterval=1.0)
