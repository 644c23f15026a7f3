"""How long a new user's first hour takes: the steps of `make demo` timed on this machine, once on
idle cores and once on busy ones, so the README can state both. Writes results/first_hour.{json,md}.

    cd benchmarks && ../.venv/bin/python first_hour.py [--conditions idle,busy] [--probe-minutes 3]

Steps, each the command `make demo` runs, in a fresh folder under work/first_hour/CONDITION:
`odqa index` of the kowiki sample without the analysis cache; `odqa import-model
multilingual-e5-small`; `odqa trim-vocab` as the Makefile does; and the Korean reader recipe
(`make korean-reader`'s `train-reader`) for `--probe-minutes` only: its steps per minute give the
recipe's training minutes (total steps / rate), and what the probe spent outside its training steps
(loading, windows, evaluation, saves) is added once. "busy" runs the same with two spinning
processes beside it (a second job on the 2 cores). The 1-minute load average is sampled during each
step and reported with it: a condition called idle whose load says otherwise is marked so."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import DATA, KOWIKI, ROOT, WORK, cached_stage, log, markdown_table, require_shared, write_results

MAKEFILE = ROOT / "Makefile"


def odqa(*args) -> list[str]:
    return [sys.executable, "-m", "odqa", *map(str, args)]


def recipe_options() -> list[str]:
    """The `train-reader` options of the Makefile's Korean reader recipe as make expands them on this
    machine (its precision and epochs depend on the CPU), so the probe is the recipe."""
    names = {"ME5_KO": "MODEL", "KO_READER": "OUT", "KO_MINUTES": "MINUTES", "PY": sys.executable}
    command = ["make", "-s", "-n", "-C", str(ROOT), "korean-reader", f"ODQA_SHARED={DATA.parent}"]
    shown = subprocess.run(command + [f"{k}={v}" for k, v in names.items()], capture_output=True, text=True, check=True)
    line = next(line for line in shown.stdout.replace("\\\n", " ").splitlines() if " train-reader " in line)
    return [word.strip('"') for word in line.split(" train-reader ", 1)[1].split(";")[0].split()]


def ko_minutes() -> float:
    """The Makefile's KO_MINUTES: the most minutes one run of the recipe trains (`make demo` runs it once)."""
    text = MAKEFILE.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("KO_MINUTES"))
    return float(line.split("=")[-1])


class LoadSampler:
    """The 1-minute load average every few seconds while a step runs."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = []
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 0.0


def timed(command: list[str]) -> dict:
    log(" ".join(command[2:])[:200])
    start = time.perf_counter()
    with LoadSampler() as load:
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return {"seconds": time.perf_counter() - start, "load": load.mean, "load_before": load.samples[:1]}


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def run_condition(folder: Path, busy: int, probe_minutes: float) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    others = spinners(busy)
    try:
        time.sleep(5 if busy else 0)
        steps = {
            "index": timed(odqa("index", "--corpus", KOWIKI, "--out", folder / "index", "--no-cache", "--quiet")),
            "import": timed(odqa("import-model", "multilingual-e5-small", "--out", folder / "me5")),
        }
        trim = [a for a in MAKEFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines() if "trim-vocab" in a]
        corpora = [
            w.strip('"').replace("$(DATA)", str(DATA)).replace("$(CORPUS)", str(KOWIKI)) for w in trim[0].split()
        ]
        corpora = [corpora[i + 1] for i, w in enumerate(corpora[:-1]) if w == "--corpus"]
        steps["trim"] = timed(
            odqa(
                "trim-vocab",
                "--model",
                folder / "me5",
                "--out",
                folder / "me5-ko",
                "--max-documents",
                50000,
                *[x for c in corpora for x in ("--corpus", c)],
            )
        )
        options = [
            {"MODEL": folder / "me5-ko", "OUT": folder / "reader", "MINUTES": probe_minutes}.get(o, o)
            for o in recipe_options()
        ]
        steps["train_probe"] = timed(odqa("train-reader", *options))
    finally:
        for process in others:
            process.kill()
    state = json.loads((folder / "reader" / "trainer_state.json").read_text(encoding="utf-8"))
    train_seconds = sum(h["seconds"] for h in state["history"])
    rate = state["step"] / train_seconds  # optimizer steps per second
    overhead = steps["train_probe"]["seconds"] - train_seconds
    steps["train_recipe"] = {
        "seconds": state["total_steps"] / rate + overhead,
        "load": steps["train_probe"]["load"],
        "probe_steps": state["step"],
        "total_steps": state["total_steps"],
        "steps_per_minute": 60 * rate,
        "outside_steps_s": overhead,
    }
    shutil.rmtree(folder / "index", ignore_errors=True)  # 2 GB each; the timings are what is kept
    return {"busy_processes": busy, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conditions", default="idle,busy")
    parser.add_argument("--probe-minutes", type=float, default=3.0)
    parser.add_argument("--redo", default="", help="conditions to measure again (comma-separated)")
    args = parser.parse_args()
    require_shared()
    work = WORK / "first_hour"
    redo = set(filter(None, args.redo.split(",")))
    results = {
        "cpu_count": os.cpu_count(),
        "probe_minutes": args.probe_minutes,
        "ko_minutes": ko_minutes(),
        "conditions": {},
    }
    for condition in filter(None, args.conditions.split(",")):
        busy = {"idle": 0, "busy": 2}[condition]
        results["conditions"][condition] = cached_stage(
            work, condition, redo, lambda: run_condition(work / condition, busy, args.probe_minutes)
        )
    names = {
        "index": "odqa index (kowiki sample, no cache)",
        "import": "odqa import-model",
        "trim": "odqa trim-vocab",
        "train_recipe": "Korean reader recipe (projected)",
    }
    conditions = results["conditions"]
    header = ["step", *(f"{c} (min)" for c in conditions), *(f"{c} load" for c in conditions)]
    rows = [
        [
            label,
            *(data["steps"][step]["seconds"] / 60 for data in conditions.values()),
            *(data["steps"][step]["load"] for data in conditions.values()),
        ]
        for step, label in names.items()
    ]
    total = [
        "all of `make demo`",
        *(sum(data["steps"][s]["seconds"] for s in names) / 60 for data in conditions.values()),
        *("" for _ in conditions),
    ]
    table = markdown_table(header, [*rows, total])
    table += (
        f"\n{os.cpu_count()} cores; load = mean 1-minute load average during the step; busy = two spinning "
        f"processes beside it. The recipe is projected from a {args.probe_minutes:g}-minute probe: total steps / "
        "steps per minute, plus the probe's time outside its steps (loading, windows, evaluation, saves).\n"
    )
    write_results("first_hour", results, table)


if __name__ == "__main__":
    main()
