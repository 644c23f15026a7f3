"""Every benchmark figure in the README, produced from `benchmarks/results/` (Pyserini's 2CR idea):
a registry of figures (results file, where the number is, how it is printed) and of tables (the
tables the benchmarks render next to their JSON). The README marks each one:

    <!--fig:ko.odqa.qps-->426<!--/fig-->                 a number from FIGURES
    <!--table:retrieval_ko.md#1-->                        the first table of results/retrieval_ko.md
    | … |
    <!--/table-->

    python benchmarks/figures.py           # rewrite the README's marked figures from the results
    python benchmarks/figures.py --check   # exit 1 naming every figure the README has wrong (CI runs it)

No number is typed into the README by hand: rerun a benchmark, then this script. Standard library
only, so the test tier runs it offline in milliseconds."""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


@dataclass(frozen=True)
class Figure:
    results: str  # a JSON file in benchmarks/results
    value: Callable[[dict], float | int | str]  # the number, from that file's data
    format: str = "{}"  # how the README prints it


def re_speedup(results: dict, system: str) -> float:
    """How many times the transformers pipeline's time (its better batch size) `system` takes less."""
    seconds = results["throughput"]["seconds"]
    return min(v for k, v in seconds.items() if "pipeline" in k) / seconds[system]


def re_run(results: dict, epochs: float, precision: str = "no", seed: int = 0) -> dict:
    """The run of results/relation_epochs.json with these settings (runs recorded before their
    precision or seed was: fp32, seed 0), whichever run of the table wrote the file last."""
    runs = results["other_runs"] + [results["run"]]
    key = (epochs, precision, seed)
    return next(r for r in runs if (r["epochs"], r.get("mixed_precision", "no"), r.get("seed", 0)) == key)


def re_four(results: dict) -> dict:
    """The four-epoch bf16 run, which the README's relation sentences describe."""
    return re_run(results, 4, "bf16")


def re_four_shift(results: dict) -> dict:
    """The prior-shift analysis, which relation.py computes for the run that wrote the file: only
    while that is the four-epoch run (a later run must get its own README sentences)."""
    if results["run"]["name"] != re_four(results)["name"]:
        raise KeyError(f"relation_epochs.json's prior shift is of {results['run']['name']}, not the four-epoch run")
    return results["prior_shift"]


def re_pair_vote(results: dict) -> dict:
    """The vote of the three- and four-epoch runs, which the README describes: only while those two
    are all the members."""
    ensemble = results["ensemble"]
    if sorted(ensemble["names"]) != sorted([re_run(results, 3)["name"], re_four(results)["name"]]):
        raise KeyError(f"relation_epochs.json's vote is of {ensemble['names']}, not the three- and four-epoch runs")
    return ensemble


def re_vote(results: dict) -> dict:
    """The soft vote of the best relation model and the second one, weights chosen on the held-out slice."""
    return results["ensemble_at_size"]["votes"]["weights chosen on the held-out slice"]


def me5_top(results: dict, system: str, k: int) -> float:
    """Has-answer top-k (%) of multilingual-e5-small's `system` (dense, hybrid rrf, hybrid combsum)."""
    systems = results["multilingual"]["systems"]
    return 100 * next(s for name, s in systems.items() if name.startswith(system + " "))[f"top{k}"]


def update_row(results: dict, operation: str) -> dict:
    row = next(r for r in results["rows"] if r["operation"] == operation)
    if not (row["identical_top100"] and row["identical_passages"]):
        raise ValueError(f"index_update.json: the {operation} run did not equal its rebuild")
    return row


def system(data: dict, name: str) -> dict:
    """One row of a results file's "systems" list, by its exact name."""
    for row in data["systems"]:
        if row["system"] == name:
            return row
    raise KeyError(f"no system {name!r}")


def topk(data: dict, name: str, questions: str, k: int) -> float:
    return 100 * system(data, name)["metrics"][questions][f"top{k}"]


def gain(data: dict, peer: str, questions: str, k: int, over: str = "odqa (default)") -> float:
    """Top-k points `over` gains on `peer`."""
    return topk(data, over, questions, k) - topk(data, peer, questions, k)


ODQA, LUCENE_CJK = "odqa (default)", "Lucene (Pyserini) CJK bigrams, k1 0.9 b 0.4"
BM25S = "bm25s default tokenizer (numba, in memory)"
KERNEL, BM25S_ODQA = "odqa kernel, default tokens, no document context", "bm25s (numba) on odqa's tokens"
qps = lambda d, name: system(d, name)["queries_per_s"]


def build_ratio(data: dict, shards: int) -> float:
    """A sharded build's time over the embedded build's, measured in the same scale.py run."""
    return data["results"][f"shards-{shards}"]["build_s"] / data["results"]["embedded"]["build_s"]


def identical_shardings(data: dict) -> str:
    """ "all" when every sharded run returned the embedded index's ids and scores, else which did not."""
    runs = {k: r for k, r in data["results"].items() if k != "embedded"}
    wrong = [k for k, r in runs.items() if not (r["identical_ids"] and r["identical_scores"])]
    if wrong:
        raise ValueError(f"a scale run: {', '.join(wrong)} differed from the embedded index")
    return "all"


NORI = "Lucene + nori (decompound mixed), k1 0.9 b 0.4"


def nori_gap(data: dict, questions: str, key: str) -> float:
    """nori's row (retrieval_ko_nori.json, `data`) minus odqa (default)'s (retrieval_ko.json), in points."""
    main = json.loads((RESULTS / "retrieval_ko.json").read_text(encoding="utf-8"))
    return 100 * (
        system(data, NORI)["metrics"][questions][key] - system(main, "odqa (default)")["metrics"][questions][key]
    )


def reader_speedup(data: dict, peer: str) -> float:
    """How many times faster odqa's reader reads English dev questions than `peer`."""
    systems = data["en-eval"]["systems"]
    return systems["odqa (logits)"]["questions_per_s"] / systems[peer]["questions_per_s"]


def technique_scores(data: dict, technique: str, questions: str) -> list[float]:
    """Each seed's EM of a reader technique (benchmarks/reader_techniques.py) on one question set."""
    return [run[questions]["exact_match"] for run in data["runs"][technique]]


def vote_gain(data: dict, method: str, questions: str) -> float:
    """EM of a voted ensemble (weights from the held-out questions) minus that of its best member."""
    return data["effects"][f"ensemble-{method}"][questions]["delta"]


def same_seed_gain(data: dict, technique: str, other: str, questions: str) -> float:
    """Mean EM of `technique` minus that of `other` over the seeds both were run with."""
    runs = {r["seed"]: r[questions]["exact_match"] for r in data["runs"][other]}
    pairs = [(r[questions]["exact_match"], runs[r["seed"]]) for r in data["runs"][technique] if r["seed"] in runs]
    return mean(a - b for a, b in pairs)


RT_ROWS = {
    "cnn": "cnn",
    "mask": "mask",
    "cnn_mask": "cnn+mask",
    "negatives": "negatives",
    "bilstm": "bilstm",
    "span_mask": "span-mask",
    "curriculum_length": "curriculum-length",
    "cnn_curriculum": "cnn+curriculum-length",
    "curriculum_reader": "curriculum-agreement",
}
# same-seed comparisons: figure key → (technique, the technique it is compared with)
RT_PAIRS = {
    "cnn_mask.vs_cnn": ("cnn+mask", "cnn"),
    "negatives.vs_base": ("negatives", "baseline"),
    "bilstm.vs_base": ("bilstm", "baseline"),
    "span_mask.vs_base": ("span-mask", "baseline"),
    "span_mask.vs_mask": ("span-mask", "mask"),
    "curriculum_length.vs_base": ("curriculum-length", "baseline"),
    "cnn_curriculum.vs_cnn": ("cnn+curriculum-length", "cnn"),
    "curriculum_reader.vs_base": ("curriculum-agreement", "baseline"),
    "curriculum_reader.vs_length": ("curriculum-agreement", "curriculum-length"),
}
# the sets benchmarks/e2e.py evaluates (figure key → its name in the results)
E2E_SETS = {"competition": "competition validation", "korquad": "KorQuAD 1.0 dev sample"}
KO = "retrieval_ko.json"
KERNEL_RUN = "sparse_kernel.json"
UPDATE_RUN = "index_update.json"
MODEL = "korean_model.json"  # the fp32 recipe (0.6 epoch), and the import, trim and speed stages
MODEL_CURRICULUM = "korean_model_curriculum.json"  # the recipe with the length curriculum, tried and not kept
# what `make korean-reader` runs on a CPU with bf16 instructions: bf16 autocast, 0.8 epoch
MODEL_RECIPE = "korean_model_bf16_recipe.json"
# The Korean reader runs of benchmarks/korean_model.py (its results copied under these names), by the name
# their figures carry in the README (`model{suffix}.…`). Each family of figures is defined for every run whose
# results hold it (see `per_run`), so a new run is one line here.
KO_RUNS = {
    "": MODEL,
    ".linear": "korean_model_linear.json",  # the same recipe with the linear head: the run before the CNN head
    ".curriculum": MODEL_CURRICULUM,
    ".bf16": "korean_model_bf16.json",  # the fp32 recipe's steps trained under bf16 autocast (KO_MIXED_PRECISION=bf16)
    ".recipe": MODEL_RECIPE,
    ".long": "korean_model_bf16_long.json",  # the bf16 recipe for 1.5 epochs (KO_EPOCHS=1.5)
    ".3ep": "korean_model_bf16_3ep.json",  # the bf16 recipe for 3 epochs (KO_EPOCHS=3)
    ".freeze6": "korean_model_freeze6.json",  # the bf16 recipe with its lowest 6 layers fixed (KO_FREEZE_LAYERS=6)
}
# the run each run is measured against (its `…_em_gain` and `…_f1_change` figures)
KO_BASES = {".recipe": "", ".long": ".recipe", ".3ep": ".long", ".freeze6": ".recipe"}
# benchmarks/e2e.py runs (results/{name}.json): e2e: BM25 alone; e2e_rescore: BM25's top 20 re-scored by
# multilingual-e5-small (make demo's); the same with the reader of the recipe with the length curriculum, of the
# bf16 recipe (what make korean-reader trains now), of 1.5 epochs (with the in-context clean-up), and the
# 1.5- and 3-epoch readers soft-voted (korean_ensemble.py's pair)
E2E_RUNS = [
    "e2e",
    "e2e_rescore",
    "e2e_rescore_curriculum",
    "e2e_rescore_bf16_recipe",
    "e2e_rescore_bf16_long",
    "e2e_rescore_bf16_ens",
]
E2E_BASES = {
    "e2e_rescore_bf16_recipe": "e2e_rescore",
    "e2e_rescore_bf16_long": "e2e_rescore_bf16_recipe",
    "e2e_rescore_bf16_ens": "e2e_rescore_bf16_long",
}


@functools.cache
def results(file: str) -> dict:
    """A results file's data ({} while it does not exist)."""
    path = RESULTS / file
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def per_run(prefix: str, runs: dict[str, str], family: dict[str, tuple[Callable[[dict], float], str]]) -> dict:
    """`{prefix}{run}.{name}` for each run (name → results file) and each figure of the family that
    its results hold: a run that skipped a stage has no figures of it, so the README cannot name them."""
    figures = {}
    for run, file in runs.items():
        for name, (value, form) in family.items():
            try:
                value(results(file))
            except (KeyError, IndexError, TypeError):
                continue
            figures[f"{prefix}{run}.{name}"] = Figure(file, value, form)
    return figures


KO_EVAL = lambda d, key: d["eval"]["results"][key]["korquad"]
KO_SETS = {"korquad": "KorQuAD 1.0 dev", "competition": "competition validation"}
# the held-out 300 training questions, by the epoch kept (the trainer keeps the best F1, the first of equals)
KO_HELDOUT = lambda d: max((e["eval"] for e in d["train"]["history"]), key=lambda e: e["f1"])
KO_READER_FIGURES = {
    # gold passage, Korean clean-up (stage eval)
    **{
        f"{short}_{name}": (lambda d, s=set_name, k=key: KO_EVAL(d, f"{s} / korean")[k], "{:.1f}")
        for short, set_name in KO_SETS.items()
        for name, key in (("em", "exact_match"), ("f1", "f1"))
    },
    # what chooses the recipe (never the two evaluation sets)
    "heldout_em": (lambda d: KO_HELDOUT(d)["exact_match"], "{:.1f}"),
    "heldout_f1": (lambda d: KO_HELDOUT(d)["f1"], "{:.1f}"),
    "windows_per_s": (lambda d: d["train"]["history"][-1]["examples_per_s"], "{:.2f}"),
    "steps": (lambda d: d["train"]["history"][-1]["step"], "{}"),
    "minutes": (lambda d: sum(e["seconds"] for e in d["train"]["history"]) / 60, "{:.0f}"),  # each epoch's seconds
    "epochs": (lambda d: d["train"]["recipe"]["epochs"], "{:g}"),
    "train_minutes": (lambda d: d["train"]["recipe"]["max_minutes"], "{:.0f}"),  # the time limit of one run
    # every KorQuAD 1.0 dev question (stage korquad_all)
    "korquad_all_em": (lambda d: d["korquad_all"]["korquad"]["exact_match"], "{:.1f}"),
    "korquad_all_f1": (lambda d: d["korquad_all"]["korquad"]["f1"], "{:.1f}"),
    "korquad_all_questions": (lambda d: d["korquad_all"]["questions"], "{:,}"),
}


def ko_comparisons(base: str) -> dict:
    """EM gained and F1 changed against another run's results file (gold passage, Korean clean-up; the
    held-out 300 by each run's own evaluation; one seed each)."""
    scores = {
        **{short: lambda d, s=set_name: KO_EVAL(d, f"{s} / korean") for short, set_name in KO_SETS.items()},
        "heldout": KO_HELDOUT,
    }
    return {
        f"{where}_{name}": (lambda d, f=score, k=key: f(d)[k] - f(results(base))[k], "{:+.1f}")
        for where, score in scores.items()
        for name, key in (("em_gain", "exact_match"), ("f1_change", "f1"))
    }


ENS = "korean_ensemble.json"
ENS_SETS = {"heldout": "held-out 300", "competition": "competition validation"}


def ens_scores(data: dict, set_name: str, who: str) -> dict:
    """korean_ensemble.py's korquad scores of reader a, reader b or their vote (weights from the held-out 300)."""
    if who == "vote":
        return data["vote"][set_name]["korquad"]
    return data["members"][data["labels"]["ab".index(who)]][set_name]["korquad"]


def e2e_em(data: dict) -> float:
    return data["sets"]["competition validation"]["metrics"]["korquad"]["exact_match"]


E2E_FIGURES = {
    "k": (lambda d: d["tuning"]["chosen"]["k"], "{}"),
    "weight": (lambda d: d["tuning"]["chosen"]["retriever_weight"], "{:g}"),
    "tune.chosen": (lambda d: d["tuning"]["exact_match"], "{:.1f}"),
    "demo_correct": (lambda d: d["demo"]["correct"], "{}"),
    "read_ms": (lambda d: d["latency"]["read_ms_p50"], "{:.0f}"),
    **{
        f"{short}.{name}": (fn, "{:.1f}")
        for short, set_name in E2E_SETS.items()
        for name, fn in (
            ("em", lambda d, s=set_name: d["sets"][s]["metrics"]["korquad"]["exact_match"]),
            ("f1", lambda d, s=set_name: d["sets"][s]["metrics"]["korquad"]["f1"]),
            ("has_answer", lambda d, s=set_name: d["sets"][s]["retrieval_has_answer"]),
            ("em_cross_lines", lambda d, s=set_name: d["cross_lines"][s]["exact_match"]),
            (
                "reading_miss",
                lambda d, s=set_name: 100 * d["sets"][s]["attribution"]["reading_miss"] / d["sets"][s]["questions"],
            ),
        )
    },
}


FIGURES: dict[str, Figure] = {
    # Korean sparse retrieval (benchmarks/retrieval_ko.py)
    "ko.documents": Figure(KO, lambda d: d["passages"]["documents"], "{:,}"),
    "ko.passages": Figure(KO, lambda d: d["passages"]["passages"], "{:,}"),
    "ko.queries": Figure(KO, lambda d: d["queries"], "{:,}"),
    **{
        f"ko.top{k}_vs_{peer}.{short}": Figure(
            KO, lambda d, k=k, name=name, sets=sets: gain(d, name, sets, k), "{:+.1f}"
        )
        for peer, name, ks in (("lucene", LUCENE_CJK, (20, 100)), ("bm25s", BM25S, (20,)))
        for k in ks
        for short, sets in (("comp", "competition_validation"), ("korquad", "korquad_dev"))
    },
    "ko.odqa.qps": Figure(KO, lambda d: qps(d, ODQA), "{:,.0f}"),
    "ko.bm25s.qps": Figure(KO, lambda d: qps(d, BM25S), "{:,.0f}"),
    "ko.kernel.qps": Figure(KO, lambda d: qps(d, KERNEL), "{:,.0f}"),
    "ko.bm25s_odqa.qps": Figure(KO, lambda d: qps(d, BM25S_ODQA), "{:,.0f}"),
    "ko.kernel_vs_bm25s": Figure(KO, lambda d: qps(d, KERNEL) / qps(d, BM25S_ODQA), "{:.2f}×"),
    "ko.bm25s_odqa.build_gb": Figure(KO, lambda d: system(d, BM25S_ODQA)["build_peak_rss_mb"] / 1024, "{:.1f}"),
    **{
        f"ko.doc_context.{name}": Figure(KO, value, "{:+.1f}")
        for name, value in (
            (
                "comp20",
                lambda d: topk(d, ODQA, "competition_validation", 20) - topk(d, KERNEL, "competition_validation", 20),
            ),
            ("korquad20", lambda d: topk(d, ODQA, "korquad_dev", 20) - topk(d, KERNEL, "korquad_dev", 20)),
            (
                "mrr",
                lambda d: (
                    100
                    * (
                        system(d, ODQA)["metrics"]["mrtydi_dev"]["mrr@100"]
                        - system(d, KERNEL)["metrics"]["mrtydi_dev"]["mrr@100"]
                    )
                ),
            ),
        )
    },
    "ko.odqa.build_s": Figure(KO, lambda d: system(d, ODQA)["build_s"], "{:.0f}"),
    "ko.odqa.search_gb": Figure(KO, lambda d: system(d, ODQA)["search_peak_rss_mb"] / 1024, "{:.1f}"),
    "ko.odqa.build_gb": Figure(KO, lambda d: system(d, ODQA)["build_peak_rss_mb"] / 1024, "{:.1f}"),
    # odqa's kernel against bm25s on equal input (benchmarks/sparse_kernel.py)
    "kernel.passages": Figure(KERNEL_RUN, lambda d: d["passages"], "{:,}"),
    "kernel.queries": Figure(KERNEL_RUN, lambda d: d["queries"], "{:,}"),
    "kernel.odqa.qps": Figure(KERNEL_RUN, lambda d: system(d, "odqa kernel")["queries_per_s"], "{:,.0f}"),
    "kernel.bm25s.qps": Figure(KERNEL_RUN, lambda d: system(d, "bm25s (numba, in memory)")["queries_per_s"], "{:,.0f}"),
    "kernel.ratio": Figure(KERNEL_RUN, lambda d: d["odqa_vs_bm25s"], "{:.2f}×"),
    "kernel.same_ids": Figure(KERNEL_RUN, lambda d: 100 * d["same_ranked_ids"], "{:.2f}"),
    # adding and deleting 1% of an index's documents against a rebuild (benchmarks/index_update.py)
    "update.articles": Figure(UPDATE_RUN, lambda d: d["articles"], "{:,}"),
    "update.passages": Figure(UPDATE_RUN, lambda d: d["passages"], "{:,}"),
    "update.changed": Figure(UPDATE_RUN, lambda d: d["changed_articles"], "{:,}"),
    "update.add_share": Figure(UPDATE_RUN, lambda d: 100 * update_row(d, "add")["share_of_rebuild"], "{:.1f}"),
    "update.delete_share": Figure(UPDATE_RUN, lambda d: 100 * update_row(d, "delete")["share_of_rebuild"], "{:.1f}"),
    "update.rebuild_s": Figure(UPDATE_RUN, lambda d: update_row(d, "add")["rebuild_s"], "{:.0f}"),
    "update.add_s": Figure(UPDATE_RUN, lambda d: update_row(d, "add")["update_s"], "{:.1f}"),
    "update.delete_s": Figure(UPDATE_RUN, lambda d: update_row(d, "delete")["update_s"], "{:.1f}"),
    # Korean model (benchmarks/korean_model.py)
    "model.probe_cosine": Figure(MODEL, lambda d: d["import"]["probe"]["cosine_min"], "{:.4f}"),
    "model.korean_same_ids": Figure(MODEL, lambda d: d["import"]["korean"]["same_token_ids"]),
    "model.korean_texts": Figure(MODEL, lambda d: d["import"]["korean"]["texts"]),
    "model.korean_cosine": Figure(MODEL, lambda d: d["import"]["korean"]["cosine_min"], "{:.3f}"),
    "model.pieces_kept": Figure(MODEL, lambda d: d["trim"]["pieces_kept"], "{:,}"),
    "model.params_before": Figure(MODEL, lambda d: d["trim"]["parameters"][0] / 1e6, "{:.1f} M"),
    "model.params_after": Figure(MODEL, lambda d: d["trim"]["parameters"][1] / 1e6, "{:.1f} M"),
    "model.speedup_both": Figure(MODEL, lambda d: d["speed"]["speedup"]["trimmed + frozen"], "{:.1f}×"),
    "model.speedup_bf16": Figure(MODEL, lambda d: d["speed"]["speedup"]["trimmed + frozen + bf16 autocast"], "{:.1f}×"),
    **{  # --freeze-layers N on top of the bf16 recipe's settings, against the untouched model
        f"model.speedup_layers{n}": Figure(
            MODEL,
            lambda d, n=n: d["speed"]["speedup"][f"trimmed + frozen + bf16 + lowest {n} layers frozen"],
            "{:.1f}×",
        )
        for n in (4, 5, 6)
    },
    "model.bf16_gain": Figure(
        MODEL,
        lambda d: (
            d["speed"]["windows_per_s"]["trimmed + frozen + bf16 autocast"]
            / d["speed"]["windows_per_s"]["trimmed + frozen"]
        ),
        "{:.1f}×",
    ),
    **per_run("model", KO_RUNS, KO_READER_FIGURES),
    **{
        name: figure
        for run, base in KO_BASES.items()
        for name, figure in per_run("model", {run: KO_RUNS[run]}, ko_comparisons(KO_RUNS[base])).items()
    },
    **{  # reading in bf16 (korean_model.py, stage precision): the recipe's reader, Korean clean-up, gold passage
        f"model.read_bf16.{short}_{name}": Figure(MODEL_RECIPE, lambda d, s=set_name, f=f: f(d["precision"][s]), form)
        for short, set_name in (("korquad", "KorQuAD 1.0 dev"), ("competition", "competition validation"))
        for name, f, form in (
            ("speedup", lambda r: r["speedup"], "{:.1f}×"),
            ("changed", lambda r: r["answers_changed"], "{}"),
            ("questions", lambda r: r["questions"], "{:,}"),
            ("em_change", lambda r: round(r["bf16"]["exact_match"] - r["fp32"]["exact_match"], 1) + 0.0, "{:+.1f}"),
            ("f1_change", lambda r: round(r["bf16"]["f1"] - r["fp32"]["f1"], 1) + 0.0, "{:+.1f}"),
        )
    },
    "model.glosses.gold": Figure(MODEL, lambda d: d["glosses"]["gold_answers"], "{:,}"),
    "model.glosses.followed": Figure(MODEL, lambda d: d["glosses"]["followed_by_gloss"]),
    "model.glosses.repaired": Figure(MODEL, lambda d: d["glosses"]["repaired_to_gold"]),
    "model.glosses.ending": Figure(MODEL, lambda d: d["glosses"]["ending_with_gloss"]),
    "model.units.korquad_asking": Figure(MODEL, lambda d: d["units"]["KorQuAD 1.0 dev (all)"]["asking_a_unit"]),
    "model.units.korquad_gold_changed": Figure(MODEL, lambda d: d["units"]["KorQuAD 1.0 dev (all)"]["gold_changed"]),
    "model.units.korquad_changed": Figure(MODEL, lambda d: d["units"]["KorQuAD 1.0 dev (all)"]["answers_changed"]),
    "model.units.korquad_em_without": Figure(
        MODEL, lambda d: d["units"]["KorQuAD 1.0 dev (all)"]["no trim"]["exact_match"], "{:.1f}"
    ),
    "model.units.korquad_em_with": Figure(
        MODEL, lambda d: d["units"]["KorQuAD 1.0 dev (all)"]["trim"]["exact_match"], "{:.1f}"
    ),
    # relation extraction (benchmarks/relation.py)
    "re.train_n": Figure("relation.json", lambda d: d["settings"]["train_n"], "{:,}"),
    "re.dev_n": Figure("relation.json", lambda d: d["settings"]["dev_n"], "{:,}"),
    "re.typed_punct_f1": Figure("relation.json", lambda d: mean(d["by_format"]["typed-punct"]), "{:.1f}"),
    "re.entity_f1": Figure("relation.json", lambda d: mean(d["by_format"]["entity"]), "{:.1f}"),
    "re.typed_punct_sd": Figure("relation.json", lambda d: stdev(d["by_format"]["typed-punct"]), "{:.1f}"),
    "re.entity_sd": Figure("relation.json", lambda d: stdev(d["by_format"]["entity"]), "{:.1f}"),
    "re.best_f1": Figure("relation.json", lambda d: d["best"]["dev"]["micro_f1"], "{:.1f}"),
    "re.best_minutes": Figure("relation.json", lambda d: d["best"]["train_s"] / 60, "{:.0f}"),
    "re.calibrated_f1": Figure("relation.json", lambda d: d["calibrated"]["micro_f1"], "{:.1f}"),
    "re.calibrated_gain": Figure(
        "relation.json", lambda d: d["calibrated"]["micro_f1"] - d["best"]["dev"]["micro_f1"], "{:+.1f}"
    ),
    "re.calibrated_temperature": Figure("relation.json", lambda d: d["calibrated"]["temperature"], "{:.2f}"),
    "re.typed_punct_calibrated_f1": Figure(
        "relation.json", lambda d: mean(d["by_format_calibrated"]["typed-punct"]), "{:.1f}"
    ),
    "re.entity_calibrated_f1": Figure("relation.json", lambda d: mean(d["by_format_calibrated"]["entity"]), "{:.1f}"),
    **{
        f"re.head.{head}_f1": Figure(
            "relation.json",
            lambda d, head=head: next(
                r["scores"]["dev_sample"]["micro_f1"] for r in d["runs"] if r["name"] == f"pooling-{head}-seed0"
            ),
            "{:.1f}",
        )
        for head in ("cls", "rbert", "bilstm")
    },
    "re.at_size.second_f1": Figure(
        "relation.json", lambda d: d["ensemble_at_size"]["second"]["dev"]["micro_f1"], "{:.1f}"
    ),
    "re.at_size.vote_f1": Figure("relation.json", lambda d: re_vote(d)["micro_f1"], "{:.1f}"),
    "re.at_size.gain": Figure(
        "relation.json", lambda d: re_vote(d)["micro_f1"] - d["best"]["dev"]["micro_f1"], "{:+.1f}"
    ),
    "re.at_size.auprc_gain": Figure(
        "relation.json", lambda d: re_vote(d)["auprc"] - d["best"]["dev"]["auprc"], "{:+.1f}"
    ),
    "re.ensemble_f1": Figure(
        "relation.json", lambda d: d["ensemble"]["weights chosen on the held-out slice"]["micro_f1"], "{:.1f}"
    ),
    "re.shift.held_f1": Figure("relation.json", lambda d: d["prior_shift"]["held_out"]["micro_f1"], "{:.1f}"),
    "re.shift.oracle_f1": Figure("relation.json", lambda d: d["prior_shift"]["oracle prior"]["micro_f1"], "{:.1f}"),
    "re.shift.oracle_gain": Figure(
        "relation.json",
        lambda d: d["prior_shift"]["oracle prior"]["micro_f1"] - d["prior_shift"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.shift.em_f1": Figure("relation.json", lambda d: d["prior_shift"]["em adapted"]["micro_f1"], "{:.1f}"),
    "re.shift.dev_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["no_relation_share"]["dev"], "{:.0f} %"
    ),
    "re.shift.train_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["no_relation_share"]["train"], "{:.0f} %"
    ),
    "re.shift.predicted_none": Figure(
        "relation.json", lambda d: 100 * d["prior_shift"]["dev"]["predicted_no_relation"], "{:.0f} %"
    ),
    "re.speedup": Figure("relation.json", lambda d: re_speedup(d, "odqa (sorted, batch 64)"), "{:.1f}×"),
    "re.int8_speedup": Figure("relation.json", lambda d: re_speedup(d, "odqa --int8 (sorted, batch 64)"), "{:.1f}×"),
    # prediction speed and precision of the best single relation model (benchmarks/relation.py --speed)
    **{
        f"re.speed.{short}": Figure("relation_speed.json", lambda d, n=name: re_speedup(d, n), "{:.1f}×")
        for short, name in (
            ("fp32", "odqa (sorted, batch 64)"),
            ("bf16", "odqa --bf16 (sorted, batch 64)"),
            ("int8", "odqa --int8 (sorted, batch 64)"),
        )
    },
    **{
        f"re.speed.{precision}_{metric}": Figure(
            "relation_speed.json", lambda d, p=precision, m=metric: d["scores"][p][m], "{:.1f}"
        )
        for precision in ("fp32", "bf16", "int8")
        for metric in ("micro_f1", "auprc")
    },
    # the best relation model trained longer (benchmarks/relation.py --longer)
    "re.epochs.epochs": Figure("relation_epochs.json", lambda d: re_four(d)["epochs"], "{:g}"),
    "re.epochs.f1": Figure("relation_epochs.json", lambda d: re_four(d)["scores"]["dev"]["micro_f1"], "{:.1f}"),
    "re.epochs.auprc": Figure("relation_epochs.json", lambda d: re_four(d)["scores"]["dev"]["auprc"], "{:.1f}"),
    "re.epochs.held_f1": Figure(
        "relation_epochs.json", lambda d: re_four(d)["scores"]["held_out"]["micro_f1"], "{:.1f}"
    ),
    "re.epochs.minutes": Figure("relation_epochs.json", lambda d: re_four(d)["train_s"] / 60, "{:.0f}"),
    "re.epochs.gain": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["micro_f1"] - d["one_epoch"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.epochs.auprc_gain": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["auprc"] - d["one_epoch"]["dev"]["auprc"],
        "{:+.1f}",
    ),
    "re.epochs.predicted_none": Figure(
        "relation_epochs.json", lambda d: 100 * re_four_shift(d)["dev"]["predicted_no_relation"], "{:.0f} %"
    ),
    **{
        f"re.epochs.{name}": Figure(
            "relation_epochs.json",
            # rounded first, so that no change reads +0.0, not -0.0
            lambda d, row=row, metric=metric: (
                round(re_four_shift(d)[row][metric] - re_four_shift(d)["dev"][metric], 1) + 0.0
            ),
            "{:+.1f}",
        )
        for name, row, metric in (
            ("oracle_gain", "oracle prior", "micro_f1"),
            ("restricted_gain", "type restricted", "micro_f1"),
            ("restricted_auprc_gain", "type restricted", "auprc"),
        )
    },
    "re.epochs.restricted_changed": Figure(
        "relation_epochs.json", lambda d: 100 * re_four_shift(d)["type restricted"]["changed"], "{:.1f} %"
    ),
    **{
        f"re.epochs.{word}_f1": Figure(
            "relation_epochs.json", lambda d, n=n: re_run(d, n)["scores"]["dev"]["micro_f1"], "{:.1f}"
        )
        for word, n in (("two", 2), ("three", 3))
    },
    "re.epochs.vs_three": Figure(
        "relation_epochs.json",
        lambda d: re_four(d)["scores"]["dev"]["micro_f1"] - re_run(d, 3)["scores"]["dev"]["micro_f1"],
        "{:+.1f}",
    ),
    "re.epochs.three_minutes": Figure("relation_epochs.json", lambda d: re_run(d, 3)["train_s"] / 60, "{:.0f}"),
    "re.epochs.precision": Figure("relation_epochs.json", lambda d: re_four(d)["mixed_precision"]),
    "re.epochs.vote_f1": Figure(
        "relation_epochs.json", lambda d: re_pair_vote(d)["equal_weights"]["micro_f1"], "{:.1f}"
    ),
    "re.epochs.vote_auprc": Figure(
        "relation_epochs.json", lambda d: re_pair_vote(d)["equal_weights"]["auprc"], "{:.1f}"
    ),
    "re.epochs.vote_gain": Figure(
        "relation_epochs.json",
        lambda d: (
            re_pair_vote(d)["equal_weights"]["micro_f1"]
            - max(
                r["scores"]["dev"]["micro_f1"]
                for r in d["other_runs"] + [d["run"]]
                if r["name"] in d["ensemble"]["names"]
            )
        ),
        "{:+.1f}",
    ),
    "re.epochs.vote_chosen_f1": Figure("relation_epochs.json", lambda d: re_pair_vote(d)["dev"]["micro_f1"], "{:.1f}"),
    "re.epochs.vote_chosen_weight": Figure("relation_epochs.json", lambda d: re_pair_vote(d)["weights"][0], "{:.2f}"),
    # reader techniques (benchmarks/reader_techniques.py)
    "rt.steps": Figure("reader_techniques.json", lambda d: d["steps"]),
    "rt.seeds": Figure("reader_techniques.json", lambda d: len(d["runs"]["baseline"])),
    **{
        f"rt.base.{questions}_{name}": Figure(
            "reader_techniques.json", lambda d, q=questions, f=fn: f(technique_scores(d, "baseline", q)), "{:.1f}"
        )
        for questions in ("korquad", "competition")
        for name, fn in (("em", mean), ("em_sd", stdev))
    },
    # pseudo-labelers' end-to-end answers to the held-out 300: over all, and at the threshold where they are most exact
    **{
        f"rt.pseudo.{key}.{name}": Figure("reader_techniques.json", lambda d, k=labeler, f=fn: f(d, k), fmt)
        for key, labeler in (("base", "baseline-s0-200steps"), ("recipe", "ko-reader"))
        for name, fn, fmt in (
            ("all_em", lambda d, k: d["pseudo_labels"][k]["held_out_curve"][-1]["exact_match"], "{:.1f}"),
            ("top_em", lambda d, k: d["pseudo_labels"][k]["held_out"]["exact_match"], "{:.1f}"),
            ("top_f1", lambda d, k: d["pseudo_labels"][k]["held_out"]["f1"], "{:.1f}"),
            ("top_n", lambda d, k: d["pseudo_labels"][k]["held_out"]["questions"], "{}"),
        )
    },
    "rt.soft.korquad_gain": Figure("reader_techniques.json", lambda d: vote_gain(d, "soft", "korquad"), "{:+.1f}"),
    **{
        f"rt.{key}.{questions}_{name}": Figure("reader_techniques.json", fn, fmt)
        for key, technique in RT_ROWS.items()
        for questions in ("korquad", "competition")
        for name, fn, fmt in (
            ("em", lambda d, t=technique, q=questions: mean(technique_scores(d, t, q)), "{:.1f}"),
            ("delta", lambda d, t=technique, q=questions: d["effects"][t][q]["delta"], "{:+.1f}"),
        )
    },
    **{
        f"rt.noise.{questions}": Figure(
            "reader_techniques.json", lambda d, q=questions: 2 * stdev(technique_scores(d, "baseline", q)), "{:.1f}"
        )
        for questions in ("korquad", "competition")
    },
    "rt.cnn.seeds": Figure("reader_techniques.json", lambda d: len(d["runs"]["cnn"])),
    **{
        f"rt.{key}.{questions}": Figure(
            "reader_techniques.json", lambda d, q=questions, p=pair: same_seed_gain(d, *p, q), "{:+.1f}"
        )
        for key, pair in RT_PAIRS.items()
        for questions in ("korquad", "competition")
    },
    "rt.cost.cnn": Figure("reader_techniques.json", lambda d: d["reading_cost"]["ratio"]["cnn"], "{:.2f}×"),
    **{
        f"rt.cost.ensemble{n}": Figure(
            "reader_techniques.json", lambda d, n=n: d["reading_cost"]["ratio"][f"ensemble of {n} baselines"], "{:.2f}×"
        )
        for n in (2, 3)
    },
    # reader (benchmarks/reader.py)
    "reader.vs_pipeline": Figure(
        "reader.json", lambda d: reader_speedup(d, "HF question-answering pipeline"), "{:.1f}×"
    ),
    "reader.vs_run_qa": Figure("reader.json", lambda d: reader_speedup(d, "HF run_qa + utils_qa"), "{:.1f}×"),
    "reader.train_odqa": Figure("reader.json", lambda d: d["en-train-speed"]["odqa_examples_per_s"], "{:.1f}"),
    "reader.train_hf": Figure("reader.json", lambda d: d["en-train-speed"]["hf_trainer_examples_per_s"], "{:.1f}"),
    "reader.train_ratio": Figure(
        "reader.json",
        lambda d: d["en-train-speed"]["odqa_examples_per_s"] / d["en-train-speed"]["hf_trainer_examples_per_s"],
        "{:.1f}×",
    ),
    # dense (benchmarks/retrieval_dense.py, retrieval_dense_ko.py)
    "dense.me5.dense_top1": Figure("retrieval_dense.json", lambda d: me5_top(d, "dense", 1), "{:.1f}"),
    "dense.me5.dense_gain_top1": Figure(
        "retrieval_dense.json",
        lambda d: me5_top(d, "dense", 1) - 100 * d["evaluate"]["systems"]["dense (zero-shot)"]["top1"],
        "{:+.1f}",
    ),
    "dense.me5.hybrid_top1": Figure("retrieval_dense.json", lambda d: me5_top(d, "hybrid combsum", 1), "{:.1f}"),
    "dense.me5.hybrid_gain_top1": Figure(
        "retrieval_dense.json",
        lambda d: me5_top(d, "hybrid combsum", 1) - 100 * max(s["top1"] for s in d["evaluate"]["systems"].values()),
        "{:+.1f}",
    ),
    "dense.encode_odqa": Figure("retrieval_dense.json", lambda d: d["speed"]["odqa"]["passages_per_s"], "{:.1f}"),
    "dense.encode_st": Figure(
        "retrieval_dense.json", lambda d: d["speed"]["sentence-transformers"]["passages_per_s"], "{:.1f}"
    ),
    "dense.encode_ratio": Figure(
        "retrieval_dense.json",
        lambda d: d["speed"]["odqa"]["passages_per_s"] / d["speed"]["sentence-transformers"]["passages_per_s"],
        "{:.2f}×",
    ),
    **{
        f"dense.hybrid_gain.top{k}": Figure(
            "retrieval_dense.json",
            lambda d, k=k: (
                100
                * (
                    d["evaluate"]["systems"]["hybrid combsum w=2.0 (zero-shot)"][f"top{k}"]
                    - max(
                        d["evaluate"]["systems"][name][f"top{k}"]
                        for name in ("dense (zero-shot)", "dense (fine-tuned)", "BM25 (whitespace words)")
                    )
                )
            ),
            "{:+.1f}",
        )
        for k in (5, 20)
    },
    "dense_ko.pool": Figure("retrieval_dense_ko.json", lambda d: d["evaluate"]["passages"], "{:,}"),
    "dense_ko.encode": Figure("retrieval_dense_ko.json", lambda d: d["evaluate"]["encode_passages_per_s"], "{:.0f}"),
    **{
        f"hnsw.{ef}.{what}": Figure(
            "retrieval_dense_ko.json",
            lambda d, ef=ef, what=what: d["evaluate"]["hnsw"]["ef_sweep"][ef][what],
            "{:.3f}" if what == "recall@10" else "{:.1f}×",
        )
        for ef in ("16", "32", "64", "128", "256")
        for what in ("recall@10", "speedup")
    },
    # BM25's top N re-scored by multilingual-e5-small on the fly (benchmarks/rescore_ko.py)
    "rescore.top": Figure("rescore_ko.json", lambda d: d["evaluate"]["top"]),
    "rescore.weight": Figure("rescore_ko.json", lambda d: d["evaluate"]["chosen_weight"], "{:g}"),
    "rescore.passages": Figure("rescore_ko.json", lambda d: d["encode"]["passages"], "{:,}"),
    "rescore.bm25_ms": Figure(
        "rescore_ko.json", lambda d: 1000 * d["latency"]["seconds_per_question"]["BM25"], "{:.0f}"
    ),
    "rescore.rescore_s": Figure(
        "rescore_ko.json", lambda d: d["latency"]["seconds_per_question"]["BM25 + e5 re-scoring"], "{:.1f}"
    ),
    **{
        f"rescore.gain.{key}.top{k}": Figure(
            "rescore_ko.json",
            lambda d, name=name, k=k: (
                100
                * (
                    next(v for s, v in d["evaluate"]["results"][name].items() if s.endswith("(tuned)"))[f"top{k}"]
                    - d["evaluate"]["results"][name]["BM25"][f"top{k}"]
                )
            ),
            "{:+.1f}",
        )
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for k in (1, 5, 10, 20)
    },
    # the nori peer, measured in a later partial run of retrieval_ko.py
    "nori.documents": Figure("retrieval_ko_nori.json", lambda d: d["passages"]["documents"], "{:,}"),
    "nori.passages": Figure("retrieval_ko_nori.json", lambda d: d["passages"]["passages"], "{:,}"),
    "nori.queries": Figure("retrieval_ko_nori.json", lambda d: d["queries"], "{:,}"),
    **{
        f"nori.gap.{short}.{key}": Figure(
            "retrieval_ko_nori.json", lambda d, q=questions, k=key: nori_gap(d, q, k), "{:+.1f}"
        )
        for short, questions in (
            ("comp", "competition_validation"),
            ("korquad", "korquad_dev"),
            ("mrtydi", "mrtydi_dev"),
        )
        for key in (("recall@100", "mrr@100") if short == "mrtydi" else ("top1", "top20"))
    },
    # sharded indexes on a local Ray cluster (benchmarks/scale.py)
    "scale.passages": Figure("scale.json", lambda d: d["passages"], "{:,}"),
    "scale.queries": Figure("scale.json", lambda d: d["queries"], "{:,}"),
    "scale.identical": Figure("scale.json", lambda d: identical_shardings(d)),
    # the 2-shard build again: pieces analysed while reading, builds in turns, the fastest of 2 kept
    # (scale.py --shards 2 --repeats 2 --name scale_build)
    "scale_build.2.build": Figure("scale_build.json", lambda d: build_ratio(d, 2), "{:.2f}×"),
    "scale_build.identical": Figure("scale_build.json", lambda d: identical_shardings(d)),
    "scale_build.2.qps": Figure(
        "scale_build.json",
        lambda d: d["results"]["shards-2"]["qps"] / d["results"]["embedded"]["qps"],
        "{:.2f}×",
    ),
    **{
        f"scale_build.{who}.{stage}_s": Figure(
            "scale_build.json", lambda d, r=row, s=stage: d["results"][r]["timings"][f"{s}_s"], "{:.0f}"
        )
        for who, row in (("embedded", "embedded"), ("2", "shards-2"))
        for stage in ("passages", "analysis", "weighting")
    },
    "scale_build.embedded.save_s": Figure(
        "scale_build.json", lambda d: d["results"]["embedded"]["timings"]["save_s"], "{:.0f}"
    ),
    **{
        f"scale_build.{who}.builds": Figure(
            "scale_build.json",
            lambda d, r=row: " and ".join(f"{s:.0f}" for s in d["results"][r]["builds_s"]),
        )
        for who, row in (("embedded", "embedded"), ("2", "shards-2"))
    },
    **{
        f"scale.{n}.{key}": Figure("scale.json", value, form)
        for n in (1, 2, 4)
        for key, value, form in (
            ("build", lambda d, n=n: build_ratio(d, n), "{:.2f}×"),
            ("qps", lambda d, n=n: d["results"][f"shards-{n}"]["qps"] / d["results"]["embedded"]["qps"], "{:.2f}×"),
            ("node_mb", lambda d, n=n: d["results"][f"shards-{n}"]["max_node_rss_mb"], "{:,.0f}"),
        )
    },
    "scale.embedded_mb": Figure("scale.json", lambda d: d["results"]["embedded"]["rss_mb"], "{:,.0f}"),
    "scale.embedded_build_s": Figure("scale.json", lambda d: d["results"]["embedded"]["build_s"], "{:.0f}"),
    # the steps of `make demo`, timed on idle and busy cores (benchmarks/first_hour.py)
    **{
        f"first.{condition}.{step}": Figure(
            "first_hour.json",
            lambda d, c=condition, s=step: d["conditions"][c]["steps"][s]["seconds"] / 60,
            "{:.0f}",
        )
        for condition in ("idle", "busy")
        for step in ("index", "trim", "train_recipe")
    },
    **{
        f"first.{condition}.demo_runs": Figure(  # runs of `make demo` (KO_MINUTES of training each) the recipe needs
            "first_hour.json",
            lambda d, c=condition: math.ceil(
                d["conditions"][c]["steps"]["train_recipe"]["seconds"] / 60 / d["ko_minutes"]
            ),
        )
        for condition in ("idle", "busy")
    },
    **{
        f"first.{condition}.load": Figure(
            "first_hour.json",
            lambda d, c=condition: max(step["load"] for step in d["conditions"][c]["steps"].values()),
            "{:.1f}",
        )
        for condition in ("idle", "busy")
    },
    # two Korean readers soft-voted, gold passage (benchmarks/korean_ensemble.py)
    **{
        f"ens.{short}.{who}.{name}": Figure(ENS, lambda d, s=set_name, w=who, k=key: ens_scores(d, s, w)[k], "{:.1f}")
        for short, set_name in ENS_SETS.items()
        for who in ("a", "b", "vote")
        for name, key in (("em", "exact_match"), ("f1", "f1"))
    },
    **{
        f"ens.{short}.vote_gain": Figure(
            ENS,
            lambda d, s=set_name: (
                ens_scores(d, s, "vote")["exact_match"] - max(ens_scores(d, s, w)["exact_match"] for w in ("a", "b"))
            ),
            "{:+.1f}",
        )
        for short, set_name in ENS_SETS.items()
    },
    "ens.weights": Figure(ENS, lambda d: " / ".join(f"{w:.2f}" for w in d["weights"]), "{}"),
    # end to end and under load (benchmarks/e2e.py, benchmarks/serve_load.py)
    **per_run("", {run: f"{run}.json" for run in E2E_RUNS}, E2E_FIGURES),
    **{
        f"e2e.tune.k{k}_w{w}": Figure(
            "e2e.json", lambda d, k=k, w=w: d["tuning"]["em_korquad"][f"k={k} w={w}"], "{:.1f}"
        )
        for k, w in ((1, 0.0), (3, 0.0), (3, 0.05), (20, 0.0), (20, 0.1))
    },
    **{  # end-to-end EM over the run before (competition validation)
        f"{run}.competition.em_gain": Figure(
            f"{run}.json", lambda d, b=base: e2e_em(d) - e2e_em(results(f"{b}.json")), "{:+.1f}"
        )
        for run, base in E2E_BASES.items()
    },
    "e2e.retrieve_ms": Figure("e2e.json", lambda d: d["latency"]["retrieve_ms_p50"], "{:.0f}"),
    "e2e.p95_ms": Figure("e2e.json", lambda d: d["latency"]["total_ms_p95"], "{:.0f}"),
    "serve.requests": Figure("serve_load.json", lambda d: d["requests"]),
    "serve.errors": Figure("serve_load.json", lambda d: d["errors"]),
    "serve.p50_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p50"] / 1000, "{:.1f}"),
    "serve.p95_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p95"] / 1000, "{:.1f}"),
    "serve.p99_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p99"] / 1000, "{:.1f}"),
    "serve.qps": Figure("serve_load.json", lambda d: d["throughput_qps"], "{:.2f}"),
    "serve.ray.replicas": Figure("serve_load.json", lambda d: d["ray"]["replicas"]),
    "serve.ray.requests": Figure("serve_load.json", lambda d: d["ray"]["requests"]),
    "serve.ray.errors": Figure("serve_load.json", lambda d: d["ray"]["errors"]),
    "serve.ray.qps": Figure("serve_load.json", lambda d: d["ray"]["throughput_qps"], "{:.2f}"),
    "serve.ray.ratio": Figure("serve_load.json", lambda d: d["ray"]["qps_vs_plain"], "{:.2f}×"),
    "serve.ray.p50_s": Figure("serve_load.json", lambda d: d["ray"]["latency_ms"]["p50"] / 1000, "{:.1f}"),
    "serve.ray.startup_s": Figure("serve_load.json", lambda d: d["ray"]["startup_s"], "{:.0f}"),
    "serve.startup_s": Figure("serve_load.json", lambda d: d["startup_s"], "{:.0f}"),
}

FIG = re.compile(r"<!--fig:(?P<name>[\w.@\-]+)-->(?P<value>.*?)<!--/fig-->")
TABLE = re.compile(r"<!--table:(?P<file>[\w.\-]+)#(?P<n>\d+)-->\n(?P<body>.*?)<!--/table-->", re.S)


def render_figure(name: str, cache: dict) -> str:
    if name not in FIGURES:
        raise KeyError(
            f"README names figure {name!r}, which benchmarks/figures.py does not define"
            " (a per-run figure is defined only where its results file holds the data)"
        )
    figure = FIGURES[name]
    if figure.results not in cache:
        cache[figure.results] = json.loads((RESULTS / figure.results).read_text(encoding="utf-8"))
    return figure.format.format(figure.value(cache[figure.results]))


def markdown_tables(text: str) -> list[str]:
    """The markdown tables of a results file, in order, each as its lines joined."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current) + "\n")
            current = []
    if current:
        tables.append("\n".join(current) + "\n")
    return tables


def render_table(file: str, n: int) -> str:
    tables = markdown_tables((RESULTS / file).read_text(encoding="utf-8"))
    if not 1 <= n <= len(tables):
        raise KeyError(f"README asks for table {n} of results/{file}, which has {len(tables)}")
    return tables[n - 1]


def render(readme: str) -> tuple[str, list[str]]:
    """The README with every marked figure and table as the results say, and what differed."""
    cache: dict = {}
    differences: list[str] = []

    def figure(match: re.Match) -> str:
        value = render_figure(match["name"], cache)
        if value != match["value"]:
            differences.append(f"{match['name']}: README {match['value']!r}, results {value!r}")
        return f"<!--fig:{match['name']}-->{value}<!--/fig-->"

    def table(match: re.Match) -> str:
        body = render_table(match["file"], int(match["n"]))
        if body != match["body"]:
            differences.append(f"table {match['file']}#{match['n']} differs from the results")
        return f"<!--table:{match['file']}#{match['n']}-->\n{body}<!--/table-->"

    updated = TABLE.sub(table, FIG.sub(figure, readme))
    for marker, pattern in (("<!--fig:", FIG), ("<!--table:", TABLE)):
        if readme.count(marker) != len(pattern.findall(readme)):
            differences.append(f"a {marker}…--> marker in the README is malformed (see the module docstring)")
    return updated, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the README differs")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    text = args.readme.read_text(encoding="utf-8")
    updated, differences = render(text)
    for line in differences:
        print(line)
    if args.check:
        sys.exit(1 if differences else 0)
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
    print(f"{len(differences)} figures updated in {args.readme}")


if __name__ == "__main__":
    main()
