"""Training and scoring the runs of the KLUE-RE benchmark: the data split, one trained run (its
probabilities on each scored set), a run scored in another precision or after calibration, and the
soft vote of runs with weights chosen on the held-out slice."""

from __future__ import annotations

import random
import time
from pathlib import Path

from common import DATA, ROOT, WORK, cached_stage, log

KLUE = DATA / "klue_re"
ENCODER = ROOT / "models" / "me5-small-re"


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


def score_precision(model_dir: Path, examples, precision: str) -> dict:
    """A trained run's scores on `examples` predicted in `precision`: fp32, bf16 (all weights in
    bfloat16) or int8 (the linear layers dynamically quantized)."""
    from odqa.relation.model import RelationClassifier

    flags = {} if precision == "fp32" else {precision: True}
    classifier = RelationClassifier.load(model_dir, device="cpu", **flags)
    scores = score_sets(f"{model_dir.name} {precision}", classifier, {"dev": examples}, classifier.labels)["dev"]
    return {"examples": len(examples), "micro_f1": scores["micro_f1"], "auprc": scores["auprc"]}


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
