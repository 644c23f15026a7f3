"""`relation.py --speed RUN`: a trained run's prediction throughput against transformers' pipeline on
the same weights, and its scores in fp32, bf16 and int8 (results/relation_speed.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import WORK, cached_stage, markdown_table, write_results
from relation_bench.runs import score_precision


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
