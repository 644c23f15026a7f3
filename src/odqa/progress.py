"""Progress bars that can be silenced with one flag (or ODQA_QUIET=1), and plain progress lines
for long jobs whose output goes to a file or a CI log, where a bar is hidden."""

from __future__ import annotations

import os
import sys
import time


def progress(total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False, plain: bool = True):
    """A tqdm bar on a terminal; where stderr is a file or a CI log, a `PlainBar` (one line a
    minute) unless `plain` is off (a caller that prints its own lines); nothing when quiet."""
    quiet = quiet or os.environ.get("ODQA_QUIET") == "1"
    if not quiet and not sys.stderr.isatty():
        return PlainBar(total, desc, unit, enabled=plain)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet, dynamic_ncols=True, mininterval=1.0)


class PlainBar:
    """The part of tqdm's interface odqa uses, printing a plain line to stderr every
    ODQA_PROGRESS_SECONDS (default 60): done/total, rate and time left; and a last line when a
    job that printed any ends, so a log shows it finished. `disable` is true: no bar is drawn."""

    disable = True

    def __init__(self, total: int | None, desc: str, unit: str, enabled: bool = True, every: float | None = None):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.every = every if every is not None else float(os.environ.get("ODQA_PROGRESS_SECONDS", "60"))
        self.n, self.started = 0, time.monotonic()
        self.last_time, self.printed = self.started, False

    def __enter__(self) -> PlainBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.enabled and now - self.last_time >= self.every:
            self._line(now)

    def _line(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.n / elapsed
        done = f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        parts = [f"{self.desc}: {done} {self.unit}", f"{rate:,.1f} {self.unit}/s"]
        if final:
            parts.append(f"done in {elapsed / 60:.1f} min")
        elif self.total and rate > 0:
            parts.append(f"about {(self.total - self.n) / rate / 60:.0f} min left")
        print(", ".join(parts), file=sys.stderr, flush=True)
        self.last_time, self.printed = now, True

    def close(self) -> None:
        if self.enabled and self.printed:
            self._line(time.monotonic(), final=True)
            self.printed = False


class PlainProgress:
    """One line to stderr every `every` seconds (ODQA_PROGRESS_SECONDS, default 60): step, loss,
    items per second since the last line, and the time left at that rate."""

    clock = staticmethod(time.monotonic)

    def __init__(self, total: int, desc: str, enabled: bool, start: int = 0, every: float | None = None):
        self.total, self.desc = total, desc
        self.enabled = enabled and os.environ.get("ODQA_QUIET") != "1"
        self.every = every if every is not None else float(os.environ.get("ODQA_PROGRESS_SECONDS", "60"))
        self.last_time, self.last_step, self.last_items = self.clock(), start, 0

    def update(self, step: int, loss: float | None = None, epoch: int | None = None, items: int = 0) -> None:
        now = self.clock()
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
