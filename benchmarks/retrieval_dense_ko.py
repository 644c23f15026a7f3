"""Korean dense, hybrid and reranked retrieval against BM25, all on the same passages.

The encoder is the small Korean BERT that benchmarks/reader.py pretrains here (`ko-mlm` stage:
4 layers, 256 wide, 2,000 masked-LM steps on the kowiki sample), trained as a bi-encoder on the
competition train questions (less 300 held out for tuning) + MIRACL-ko train (article-level qrels),
with BM25 hard negatives mined from the full kowiki index. The reranker starts from the Korean
reader (the same encoder after QA fine-tuning) and learns from the same BM25 negatives.

Encoding all 500k kowiki passages takes ~2 hours on 2 CPU cores, so the passages searched are a
pool of whole kowiki articles: every gold article of the questions asked, every article among
the full-corpus BM25 top 5 of each question (the distractors BM25 finds hardest) and random
articles. Every system searches the same pool; BM25 on the full corpus is reported beside it.
Fusion weights are tuned on the 300 held-out competition train questions, never on the
evaluation sets (competition validation, KorQuAD dev sample).

`--encoder FOLDER` evaluates that encoder as it is instead (e.g. multilingual-e5-small from `odqa
import-model`: its prefixes and pooling, no training; `--bf16` encodes in bfloat16), and `--reranker
FOLDER` re-sorts with that reranker (e.g. the one rerank_ko.py trains); the results are then
retrieval_dense_ko_<encoder folder name>.{json,md}, and the pool, its BM25 index and the tuning
questions are the same as the default run's.

Each stage caches its result in benchmarks/work/dense/ko-*; `--redo STAGE` runs it again.

    python retrieval_dense_ko.py [--stages ...]
    python retrieval_dense_ko.py --encoder ../models/me5-small --bf16 [--reranker work/rerank/reranker]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from common import DATA, KOWIKI, ROOT, WORK, markdown_table, sample, squad_subset, topk_table, write_results

OUT = WORK / "dense"
FULL_INDEX = ROOT / "indexes" / "kowiki-bm25"
ENCODER_MLM = WORK / "reader" / "ko-encoder"
READER = WORK / "reader" / "ko-reader"
COMP_TRAIN = DATA / "boostcamp_odqa/train.squad.json"
MIRACL = (
    str(DATA / "miracl_ko/topics.miracl-v1.0-ko-train.tsv"),
    str(DATA / "miracl_ko/qrels.miracl-v1.0-ko-train.tsv"),
)
ENCODER = {"pooling": "mean", "similarity": "cosine", "passage_max_length": 256, "batch_size": 64}
HELD_OUT, KORQUAD_N, POOL_DEPTH, RANDOM_ARTICLES = 300, 500, 5, 1000
STAGES = ["split", "pool", "indexes", "train-dense", "train-reranker", "evaluate", "serving"]
KS = [1, 5, 20]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def question_sets() -> dict:
    from odqa.io import read_questions

    held = set(json.loads((OUT / "ko-split.json").read_text(encoding="utf-8"))["held_out_ids"])
    return {
        "tune": [q for q in read_questions(COMP_TRAIN) if q.id in held],
        "competition validation": read_questions(DATA / "boostcamp_odqa/validation.squad.json"),
        "KorQuAD 1.0 dev sample": sample(read_questions(DATA / "korquad/KorQuAD_v1.0_dev.json"), KORQUAD_N),
    }


def stage_split() -> dict:
    """Hold out competition train questions for tuning; the rest is the training file."""
    data = json.loads(COMP_TRAIN.read_text(encoding="utf-8"))
    ids = sorted(qa["id"] for article in data["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"])
    held = set(random.Random(5).sample(ids, HELD_OUT))
    rest = squad_subset(data, lambda i: i not in held)
    (OUT / "ko-train.squad.json").write_text(json.dumps(rest, ensure_ascii=False), encoding="utf-8")
    return {"held_out_ids": sorted(held), "train_questions": len(ids) - len(held)}


def stage_pool() -> dict:
    from odqa.io import read_documents
    from odqa.metrics import normalize_title
    from odqa.retrieval.sparse import SparseIndex

    questions = [q for qs in question_sets().values() for q in qs]
    full = SparseIndex.load(FULL_INDEX)
    wanted_ids: set[str] = set()
    for hits in full.search([q.text for q in questions], k=POOL_DEPTH, fetch=True):
        wanted_ids.update(s.doc_id for h in hits for s in h.passage.sources)
    gold_titles = {normalize_title(q.title) for q in questions if q.title}
    documents = list(read_documents(KOWIKI))
    gold = {d.id for d in documents if normalize_title(d.title) in gold_titles}
    rest = [d.id for d in documents if d.id not in wanted_ids and d.id not in gold]
    extra = set(random.Random(11).sample(rest, RANDOM_ARTICLES))
    keep = wanted_ids | gold | extra
    with open(OUT / "ko-pool.jsonl", "w", encoding="utf-8") as f:
        for d in documents:
            if d.id in keep:
                f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    return {
        "articles": len(keep),
        "gold_articles": len(gold),
        "bm25_articles": len(wanted_ids),
        "random_articles": len(extra),
        "questions_pooled": len(questions),
    }


def stage_indexes() -> dict:
    from odqa.analysis.base import analyzer_from_dict
    from odqa.corpus import CorpusConfig
    from odqa.retrieval.build import build_sparse_index
    from odqa.retrieval.scoring import ScoringConfig

    config = json.loads((FULL_INDEX / "config.json").read_text(encoding="utf-8"))
    index, timings = build_sparse_index(
        OUT / "ko-pool.jsonl",
        OUT / "ko-pool-bm25",
        CorpusConfig(**config["corpus"]),
        analyzer_from_dict(config["analyzer"]),
        ScoringConfig(**config["scoring"]),
        processes=1,
        quiet=True,
    )
    return {"passages": index.n_passages, **timings}


def stage_train_dense() -> dict:
    from odqa.training.dense import DenseTrainingConfig, train_dense

    config = DenseTrainingConfig(
        model=str(ENCODER_MLM),
        train=[str(OUT / "ko-train.squad.json")],
        qrels=[MIRACL],
        out=str(OUT / "ko-dpr"),
        hard_negatives_index=str(FULL_INDEX),
        hard_negatives=1,
        temperature=0.05,
        cache_chunk=64,
        batch_size=64,
        epochs=2,
        lr=1e-4,
        encoder=ENCODER,
        max_minutes=12,
    )
    start = time.perf_counter()
    state = train_dense(config)
    return {"seconds": time.perf_counter() - start, "history": state["history"], "settings": config.to_dict()}


def stage_train_reranker() -> dict:
    from odqa.training.rerank import RerankerTrainingConfig, train_reranker

    config = RerankerTrainingConfig(
        model=str(READER),
        train=[str(OUT / "ko-train.squad.json")],
        index=str(FULL_INDEX),
        out=str(OUT / "ko-reranker"),
        negatives=3,
        epochs=1,
        batch_size=8,
        lr=5e-5,
        max_train_examples=2000,
        reranker={"max_length": 256},
        max_minutes=7,
    )
    start = time.perf_counter()
    state = train_reranker(config)
    return {"seconds": time.perf_counter() - start, "history": state["history"], "settings": config.to_dict()}


def hnsw_against_flat(vectors: np.ndarray, queries: np.ndarray, one_at_a_time: bool = False) -> dict:
    """Recall@10 of HNSW (M=32) against exact search and its speed-up, at several efSearch: all
    queries in one call (a batch job), or one query per call (`one_at_a_time`: as `odqa ask` and
    `odqa serve` search, one question per request)."""
    from odqa.retrieval.dense import make_faiss_index

    def best_time(index) -> tuple[float, np.ndarray]:
        best, ids = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            if one_at_a_time:
                ids = np.concatenate([index.search(queries[i : i + 1], 10)[1] for i in range(len(queries))])
            else:
                _, ids = index.search(queries, 10)
            best = min(best, time.perf_counter() - start)
        return best, ids

    flat_s, exact = best_time(make_faiss_index(vectors, "flat"))
    approx = make_faiss_index(vectors, "hnsw")
    sweep = {}
    for ef in (16, 32, 64, 128, 256):
        approx.hnsw.efSearch = ef
        seconds, ids = best_time(approx)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]))
        sweep[ef] = {"recall@10": recall, "speedup": flat_s / seconds, "ms_per_query": 1000 * seconds / len(queries)}
    return {
        "passages": len(vectors),
        "queries": len(queries),
        "one_at_a_time": one_at_a_time,
        "flat_ms_per_query": 1000 * flat_s / len(queries),
        "default_ef": 128,
        **sweep[128],
        "ef_sweep": sweep,
    }


def stage_serving(encoder_path: Path | None, precision: str) -> dict:
    """HNSW against flat on the evaluate stage's pool vectors, one question per search call (the
    evaluate stage times all questions in one call, where flat's matrix product wins at this size)."""
    from odqa.retrieval.dense import DenseIndex
    from odqa.retrieval.encoder import DenseEncoder

    dense_dir = OUT / (f"ko-pool-dense-{encoder_path.name}" if encoder_path else "ko-pool-dense")
    index = DenseIndex.load(dense_dir)
    vectors = index.faiss_index.reconstruct_n(0, index.faiss_index.ntotal)
    encoder = DenseEncoder.load(encoder_path, precision=precision) if encoder_path else index.encoder
    sets = question_sets()
    sets.pop("tune")
    queries = encoder.encode([q.text for qs in sets.values() for q in qs], "query")
    return hnsw_against_flat(vectors, np.ascontiguousarray(queries, dtype=np.float32), one_at_a_time=True)


def stage_evaluate(
    encoder_path: Path | None = None, reranker_path: Path | None = None, precision: str = "fp32"
) -> dict:
    """Every system on the pool. Without `encoder_path` the trained bi-encoder and reranker of the
    stages before; with it, that encoder as it is (its own prefixes and pooling) and `reranker_path`
    (or no reranker rows)."""
    from odqa.evaluation import evaluate_retrieval
    from odqa.retrieval.dense import DenseIndex
    from odqa.retrieval.encoder import DenseEncoder
    from odqa.retrieval.hybrid import HybridRetriever
    from odqa.retrieval.rerank import Reranker
    from odqa.retrieval.sparse import SparseIndex

    sets = question_sets()
    tune = sets.pop("tune")
    sparse = SparseIndex.load(OUT / "ko-pool-bm25")
    passages = [sparse.passages[i] for i in range(sparse.n_passages)]
    if encoder_path is None:
        encoder, dense_dir = DenseEncoder.load(OUT / "ko-dpr", **ENCODER), OUT / "ko-pool-dense"
        reranker_path = OUT / "ko-reranker"
    else:
        encoder, dense_dir = (
            DenseEncoder.load(encoder_path, precision=precision),
            OUT / f"ko-pool-dense-{encoder_path.name}",
        )
    # an imported encoder's vectors are kept (tens of minutes on 2 cores), so a later failure costs no re-encoding
    kept = OUT / f"ko-pool-vectors-{encoder_path.name}-{precision}.npz" if encoder_path else None
    if kept is not None and kept.exists():
        stored = np.load(kept)
        vectors, encode_s = stored["vectors"], float(stored["seconds"])
    else:
        log(f"encoding {len(passages)} passages")
        start = time.perf_counter()
        vectors = encoder.encode([p.text for p in passages], "passage", progress=True)
        encode_s = time.perf_counter() - start
        if kept is not None:
            np.savez(kept.with_suffix(".partial.npz"), vectors=vectors, seconds=encode_s)
            kept.with_suffix(".partial.npz").rename(kept)
    source = str(encoder_path or OUT / "ko-dpr")
    dense = DenseIndex.build(passages, encoder, "flat", source, sparse.manifest["corpus"], vectors=vectors)
    dense.save(dense_dir)
    reranker = Reranker.load(reranker_path) if reranker_path else None

    # fusion tuned on the held-out training questions: rrf against combsum / zscore at several weights
    candidates = [("rrf", 1.0)] + [(f, w) for f in ("combsum", "zscore") for w in (0.1, 0.25, 0.5, 1.0, 2.0)]
    tuning = {}
    for fusion, w in candidates:
        tuning[f"{fusion} w={w}"] = evaluate_retrieval(HybridRetriever([sparse, dense], fusion, [1.0, w]), tune, KS)[
            "has_answer"
        ]
    best = max(tuning, key=lambda name: (tuning[name]["top5"] + tuning[name]["top20"], tuning[name]["top1"]))
    fusion, w = best.split(" w=")[0], float(best.split(" w=")[1])
    tuning["BM25"] = evaluate_retrieval(sparse, tune, KS)["has_answer"]
    tuning["dense"] = evaluate_retrieval(dense, tune, KS)["has_answer"]

    full = SparseIndex.load(FULL_INDEX)
    results = {}
    for set_name, questions in sets.items():
        runs = {
            "BM25": sparse,
            "dense": dense,
            "hybrid rrf": HybridRetriever([sparse, dense], "rrf"),
            f"hybrid {best} (tuned)": HybridRetriever([sparse, dense], fusion, [1.0, w]),
        }
        if reranker is not None:
            runs["BM25 + rerank top 20"] = HybridRetriever([sparse], reranker=reranker, rerank_top=20)
            runs[f"hybrid {best} + rerank top 20"] = HybridRetriever(
                [sparse, dense], fusion, [1.0, w], reranker=reranker, rerank_top=20
            )
        results[set_name] = {}
        for system, retriever in runs.items():
            log(f"{set_name}: {system}")
            results[set_name][system] = evaluate_retrieval(retriever, questions, KS)["has_answer"]
        results[set_name]["BM25, full kowiki (reference)"] = evaluate_retrieval(full, questions, KS)["has_answer"]
    queries = encoder.encode([q.text for qs in sets.values() for q in qs], "query")
    return {
        "encoder": source,
        "precision": precision,
        "reranker": str(reranker_path) if reranker_path else None,
        "passages": len(passages),
        "encode_passages_per_s": len(passages) / encode_s,
        "tuning": tuning,
        "chosen": best,
        "sets": {name: len(qs) for name, qs in sets.items()},
        "results": results,
        "hnsw": hnsw_against_flat(vectors, queries),
    }


def training_summary(folder: Path) -> dict:
    """How an encoder folder from `odqa train-dense` was trained (its trainer state and settings)."""
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    settings = json.loads((folder / "training_config.json").read_text(encoding="utf-8"))
    return {
        "step": state["step"],
        "total_steps": state["total_steps"],
        "finished": state.get("finished", False),
        "items": sum(h["items"] for h in state["history"]),
        "minutes": sum(h["seconds"] for h in state["history"]) / 60,
        "loss": state["history"][-1]["loss"],
        "settings": settings,
    }


def main() -> None:
    global FULL_INDEX
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--redo", default="")
    parser.add_argument(
        "--index",
        type=Path,
        default=FULL_INDEX,
        help="the sparse index over the whole kowiki sample (`make demo` builds it)",
    )
    parser.add_argument("--encoder", type=Path, default=None, help="evaluate this encoder as it is (no train stages)")
    parser.add_argument("--reranker", type=Path, default=None, help="with --encoder: the reranker of its rows")
    parser.add_argument("--bf16", action="store_true", help="with --encoder: encode in bfloat16")
    args = parser.parse_args()
    FULL_INDEX = args.index
    redo = {s for s in args.redo.split(",") if s}
    if args.reranker and not args.encoder:
        parser.error("--reranker goes with --encoder (the default run trains its own)")
    precision = "bf16" if args.bf16 else "fp32"
    suffix = f"-{args.encoder.name}" if args.encoder else ""
    runners = {
        "split": stage_split,
        "pool": stage_pool,
        "indexes": stage_indexes,
        "train-dense": stage_train_dense,
        "train-reranker": stage_train_reranker,
        "evaluate": lambda: stage_evaluate(args.encoder, args.reranker, precision),
        "serving": lambda: stage_serving(args.encoder, precision),
    }
    stages = [s for s in args.stages.split(",") if s]
    if args.encoder:
        stages = [s for s in stages if not s.startswith("train-")]
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    for stage in stages:
        path = OUT / f"ko-{stage}{suffix if stage in ('evaluate', 'serving') else ''}.json"
        if path.exists() and stage not in redo:
            results[stage] = json.loads(path.read_text(encoding="utf-8"))
            continue
        log(f"stage {stage}")
        results[stage] = runners[stage]()
        path.write_text(json.dumps(results[stage], ensure_ascii=False, indent=1), encoding="utf-8")
    if "evaluate" not in results:
        return
    if args.encoder and (args.encoder / "trainer_state.json").exists():
        results["encoder_training"] = training_summary(args.encoder)
    ev = results["evaluate"]
    sections = []
    for set_name, systems in ev["results"].items():
        sections.append(
            f"### Korean: {set_name} ({ev['sets'][set_name]} questions) over a pool of {ev['passages']:,} kowiki "
            "passages, has-answer top-k (%)\n\n" + topk_table("system", systems, KS)
        )
    sections.append(
        f"Fusion tuned on {HELD_OUT} held-out competition train questions (chosen: {ev['chosen']}):\n\n"
        + topk_table("fusion", ev["tuning"], KS)
    )
    h = ev["hnsw"]
    sweep = "; ".join(
        f"efSearch {ef}: recall@10 {v['recall@10']:.3f}, {v['speedup']:.1f}×" for ef, v in h["ef_sweep"].items()
    )
    sections.append(
        f"FAISS HNSW (M=32) against flat on the pool's {h['passages']:,} vectors, {h['queries']} queries at once — "
        "speed-up and "
        f"recall@10 by efSearch: {sweep}. Encoding: {ev['encode_passages_per_s']:.0f} passages/s."
    )
    if "serving" in results:
        one = results["serving"]
        rows = [
            [f"HNSW efSearch {ef}", f"{v['recall@10']:.3f}", f"{v['ms_per_query']:.3f}", f"{v['speedup']:.1f}×"]
            for ef, v in one["ef_sweep"].items()
        ]
        sections.append(
            f"### FAISS HNSW (M=32) against flat, one question per search call (as `odqa ask` / `odqa serve` "
            f"search), {one['queries']} questions over the pool's {one['passages']:,} vectors, best of 3 rounds\n\n"
            + markdown_table(
                ["index", "recall@10 of flat", "ms per question", "× flat"],
                [["flat (exact)", "1.000", f"{one['flat_ms_per_query']:.3f}", "1.0×"], *rows],
            )
        )
    name = "retrieval_dense_ko" + (f"_{args.encoder.name.replace('-', '_')}" if args.encoder else "")
    if args.encoder:
        trained = results.get("encoder_training")
        how = (
            f"fine-tuned by `odqa train-dense` from {Path(trained['settings']['model']).name} "
            f"({trained['step']} of {trained['total_steps']} steps, {trained['items']:,} pairs, "
            f"{trained['minutes']:.0f} min on 2 CPU cores, last loss {trained['loss']:.3f})"
            if trained
            else "as it is (no training)"
        )
        sections.insert(
            0,
            f"# The encoder {args.encoder.name} {how}, with its own prefixes and pooling, every pool "
            f"passage encoded in {precision}" + (f"; reranker {args.reranker}" if args.reranker else "") + "\n",
        )
    write_results(name, results, "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
