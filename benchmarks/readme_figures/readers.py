"""README figures of readers: the Korean model recipe and its runs, reader techniques, the
English reader against its peers, the first hour of `make demo`, and reader ensembles
(benchmarks/korean_model.py, reader_techniques.py, reader.py, first_hour.py, korean_ensemble.py)."""

from __future__ import annotations

import math
from statistics import mean, stdev

from readme_figures.base import Figure, per_run, results


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
    ".freeze4": "korean_model_freeze4.json",  # the same with 4 layers fixed, trained on the eager attention kernel
    ".eager": "korean_model_bf16_recipe_eager.json",  # the bf16 recipe again, on the eager attention kernel
}
# the run each run is measured against (its `…_em_gain` and `…_f1_change` figures)
KO_BASES = {
    ".recipe": "",
    ".long": ".recipe",
    ".3ep": ".long",
    ".freeze6": ".recipe",
    ".freeze4": ".recipe",
    ".eager": ".recipe",
}


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
NEG = "reader_negatives_ko.json"
ENS_SETS = {"heldout": "held-out 300", "competition": "competition validation"}


def ens_scores(data: dict, set_name: str, who: str) -> dict:
    """korean_ensemble.py's korquad scores of reader a, reader b or their vote (weights from the held-out 300)."""
    if who == "vote":
        return data["vote"][set_name]["korquad"]
    return data["members"][data["labels"]["ab".index(who)]][set_name]["korquad"]


FIGURES: dict[str, Figure] = {
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
    "model.speedup_bf16_fused": Figure(
        MODEL, lambda d: d["speed"]["speedup"]["trimmed + frozen + bf16 autocast, fused attention"], "{:.1f}×"
    ),
    "model.eager_gain": Figure(  # the trainer's eager attention against PyTorch's fused kernel, under bf16
        MODEL,
        lambda d: (
            d["speed"]["windows_per_s"]["trimmed + frozen + bf16 autocast"]
            / d["speed"]["windows_per_s"]["trimmed + frozen + bf16 autocast, fused attention"]
        ),
        "{:.2f}×",
    ),
    "model.eager_gain_384": Figure(
        MODEL,
        lambda d: d["speed"]["attention_by_length"]["384"]["eager"] / d["speed"]["attention_by_length"]["384"]["sdpa"],
        "{:.1f}×",
    ),
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
    # multilingual-e5-small as an English reader beside MiniLM (reader.py stages en-me5-train, en-me5-eval)
    "reader.me5_en.em": Figure("reader_me5_en.json", lambda d: d["en-me5-eval"]["exact_match"], "{:.1f}"),
    "reader.me5_en.f1": Figure("reader_me5_en.json", lambda d: d["en-me5-eval"]["f1"], "{:.1f}"),
    "reader.me5_en.minutes": Figure("reader_me5_en.json", lambda d: d["en-me5-train"]["train_seconds"] / 60, "{:.0f}"),
    "reader.me5_en.em_gain": Figure(
        "reader_me5_en.json",
        lambda d: (
            d["en-me5-eval"]["exact_match"]
            - results("reader.json")["en-eval"]["systems"]["odqa (logits)"]["exact_match"]
        ),
        "{:+.1f}",
    ),
    "reader.train_odqa": Figure("reader.json", lambda d: d["en-train-speed"]["odqa_examples_per_s"], "{:.1f}"),
    "reader.train_hf": Figure("reader.json", lambda d: d["en-train-speed"]["hf_trainer_examples_per_s"], "{:.1f}"),
    "reader.train_ratio": Figure(
        "reader.json",
        lambda d: d["en-train-speed"]["odqa_examples_per_s"] / d["en-train-speed"]["hf_trainer_examples_per_s"],
        "{:.1f}×",
    ),
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
    # the recipe's reader trained on with retrieved negatives and without (benchmarks/reader_negatives_ko.py)
    **{
        f"neg.{who}.{name}": Figure(NEG, lambda d, w=who, f=fn: f(d["readers"][w]), form)
        for who in ("start", "negatives", "control")
        for name, fn, form in (
            ("k", lambda r: r["chosen"]["k"], "{}"),
            ("weight", lambda r: r["chosen"]["retriever_weight"], "{:g}"),
            ("tune_em", lambda r: r["tuning_em"], "{:.1f}"),
            ("em", lambda r: r["validation_em_chosen"], "{:.1f}"),
            ("best_em", lambda r: r["validation_em_best"], "{:.1f}"),
            ("gold_em", lambda r: r["held_out_gold"]["exact_match"], "{:.1f}"),
            ("gold_f1", lambda r: r["held_out_gold"]["f1"], "{:.1f}"),
            *((f"em_k{k}", lambda r, k=k: r["validation_em_by_k"][str(k)], "{:.1f}") for k in (1, 3, 5, 10)),
            ("k1_to_k10", lambda r: r["validation_em_by_k"]["10"] - r["validation_em_by_k"]["1"], "{:+.1f}"),
        )
    },
    "neg.steps": Figure(NEG, lambda d: d["steps"]),
    "neg.minutes": Figure(NEG, lambda d: max(t["minutes"] for t in d["trained"].values()), "{:.0f}"),
}
