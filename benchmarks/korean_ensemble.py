"""Korean readers soft-voted: two readers of `korean_model.py` (by default the 1.5- and 3-epoch bf16
runs), each alone and as one ensemble, read with the gold passage.

Each reader reads the held-out 300 training questions and the competition validation (`odqa read
--postprocess korean`, n-best kept); `odqa ensemble --gold` chooses the vote's weights on the held-out
300 (never on the validation), and the validation is voted with those weights and with equal ones.
Scored with the korquad and squad metrics. What a user runs:

    odqa read --reader runs/a --questions TRAIN-HELDOUT.json --out preds/held-a --postprocess korean   # and b
    odqa ensemble --nbest preds/held-a --nbest preds/held-b --gold TRAIN-HELDOUT.json --out preds/held-ens
    odqa ensemble --nbest preds/val-a --nbest preds/val-b --weights W1,W2 --out preds/val-ens

    python korean_ensemble.py [--reader DIR --reader DIR] [--heldout FILE] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, WORK, log, markdown_table, require_shared, write_results

ODQA = [sys.executable, "-m", "odqa"]
VALIDATION = DATA / "boostcamp_odqa" / "validation.squad.json"
METRICS = ("korquad", "squad")


def odqa(*args: str) -> None:
    subprocess.run([*ODQA, *args], check=True, stdout=subprocess.DEVNULL)


def scores(predictions: Path, gold: Path) -> dict:
    from odqa.io.questions import read_questions
    from odqa.io.squad import read_predictions
    from odqa.metrics import score_predictions

    answers = {q.id: q.answers for q in read_questions(gold)}
    predicted = read_predictions(predictions)
    out = {}
    for metric in METRICS:
        result = score_predictions(predicted, answers, metric)
        out[metric] = {"exact_match": result["exact_match"], "f1": result["f1"], "count": result["count"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reader", type=Path, action="append", help="a reader folder; give it twice or more")
    parser.add_argument("--label", action="append", help="a name per reader for the table")
    parser.add_argument("--heldout", type=Path, default=WORK / "korean_model" / "train-heldout.json")
    parser.add_argument("--name", default="korean_ensemble", help="results file name")
    args = parser.parse_args()
    require_shared()
    readers = args.reader or [WORK / "korean_model" / "ko-reader"]
    labels = args.label or [r.parent.parent.name + "/" + r.name for r in readers]
    if len(readers) < 2 or len(labels) != len(readers):
        sys.exit("error: give --reader at least twice (and one --label per reader, if any)")
    for path in (*readers, args.heldout):
        if not path.exists():
            sys.exit(f"error: {path} does not exist")
    work = WORK / args.name
    sets = {"held-out 300": ("held", args.heldout), "competition validation": ("val", VALIDATION)}
    results: dict = {"readers": [str(r) for r in readers], "labels": labels, "heldout": str(args.heldout)}
    results["members"], seconds = {}, {}
    for i, reader in enumerate(readers):
        for set_name, (short, questions) in sets.items():
            out = work / f"{short}-{i}"
            command = ["read", "--reader", str(reader), "--questions", str(questions), "--out", str(out)]
            command += ["--postprocess", "korean", "--quiet"]
            stamp = out / "command.json"  # a rerun reuses what the same command wrote
            if not (stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")) == command):
                log(f"{labels[i]} reads the {set_name}")
                start = time.perf_counter()
                odqa(*command)
                seconds[f"{short}-{i}"] = time.perf_counter() - start
                stamp.write_text(json.dumps(command), encoding="utf-8")
            results["members"].setdefault(labels[i], {})[set_name] = scores(out / "predictions.json", questions)
    nbest = lambda short: [a for i in range(len(readers)) for a in ("--nbest", str(work / f"{short}-{i}"))]
    log("weights chosen on the held-out 300")
    odqa(
        "ensemble", *nbest("held"), "--gold", str(args.heldout), "--metric", "korquad", "--out", str(work / "held-ens")
    )
    record = json.loads((work / "held-ens" / "ensemble.json").read_text(encoding="utf-8"))
    weights = record["weights"]
    results["weights"] = weights
    results["vote"] = {"held-out 300": scores(work / "held-ens" / "predictions.json", args.heldout)}
    chosen = ",".join(f"{w:g}" for w in weights)
    odqa("ensemble", *nbest("val"), "--weights", chosen, "--out", str(work / "val-ens"))
    odqa("ensemble", *nbest("val"), "--out", str(work / "val-equal"))
    results["vote"]["competition validation"] = scores(work / "val-ens" / "predictions.json", VALIDATION)
    results["vote_equal"] = {"competition validation": scores(work / "val-equal" / "predictions.json", VALIDATION)}
    results["read_seconds"] = seconds

    def cells(result: dict | None) -> list[str]:
        if result is None:
            return ["-", "-"]
        return [f"{result[m]['exact_match']:.1f} / {result[m]['f1']:.1f}" for m in METRICS]

    rows = [
        [label, *cells(r["held-out 300"]), *cells(r["competition validation"])]
        for label, r in results["members"].items()
    ]
    rows.append(
        [
            f"soft vote, weights {chosen} (chosen on the held-out 300)",
            *cells(results["vote"]["held-out 300"]),
            *cells(results["vote"]["competition validation"]),
        ]
    )
    rows.append(["soft vote, equal weights", *cells(None), *cells(results["vote_equal"]["competition validation"])])
    header = [
        "reader",
        "held-out 300 korquad EM / F1",
        "squad EM / F1",
        "competition validation korquad EM / F1",
        "squad EM / F1",
    ]
    table = (
        "# Korean readers soft-voted (gold passage, Korean clean-up; 2 CPU cores)\n\n"
        + markdown_table(header, rows)
        + "\n"
    )
    write_results(args.name, results, table)


if __name__ == "__main__":
    main()
