"""What won the competition, measured on the Korean reader (multilingual-e5-small, trimmed):
heads, augmentation, retrieved negatives, curriculum, pseudo-labels and ensembles, each against the
plain recipe with the same budget and seeds.

Every run is `odqa train-reader` with the Korean reader recipe (`korean_model.py`'s, capped at
`--steps` optimizer steps) plus one technique, for each of `--seeds`; each reader then reads, with
the gold passage, the held-out 300 competition-train questions (for choosing ensemble weights),
a KorQuAD 1.0 dev sample and the competition validation, writing n-best files (probabilities).
Ensembles vote over those files: the baseline's seeds (soft by character offsets, and hard on
answer text), plus any `--extra-reader` (e.g. one on another tokenizer), weights chosen on the
held-out 300. A technique helps when its mean beats the baseline's by more than the seeds' spread.

Each reader and reading is cached under work/reader_techniques/ (a killed run resumes: train-reader
resumes its checkpoint, finished readings are kept). Needs `korean_model.py --stages import,trim,split`
(run first automatically) and, for `negatives` and `pseudo`, a BM25 index of the kowiki sample
(`--index`, default ../indexes/kowiki as `make demo` builds it). `pseudo` first has its labeler (the
baseline of the seed, or `--pseudo-labeler READER`) answer the held-out 300 end to end and trains only
when some probability threshold makes those answers at least half exact; that threshold then picks
which of the competition's 600 test questions become training data.

    python reader_techniques.py                              # all techniques, 3 seeds, the full recipe (GPU)
    python reader_techniques.py --steps 40 --seeds 0 --techniques baseline,cnn   # a CPU smoke run
    python reader_techniques.py --steps 200 --seeds 0 --baseline-seeds 0,1,2 --seeds-of cnn=0,1 \\
        --techniques baseline,cnn,mask --vote baseline,cnn
        # the CPU budget (~35 min a run): the baseline's 3 seeds give the noise, each technique one seed
        # (the CNN head a second), and the baseline and CNN readers vote together
    python reader_techniques.py --steps 200 --seeds 0 --techniques cnn+mask --keep
        # one more row (techniques joined by + are trained together) beside the stored results' rows,
        # which are kept when they were made with the same steps, recipe and evaluation sets
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, WORK, log, markdown_table, sample, write_results

OUT = WORK / "reader_techniques"
ODQA = [sys.executable, "-m", "odqa"]
KOREAN = WORK / "korean_model"
KORQUAD_SAMPLE = int(os.environ.get("KO_KORQUAD_SAMPLE", "1000"))
RECIPE = [  # `make korean-reader`'s settings with the linear head (the CNN head is its default since this measured it)
    "--max-length", "384", "--stride", "128", "--batch-size", "16", "--lr", "1e-4",
    "--negative-windows", "0.1", "--freeze-embeddings", "--save-steps", "50", "--metric", "korquad",
]  # fmt: skip
# technique → extra train-reader options ({index}, {difficulty} and {pseudo} are filled in)
TECHNIQUES = {
    "baseline": [],
    "cnn": ["--head", "cnn"],
    "bilstm": ["--head", "bilstm"],
    "mask": ["--augment", "mask:0.5:0.15"],
    "span-mask": ["--augment", "span-mask:0.5:0.15"],
    "negatives": ["--negatives-index", "{index}", "--negatives-per-question", "1", "--negatives-k", "10"],
    "curriculum-length": ["--curriculum", "length", "--curriculum-epochs", "{curriculum_epochs}"],
    "curriculum-agreement": ["--curriculum", "{difficulty}", "--curriculum-epochs", "{curriculum_epochs}"],
    "pseudo": ["--train", "{pseudo}"],
}
NEEDS_INDEX = {"negatives", "pseudo"}
RESULTS = ROOT / "benchmarks" / "results" / "reader_techniques.json"


def parts(name: str) -> list[str]:
    """A technique's parts: `cnn+mask` is the CNN head trained with masking (each part's options)."""
    return name.split("+")


FULL_STEPS, FULL_EPOCHS = 258, 0.6  # the recipe: 258 steps are 0.6 epoch of its training data


def curriculum_epochs(steps: int) -> float:
    """The curriculum covers the first half of a run: 0.3 epoch of the full recipe, less in a shorter run
    (a run shorter than its curriculum would see only the easiest examples)."""
    return round(FULL_EPOCHS / 2 * steps / FULL_STEPS, 4)


def odqa(*args) -> subprocess.CompletedProcess:
    run = subprocess.run([*ODQA, *map(str, args)], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"odqa {' '.join(map(str, args[:1]))} failed: {run.stderr.strip()[-2000:]}")
    return run


def prepare() -> dict:
    """The trimmed encoder and the held-out split of korean_model.py (run there, cached there)."""
    if not (KOREAN / "me5-small-ko" / "config.json").exists() or not (KOREAN / "train-rest.json").exists():
        subprocess.run([sys.executable, "korean_model.py", "--stages", "import,trim,split"], check=True)
    return {
        "encoder": KOREAN / "me5-small-ko",
        "train": [KOREAN / "train-rest.json", DATA / "tydiqa/korean_tydiqa_train.json"],
        "held_out": KOREAN / "train-heldout.json",
    }


def eval_sets() -> dict[str, Path]:
    """SQuAD-format files read with the gold passage (the KorQuAD sample written once)."""
    from odqa.io.files import load_json

    korquad = OUT / f"korquad-dev-{KORQUAD_SAMPLE}.json"
    if not korquad.exists():
        data = load_json(DATA / "korquad/KorQuAD_v1.0_dev.json")
        ids = {qa["id"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]}
        keep = set(sample(sorted(ids), KORQUAD_SAMPLE))
        articles = []
        for article in data["data"]:
            paragraphs = [p | {"qas": [q for q in p["qas"] if q["id"] in keep]} for p in article["paragraphs"]]
            if any(p["qas"] for p in paragraphs):
                articles.append(article | {"paragraphs": [p for p in paragraphs if p["qas"]]})
        OUT.mkdir(parents=True, exist_ok=True)
        korquad.write_text(json.dumps({"data": articles}, ensure_ascii=False), encoding="utf-8")
    return {"korquad": korquad, "competition": DATA / "boostcamp_odqa/validation.squad.json"}


def train(name: str, seed: int, base: dict, steps: int, fill: dict) -> dict:
    out = OUT / f"{name}-s{seed}-{steps}steps"  # a run of another length is another reader
    state_file = out / "trainer_state.json"
    if not (state_file.exists() and json.loads(state_file.read_text())["finished"]):
        extra = [option.format(**fill) for part in parts(name) for option in TECHNIQUES[part]]
        log(f"training {out.name}")
        args = ["train-reader", "--model", base["encoder"], "--out", out, "--seed", seed, "--max-steps", steps]
        args += [arg for path in base["train"] for arg in ("--train", path)]
        odqa(*args, *RECIPE, *extra, "-q")
    state = json.loads(state_file.read_text())
    return {"steps": state["step"], "seconds": sum(r["seconds"] for r in state["history"]), "path": str(out)}


def read(reader: Path, name: str, questions: Path) -> dict:
    """The reader's n-best on a set (cached) and its scores."""
    out = OUT / "reads" / reader.name / name
    if not (out / "nbest_predictions.json").exists():
        odqa("read", "--reader", reader, "--questions", questions, "--out", out, "--mode", "prob", "-q")
    return score(out / "predictions.json", questions)


def score(predictions: Path, questions: Path) -> dict:
    from odqa.io.questions import read_questions
    from odqa.metrics import score_predictions

    gold = {q.id: q.answers for q in read_questions(questions)}
    preds = json.loads(predictions.read_text(encoding="utf-8"))
    result = score_predictions(preds, gold, "korquad")
    return {"exact_match": result["exact_match"], "f1": result["f1"]}


def difficulty_file(base: dict, seed: int, steps: int, fill: dict) -> Path:
    """Training questions scored by the baseline reader of this seed (gold-span probability)."""
    path = OUT / f"difficulty-s{seed}-{steps}steps.json"
    if not path.exists():
        reader = train("baseline", seed, base, steps, fill)["path"]
        args = ["difficulty", "--reader", reader, "--by", "gold-prob", "--out", path, "-q"]
        odqa(*args, *[a for p in base["train"] for a in ("--train", p)])
    return path


PSEUDO_PRECISION = 50.0  # the kept labels' EM on the held-out questions: more of them right than wrong


def pseudo_file(
    base: dict, seed: int, steps: int, fill: dict, index: Path, labeler: Path | None
) -> tuple[Path | None, dict]:
    """The competition's 600 test questions answered end to end by the labeler (the baseline of the
    seed, or `labeler`), and those above a threshold kept: the lowest probability at which its answers
    to the 300 held-out questions (labelled, treated as unlabelled; no reader trained on them) are exact
    matches at least PSEUDO_PRECISION % of the time. The file (None when no threshold gets there) and
    what was kept."""
    reader = labeler or Path(train("baseline", seed, base, steps, fill)["path"])
    tag = labeler.name if labeler else f"s{seed}-{steps}steps"
    tuning = OUT / f"pseudo-heldout-{tag}.json"
    if not tuning.exists():
        odqa("pseudo-label", "--questions", base["held_out"], "--index", index, "--reader", reader, "--out", tuning,
             "--min-score", "0", "-k", "10", "-q")  # fmt: skip
    curve = json.loads(tuning.with_name(tuning.stem + ".report.json").read_text(encoding="utf-8"))["by_min_score"]
    info = {"labeler": str(reader), "held_out_curve": curve}
    precise = [point for point in curve if point["exact_match"] >= PSEUDO_PRECISION]
    if not precise:
        return None, info | {"held_out": max(curve, key=lambda point: point["exact_match"]), "trained": False}
    chosen = precise[-1]  # the lowest such threshold: the most labels at that precision
    path = OUT / f"pseudo-{tag}.json"
    if not path.exists():
        questions = DATA / "boostcamp_odqa/test_questions.jsonl"
        odqa("pseudo-label", "--questions", questions, "--index", index, "--reader", reader, "--out", path,
             "--min-score", chosen["min_score"], "-k", "10", "-q")  # fmt: skip
    kept = json.loads(path.with_name(path.stem + ".report.json").read_text(encoding="utf-8"))
    return path, info | {
        "min_score": chosen["min_score"],
        "held_out": chosen,
        "kept": kept["kept"],
        "questions": kept["questions"],
        "trained": True,
    }


def ensembles(readers: list[Path], sets: dict[str, Path], held_out: Path) -> dict:
    """Soft (character offsets) and hard voting over the readers, with weights chosen on the held-out
    300 and with equal weights."""
    results = {}
    for method in ("soft", "hard"):
        tuned = OUT / "ensembles" / f"{method}-held-out"
        args = ["ensemble", *[a for r in readers for a in ("--nbest", OUT / "reads" / r.name / "held-out")]]
        run = odqa(*args, "--method", method, "--gold", held_out, "--out", tuned)
        weights = json.loads((tuned / "ensemble.json").read_text())["weights"]
        row = {"weights": weights, "tuning": run.stdout.strip(), "equal weights": {}}
        for set_name, questions in sets.items():
            nbest = [a for r in readers for a in ("--nbest", OUT / "reads" / r.name / set_name)]
            out = OUT / "ensembles" / f"{method}-{set_name}"
            odqa("ensemble", *nbest, "--method", method, "--weights", ",".join(map(str, weights)), "--out", out)
            row[set_name] = score(out / "predictions.json", questions)
            out = OUT / "ensembles" / f"{method}-equal-{set_name}"
            odqa("ensemble", *nbest, "--method", method, "--out", out)
            row["equal weights"][set_name] = score(out / "predictions.json", questions)
        results[method] = row
    return results


def reading_costs(runs: dict[str, list[dict]], questions: Path, n: int = 120) -> dict:
    """Seconds to read `n` questions (gold passage, loaded readers, best of 2 alternating rounds)
    for each technique's first reader and for ensembles of 2 and 3 baseline readers, as ratios to
    the plain reader: a technique should cost its own compute, an ensemble of n about n readings."""
    from odqa.io.squad import read_qa_examples
    from odqa.reader import Reader
    from odqa.reader.ensemble import EnsembleReader

    examples = sample(read_qa_examples(questions), n)
    texts, contexts = [e.question for e in examples], [[e.context] for e in examples]
    readers = {name: Reader.load(runs[name][0]["path"], device="cpu") for name in runs}
    baselines = [Reader.load(r["path"], device="cpu") for r in runs.get("baseline", [])]
    for size in (2, 3):
        if len(baselines) >= size:
            readers[f"ensemble of {size} baselines"] = EnsembleReader(baselines[:size])
    seconds: dict[str, float] = {}
    for _round in range(2):
        for name, reader in readers.items():
            start = time.perf_counter()
            reader.read(texts, contexts)
            seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - start)
    base = seconds.get("baseline")
    return {
        "questions": len(examples),
        "seconds": seconds,
        "ratio": {name: value / base for name, value in seconds.items()} if base else {},
    }


def effects(results: dict) -> dict[str, dict[str, dict]]:
    """Each technique's mean EM minus the baseline's, and each ensemble's EM minus its best member's,
    per set, and whether it is beyond the noise: twice the baseline's
    standard deviation over its seeds (needs ≥ 2 seeds)."""
    baseline = results["runs"].get("baseline", [])
    if not baseline:
        return {}
    out: dict[str, dict[str, dict]] = {}
    members = set(results.get("ensembles", {}).get("members", []))
    for set_name in ("korquad", "competition"):
        base, sd = spread([r[set_name]["exact_match"] for r in baseline])
        scores = {name: spread([r[set_name]["exact_match"] for r in runs])[0] for name, runs in results["runs"].items()}
        best = max((r[set_name]["exact_match"] for g in results["runs"].values() for r in g if r["path"] in members),
                   default=0.0)  # fmt: skip
        for method, row in results.get("ensembles", {}).items():
            if method in ("soft", "hard"):
                scores[f"ensemble-{method}"] = row[set_name]["exact_match"]
                scores[f"ensemble-{method}-equal"] = row["equal weights"][set_name]["exact_match"]
        for name, value in scores.items():
            if name != "baseline":  # a technique against the baseline's mean, an ensemble against its best member
                delta = value - (best if name.startswith("ensemble-") else base)
                beyond = len(baseline) > 1 and abs(delta) > 2 * sd
                out.setdefault(name, {})[set_name] = {"delta": delta, "noise": 2 * sd, "beyond_noise": beyond}
    return out


def _delta(effect: dict | None) -> str:
    if effect is None:
        return "-"
    return f"{effect['delta']:+.1f}{'*' if effect['beyond_noise'] else ''}"


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--techniques", default=",".join(TECHNIQUES))
    parser.add_argument("--seeds", default="0,1,2", help="seeds of every technique's runs")
    parser.add_argument("--baseline-seeds", default=None, help="seeds of the baseline (default: --seeds)")
    parser.add_argument(
        "--seeds-of", action="append", default=[], metavar="TECHNIQUE=SEEDS", help="one technique's own seeds"
    )
    parser.add_argument("--vote", default="baseline", help="techniques whose readers vote together")
    parser.add_argument(
        "--steps", type=int, default=FULL_STEPS, help="optimizer steps per run (258: the recipe's 0.6 epoch)"
    )
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "kowiki", help="BM25 index of kowiki")
    parser.add_argument(
        "--pseudo-labeler",
        type=Path,
        default=None,
        help="the reader that pseudo-labels (default: the baseline of the same seed)",
    )
    parser.add_argument("--extra-reader", type=Path, action="append", default=[], help="more ensemble members")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the stored results' rows (same steps, recipe and sets) for the techniques not run now, "
        "with their vote and reading cost when this run makes none",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    baseline_seeds = [int(s) for s in (args.baseline_seeds or args.seeds).split(",") if s]
    techniques = [t for t in args.techniques.split(",") if t]
    voters = [t for t in args.vote.split(",") if t]
    seeds_of = {"baseline": baseline_seeds}
    for item in args.seeds_of:
        name, _, values = item.partition("=")
        if not values:
            sys.exit(f"--seeds-of wants TECHNIQUE=SEEDS (e.g. cnn=0,1), got {item!r}")
        seeds_of[name] = [int(s) for s in values.split(",") if s]
    unknown = sorted({p for t in {*techniques, *voters, *seeds_of} for p in parts(t) if p not in TECHNIQUES})
    if unknown:
        sys.exit(f"unknown techniques {unknown}; choose from {', '.join(TECHNIQUES)} (or join them with +)")
    indexed = sorted({p for t in techniques for p in parts(t)} & NEEDS_INDEX)
    if indexed and not (args.index / "manifest.json").exists():
        sys.exit(f"{', '.join(indexed)} need a kowiki index at {args.index} (--index)")
    earlier = kept_results(args.steps) if args.keep else None
    base = prepare()
    sets = eval_sets()
    started = time.time()
    runs: dict[str, list[dict]] = {}
    pseudo_labels: dict[str, dict] = {}  # labeler → its held-out precision, threshold and what it kept
    for name in techniques:
        for seed in seeds_of.get(name, seeds):
            fill = {"index": args.index, "curriculum_epochs": curriculum_epochs(args.steps)}
            if name == "curriculum-agreement":
                fill["difficulty"] = difficulty_file(base, seed, args.steps, fill)
            if name == "pseudo":
                fill["pseudo"], labels = pseudo_file(base, seed, args.steps, fill, args.index, args.pseudo_labeler)
                pseudo_labels[Path(labels["labeler"]).name] = labels | {"seed": seed}
                if fill["pseudo"] is None:
                    best = labels["held_out"]
                    log(f"pseudo, seed {seed}: no threshold makes the labeler's held-out answers "
                        f"{PSEUDO_PRECISION:g} % exact (at best {best['exact_match']:.1f} % of the "
                        f"{best['questions']} most confident); not trained")  # fmt: skip
                    continue
            run = train(name, seed, base, args.steps, fill) | {"seed": seed}
            reader = Path(run["path"])
            read(reader, "held-out", base["held_out"])
            for set_name, questions in sets.items():
                run[set_name] = read(reader, set_name, questions)
                log(f"{reader.name} {set_name}: {run[set_name]}")
            runs.setdefault(name, []).append(run)

    results = {
        "device": "cuda" if _cuda() else f"cpu ({os.cpu_count()} cores)",
        "steps": args.steps,
        "seeds": seeds,
        "baseline_seeds": baseline_seeds,
        "seeds_of": seeds_of,
        "korquad_sample": KORQUAD_SAMPLE,
        "curriculum_epochs": curriculum_epochs(args.steps),
        "recipe": RECIPE,
        "runs": runs,
        "hours": (time.time() - started) / 3600,
    }
    if earlier:
        kept = {name: group for name, group in earlier["runs"].items() if name not in runs}
        results["runs"] = kept | runs
        results["kept"] = sorted(kept) + [k for k in earlier.get("kept", []) if k not in kept]
        results["seeds_of"] = {name: [r["seed"] for r in group] for name, group in results["runs"].items()}
        results["baseline_seeds"] = results["seeds_of"].get("baseline", [])
        results["hours"] += earlier["hours"]
        runs = results["runs"]
    if pseudo_labels or (earlier and "pseudo_labels" in earlier):
        results["pseudo_labels"] = (earlier or {}).get("pseudo_labels", {}) | pseudo_labels
    results["train_hours"] = sum(r["seconds"] for group in runs.values() for r in group) / 3600
    members = [Path(r["path"]) for name in voters for r in runs.get(name, [])]
    for extra in args.extra_reader:
        read(extra, "held-out", base["held_out"])
        for set_name, questions in sets.items():
            read(extra, set_name, questions)
        members.append(extra)
    if len(members) >= 2 and all(Path(m).exists() for m in members):
        voting = {"members": [str(m) for m in members], "techniques": voters}
        results["ensembles"] = ensembles(members, sets, base["held_out"]) | voting
    elif earlier and "ensembles" in earlier:
        results["ensembles"] = earlier["ensembles"]  # its members' runs are kept above
    if all(Path(group[0]["path"]).exists() for group in runs.values()) and "baseline" in runs:
        results["reading_cost"] = reading_costs(runs, sets["competition"])
    elif earlier and "reading_cost" in earlier:
        results["reading_cost"] = earlier["reading_cost"]
    results["effects"] = effects(results)
    write_results("reader_techniques", results, table(results))


def kept_results(steps: int) -> dict | None:
    """The stored results, if they were made with this run's steps, recipe and evaluation sets."""
    if not RESULTS.exists():
        return None
    earlier = json.loads(RESULTS.read_text(encoding="utf-8"))
    same = {"steps": steps, "recipe": RECIPE, "korquad_sample": KORQUAD_SAMPLE}
    changed = [key for key, value in same.items() if earlier.get(key) != value]
    if changed:
        sys.exit(f"--keep: {RESULTS} was made with another {', '.join(changed)}; rerun its techniques instead")
    return earlier


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def table(results: dict) -> str:
    sets = ("korquad", "competition")
    noise = results["effects"]
    rows = []
    for name, runs in results["runs"].items():
        row = [name, len(runs)]
        for set_name in sets:
            for key in ("exact_match", "f1"):
                mean, sd = spread([r[set_name][key] for r in runs])
                row.append(f"{mean:.1f} ± {sd:.1f}")
        row.append(" / ".join(_delta(noise.get(name, {}).get(s)) for s in sets))
        row.append(f"{statistics.mean(r['seconds'] for r in runs) / 60:.0f}")
        rows.append(row)
    voting = results.get("ensembles", {})
    counts = {t: len(results["runs"].get(t, [])) for t in voting.get("techniques", ["baseline"])}
    counts["extra"] = len(voting.get("members", [])) - sum(counts.values())  # --extra-reader
    who = " + ".join(f"{n} {t}" for t, n in counts.items() if n)
    members = f"{len(voting.get('members', []))} readers ({who})"
    for method, row in results.get("ensembles", {}).items():
        if method not in ("soft", "hard"):
            continue
        weights = ", ".join(f"{w:g}" for w in row["weights"])
        for kind, scores, key in (
            (f"weights {weights} from the held-out 300", row, f"ensemble-{method}"),
            ("equal weights", row["equal weights"], f"ensemble-{method}-equal"),
        ):
            cells = [scores[s][k] for s in sets for k in ("exact_match", "f1")]
            deltas = " / ".join(_delta(noise.get(key, {}).get(s)) for s in sets)
            rows.append([f"{method} vote of the {members}, {kind}", "-", *cells, deltas, "-"])
    header = ["technique", "seeds", "KorQuAD EM", "KorQuAD F1", "competition EM", "competition F1"]
    header += ["Δ EM (KorQuAD / competition)", "train min"]
    head = (
        f"# Reader techniques on multilingual-e5-small ({results['steps']} steps per run, {results['device']}, "
        f"{results['train_hours']:.1f} h of training)\n\n"
        f"Gold passage; KorQuAD 1.0 dev sample of {results['korquad_sample']}, "
        "competition validation (240); korquad metric (EM / char F1); mean ± standard deviation over seeds. "
        "Δ: a technique against the baseline's mean, a vote against its best member; * marks a difference "
        "beyond twice the baseline's standard deviation over its seeds (the noise).\n\n"
    )
    out = head + markdown_table(header, rows)
    for labeler, kept in results.get("pseudo_labels", {}).items():
        held = kept["held_out"]
        where = f"{held['questions']} of the {kept['held_out_curve'][-1]['questions']} held-out questions"
        if kept["trained"]:
            out += (
                f"\nPseudo-labels (seed {kept['seed']}, labeler {labeler}): {kept['kept']} of the "
                f"{kept['questions']} competition test questions kept, answers of probability ≥ "
                f"{kept['min_score']:.4f} — the lowest threshold at which its end-to-end answers are "
                f"≥ {PSEUDO_PRECISION:g} % exact on the held-out 300 (treated as unlabelled): {where} kept there, "
                f"EM {held['exact_match']:.1f}, F1 {held['f1']:.1f}.\n"
            )
        else:
            out += (
                f"\nPseudo-labels (seed {kept['seed']}, labeler {labeler}): not trained — no threshold "
                f"makes its end-to-end answers to the held-out 300 (treated as unlabelled) ≥ {PSEUDO_PRECISION:g} % "
                f"exact; at best EM {held['exact_match']:.1f}, F1 {held['f1']:.1f} over the most confident "
                f"{where}.\n"
            )
    cost = results.get("reading_cost")
    if cost and cost["ratio"]:
        out += f"\n### Reading cost ({cost['questions']} questions, gold passage, {results['device']}; best of 2)\n\n"
        out += markdown_table(
            ["reader", "seconds", "× plain reader"],
            [[name, cost["seconds"][name], f"{ratio:.2f}"] for name, ratio in cost["ratio"].items()],
        )
    return out


if __name__ == "__main__":
    main()
