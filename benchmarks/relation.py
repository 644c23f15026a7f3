"""KLUE-RE relation extraction on multilingual-e5-small (2 CPU cores): input formats over seeds,
poolings, the best single model, a soft-voting ensemble and prediction throughput against a
plain `transformers` pipeline on the same weights.

    make models/me5-small-re/config.json      # or: see the README section "Relation extraction"
    cd benchmarks && ../.venv/bin/python relation.py --best-n 31670 --second entity   # make bench-relation
    cd benchmarks && ../.venv/bin/python relation.py --longer typed-punct --best-n 31670 --epochs 2   # more epochs

Data: KLUE-RE v1.1 train (32,470) and dev (7,765) from ../shared/data/klue_re. A seeded permutation
of the training set gives a held-out slice (for choosing ensemble weights; no model trains on it)
and the training subsets; format and pooling runs are scored on a seeded dev sample, the best
single model on the whole dev set. Each stage is kept in work/relation/ (rerun to continue).
The parts (runs, the label-shift analysis, --speed, --longer) are in relation_bench/."""

from __future__ import annotations

import argparse
import statistics

from common import WORK, cached_stage, markdown_table, write_results
from relation_bench.longer import longer
from relation_bench.runs import (
    KLUE,
    best_on_held,
    score_calibrated,
    score_precision,
    split,
    train_run,
    vote,
)
from relation_bench.shift import prior_shift, prior_table
from relation_bench.speed import measure_speed, throughput

# KLUE's published baselines (KLUE benchmark repository; micro-F1 / AUPRC), larger Korean encoders on a GPU
PUBLISHED = [("klue/bert-base", 66.44, 66.17), ("klue/roberta-large", 69.59, 72.39)]


# the heads compared on typed-punct: a pooling, or a BiLSTM over the states before entity-start pooling
HEADS = {"cls": {"pooling": "cls"}, "rbert": {"pooling": "rbert"}, "bilstm": {"bilstm": True}}


def ensemble_at_size(args, train, held, held_gold, dev, dev_gold, best_name: str, best_dev, redo, labels) -> dict:
    """A second model of format `args.second` on the best model's training examples (seed 1), and the
    two soft-voted on the whole dev set, weights chosen on the held-out slice."""
    import numpy as np

    stages = WORK / "relation" / "stages"
    name = f"second-{args.second}-{len(train)}"
    second = cached_stage(
        stages,
        name,
        redo,
        lambda: train_run(name, args, train, {"format": args.second}, 1, {"dev": dev, "held_out": held}),
    )

    best = best_on_held(best_name, held, labels, redo)
    members = [np.array(best["held_out"]["probabilities"]), np.array(second["sets"]["held_out"]["probabilities"])]
    dev_members = [best_dev, np.array(second["sets"]["dev"]["probabilities"])]
    weights, votes = vote(members, held_gold, dev_members, dev_gold, labels)
    return {
        "second": {k: v for k, v in second.items() if k != "sets"}
        | {"dev": {m: x for m, x in second["sets"]["dev"].items() if m != "probabilities"}},
        "weights": weights,
        "votes": votes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-n", type=int, default=2500, help="training examples of each format/pooling run")
    parser.add_argument(
        "--best-n",
        type=int,
        default=0,
        help="train the best single model on this many examples (0: the best run above)",
    )
    parser.add_argument(
        "--second",
        default="",
        help="with --best-n: also train this format on the same examples (seed 1) and soft-vote it with the best",
    )
    parser.add_argument("--held-out", type=int, default=800)
    parser.add_argument("--dev-n", type=int, default=800)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--mixed-precision",
        default="no",
        choices=["no", "bf16", "fp16", "auto"],
        help="training precision (bf16 autocast is ~1.6x faster on CPUs with AVX512-BF16 or AMX)",
    )
    parser.add_argument("--formats", default="entity,typed-punct")
    parser.add_argument(
        "--poolings",
        default="cls,rbert,bilstm",
        help="heads besides entity-start (cls, rbert, bilstm: a BiLSTM before entity-start), on typed-punct, one seed",
    )
    parser.add_argument("--redo", default="")
    parser.add_argument(
        "--longer",
        default="",
        help="only train this format on --best-n examples for --epochs epochs (results/relation_epochs.json)",
    )
    parser.add_argument("--longer-seed", type=int, default=0, help="with --longer: the run's seed")
    parser.add_argument(
        "--speed",
        default="",
        help="only measure this trained run's prediction speed and fp32/bf16/int8 scores (results/relation_speed.json)",
    )
    args = parser.parse_args()
    unknown = set(filter(None, args.poolings.split(","))) - set(HEADS)
    if unknown:
        parser.error(f"unknown head {sorted(unknown)[0]!r}; choose from {', '.join(HEADS)}")
    from odqa.relation.markers import FORMATS

    for given in (args.second, args.longer):
        if given and given not in FORMATS:
            parser.error(f"unknown format {given!r}; choose from {', '.join(FORMATS)}")
    if args.longer and not args.best_n:
        parser.error("--longer needs --best-n (how many training examples)")
    import numpy as np

    from odqa.relation.calibration import apply_calibration, fit_calibration
    from odqa.relation.data import read_label_list
    from odqa.relation.metrics import micro_f1

    stages = WORK / "relation" / "stages"
    redo = set(filter(None, args.redo.split(",")))
    pool, held, dev, dev_sample = split(args)
    labels = read_label_list(KLUE / "relation_list.json")
    index = {n: i for i, n in enumerate(labels)}
    if args.longer:
        return longer(args, pool, held, dev, labels, index, redo)
    if args.speed:
        return measure_speed(args, dev, dev_sample)
    subset = pool[: args.train_n]
    predict = {"dev_sample": dev_sample, "held_out": held}

    runs = []
    for fmt in args.formats.split(","):
        for seed in range(args.seeds):
            name = f"format-{fmt}-seed{seed}"
            runs.append(
                cached_stage(stages, name, redo, lambda: train_run(name, args, subset, {"format": fmt}, seed, predict))
            )
    for pooling in filter(None, args.poolings.split(",")):
        name = f"pooling-{pooling}-seed0"
        runs.append(
            cached_stage(
                stages,
                name,
                redo,
                lambda: train_run(name, args, subset, {"format": "typed-punct"} | HEADS[pooling], 0, predict),
            )
        )

    by_format = {}
    for run in runs:
        if run["name"].startswith("format-"):
            by_format.setdefault(run["relation"]["format"], []).append(run["sets"]["dev_sample"]["micro_f1"])
    winner = max(by_format, key=lambda f: statistics.mean(by_format[f]))
    if args.best_n:
        best_name = f"best-{winner}-{args.best_n}"
        best = cached_stage(
            stages,
            best_name,
            redo,
            lambda: train_run(best_name, args, pool[: args.best_n], {"format": winner}, 0, {"dev": dev}),
        )
    else:  # the best of the runs above, scored on the whole dev set
        top = max(runs, key=lambda r: r["sets"]["dev_sample"]["micro_f1"])
        best_name = top["name"]
        best = cached_stage(
            stages,
            f"whole-dev-{best_name}",
            redo,
            lambda: train_run(best_name, args, subset, top["relation"], top["seed"], {"dev": dev}),
        ) | {"train_s": top["train_s"]}
    quantized = cached_stage(
        stages,
        f"int8-{best_name}",
        redo,
        lambda: score_precision(WORK / "relation" / "runs" / best_name, dev, "int8"),
    )
    calibrated = cached_stage(
        stages,
        f"calibrated-{best_name}",
        redo,
        lambda: score_calibrated(WORK / "relation" / "runs" / best_name, held, dev),
    )
    held_gold = np.array([index[e.label] for e in held])
    at_size = shift = None
    if args.best_n:
        best_dev = np.array(best["sets"]["dev"]["probabilities"])
        whole_dev_gold = np.array([index[e.label] for e in dev])
        if args.second:
            at_size = ensemble_at_size(
                args, pool[: args.best_n], held, held_gold, dev, whole_dev_gold, best_name, best_dev, redo, labels
            )
        held_scores = best_on_held(best_name, held, labels, redo)
        pool_gold = np.array([index[e.label] for e in pool])
        shift = prior_shift(best_dev, whole_dev_gold, held_scores, held_gold, pool_gold, labels)
    dev_gold = np.array([index[e.label] for e in dev_sample])
    # each format run calibrated on the held-out slice (from its stored probabilities, 5 decimals)
    for run in runs:
        fitted = fit_calibration(np.array(run["sets"]["held_out"]["probabilities"]), held_gold)
        fixed = apply_calibration(
            np.array(run["sets"]["dev_sample"]["probabilities"]), fitted["temperature"], fitted["bias"]
        )
        run["calibrated"] = {
            "micro_f1": micro_f1(fixed.argmax(1), dev_gold, labels),
            "temperature": fitted["temperature"],
        }
    members = [np.array(r["sets"]["held_out"]["probabilities"]) for r in runs]
    dev_members = [np.array(r["sets"]["dev_sample"]["probabilities"]) for r in runs]
    weights, ensembles = vote(members, held_gold, dev_members, dev_gold, labels)
    speed = cached_stage(
        stages,
        "throughput",
        redo,
        lambda: throughput(args, WORK / "relation" / "runs" / best_name, dev_sample),
    )

    rows = []
    for fmt, scores in by_format.items():
        aucs = [
            r["sets"]["dev_sample"]["auprc"]
            for r in runs
            if r["relation"].get("format") == fmt and r["name"].startswith("format-")
        ]
        fixed = [r["calibrated"]["micro_f1"] for r in runs if r["name"].startswith(f"format-{fmt}-")]
        rows.append(
            [
                f"{fmt} markers, entity-start",
                len(scores),
                f"{statistics.mean(scores):.1f} ± {statistics.stdev(scores) if len(scores) > 1 else 0:.1f}",
                f"{statistics.mean(aucs):.1f}",
                f"{statistics.mean(fixed):.1f} ± {statistics.stdev(fixed) if len(fixed) > 1 else 0:.1f}",
            ]
        )
    for run in runs:
        if run["name"].startswith("pooling-"):
            rows.append(
                [
                    f"typed-punct markers, {run['name'].split('-')[1]} head",
                    1,
                    f"{run['sets']['dev_sample']['micro_f1']:.1f}",
                    f"{run['sets']['dev_sample']['auprc']:.1f}",
                    f"{run['calibrated']['micro_f1']:.1f}",
                ]
            )
    for kind, scores in ensembles.items():
        rows.append(
            [
                f"soft vote of the {len(runs)} runs above, {kind}",
                1,
                f"{scores['micro_f1']:.1f}",
                f"{scores['auprc']:.1f}",
                "-",
            ]
        )
    minutes = sum(r["train_s"] for r in runs) / 60
    article = "an" if args.second[:1] in ("a", "e", "i", "o", "u") else "a"
    table = (
        f"# KLUE-RE on multilingual-e5-small (trimmed vocabulary, embeddings frozen), 2 CPU cores\n\n"
        f"### Input formats and poolings: {args.train_n} training examples, {args.epochs:g} epoch, lr {args.lr:g}, "
        f"batch 32, {args.max_length} tokens; scored on {args.dev_n} dev sentences ({minutes:.0f} min of training)\n\n"
        + markdown_table(["model", "seeds", "dev micro-F1", "dev AUPRC", "dev micro-F1, calibrated"], rows)
        + f"\nEnsemble weights chosen on {args.held_out} training sentences no run trained on: "
        + ", ".join(f"{r['name']} {w:.2f}" for r, w in zip(runs, weights))
        + f"\n\n### Best single model: {best['relation']}, {best['train_examples']} training examples, "
        f"{args.epochs:g} epoch ({best['train_s'] / 60:.0f} min on 2 CPU cores), the whole dev set\n\n"
        + markdown_table(
            ["model", "dev micro-F1", "dev AUPRC"],
            [
                [
                    f"odqa, multilingual-e5-small, {best['train_examples']} examples",
                    best["sets"]["dev"]["micro_f1"],
                    best["sets"]["dev"]["auprc"],
                ]
            ]
            + [
                [
                    "the same with `odqa re predict --int8` (linear layers dynamically quantized)",
                    quantized["micro_f1"],
                    quantized["auprc"],
                ],
                [
                    f"the same after `odqa re calibrate` on the held-out slice (temperature "
                    f"{calibrated['temperature']:.2f} and a bias per label)",
                    calibrated["micro_f1"],
                    calibrated["auprc"],
                ],
            ]
            + (
                [
                    [
                        f"soft vote of it and {article} {args.second}-marker model on the same examples, {kind}",
                        scores["micro_f1"],
                        scores["auprc"],
                    ]
                    for kind, scores in at_size["votes"].items()
                ]
                if at_size
                else []
            )
            + [
                [f"{name} (KLUE paper; GPU, full train, probably the test split)", f1, auc]
                for name, f1, auc in PUBLISHED
            ],
        )
        + (prior_table(shift) if shift else "")
        + f"\n### Prediction throughput ({speed['examples']} dev sentences, same weights, best of 2)\n\n"
        + markdown_table(
            ["system", "sentences/s", "× pipeline (best batch)"],
            [
                [name, speed["examples"] / s, min(speed["seconds"][k] for k in speed["seconds"] if "pipeline" in k) / s]
                for name, s in speed["seconds"].items()
            ],
        )
    )
    results = {
        "settings": vars(args),
        "runs": [
            {k: v for k, v in r.items() if k != "sets"}
            | {"scores": {s: {m: x for m, x in d.items() if m != "probabilities"} for s, d in r["sets"].items()}}
            for r in runs
        ],
        "by_format": by_format,
        "winner": winner,
        "best": {k: v for k, v in best.items() if k != "sets"}
        | {"dev": {m: x for m, x in best["sets"]["dev"].items() if m != "probabilities"}},
        "ensemble": ensembles | {"weights": weights},
        "throughput": speed,
        "int8": quantized,
        "ensemble_at_size": at_size,
        "calibrated": calibrated,
        "prior_shift": shift,
        "by_format_calibrated": {
            fmt: [r["calibrated"]["micro_f1"] for r in runs if r["name"].startswith(f"format-{fmt}-")]
            for fmt in by_format
        },
        "published": [{"model": n, "micro_f1": f, "auprc": a} for n, f, a in PUBLISHED],
        "compute": "2 CPU cores (shared machine), no GPU",
    }
    write_results("relation", results, table)


if __name__ == "__main__":
    main()
