"""Progress bars that can be silenced with one flag (or ODQA_QUIET=1), and plain progress lines
for long jobs whose output goes to a file or a CI log, where a bar is hidden."""

from __future__ import annotations

import os
import sys
import time


def progress(total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False):
    from tqdm.auto import tqdm

    quiet = (
        quiet or os.environ.get("ODQA_QUIET") == "1" or (not sys.stderr.isatty() and total is not None and total < 5000)
    )
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True, mininterval=1.0)


class PlainProgress:
    """One line to stderr every `every` seconds (ODQA_PROGRESS_SECONDS, default 60): step, loss,
    items per second since the last line, and the time left at that rate."""

    def __init__(self, total: int, desc: str, enabled: bool, start: int = 0, every: float | None = None):
        self.total, self.desc = total, desc
        self.enabled = enabled and os.environ.get("ODQA_QUIET") != "1"
        self.every = every if every is not None else float(os.environ.get("ODQA_PROGRESS_SECONDS", "60"))
        self.last_time, self.last_step, self.last_items = time.monotonic(), start, 0

    def update(self, step: int, loss: float | None = None, epoch: int | None = None, items: int = 0) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last_time < self.every and step < self.total):
            return
        elapsed = max(now - self.last_time, 1e-9)
        steps_per_s = (step - self.last_step) / elapsed
        items_per_s = max(items - self.last_items, 0) / elapsed
        left = (self.total - step) / steps_per_s if steps_per_s > 0 else float("nan")
        parts = [f"{self.desc}: step {step}/{self.total}"]
        if epoch is not None:
            parts.append(f"epoch {epoch}")
        if loss is not None:
            parts.append(f"loss {loss:.3f}")
        if items_per_s > 0:
            parts.append(f"{items_per_s:.1f} items/s")
        parts.append(f"about {left / 60:.0f} min left" if left == left else "")
        print(", ".join(p for p in parts if p), file=sys.stderr, flush=True)
        self.last_time, self.last_step, self.last_items = now, step, items
