"""Retrieved negatives, end to end: does a Korean reader that has been shown wrong passages read
more passages better?

The recipe's reader (`korean_model.py`, `--start`) reads best end to end at k = 1: each passage it
adds past the first costs EM (results/tune_rule.md). It was trained on gold contexts, where no
passage is wrong. Two readers go on training from it with the same steps, learning rate and data —
competition train less the held-out 300 (korean_model.py's `train-rest.json`) — through `odqa
train-reader --model START` (a saved reader goes on with its own head):

  negatives  each question also gets one BM25 passage of the kowiki sample that does not hold its
             answer, among its top 10, as a no-answer window (`--negatives-index`)
  control    the same without them (more training alone)

Then each of the three readers is scored end to end over make demo's retriever (BM25's top 20
re-scored by multilingual-e5-small), in bf16: every (k, retriever weight) pair up to k = 10 on the
held-out 300 (`odqa tune-pipeline`'s search; the one-standard-error rule picks the pair) and on the
competition validation (240).

Stages, cached in benchmarks/work/negatives/ (`--redo STAGE`): train-negatives, train-control,
score-start, score-negatives, score-control.

    python reader_negatives_ko.py --start work/korean_model/ko-reader --index ../indexes/kowiki-bm25 \\
        --rescore ../models/me5-small [--steps 150] [--lr 3e-5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, WORK, cached_stage, log, markdown_table, write_results

OUT = WORK / "negatives"
KS = [1, 3, 5, 10]
VALIDATION = DATA / "boostcamp_odqa/validation.squad.json"
ARMS = ("negatives", "control")


def stage_train(args, arm: str) -> dict:
    from odqa.models.loading import cpu_computes_bf16

    folder = args.start.parent
    options = {
        "--train": folder / "train-rest.json",
        "--eval": folder / "train-heldout.json",
        "--max-steps": args.steps,
        "--lr": args.lr,
        "--batch-size": 16,
        "--max-length": 384,
        "--stride": 128,
        "--head": "cnn",
        "--negative-windows": 0.1,
        "--metric": "korquad",
        "--save-steps": 25,
        "--mixed-precision": "bf16" if cpu_computes_bf16() else "no",
    }
    if arm == "negatives":
        options |= {"--negatives-index": args.index, "--negatives-per-question": 1, "--negatives-k": 10}
    command = [sys.executable, "-m", "odqa", "train-reader", "--model", str(args.start), "--out", str(OUT / arm)]
    command += [str(x) for pair in options.items() for x in pair] + ["--freeze-embeddings"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    state = json.loads((OUT / arm / "trainer_state.json").read_text(encoding="utf-8"))
    return {
        "options": {k: str(v) for k, v in options.items()},
        "minutes": (time.perf_counter() - start) / 60,
        "steps": state["step"],
        "windows_trained": state["history"][-1]["items"],
        "history": state["history"],
    }


def stage_score(args, reader: Path) -> dict:
    from e2e import load_pipeline
    from odqa.e2e import TUNE_WEIGHTS, tune_pipeline
    from odqa.io import read_questions

    pipeline = load_pipeline(args.index, [reader], args.rescore, bf16=True)
    held_out = read_questions(args.start.parent / "train-heldout.json")
    start = time.perf_counter()
    tuning = tune_pipeline(pipeline, held_out, KS, TUNE_WEIGHTS, quiet=True)
    # the validation's whole grid from one reading, to read it at the tuning's choices
    validation = tune_pipeline(pipeline, read_questions(VALIDATION), KS, TUNE_WEIGHTS, quiet=True)
    return {
        "reader": str(reader),
        "tuning": tuning,
        "validation": validation,
        "minutes": (time.perf_counter() - start) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=Path, default=WORK / "korean_model" / "ko-reader")
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "kowiki-bm25")
    parser.add_argument("--rescore", type=Path, default=ROOT / "models" / "me5-small")
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps of each reader (batch 16)")
    parser.add_argument("--lr", type=float, default=3e-5, help="peak learning rate of the further training")
    parser.add_argument("--redo", default="", help="comma-separated stages to run again")
    args = parser.parse_args()
    redo = set(filter(None, args.redo.split(",")))
    for path in (args.start, args.index, args.rescore, args.start.parent / "train-rest.json"):
        if not path.exists():
            parser.error(f"{path} does not exist (korean_model.py writes the reader and its split)")

    trained = {arm: cached_stage(OUT, f"train-{arm}", redo, lambda arm=arm: stage_train(args, arm)) for arm in ARMS}
    readers = {"start": args.start, **{arm: OUT / arm for arm in ARMS}}
    scored = {
        name: cached_stage(OUT, f"score-{name}", redo, lambda r=reader: stage_score(args, r))
        for name, reader in readers.items()
    }
    log("scored")

    def cell(grid: dict, k: int, w: float) -> float:
        return grid["em_korquad"][f"k={k} w={w}"]

    rows, by_k = [], []
    results = {"start": str(args.start), "steps": args.steps, "lr": args.lr, "trained": trained, "readers": {}}
    for name, score in scored.items():
        tuning, validation = score["tuning"], score["validation"]
        chosen, best = tuning["chosen"], tuning["best"]
        at_chosen = cell(validation, chosen["k"], chosen["retriever_weight"])
        at_best = cell(validation, best["k"], best["retriever_weight"])
        results["readers"][name] = {
            "chosen": chosen,
            "best": best,
            "tuning_em": tuning["exact_match"],
            "validation_em_chosen": at_chosen,
            "validation_em_best": at_best,
            "validation_em_by_k": {k: cell(validation, k, chosen["retriever_weight"]) for k in KS},
        }
        train = trained.get(name, {})
        history = train.get("history") or json.loads((readers[name] / "trainer_state.json").read_text())["history"]
        gold = history[-1]["eval"]  # the held-out 300 with their own passages, after training
        results["readers"][name]["held_out_gold"] = {"exact_match": gold["exact_match"], "f1": gold["f1"]}
        rows.append(
            [
                name,
                f"{train['minutes']:.0f}" if train else "-",
                f"{gold['exact_match']:.1f} / {gold['f1']:.1f}",
                f"k {chosen['k']}, w {chosen['retriever_weight']:g}: {tuning['exact_match']:.1f}",
                f"{at_chosen:.1f}",
                f"k {best['k']}, w {best['retriever_weight']:g}: {at_best:.1f}",
            ]
        )
        by_k.append([name, *(f"{results['readers'][name]['validation_em_by_k'][k]:.1f}" for k in KS)])
    table = (
        f"Readers going on from {args.start.name} for {args.steps} steps (batch 16, lr {args.lr:g}, bf16, 2 CPU "
        "cores), scored end to end over BM25's top 20 re-scored by multilingual-e5-small (korquad EM; tuning: the "
        "held-out 300, the one-standard-error rule; validation: the competition validation, 240)\n\n"
        + markdown_table(
            [
                "reader",
                "training min",
                "held-out gold passage EM / F1",
                "tuning choice: held-out EM",
                "validation EM at it",
                "best tuning pair: validation EM",
            ],
            rows,
        )
        + "\nValidation EM by k at each reader's chosen weight\n\n"
        + markdown_table(["reader", *(f"k = {k}" for k in KS)], by_k)
    )
    write_results("reader_negatives_ko", results, table)
    print(table)


if __name__ == "__main__":
    main()
