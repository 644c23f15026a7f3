"""A cross-encoder reranker from the multilingual-e5-small family, over the best hybrid of this
machine: BM25 with its top 30 re-scored by multilingual-e5-small (`rescore_ko.py`, its tuned weight).

The reranker starts from `--start`: the Korean reader of `korean_model.py` (multilingual-e5-small,
trimmed, fine-tuned for QA: it has learnt to match a question to a passage already) or any encoder
folder. `odqa train-reranker` trains it listwise on competition train questions (less the 300 that
rescore_ko.py / retrieval_dense_ko.py hold out for tuning), each with its positive passage and BM25
hard negatives from the full kowiki index, within a stated budget. It then re-sorts the hybrid's
top `--rerank-top` of every evaluation question (competition validation, KorQuAD 1.0 dev sample:
the questions rescore_ko.py evaluates), through the library's retriever (`HybridRetriever` with
`rescorer` and `reranker`, as `odqa search --rescore … --rerank …` builds it).

Stages, each cached in benchmarks/work/rerank/ (`--redo STAGE` runs one again):
  data      the training file (competition train less the held-out 300)
  train     `odqa train-reranker` (resumes where a killed run stopped)
  evaluate  has-answer top-k of the hybrid and of the hybrid re-sorted by the reranker
  fuse      the reranker's score fused with the hybrid's (`Reranker(weight=…)`, `--rerank-weight`):
            fusion and weight chosen on rescore_ko.py's 150 tuning questions (held out of training),
            then the evaluation sets; each pair is scored once (OUT/scores/) and re-sorted at every
            weight by `Reranker.resort`, the step `rerank` takes after scoring
  bf16      the reranker in bfloat16 (`--rerank-bf16`): its speed against fp32 on the same pairs
            (alternating rounds) and the fused rankings of the competition validation from bf16 scores
  e2e_tune  the questions e2e.py tunes k and weights on with this reranker: the reader's held-out
            questions (`--reader-held-out`, korean_model.py's) less those the reranker trained on
            (the seeded sample `odqa train-reranker` drew, drawn again)

Needs rescore_ko.py's candidates, vectors and evaluate stage (benchmarks/work/rescore/).

    python rerank_ko.py --start work/korean_model/ko-reader [--train-questions 1500] [--minutes 45]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import WORK, cached_stage, log, sample, squad_subset, topk_table, write_results
from rescore_ko import COMP_TRAIN, ENCODER, EVALUATED, FULL_INDEX, KS, cached_vectors, held_out_ids, rescored
from rescore_ko import OUT as RESCORE
from rescore_ko import question_sets as rescore_sets

OUT = WORK / "rerank"
FUSE_WEIGHTS = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0]
FUSE_METHODS = ["combsum", "zscore"]
CHECKED = 20  # questions per evaluation set searched again through the retriever, to check the stage's arithmetic


def stage_data() -> dict:
    """Competition train less rescore_ko.py's 300 held-out questions (its tuning 150 among them)."""
    from odqa.io.files import load_json
    from odqa.io.questions import read_questions

    held = held_out_ids(q.id for q in read_questions(COMP_TRAIN))
    rest = squad_subset(load_json(COMP_TRAIN), lambda i: i not in held)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "train-questions.json").write_text(json.dumps(rest, ensure_ascii=False), encoding="utf-8")
    kept = sum(len(p["qas"]) for a in rest["data"] for p in a["paragraphs"])
    return {"questions": kept, "held_out": len(held)}


def stage_train(args) -> dict:
    from odqa.models.loading import cpu_computes_bf16

    precision = "bf16" if cpu_computes_bf16() else "no"
    options = {
        "--negatives": args.negatives,
        "--max-length": args.max_length,
        "--batch-size": args.batch_size,
        "--lr": args.lr,
        "--epochs": 1,
        "--max-train-examples": args.train_questions,
        "--max-minutes": args.minutes,
        "--mixed-precision": precision,
        "--save-steps": 25,
    }
    command = [sys.executable, "-m", "odqa", "train-reranker", "--model", str(args.start)]
    command += [
        "--train",
        str(OUT / "train-questions.json"),
        "--index",
        str(FULL_INDEX),
        "--out",
        str(OUT / "reranker"),
    ]
    command += [str(x) for pair in options.items() for x in pair] + ["--freeze-embeddings"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    state = json.loads((OUT / "reranker" / "trainer_state.json").read_text(encoding="utf-8"))
    return {
        "start": str(args.start),
        "options": options,
        "freeze_embeddings": True,
        "seconds": time.perf_counter() - start,
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "history": state["history"],
        "finished": state.get("finished"),
        "steps": state["step"],
        "total_steps": state["total_steps"],
    }


def hybrid_and_reranker(args):
    """The best hybrid of rescore_ko.py (BM25 + e5 re-scoring at its tuned weight, its passage vectors
    cached), its label and weight, the full BM25 index, and the trained reranker (weight: alone)."""
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.rerank import Reranker
    from odqa.retrieval.sparse import SparseIndex

    candidates = json.loads((RESCORE / "candidates.json").read_text(encoding="utf-8"))
    weight = float(json.loads((RESCORE / "evaluate.json").read_text(encoding="utf-8"))["chosen_weight"])
    full = SparseIndex.load(FULL_INDEX)
    retriever = rescored(full, DenseEncoder.load(args.encoder), cached_vectors(candidates), weight, candidates["top"])
    hybrid = f"BM25 + e5 re-scoring of top {candidates['top']}, w={weight:g}"
    return retriever, hybrid, weight, full, Reranker.load(OUT / "reranker")


def stage_evaluate(args) -> dict:
    from odqa.evaluation import evaluate_retrieval

    retriever, hybrid, weight, _, reranker = hybrid_and_reranker(args)
    sets = rescore_sets()
    results, seconds, counts = {}, {}, {}
    for name in EVALUATED:
        questions = sample(sets[name], args.eval_questions) if args.eval_questions else sets[name]
        counts[name] = len(questions)
        retriever.reranker = None
        results[name] = {hybrid: evaluate_retrieval(retriever, questions, KS)["has_answer"]}
        retriever.reranker, retriever.rerank_top = reranker, args.rerank_top
        start = time.perf_counter()
        results[name][f"{hybrid} + rerank top {args.rerank_top}"] = evaluate_retrieval(retriever, questions, KS)[
            "has_answer"
        ]
        seconds[name] = time.perf_counter() - start
        log(f"{name}: {results[name]}")
    return {
        "weight": weight,
        "rerank_top": args.rerank_top,
        "questions": counts,
        "results": results,
        "seconds": seconds,
    }


def stage_fuse(args) -> dict:
    import numpy as np

    from odqa.retrieval.rerank import tune_rerank

    retriever, hybrid, weight, full, reranker = hybrid_and_reranker(args)
    top = args.rerank_top
    sets = rescore_sets()
    first_stage, scored = {}, {}
    (OUT / "scores").mkdir(parents=True, exist_ok=True)
    timings = OUT / "scores" / "seconds.json"  # of scoring each set's pairs, kept with the scores
    for name in ("tune", *EVALUATED):
        texts = [q.text for q in sets[name]]
        first_stage[name] = retriever.search(texts, k=top, fetch=True)
        path = OUT / "scores" / f"{name.replace(' ', '-')}-top{top}.npy"
        if not path.exists():
            log(f"{name}: scoring {sum(len(h) for h in first_stage[name]):,} pairs")
            start = time.perf_counter()
            np.save(OUT / "scores" / "partial.npy", reranker.score_hits(texts, first_stage[name]))
            (OUT / "scores" / "partial.npy").rename(path)
            seconds = json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else {}
            timings.write_text(json.dumps(seconds | {name: time.perf_counter() - start}), encoding="utf-8")
        scored[name] = np.load(path)

    def tuned(name: str, **grid) -> dict:
        """`tune_rerank` on one set: every pair's stored score re-sorted at each weight (and fusion) of `grid`."""
        return tune_rerank(reranker, sets[name], first_stage[name], scored[name], full.passages, KS, **grid)

    def label(row: dict) -> str:
        return "reranker alone" if row["weight"] is None else f"{row['fusion']} w={row['weight']:g}"

    tuning = tuned("tune", methods=FUSE_METHODS, grid=FUSE_WEIGHTS)
    best = tuning["best"]
    results, checked = {}, {}
    for name in EVALUATED:
        chosen = {"methods": [best["fusion"]], "grid": [best["weight"]]} if best["weight"] is not None else {"grid": []}
        rows = tuned(name, **chosen)
        results[name] = {
            hybrid: rows["first_stage"],
            f"{hybrid} + rerank top {top}, reranker alone": rows["candidates"][0],
            f"{hybrid} + rerank top {top}, {label(best)} (tuned)": rows["candidates"][-1],
        }
        # the library's own path (HybridRetriever → Reranker.rerank) on a sample gives the same rankings
        reranker.weight, reranker.fusion = best["weight"], best["fusion"]
        expected = reranker.resort(first_stage[name][:CHECKED], scored[name][: CHECKED * top])
        retriever.reranker, retriever.rerank_top = reranker, top
        searched = retriever.search([q.text for q in sets[name][:CHECKED]], k=top)
        retriever.reranker = None
        checked[name] = [[h.passage_id for h in hits] for hits in searched] == [
            [h.passage_id for h in hits] for hits in expected
        ]
        log(f"{name}: {results[name]} (library path agrees on {CHECKED}: {checked[name]})")
    return {
        "weight": weight,
        "rerank_top": top,
        "chosen": {"weight": best["weight"], "fusion": best["fusion"]},
        "tuning": {"hybrid": tuning["first_stage"]} | {label(row): row for row in tuning["candidates"]},
        "questions": {name: len(sets[name]) for name in ("tune", *EVALUATED)},
        "results": results,
        "library_path_agrees": checked,
        "scoring_seconds": json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else {},
    }


def stage_bf16(args) -> dict:
    """The reranker scoring in bf16 against fp32: pairs per second on the same pairs (alternating
    rounds, best of each) and the competition validation's fused rankings from bf16 scores beside
    the stored fp32 ones (the fuse stage's)."""
    import numpy as np

    from odqa.retrieval.rerank import Reranker, tune_rerank

    retriever, _, _, full, fp32 = hybrid_and_reranker(args)
    bf16 = Reranker.load(OUT / "reranker", precision="bf16")
    fused = json.loads((OUT / "fuse.json").read_text(encoding="utf-8"))
    chosen = fused["chosen"]
    top, sets = fused["rerank_top"], rescore_sets()
    name = EVALUATED[0]
    questions = sets[name]
    candidates = retriever.search([q.text for q in questions], k=top, fetch=True)
    pairs = [(q.text, h.passage.text) for q, hits in zip(questions, candidates) for h in hits]
    timed = pairs[: args.speed_pairs]
    seconds = {"fp32": [], "bf16": []}
    for _ in range(2):
        for label, model in (("fp32", fp32), ("bf16", bf16)):
            start = time.perf_counter()
            model.score([q for q, _ in timed], [p for _, p in timed])
            seconds[label].append(time.perf_counter() - start)
    log(f"{len(timed)} pairs: {seconds}")
    start = time.perf_counter()
    rounded = bf16.score_hits([q.text for q in questions], candidates)
    bf16_seconds = time.perf_counter() - start
    stored = np.load(OUT / "scores" / f"{name.replace(' ', '-')}-top{top}.npy")
    grid = {"methods": [chosen["fusion"]], "grid": [chosen["weight"]]} if chosen["weight"] is not None else {"grid": []}
    rows = {
        label: tune_rerank(fp32, questions, candidates, scores, full.passages, KS, **grid)["candidates"][-1]
        for label, scores in (("fp32", stored), ("bf16", rounded))
    }
    bf16.weight, bf16.fusion = chosen["weight"], chosen["fusion"]
    orders = [bf16.resort(candidates, scores) for scores in (stored, rounded)]
    same_top = [a[0].passage_id == b[0].passage_id for a, b in zip(*orders)]
    return {
        "set": name,
        "questions": len(questions),
        "pairs": len(pairs),
        "speed_pairs": len(timed),
        "seconds": seconds,
        "speedup": min(seconds["fp32"]) / min(seconds["bf16"]),
        "bf16_scoring_seconds": bf16_seconds,
        "chosen": chosen,
        "has_answer": rows,
        "same_first_passage": sum(same_top) / len(same_top),
        "max_abs_score_change": float(np.abs(stored - rounded).max()),
    }


def stage_e2e_tune(args) -> dict:
    """The reader's held-out questions less the reranker's training sample (drawn again as
    `odqa train-reranker` drew it), written to OUT/e2e-tune.json for e2e.py's --tune."""
    from odqa.io.files import load_json
    from odqa.io.squad import read_qa_files
    from odqa.training.loop import sample_examples

    if not args.reader_held_out or not args.reader_held_out.exists():
        raise SystemExit("stage e2e_tune needs --reader-held-out FILE (korean_model.py's train-heldout.json)")
    trained = json.loads((OUT / "reranker" / "training_config.json").read_text(encoding="utf-8"))
    examples = read_qa_files(trained["train"], require_answers=True)
    seen = {e.id for e in sample_examples(examples, trained["max_train_examples"], trained["seed"])}
    held = load_json(args.reader_held_out)
    kept = squad_subset(held, lambda i: i not in seen)
    (OUT / "e2e-tune.json").write_text(json.dumps(kept, ensure_ascii=False), encoding="utf-8")
    count = sum(len(p["qas"]) for a in kept["data"] for p in a["paragraphs"])
    total = sum(len(p["qas"]) for a in held["data"] for p in a["paragraphs"])
    return {"reader_held_out": str(args.reader_held_out), "questions": total, "kept": count, "trained": len(seen)}


def main() -> None:
    global FULL_INDEX
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=Path, required=True, help="reader or encoder folder the reranker starts from")
    parser.add_argument("--index", type=Path, default=FULL_INDEX, help="the BM25 index of `make demo`")
    parser.add_argument("--encoder", type=Path, default=ENCODER, help="the re-scoring encoder (rescore_ko.py's)")
    parser.add_argument("--train-questions", type=int, default=1500, help="a seeded sample of the training questions")
    parser.add_argument("--negatives", type=int, default=3, help="BM25 hard negatives per question")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4, help="questions per batch")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--minutes", type=float, default=60, help="training budget (the run stops, saved, after it)")
    parser.add_argument("--rerank-top", type=int, default=20)
    parser.add_argument("--eval-questions", type=int, default=0, help="a seeded sample of each set (0: all)")
    parser.add_argument("--speed-pairs", type=int, default=640, help="pairs timed in fp32 and bf16 (stage bf16)")
    parser.add_argument("--reader-held-out", type=Path, default=None, help="korean_model.py's train-heldout.json")
    parser.add_argument("--redo", default="")
    args = parser.parse_args()
    FULL_INDEX = args.index
    missing = [s for s in ("candidates", "evaluate") if not (RESCORE / f"{s}.json").exists()]
    if missing:
        parser.error(f"run rescore_ko.py first: no {', '.join(missing)} stage in {RESCORE}")
    redo = {s for s in args.redo.split(",") if s}
    results = {
        "data": cached_stage(OUT, "data", redo, stage_data),
        "train": cached_stage(OUT, "train", redo, lambda: stage_train(args)),
        "evaluate": cached_stage(OUT, "evaluate", redo, lambda: stage_evaluate(args)),
        "fuse": cached_stage(OUT, "fuse", redo, lambda: stage_fuse(args)),
        "bf16": cached_stage(OUT, "bf16", redo, lambda: stage_bf16(args)),
        "compute": "2 CPU cores (shared machine), no GPU",
    }
    if args.reader_held_out or (OUT / "e2e_tune.json").exists():  # only e2e.py's tuning needs it
        results["e2e_tune"] = cached_stage(OUT, "e2e_tune", redo, lambda: stage_e2e_tune(args))
    train, ev = results["train"], results["evaluate"]
    last = train["history"][-1]
    sections = [
        f"# A cross-encoder reranker from {Path(train['start']).name} over the best hybrid (full kowiki sample)\n\n"
        f"Trained by `odqa train-reranker` on {train['options']['--max-train-examples']} of "
        f"{results['data']['questions']:,} competition train questions (1 positive + "
        f"{train['options']['--negatives']} BM25 hard negatives each, {train['options']['--max-length']} tokens, "
        f"lr {train['options']['--lr']:g}, precision {train['options']['--mixed-precision']}, word embeddings fixed): "
        f"{train['steps']} of {train['total_steps']} steps in {train['train_seconds'] / 60:.0f} min on 2 CPU cores, "
        f"last loss {last['loss']:.3f}{'' if train['finished'] else ' (stopped by the time budget)'}."
    ]
    for name, systems in ev["results"].items():
        sections.append(
            f"### {name} ({ev['questions'][name]} questions), has-answer top-k (%); searching with re-ranking "
            f"took {ev['seconds'][name] / 60:.1f} min\n\n" + topk_table("system", systems, KS)
        )
    fused = results["fuse"]
    chosen = fused["chosen"]
    sections.append(
        f"### The reranker's score fused with the hybrid's: choosing the fusion and weight on "
        f"{fused['questions']['tune']} held-out competition train questions (best top-1 + top-5), has-answer "
        f"top-k (%)\n\n" + topk_table("system", fused["tuning"], KS)
    )
    for name, systems in fused["results"].items():
        agrees = "the same" if fused["library_path_agrees"][name] else "NOT the same"
        sections.append(
            f"### {name} ({fused['questions'][name]} questions): the hybrid re-sorted by the reranker fused at the "
            f"chosen {chosen['fusion']} weight {chosen['weight']}, has-answer top-k (%)\n\n"
            + topk_table("system", systems, KS)
            + f"\nSearching {CHECKED} of them through `HybridRetriever` with `Reranker(weight={chosen['weight']}, "
            f"fusion={chosen['fusion']!r})` gives {agrees} rankings as re-sorting the stored scores."
        )
    half = results["bf16"]
    rows = {f"{label} scores": half["has_answer"][label] for label in ("fp32", "bf16")}
    sections.append(
        f"### The reranker in bf16 (`--rerank-bf16`): {half['speedup']:.2f}× the pairs per second of fp32 "
        f"({half['speed_pairs']} pairs of the {half['set']}, best of 2 alternating rounds); the hybrid re-sorted "
        f"at the chosen weight from each precision's scores ({half['questions']} questions, has-answer top-k %; "
        f"the first passage is the same for {100 * half['same_first_passage']:.1f} %)\n\n"
        + topk_table("scores", rows, KS)
    )
    if "e2e_tune" in results:
        tune = results["e2e_tune"]
        sections.append(
            f"e2e.py tunes with this reranker on {tune['kept']} of the reader's {tune['questions']} held-out "
            f"questions: the rest were among the {tune['trained']} the reranker trained on."
        )
    write_results("rerank_ko", results, "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
