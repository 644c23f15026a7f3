"""`relation.py --longer FORMAT`: one format trained longer on the best model's examples, beside the
one-epoch model and the runs of other lengths kept from before, and their soft vote
(results/relation_epochs.json)."""

from __future__ import annotations

from common import ROOT, WORK, cached_stage, markdown_table, write_results
from relation_bench.runs import train_run, vote
from relation_bench.shift import prior_shift, prior_table, type_mask


def precision_suffix(args) -> str:
    """Run names of bf16/fp16 runs say so (the fp32 runs kept their names from before)."""
    return "" if args.mixed_precision == "no" else f"-{args.mixed_precision}"


def run_key(run: dict) -> tuple[float, str, int]:
    """Runs of `--longer` differ by length, training precision (runs from before it was recorded:
    fp32) and seed."""
    return run["epochs"], run.get("mixed_precision", "no"), run.get("seed", 0)


def precision_label(run: dict, sep: str) -> str:
    """`sep` + the run's training precision and seed, where they are not fp32 and 0."""
    _, precision, seed = run_key(run)
    parts = ([] if precision == "no" else [precision]) + ([f"seed {seed}"] if seed else [])
    return "".join(f"{sep}{part}" for part in parts)


def vote_runs(runs: list[dict], held_gold, dev_gold, labels) -> dict:
    """The soft vote of `--longer` runs whose stage (with probabilities) is still in the work folder,
    weights chosen on the held-out slice; {} when fewer than two are."""
    import json

    import numpy as np

    staged = []
    for r in runs:
        path = WORK / "relation" / "stages" / f"{r['name']}.json"
        if "sets" not in r and path.exists():
            r = json.loads(path.read_text(encoding="utf-8"))
        if "sets" in r:
            staged.append(r)
    if len(staged) < 2:
        return {}
    weights, votes = vote(
        [np.array(r["sets"]["held_out"]["probabilities"]) for r in staged],
        held_gold,
        [np.array(r["sets"]["dev"]["probabilities"]) for r in staged],
        dev_gold,
        labels,
    )
    return {
        "members": [f"{r['epochs']:g}-epoch" + precision_label(r, " ") for r in staged],
        "names": [r["name"] for r in staged],
        "weights": weights,
        "train_s": [r["train_s"] for r in staged],
        "dev": votes["weights chosen on the held-out slice"],
        "equal_weights": votes["equal weights"],
    }


def longer(args, pool, held, dev, labels, index, redo) -> None:
    """`--longer FORMAT`: that format alone on `--best-n` examples for `--epochs` epochs, scored on the
    whole dev set and the held-out slice, beside the one-epoch model of `results/relation.json`
    (written as `results/relation_epochs.json`, which keeps the runs of other lengths with the same
    settings as rows of its table)."""
    import json

    import numpy as np

    name = f"longer-{args.longer}-{args.best_n}-{args.epochs:g}ep" + precision_suffix(args)
    name += f"-seed{args.longer_seed}" if args.longer_seed else ""
    run = cached_stage(
        WORK / "relation" / "stages",
        name,
        redo,
        lambda: train_run(
            name, args, pool[: args.best_n], {"format": args.longer}, args.longer_seed, {"dev": dev, "held_out": held}
        ),
    )
    dev_gold = np.array([index[e.label] for e in dev])
    held_gold = np.array([index[e.label] for e in held])
    pool_gold = np.array([index[e.label] for e in pool])
    shift = prior_shift(
        np.array(run["sets"]["dev"]["probabilities"]),
        dev_gold,
        run["sets"],
        held_gold,
        pool_gold,
        labels,
        type_mask(pool[: args.best_n], dev, labels),
    )
    earlier = json.loads((ROOT / "benchmarks" / "results" / "relation.json").read_text(encoding="utf-8"))
    one = earlier["best"]
    scores = {s: {m: x for m, x in d.items() if m != "probabilities"} for s, d in run["sets"].items()}
    this = {k: v for k, v in run.items() if k != "sets"} | {"scores": scores}
    # Runs of other lengths with the same settings stay in the table (each run is hours on 2 cores).
    kept = []
    previous = ROOT / "benchmarks" / "results" / "relation_epochs.json"
    if previous.exists():
        old = json.loads(previous.read_text(encoding="utf-8"))
        if all(old["settings"].get(k) == getattr(args, k) for k in ("longer", "best_n", "lr", "max_length")):
            kept = [r for r in old.get("other_runs", []) + [old["run"]] if run_key(r) != run_key(this)]
    ensemble = vote_runs([run, *kept], held_gold, dev_gold, labels)
    rows = [
        [
            f"{one['epochs']:g} epoch (results/relation.json)",
            one["train_s"] / 60,
            one["dev"]["micro_f1"],
            one["dev"]["auprc"],
            earlier["prior_shift"]["held_out"]["micro_f1"],
        ]
    ] + [
        [
            f"{r['epochs']:g} epochs" + precision_label(r, ", "),
            r["train_s"] / 60,
            r["scores"]["dev"]["micro_f1"],
            r["scores"]["dev"]["auprc"],
            r["scores"]["held_out"]["micro_f1"],
        ]
        for r in sorted(kept + [this], key=run_key)
    ]
    if ensemble:
        voted = "soft vote of the " + " and ".join(ensemble["members"]) + " runs"
        chosen = " / ".join(f"{w:.2f}" for w in ensemble["weights"])
        for label, scored in (
            (f"{voted}, equal weights", ensemble["equal_weights"]),
            (f"{voted}, weights {chosen} chosen on the held-out slice", ensemble["dev"]),
        ):
            rows.append([label, sum(ensemble["train_s"]) / 60, scored["micro_f1"], scored["auprc"], "-"])
    table = (
        f"# KLUE-RE: the best single model trained longer ({args.longer} markers, {len(pool[: args.best_n])} "
        f"training examples, lr {args.lr:g}, batch 32, {args.max_length} tokens, seed 0 where a row names none), "
        "2 CPU cores\n\n"
        + markdown_table(
            ["epochs", "training min", "dev micro-F1", "dev AUPRC", f"held-out slice micro-F1 ({len(held)})"], rows
        )
        + prior_table(shift)
    )
    results = {
        "settings": vars(args),
        "run": this,
        "other_runs": kept,
        "one_epoch": one | {"held_out": earlier["prior_shift"]["held_out"]},
        "ensemble": ensemble,
        "prior_shift": shift,
        "compute": "2 CPU cores (shared machine), no GPU",
    }
    write_results("relation_epochs", results, table)
