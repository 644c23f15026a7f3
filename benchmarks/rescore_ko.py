"""Re-scoring BM25's top N with multilingual-e5-small on the fly, over the whole kowiki sample.

Encoding all 499,993 kowiki passages with a 12-layer encoder is hours of CPU (~10 passages/s on 2
cores), so a dense index of the collection is out of reach here. The cheap alternative: BM25
searches the full index, the encoder (zero-shot, its own prefixes and mean pooling) encodes only
each question's top N passages, and its cosine is fused with BM25's score (combsum, one weight)
— `odqa search --rescore models/me5-small` (`odqa.retrieval.rescore`). The weight is chosen on
held-out competition train questions (the same 300 that retrieval_dense_ko.py holds out; a seeded
150 of them), never on the evaluation sets.

Stages, each cached in benchmarks/work/rescore/ (`--redo STAGE` runs one again):
  candidates  BM25 top N of every question (full kowiki index of `make demo`)
  encode      every candidate passage once (resumable, a chunk at a time) and every question
  evaluate    has-answer top-k of BM25 and of BM25 + re-scoring at each weight, through the
              library's retriever (passage vectors from the encode stage fill its cache)
  latency     seconds per question with an empty cache, against BM25 alone, re-scoring in fp32 and bf16
  bf16        the evaluation sets' candidates encoded again with the encoder's weights in bfloat16
              (`--rescore-bf16`), its rankings at the tuned weight against fp32's, and passages/s of
              both on the same passages (each timed twice, alternating; the faster kept)

    python rescore_ko.py [--top 30] [--stages ...]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from common import DATA, ROOT, WORK, cached_stage, log, sample, topk_table, write_results

OUT = WORK / "rescore"
FULL_INDEX = ROOT / "indexes" / "kowiki-bm25"
ENCODER = ROOT / "models" / "me5-small"
COMP_TRAIN = DATA / "boostcamp_odqa/train.squad.json"
TUNE_N, KORQUAD_N, CHUNK = 150, 200, 512
WEIGHTS = [0.25, 0.5, 1.0, 2.0, 4.0, float("inf")]
KS = [1, 5, 10, 20]
STAGES = ["candidates", "encode", "evaluate", "latency", "bf16"]
EVALUATED = ("competition validation", "KorQuAD 1.0 dev sample")
SPEED_SAMPLE = 256  # passages each precision encodes for the throughput ratio


def held_out_ids(ids) -> set[str]:
    """Which of the competition train question `ids` are the 300 that retrieval_dense_ko.py holds out
    for tuning (the same seeded draw)."""
    return set(random.Random(5).sample(sorted(ids), 300))


def held_out_questions():
    """The 300 competition train questions retrieval_dense_ko.py holds out for tuning, a seeded 150 of them."""
    from odqa.io import read_questions

    questions = read_questions(COMP_TRAIN)
    held = held_out_ids(q.id for q in questions)
    return sample([q for q in questions if q.id in held], TUNE_N)


def question_sets() -> dict:
    from odqa.io import read_questions

    return {
        "tune": held_out_questions(),
        "competition validation": read_questions(DATA / "boostcamp_odqa/validation.squad.json"),
        "KorQuAD 1.0 dev sample": sample(read_questions(DATA / "korquad/KorQuAD_v1.0_dev.json"), KORQUAD_N),
    }


def stage_candidates(top: int) -> dict:
    from odqa.retrieval.sparse import SparseIndex

    full = SparseIndex.load(FULL_INDEX)
    out = {}
    for name, questions in question_sets().items():
        out[name] = [[h.passage_id for h in hits] for hits in full.search([q.text for q in questions], k=top)]
    unique = sorted({pid for lists in out.values() for ids in lists for pid in ids})
    return {"top": top, "passage_ids": out, "unique_passages": unique}


def stage_encode(candidates: dict, precision: str = "fp32") -> dict:
    """Vectors of every candidate passage (bf16: of the evaluation sets' candidates), a chunk at a
    time into OUT/vectors/ (bf16: OUT/vectors-bf16/; a rerun resumes)."""
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.sparse import SparseIndex

    full = SparseIndex.load(FULL_INDEX)
    encoder = DenseEncoder.load(ENCODER, precision=precision)
    unique, folder = vector_store(candidates, precision)
    folder.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    for number, first in enumerate(range(0, len(unique), CHUNK)):
        path = folder / f"{number:04d}.npy"
        if path.exists():
            continue
        texts = [full.passages[pid].text for pid in unique[first : first + CHUNK]]
        start = time.perf_counter()
        vectors = encoder.encode(texts, "passage")
        seconds += time.perf_counter() - start
        np.save(folder / "partial.npy", vectors)
        (folder / "partial.npy").rename(path)
        log(f"encoded {min(first + CHUNK, len(unique)):,}/{len(unique):,} passages ({precision})")
    return {"passages": len(unique), "seconds_this_run": seconds, "encoder": encoder.config.to_dict()}


def vector_store(candidates: dict, precision: str) -> tuple[list[int], Path]:
    """The passages a precision's encode stage encodes (fp32: every candidate; bf16: those of the
    evaluation sets), and the folder their vectors go to."""
    if precision == "fp32":
        return candidates["unique_passages"], OUT / "vectors"
    evaluated = {pid for name in EVALUATED for ids in candidates["passage_ids"][name] for pid in ids}
    return sorted(evaluated), OUT / f"vectors-{precision}"


def cached_vectors(candidates: dict, precision: str = "fp32") -> OrderedDict:
    unique, folder = vector_store(candidates, precision)
    chunks = [np.load(folder / f"{n:04d}.npy") for n in range((len(unique) + CHUNK - 1) // CHUNK)]
    return OrderedDict(zip(unique, np.concatenate(chunks)))


def rescored(full, encoder, vectors: OrderedDict, weight: float, top: int):
    """BM25 re-scored by `encoder` at `weight`, its passage cache filled with `vectors`."""
    from odqa.retrieval.hybrid import HybridRetriever
    from odqa.retrieval.rescore import DenseRescorer

    rescorer = DenseRescorer(encoder, weight=weight, top=top, cache_size=len(vectors) + 1)
    rescorer.cache = OrderedDict(vectors)
    return HybridRetriever([full], rescorer=rescorer)


def stage_evaluate(candidates: dict) -> dict:
    from odqa.evaluation import evaluate_retrieval
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.sparse import SparseIndex

    top = candidates["top"]
    full = SparseIndex.load(FULL_INDEX)
    encoder = DenseEncoder.load(ENCODER)
    vectors = cached_vectors(candidates)
    sets = question_sets()

    def retriever(weight: float):
        return rescored(full, encoder, vectors, weight, top)

    def label(weight: float) -> str:
        return "e5 alone" if np.isinf(weight) else f"w={weight:g}"

    tuning = {"BM25": evaluate_retrieval(full, sets["tune"], KS)["has_answer"]}
    for weight in WEIGHTS:
        log(f"tune: {label(weight)}")
        tuning[label(weight)] = evaluate_retrieval(retriever(weight), sets["tune"], KS)["has_answer"]
    best = max(WEIGHTS, key=lambda w: (tuning[label(w)]["top5"] + tuning[label(w)]["top20"], tuning[label(w)]["top1"]))
    results = {}
    for name in EVALUATED:
        questions = sets[name]
        results[name] = {
            "BM25": evaluate_retrieval(full, questions, KS)["has_answer"],
            f"BM25 top {top} re-sorted by e5 alone": evaluate_retrieval(retriever(float("inf")), questions, KS)[
                "has_answer"
            ],
            f"BM25 + e5 re-scoring of top {top}, {label(best)} (tuned)": evaluate_retrieval(
                retriever(best), questions, KS
            )["has_answer"],
        }
    return {
        "top": top,
        "chosen_weight": "inf" if np.isinf(best) else best,
        "tuning": tuning,
        "sets": {name: len(qs) for name, qs in sets.items()},
        "results": results,
    }


def stage_latency(candidates: dict, n: int = 10) -> dict:
    """Seconds per question, one question at a time, with an empty passage cache (the worst case)."""
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.hybrid import HybridRetriever
    from odqa.retrieval.rescore import DenseRescorer
    from odqa.retrieval.sparse import SparseIndex

    full = SparseIndex.load(FULL_INDEX)
    questions = [q.text for q in question_sets()["competition validation"][:n]]

    def rescoring(precision: str) -> HybridRetriever:
        encoder = DenseEncoder.load(ENCODER, precision=precision)
        return HybridRetriever([full], rescorer=DenseRescorer(encoder, top=candidates["top"]))

    systems = {"BM25": full, "BM25 + e5 re-scoring": rescoring("fp32"), "BM25 + e5 re-scoring, bf16": rescoring("bf16")}
    full.search(questions, k=20)  # the postings these questions touch paged in (the re-scorers' caches stay empty)
    timings = {}
    for name, retriever in systems.items():
        retriever.search(questions[:1], k=20)  # warm-up (numba, first batch)
        start = time.perf_counter()
        for question in questions[1:]:
            retriever.search([question], k=20)
        timings[name] = (time.perf_counter() - start) / (len(questions) - 1)
    return {"questions": len(questions) - 1, "seconds_per_question": timings}


def stage_bf16(candidates: dict, chosen_weight) -> dict:
    """bf16 re-scoring against fp32: has-answer top-k of each evaluation set at the tuned weight
    (and by the encoder alone), how far the two rankings agree, and encoding speed."""
    from odqa.evaluation import score_rankings
    from odqa.models.loading import cpu_computes_bf16
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.sparse import SparseIndex

    encoding = stage_encode(candidates, "bf16")
    top, weight = candidates["top"], float(chosen_weight)
    full = SparseIndex.load(FULL_INDEX)
    encoders = {precision: DenseEncoder.load(ENCODER, precision=precision) for precision in ("fp32", "bf16")}
    vectors = {precision: cached_vectors(candidates, precision) for precision in encoders}
    shared = list(vectors["bf16"])
    cosine = np.einsum(
        "ij,ij->i", np.stack([vectors["fp32"][p] for p in shared]), np.stack(list(vectors["bf16"].values()))
    )
    sets = question_sets()
    results, agreement = {}, {}
    for name in EVALUATED:
        questions = sets[name]
        results[name], ranked = {}, {}
        for precision, encoder in encoders.items():  # one search: its rankings are scored and compared
            retriever = rescored(full, encoder, vectors[precision], weight, top)
            ranked[precision] = retriever.search_arrays([q.text for q in questions], max(KS))[1]
            results[name][f"BM25 + e5 re-scoring of top {top}, w={weight:g}, {precision}"] = score_rankings(
                ranked[precision], questions, full.passages, KS
            )["has_answer"]
        same = ranked["fp32"] == ranked["bf16"]
        agreement[name] = {
            "same_top1": 100 * float(same[:, 0].mean()),
            "same_top20_order": 100 * float(same.all(axis=1).mean()),
        }
    speed = {precision: 0.0 for precision in encoders}
    texts = [full.passages[pid].text for pid in sample(shared, SPEED_SAMPLE)]
    for _ in range(2):
        for precision, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(texts, "passage")
            speed[precision] = max(speed[precision], len(texts) / (time.perf_counter() - start))
    return {
        "top": top,
        "weight": weight,
        "passages": encoding["passages"],
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "results": results,
        "agreement": agreement,
        "passages_per_second": speed,
        "speedup": speed["bf16"] / speed["fp32"],
        "cpu_computes_bf16": cpu_computes_bf16(),
    }


def main() -> None:
    global FULL_INDEX, ENCODER
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=30, help="BM25 candidates re-scored per question")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--redo", default="")
    parser.add_argument("--index", type=Path, default=FULL_INDEX, help="the BM25 index of `make demo`")
    parser.add_argument("--encoder", type=Path, default=ENCODER, help="from `odqa import-model multilingual-e5-small`")
    args = parser.parse_args()
    FULL_INDEX, ENCODER = args.index, args.encoder
    redo = {s for s in args.redo.split(",") if s}
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    runners = {"encode": stage_encode, "evaluate": stage_evaluate, "latency": stage_latency}

    def kept(stage: str) -> dict:
        return results.get(stage) or json.loads((OUT / f"{stage}.json").read_text(encoding="utf-8"))

    def run(stage: str):
        if stage == "candidates":
            return lambda: stage_candidates(args.top)
        if stage == "bf16":
            return lambda: stage_bf16(kept("candidates"), kept("evaluate")["chosen_weight"])
        return lambda: runners[stage](kept("candidates"))

    for stage in [s for s in args.stages.split(",") if s]:
        results[stage] = cached_stage(OUT, stage, redo, run(stage))
    if not {"evaluate", "latency", "bf16"} <= set(results):
        return
    ev, latency = results["evaluate"], results["latency"]["seconds_per_question"]
    sections = []
    for set_name, systems in ev["results"].items():
        sections.append(
            f"### {set_name} ({ev['sets'][set_name]} questions), full kowiki sample (499,993 passages), "
            "has-answer top-k (%)\n\n" + topk_table("system", systems, KS)
        )
    sections.append(
        f"Weight chosen on {ev['sets']['tune']} held-out competition train questions (w={ev['chosen_weight']}):\n\n"
        + topk_table("re-scoring", ev["tuning"], KS)
    )
    sections.append(
        f"Latency, one question at a time with an empty passage cache, 2 CPU cores: BM25 "
        f"{1000 * latency['BM25']:.0f} ms, BM25 + e5 re-scoring of the top {ev['top']} "
        f"{1000 * latency['BM25 + e5 re-scoring']:.0f} ms (in bf16: "
        f"{1000 * latency['BM25 + e5 re-scoring, bf16']:.0f} ms). Encoding: {results['encode']['passages']:,} passages."
    )
    bf16 = results["bf16"]
    agreement = " ".join(
        f"{name}: the same top-1 for {a['same_top1']:.1f} % of questions, the same top 20 in the same order for "
        f"{a['same_top20_order']:.1f} %."
        for name, a in bf16["agreement"].items()
    )
    cpu = "a CPU with bf16 instructions" if bf16["cpu_computes_bf16"] else "a CPU without bf16 instructions"
    sections.append(
        f"### Re-scoring in bf16 (`--rescore-bf16`): the {bf16['passages']:,} candidate passages of both evaluation "
        f"sets encoded again with bfloat16 weights, {bf16['speedup']:.2f}x the passages/s of fp32 on the same "
        f"{SPEED_SAMPLE} passages ({cpu}); vector cosine to fp32 ≥ {bf16['cosine_min']:.5f}\n\n"
        + "\n\n".join(f"{name}:\n\n" + topk_table("system", systems, KS) for name, systems in bf16["results"].items())
        + f"\n\n{agreement}"
    )
    summary = {k: v for k, v in results.items() if k != "candidates"}
    candidates = results["candidates"]
    summary["candidates"] = {"top": candidates["top"], "unique_passages": len(candidates["unique_passages"])}
    write_results("rescore_ko", summary, "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
