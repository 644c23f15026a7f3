"""KLUE-RE relation extraction on multilingual-e5-small (2 CPU cores): input formats over seeds,
poolings, the best single model, a soft-voting ensemble and prediction throughput against a
plain `transformers` pipeline on the same weights.

    make models/me5-small-re/config.json      # or: see the README section "Relation extraction"
    cd benchmarks && ../.venv/bin/python relation.py --best-n 31670 --second entity   # make bench-relation
    cd benchmarks && ../.venv/bin/python relation.py --longer typed-punct --best-n 31670 --epochs 2   # more epochs

Data: KLUE-RE v1.1 train (32,470) and dev (7,765) from ../shared/data/klue_re. A seeded permutation
of the training set gives a held-out slice (for choosing ensemble weights; no model trains on it)
and the training subsets; format and pooling runs are scored on a seeded dev sample, the best
single model on the whole dev set. Each stage is kept in work/relation/ (rerun to continue)."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from common import DATA, ROOT, WORK, cached_stage, log, markdown_table, write_results

KLUE = DATA / "klue_re"
ENCODER = ROOT / "models" / "me5-small-re"
# KLUE's published baselines (KLUE benchmark repository; micro-F1 / AUPRC), larger Korean encoders on a GPU
PUBLISHED = [("klue/bert-base", 66.44, 66.17), ("klue/roberta-large", 69.59, 72.39)]


# the heads compared on typed-punct: a pooling, or a BiLSTM over the states before entity-start pooling
HEADS = {"cls": {"pooling": "cls"}, "rbert": {"pooling": "rbert"}, "bilstm": {"bilstm": True}}


def split(args):
    from odqa.relation.data import read_relation_file

    train = read_relation_file(KLUE / "train.jsonl.gz", require_labels=True)
    dev = read_relation_file(KLUE / "dev.jsonl.gz", require_labels=True)
    order = list(range(len(train)))
    random.Random(13).shuffle(order)
    held = [train[i] for i in order[: args.held_out]]
    pool = [train[i] for i in order[args.held_out :]]
    dev_sample = random.Random(13).sample(dev, args.dev_n)
    return pool, held, dev, dev_sample


def train_run(name, args, train, relation, seed, predict):
    """Train one model on `train`; its probabilities on each set of `predict` (name → examples)."""
    from odqa.relation.data import read_label_list
    from odqa.relation.model import RelationClassifier, RelationModelConfig
    from odqa.training.relation import RelationTrainingConfig, train_relation

    labels = read_label_list(KLUE / "relation_list.json")
    out = WORK / "relation" / "runs" / name
    config = RelationTrainingConfig(
        model=str(ENCODER),
        train=str(KLUE / "train.jsonl.gz"),
        out=str(out),
        label_list=str(KLUE / "relation_list.json"),
        epochs=args.epochs,
        batch_size=32,
        lr=args.lr,
        seed=seed,
        freeze_embeddings=True,
        save_steps=50,
        mixed_precision=args.mixed_precision,
        relation=RelationModelConfig(max_length=args.max_length, **relation),
    )
    started = time.perf_counter()
    state = train_relation(config, quiet=True, resume=True, train_examples=train)
    train_s = time.perf_counter() - started
    classifier = RelationClassifier.load(out)
    result = {
        "name": name,
        "relation": relation,
        "seed": seed,
        "train_examples": len(train),
        "epochs": args.epochs,
        "mixed_precision": config.mixed_precision,
        "train_s": train_s,
        "examples_per_s": state["history"][-1]["examples_per_s"],
        "sets": {},
    }
    result["sets"] = score_sets(name, classifier, predict, labels)
    return result


def score_sets(name, classifier, predict, labels) -> dict:
    """The classifier's scores and probabilities on each set of `predict` (name → examples)."""
    from odqa.relation.metrics import score_relations

    index = {n: i for i, n in enumerate(labels)}
    sets = {}
    for set_name, examples in predict.items():
        started = time.perf_counter()
        probabilities = classifier.predict(examples, batch_size=64)
        gold = [index[e.label] for e in examples]
        scores = score_relations(probabilities, gold, labels)
        sets[set_name] = {
            "micro_f1": scores["micro_f1"],
            "auprc": scores["auprc"],
            "predict_s": time.perf_counter() - started,
            "probabilities": probabilities.round(5).tolist(),
        }
        log(f"{name} on {set_name}: micro-F1 {scores['micro_f1']:.2f}, AUPRC {scores['auprc']:.2f}")
    return sets


def throughput(args, model_dir: Path, examples):
    """Ours (length-sorted batches, in fp32, with --bf16 and with --int8) against transformers'
    text-classification pipeline on the same encoder weights and the same marked texts, batch 1
    (its CPU default) and 32."""
    import torch
    from transformers import AutoModelForSequenceClassification, pipeline

    from odqa.models.tokenizer import load_tokenizer
    from odqa.relation.markers import mark
    from odqa.relation.model import RelationClassifier

    torch.manual_seed(0)
    ours = RelationClassifier.load(model_dir, device="cpu")
    int8 = RelationClassifier.load(model_dir, device="cpu", int8=True)
    bf16 = RelationClassifier.load(model_dir, device="cpu", bf16=True)
    texts = [mark(e.sentence, e.subject, e.object, ours.config.format).text for e in examples]
    rows = []
    for round_ in range(2):  # alternating rounds; best of each
        for name, classifier in (
            ("odqa (sorted, batch 64)", ours),
            ("odqa --bf16 (sorted, batch 64)", bf16),
            ("odqa --int8 (sorted, batch 64)", int8),
        ):
            started = time.perf_counter()
            classifier.predict(examples, batch_size=64)
            rows.append((name, time.perf_counter() - started))
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), num_labels=len(ours.labels), use_safetensors=True
        )
        tokenizer = load_tokenizer(model_dir)
        for batch in (1, 32):
            classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", top_k=None)
            started = time.perf_counter()
            classify(texts, batch_size=batch, truncation=True, max_length=args.max_length)
            rows.append((f"transformers pipeline (batch {batch})", time.perf_counter() - started))
    best = {}
    for name, seconds in rows:
        best[name] = min(seconds, best.get(name, float("inf")))
    return {"examples": len(examples), "seconds": best}


def score_precision(model_dir: Path, examples, precision: str) -> dict:
    """A trained run's scores on `examples` predicted in `precision`: fp32, bf16 (all weights in
    bfloat16) or int8 (the linear layers dynamically quantized)."""
    from odqa.relation.model import RelationClassifier

    flags = {} if precision == "fp32" else {precision: True}
    classifier = RelationClassifier.load(model_dir, device="cpu", **flags)
    scores = score_sets(f"{model_dir.name} {precision}", classifier, {"dev": examples}, classifier.labels)["dev"]
    return {"examples": len(examples), "micro_f1": scores["micro_f1"], "auprc": scores["auprc"]}


def measure_speed(args, dev, dev_sample) -> None:
    """`--speed RUN`: prediction throughput of a trained run (a folder of work/relation/runs) against
    transformers' pipeline, and its whole-dev scores in fp32, with --bf16 and with --int8
    (results/relation_speed.json)."""
    model_dir = WORK / "relation" / "runs" / args.speed
    if not (model_dir / "odqa_relation.json").exists():
        raise SystemExit(f"no trained run {args.speed!r} in {model_dir.parent}")
    stages = WORK / "relation" / "stages"
    redo = set(filter(None, args.redo.split(",")))
    measured = cached_stage(stages, f"speed-{args.speed}", redo, lambda: throughput(args, model_dir, dev_sample))
    scores = {}
    stage = stages / f"{args.speed}.json"
    for precision in ("fp32", "bf16", "int8"):
        if precision == "fp32" and stage.exists():  # the run's own stage scored it on the whole dev already
            run = json.loads(stage.read_text(encoding="utf-8"))
            scores[precision] = {"examples": len(dev)} | {m: run["sets"]["dev"][m] for m in ("micro_f1", "auprc")}
            continue
        scores[precision] = cached_stage(
            stages,
            f"{precision}-{args.speed}",
            redo,
            lambda: score_precision(model_dir, dev, precision),
        )
    pipeline_best = min(v for k, v in measured["seconds"].items() if "pipeline" in k)
    table = (
        f"# KLUE-RE prediction: the run {args.speed} (2 CPU cores)\n\n"
        f"### Throughput ({measured['examples']} dev sentences, same weights, best of 2 alternating rounds)\n\n"
        + markdown_table(
            ["system", "sentences/s", "× pipeline (best batch)"],
            [[name, measured["examples"] / s, pipeline_best / s] for name, s in measured["seconds"].items()],
        )
        + f"\n### Accuracy of each precision (the whole dev set, {len(dev)} sentences)\n\n"
        + markdown_table(
            ["prediction", "dev micro-F1", "dev AUPRC"],
            [[precision, v["micro_f1"], v["auprc"]] for precision, v in scores.items()],
        )
    )
    results = {
        "settings": vars(args),
        "run": args.speed,
        "throughput": measured,
        "scores": scores,
        "compute": "2 CPU cores (shared machine), no GPU",
    }
    write_results("relation_speed", results, table)


def score_calibrated(model_dir: Path, held, dev) -> dict:
    """`odqa re calibrate` on the held-out slice, then the calibrated model scored on `dev`."""
    from odqa.relation.calibration import fit_on
    from odqa.relation.model import RelationClassifier

    classifier = RelationClassifier.load(model_dir, device="cpu")
    fitted, _, _ = fit_on(classifier, held)
    scores = score_sets(f"{model_dir.name} calibrated", classifier, {"dev": dev}, classifier.labels)["dev"]
    return {"examples": len(dev), "micro_f1": scores["micro_f1"], "auprc": scores["auprc"]} | {
        k: v for k, v in fitted.items() if k != "bias"
    }


def vote(held_members, held_gold, dev_members, dev_gold, labels) -> tuple[list[float], dict]:
    """Weights chosen on the held-out slice, and the soft vote on dev with equal and with those weights."""
    from odqa.relation.metrics import auprc, micro_f1
    from odqa.relation.predictions import choose_weights, soft_vote

    weights = choose_weights(held_members, held_gold, labels)
    votes = {}
    for kind, w in (("equal weights", None), ("weights chosen on the held-out slice", weights)):
        voted = soft_vote(dev_members, w)
        votes[kind] = {"micro_f1": micro_f1(voted.argmax(1), dev_gold, labels), "auprc": auprc(voted, dev_gold)}
    return weights, votes


def best_on_held(best_name: str, held, labels, redo: set) -> dict:
    """The best model's predictions on the held-out slice of the training set (cached)."""

    def predict() -> dict:
        from odqa.relation.model import RelationClassifier

        classifier = RelationClassifier.load(WORK / "relation" / "runs" / best_name, device="cpu")
        return score_sets(best_name, classifier, {"held_out": held}, labels)

    return cached_stage(WORK / "relation" / "stages", f"held-{best_name}", redo, predict)


def prior_shift(best_dev, dev_gold, held: dict, held_gold, train_gold, labels, allowed=None) -> dict:
    """Is the gap between the held-out slice and dev the `no_relation` share? From stored probabilities:
    the best model re-weighted by dev's true label shares (an oracle, the most a prior correction could
    give: p(y|x) · q(y)/p(y), renormalised) and by shares estimated from the unlabelled dev sentences
    (calibrated on the held-out slice, then EM label-shift adaptation, Saerens et al. 2002). With
    `allowed` (dev sentences × labels, true where the label was seen with the sentence's entity-type pair
    in training): also the probabilities restricted to those labels after training, as
    `--restrict-types` does inside the model."""
    import numpy as np

    from odqa.relation.calibration import apply_calibration, fit_calibration
    from odqa.relation.data import NO_RELATION
    from odqa.relation.metrics import auprc, micro_f1

    n = len(labels)
    source = np.bincount(train_gold, minlength=n) / len(train_gold)
    target = np.bincount(dev_gold, minlength=n) / len(dev_gold)
    none = labels.index(NO_RELATION)

    def scored(probabilities) -> dict:
        predicted = probabilities.argmax(1)
        return {
            "micro_f1": micro_f1(predicted, dev_gold, labels),
            "auprc": auprc(probabilities, dev_gold),
            "predicted_no_relation": float((predicted == none).mean()),
        }

    def reweighted(probabilities, shares):
        q = probabilities * (shares / np.maximum(source, 1e-12))
        return q / q.sum(1, keepdims=True)

    fitted = fit_calibration(np.array(held["held_out"]["probabilities"]), held_gold)
    calibrated = apply_calibration(best_dev, fitted["temperature"], fitted["bias"])
    shares = source.copy()
    for _ in range(200):  # EM: posteriors under the current shares, then their mean as the new shares
        new = reweighted(calibrated, shares).mean(0)
        done = np.abs(new - shares).max() < 1e-8
        shares = new
        if done:
            break
    result = {
        "no_relation_share": {"train": float(source[none]), "dev": float(target[none])},
        "held_out": {m: held["held_out"][m] for m in ("micro_f1", "auprc")},
        "dev": scored(best_dev),
        "oracle prior": scored(reweighted(best_dev, target)),
        "em adapted": scored(reweighted(calibrated, shares)) | {"estimated_no_relation": float(shares[none])},
    }
    if allowed is not None:
        restricted = np.where(allowed, best_dev, 0.0)
        result["type restricted"] = scored(restricted / restricted.sum(1, keepdims=True)) | {
            "changed": float((restricted.argmax(1) != best_dev.argmax(1)).mean()),
            "gold_ruled_out": float((~allowed[np.arange(len(dev_gold)), dev_gold]).mean()),
        }
    return result


def type_mask(train, examples, labels):
    """examples × labels: true where the label was seen in `train` with the example's entity-type pair
    (every label for a pair never seen; `no_relation` always), as `--restrict-types` rules."""
    from odqa.relation.model import allowed_labels, allowed_table, type_pair_key

    allowed = allowed_labels(train)
    rows = {pair: row for row, pair in enumerate(sorted(allowed))}
    return allowed_table(allowed, labels)[[rows.get(type_pair_key(*e.type_pair), len(rows)) for e in examples]]


def prior_table(shift: dict) -> str:
    shares = shift["no_relation_share"]
    rows = [["held-out slice of the training set (800)", *shift["held_out"].values(), "-"]]
    names = {
        "dev": "dev, as predicted",
        "oracle prior": "dev, re-weighted by dev's true label shares (an oracle)",
        "em adapted": f"dev, calibrated + EM label-shift adaptation (estimated no_relation "
        f"{100 * shift['em adapted']['estimated_no_relation']:.0f} %)",
    }
    if "type restricted" in shift:
        names["type restricted"] = (
            "dev, labels restricted to those seen with the entity-type pair in training "
            f"({100 * shift['type restricted']['changed']:.1f} % of answers change; the gold label is ruled out "
            f"for {100 * shift['type restricted']['gold_ruled_out']:.1f} %)"
        )
    for key, label in names.items():
        rows.append([label, shift[key]["micro_f1"], shift[key]["auprc"], 100 * shift[key]["predicted_no_relation"]])
    return (
        f"\n### Where the dev gap is: the best model; no_relation is {100 * shares['train']:.0f} % of the training "
        f"pool and {100 * shares['dev']:.0f} % of dev\n\n"
        + markdown_table(["scored on", "micro-F1", "AUPRC", "predicted no_relation %"], rows)
    )


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
