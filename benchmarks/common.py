"""Shared by the benchmark scripts: data paths, question sets, passages, timing and tables."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ODQA_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
WORK = Path(os.environ.get("ODQA_BENCH_WORK", ROOT / "benchmarks" / "work"))
KOWIKI = DATA / "kowiki" / "kowiki-sample.jsonl.xz"


def require_shared() -> None:
    if not KOWIKI.exists():
        sys.exit(f"shared data not found at {SHARED} (set ODQA_SHARED to the folder holding data/kowiki)")


def squad_subset(data: dict, keep) -> dict:
    """A SQuAD-format dict with only the questions whose id `keep(id)` accepts (paragraphs and articles
    left without questions dropped)."""
    articles = []
    for article in data["data"]:
        paragraphs = [p | {"qas": [qa for qa in p["qas"] if keep(qa["id"])]} for p in article["paragraphs"]]
        paragraphs = [p for p in paragraphs if p["qas"]]
        if paragraphs:
            articles.append(article | {"paragraphs": paragraphs})
    return {"version": data.get("version", ""), "data": articles}


def sample(items: list, n: int | None, seed: int = 13) -> list:
    if n is None or n >= len(items):
        return items
    return random.Random(seed).sample(items, n)


def question_sets(split: str, korquad_n: int = 1000, train_n: int = 1000) -> dict:
    """`split='tune'`: competition train + Mr. TyDi train (for choosing defaults);
    `split='eval'`: competition validation, KorQuAD dev sample, Mr. TyDi dev."""
    from odqa.io import read_qrels, read_questions

    if split == "tune":
        return {
            "competition_train": (sample(read_questions(DATA / "boostcamp_odqa/train.squad.json"), train_n), None),
            "mrtydi_train": (
                read_questions(DATA / "mrtydi_ko/topics.mrtydi-v1.1-ko.train.txt.gz"),
                read_qrels(DATA / "mrtydi_ko/qrels.mrtydi-v1.1-ko.train.txt"),
            ),
        }
    return {
        "competition_validation": (read_questions(DATA / "boostcamp_odqa/validation.squad.json"), None),
        "korquad_dev": (sample(read_questions(DATA / "korquad/KorQuAD_v1.0_dev.json"), korquad_n), None),
        "mrtydi_dev": (
            read_questions(DATA / "mrtydi_ko/topics.mrtydi-v1.1-ko.dev.txt.gz"),
            read_qrels(DATA / "mrtydi_ko/qrels.mrtydi-v1.1-ko.dev.txt"),
        ),
    }


_PASSAGES: dict = {}


def passages_for(config) -> tuple[list, dict]:
    from odqa.corpus import build_passages
    from odqa.io import read_documents

    key = config.model_dump_json()
    if key not in _PASSAGES:
        start = time.perf_counter()
        passages, stats = build_passages(read_documents(KOWIKI), config)
        stats["build_s"] = time.perf_counter() - start
        _PASSAGES[key] = (passages, stats)
    return _PASSAGES[key]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cached_stage(folder: Path, stage: str, redo: set[str], run) -> dict:
    """A benchmark stage's result from `folder/STAGE.json`, or run it (when absent or in `redo`) and keep it."""
    path = folder / f"{stage}.json"
    if path.exists() and stage not in redo:
        return json.loads(path.read_text(encoding="utf-8"))
    log(f"stage {stage}")
    result = run()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return result


STARTED = time.time()  # when the benchmark script started (it imports this module first)


def write_results(name: str, results: dict, table: str) -> None:
    """The results as JSON and a table, and a run record (`NAME.json.run.json` and the registry)
    whose metrics are the results' numbers."""
    from odqa.runs import log_metrics, numbers, recording

    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    config = {"script": sys.argv[0], "args": sys.argv[1:], "shared": str(SHARED), "results": str(path)}
    with recording(f"benchmark {name}", config, outputs=("results",), started=STARTED):
        path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
        (out / f"{name}.md").write_text(table, encoding="utf-8")
        log_metrics(dict(list(numbers(results).items())[:5000]))
    print(table)


def topk_table(first: str, systems: dict, ks) -> str:
    """A markdown table of has-answer top-k (%), one row per system ({name: {"top5": 0.81, …}})."""
    rows = [[name, *(100 * scores[f"top{k}"] for k in ks)] for name, scores in systems.items()]
    return markdown_table([first, *(f"top-{k}" for k in ks)], rows)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
