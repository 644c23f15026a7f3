"""End-to-end benchmark: the sparse index over the kowiki sample + the Korean reader that
`benchmarks/korean_model.py` produced (`make korean-reader`'s recipe), on the competition validation
(240) and a seeded 1,000-question sample of KorQuAD dev.

1. Tune on training questions the reader never saw (korean_model.py's 300 held-out competition-train
   questions, or `--tune FILE`; `--train-sample N` tunes on a seeded sample of the competition *train*
   split, for a reader that never trained on it; without either, a missing file is refused): the number of
   passages read (k) and the weight of the retrieval score in the answer score (BERTserini's
   linear combination), both from one reading at the largest k (`odqa tune-pipeline`'s search and
   rule: by default the fewest passages within one standard error of the best pair's EM; `--tune-rule
   best` takes the best pair). The chosen settings are written as a pipeline config,
   work/e2e/NAME.pipeline.json; when the rule chose other than the best pair, the best pair is
   evaluated too.
2. Evaluate with the chosen settings: EM/F1 (squad + korquad), has-answer rate at k, error
   attribution, EM by k (plot), the same EM with the reader's one-line rule lifted (answers may
   cross a line break), and single-question latency with its breakdown.

With `--rescore FOLDER` (multilingual-e5-small as `make korean-reader` imports it) the retriever is
BM25 with its top passages re-scored by the bi-encoder on the fly — what `make demo` asks with — and
the results go to e2e_rescore.json beside the BM25-alone e2e.json.

With `--reader` given more than once the readers vote as one ensemble (soft, equal weights, as
`odqa ask --reader A --reader B` reads).

With `--rerank FOLDER` (a cross-encoder from `odqa train-reranker`, e.g. rerank_ko.py's) the first
stage's top `--rerank-top` are re-sorted by it, fused with the first stage's score at
`--rerank-weight` (`odqa tune-rerank` chooses it; none: the cross-encoder alone), as
`odqa ask --rerank … --rerank-weight …` asks; the results go to e2e_rerank.json.

    python e2e.py [--reader PATH ...] [--index PATH] [--rescore FOLDER] [--rerank FOLDER [--rerank-weight W]]
                  [--tune FILE] [--tune-rule one-se|best] [--korquad-sample 1000] [--bf16] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import DATA, KOWIKI, ROOT, WORK, markdown_table, sample, write_results

KS = [1, 3, 5, 10, 20]  # k tried (and the retriever weights `odqa tune-pipeline` tries by default)
DEMO = {  # the Makefile's QUESTIONS (what `make demo` asks), with the answers a reader should give
    "대한민국의 수도는 어디인가?": ["서울", "서울특별시"],
    "훈민정음을 창제한 조선의 왕은 누구인가?": ["세종", "세종대왕"],
    "마오리언어와 영어, 뉴질랜드 수화를 공식 언어로 사용하는 나라는?": ["뉴질랜드"],
    "한국 전쟁이 시작된 해는?": ["1950년", "1950"],
    "태양계에서 가장 큰 행성은?": ["목성"],
}
DEMO_K = 10  # `make demo` runs `odqa ask -k 10` with every other setting at its default


def load_pipeline(index: Path, readers: list[Path], rescore: Path | None = None, bf16: bool = False, **rerank):
    """The pipeline evaluated: `rerank` holds PipelineConfig's rerank settings (rerank, rerank_top,
    rerank_weight, rerank_fusion)."""
    from odqa.pipeline import Pipeline, PipelineConfig

    if not index.exists():
        from odqa.retrieval.build import build_sparse_index, default_cache_dir

        print(f"building {index} (default config) ...", flush=True)
        build_sparse_index(KOWIKI, index, cache_dir=default_cache_dir())
    reader = str(readers[0]) if len(readers) == 1 else [str(r) for r in readers]
    config = PipelineConfig(
        index=str(index), reader=reader, k=max(KS), rescore=str(rescore) if rescore else None, **rerank
    )
    if bf16:  # reading, re-scoring and reranking with the weights in bfloat16
        config.reader_options = {"precision": "bf16"}
        config.rescore_precision = config.rerank_precision = "bf16"
    return Pipeline(config).warm_up()


def demo(pipeline) -> dict:
    """`make demo`'s five questions, asked as the demo asks them (k = 10, no retrieval-score weight,
    the pipeline's retriever); which are answered correctly."""
    from odqa.metrics import get_answer_metric

    metric = get_answer_metric("korquad")
    pipeline.config.retriever_weight = 0.0  # the demo's default
    rows = []
    for question, answers in DEMO.items():
        text = pipeline.ask(question, k=DEMO_K).text
        correct = max(metric.exact(text, a) for a in answers) > 0
        rows.append({"question": question, "answer": text, "expected": answers, "correct": correct})
    return {"k": DEMO_K, "questions": rows, "correct": sum(r["correct"] for r in rows)}


def latency(pipeline, questions, n: int = 40) -> dict:
    """Single questions, one at a time; a re-scorer starts with an empty passage cache (the evaluation
    before filled it with these questions' passages, which a new question would not find there)."""
    rescorer = getattr(pipeline.open_index(), "rescorer", None)
    if rescorer is not None:
        rescorer.cache.clear()
    retrieve, read, total = [], [], []
    for question in questions[:n]:
        start = time.perf_counter()
        result = pipeline.ask(question.text)
        total.append(1000 * (time.perf_counter() - start))
        retrieve.append(result.timings["retrieve_ms"])
        read.append(result.timings["read_ms"])
    return {
        "questions": len(total),
        "k": pipeline.config.k,
        "retrieve_ms_p50": statistics.median(retrieve),
        "read_ms_p50": statistics.median(read),
        "total_ms_p50": statistics.median(total),
        "total_ms_p95": sorted(total)[int(0.95 * (len(total) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "kowiki-bm25")
    parser.add_argument(
        "--reader", type=Path, action="append", help="reader folder; repeat it for an ensemble (default: make's)"
    )
    parser.add_argument(
        "--rescore", type=Path, default=None, help="bi-encoder that re-scores BM25's top passages (make demo's)"
    )
    parser.add_argument(
        "--tune",
        type=Path,
        default=WORK / "korean_model" / "train-heldout.json",
        help="questions to tune k and w on, none of them trained on (korean_model.py's held-out 300)",
    )
    parser.add_argument(
        "--train-sample",
        type=int,
        default=None,
        help="tune on N competition-train questions instead (for a reader that never trained on that split)",
    )
    parser.add_argument(
        "--tune-rule",
        default="one-se",
        choices=("one-se", "best"),  # odqa.e2e.TUNE_RULES
        help="one-se: the fewest passages within one standard error of the best pair's EM; best: the best pair",
    )
    parser.add_argument("--rerank", type=Path, default=None, help="cross-encoder reranker folder (train-reranker's)")
    parser.add_argument("--rerank-top", type=int, default=max(KS), help="first-stage passages the reranker re-sorts")
    parser.add_argument(
        "--rerank-weight", type=float, default=None, help="its score fused at this weight (none: the reranker alone)"
    )
    parser.add_argument("--rerank-fusion", default="combsum", help="how --rerank-weight fuses: combsum, zscore, rrf")
    parser.add_argument("--korquad-sample", type=int, default=1000, help="0: the competition validation alone")
    parser.add_argument("--bf16", action="store_true", help="read, re-score, rerank in bf16 (fast on bf16 CPUs, GPUs)")
    parser.add_argument("--name", default="", help="results file name (default: e2e, e2e_rescore, e2e_rerank)")
    args = parser.parse_args()
    args.reader = args.reader or [WORK / "korean_model" / "ko-reader"]
    if args.train_sample is None and not args.tune.exists():
        # korean_model.py's readers train on the rest of competition train: tuning on a sample of it
        # would choose k and the weight on questions the reader has learnt
        parser.error(
            f"{args.tune} does not exist: give --tune FILE, or --train-sample N for a reader that never "
            "trained on competition train"
        )

    from odqa.e2e import evaluate_end_to_end, plot_em_by_k, tune_pipeline
    from odqa.io import atomic_write_text, read_questions

    rerank = {}  # PipelineConfig's rerank settings
    if args.rerank:
        rerank = {
            "rerank": str(args.rerank),
            "rerank_top": args.rerank_top,
            "rerank_weight": args.rerank_weight,
            "rerank_fusion": args.rerank_fusion,
        }
    pipeline = load_pipeline(args.index, args.reader, args.rescore, args.bf16, **rerank)
    name = args.name or ("e2e_rerank" if args.rerank else "e2e_rescore" if args.rescore else "e2e")
    cfg = pipeline.config
    retrieval = (
        f"BM25 with its top {cfg.rescore_top} re-scored by {args.rescore.name} (weight {cfg.rescore_weight:g})"
        if args.rescore
        else "BM25 alone"
    )
    if args.rerank:
        how = "alone" if cfg.rerank_weight is None else f"fused by {cfg.rerank_fusion} at weight {cfg.rerank_weight:g}"
        retrieval += f", its top {cfg.rerank_top} reranked by {args.rerank.name} ({how})"
    if args.train_sample is None:
        train, tuned_on = read_questions(args.tune), f"held-out competition-train questions ({args.tune.name})"
    else:
        train = sample(read_questions(DATA / "boostcamp_odqa/train.squad.json"), args.train_sample, seed=7)
        tuned_on = "competition-train questions"
    print(f"tuning k and the retriever weight on {len(train)} {tuned_on} ...", flush=True)
    tuned = tune_pipeline(pipeline, train, KS, quiet=True, rule=args.tune_rule)
    pipeline.config.k = tuned["chosen"]["k"]
    pipeline.config.retriever_weight = tuned["chosen"]["retriever_weight"]
    print(f"chosen ({args.tune_rule}): {tuned['chosen']}; the best pair: {tuned['best']}", flush=True)
    # the chosen settings as a pipeline config (`odqa ask/serve --config`; serve_load.py --config loads it)
    chosen_config = WORK / "e2e" / f"{name}.pipeline.json"
    chosen_config.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(chosen_config, json.dumps(pipeline.config.to_dict(), ensure_ascii=False, indent=1))

    sets = {"competition validation": read_questions(DATA / "boostcamp_odqa/validation.squad.json")}
    if args.korquad_sample:  # 0: the competition validation alone
        korquad = read_questions(DATA / "korquad/KorQuAD_v1.0_dev.json")
        sets["KorQuAD 1.0 dev sample"] = sample(korquad, args.korquad_sample)
    tuned["on"] = tuned_on
    readers = [str(r) for r in args.reader]
    results = {"reader": readers[0] if len(readers) == 1 else readers, "index": str(args.index), "tuning": tuned}
    results["sets"] = {}
    results["retrieval"] = retrieval
    results["precision"] = "bf16" if args.bf16 else "fp32"
    if args.rescore:
        results["rescore"] = {"model": str(args.rescore), "top": cfg.rescore_top, "weight": cfg.rescore_weight}
    if args.rerank:
        results["rerank"] = {
            "model": str(args.rerank),
            "top": cfg.rerank_top,
            "weight": cfg.rerank_weight,
            "fusion": cfg.rerank_fusion,
        }
    rows, attribution_rows = [], []
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    for set_name, questions in sets.items():
        print(f"evaluating {set_name} ({len(questions)}) ...", flush=True)
        start = time.perf_counter()
        result = evaluate_end_to_end(pipeline, questions, KS, ["korquad", "squad"], quiet=True)
        result["seconds"] = time.perf_counter() - start
        details = result.pop("per_question")
        slug = f"{name}_{set_name.split()[0].lower()}"
        (out / f"{slug}_details.json").write_text(json.dumps(details, ensure_ascii=False, indent=1), encoding="utf-8")
        plot_em_by_k(result, out / f"{slug}_em_by_k.png", "korquad")
        results["sets"][set_name] = result
        m = result["metrics"]
        rows.append(
            [
                set_name,
                result["questions"],
                f"{m['korquad']['exact_match']:.1f} / {m['korquad']['f1']:.1f}",
                f"{m['squad']['exact_match']:.1f} / {m['squad']['f1']:.1f}",
                f"{result['retrieval_has_answer']:.1f}",
            ]
        )
        n = result["questions"]
        attribution_rows.append([set_name, *(f"{100 * v / n:.1f}" for v in result["attribution"].values())])
    k, weight = pipeline.config.k, pipeline.config.retriever_weight
    best_pair = (tuned["best"]["k"], tuned["best"]["retriever_weight"])
    best_rows = []
    if best_pair != (k, weight):  # what the tuning rule gave up: the best pair on the same sets
        results["at_best"] = {"k": best_pair[0], "retriever_weight": best_pair[1], "sets": {}}
        pipeline.config.k, pipeline.config.retriever_weight = best_pair
        for set_name, questions in sets.items():
            print(f"evaluating {set_name} at the best pair {best_pair} ...", flush=True)
            metrics = evaluate_end_to_end(pipeline, questions, [best_pair[0]], ["korquad", "squad"], quiet=True)
            results["at_best"]["sets"][set_name] = metrics["metrics"]
            chosen_em = results["sets"][set_name]["metrics"]["korquad"]["exact_match"]
            best_rows.append([set_name, f"{chosen_em:.1f}", f"{metrics['metrics']['korquad']['exact_match']:.1f}"])
        pipeline.config.k, pipeline.config.retriever_weight = k, weight
    # the reader's one-line rule (no answer spans a line break), measured by lifting it at the chosen settings
    members = getattr(pipeline.reader, "readers", [pipeline.reader])  # an ensemble's readers, each with its rule
    one_line = [member.config for member in members]
    for member in members:
        member.config = member.config.updated(cross_lines=True)
    results["cross_lines"] = {}
    for set_name, questions in sets.items():
        print(f"evaluating {set_name} without the one-line rule ...", flush=True)
        lifted = evaluate_end_to_end(pipeline, questions, [k], ["korquad"], quiet=True)
        results["cross_lines"][set_name] = lifted["metrics"]["korquad"]
    for member, config in zip(members, one_line):
        member.config = config
    rule_rows = [
        [s, f"{results['sets'][s]['metrics']['korquad']['exact_match']:.1f}", f"{lifted['exact_match']:.1f}"]
        for s, lifted in results["cross_lines"].items()
    ]
    results["latency"] = latency(pipeline, sets["competition validation"])
    results["demo"] = demo(pipeline)
    by_k = [[kk, *(f"{results['sets'][s]['by_k'][kk]['korquad']['exact_match']:.1f}" for s in sets)] for kk in KS]
    lat = results["latency"]
    table = "\n\n".join(
        [
            f"Retrieval: {retrieval}. k = {k} passages read, retriever weight {weight} (chosen on "
            f"{tuned['questions']} {tuned_on}, rule {tuned['rule']})\n\n"
            + markdown_table(["set", "questions", "korquad EM / F1", "squad EM / F1", f"has-answer@{k}"], rows),
            "Error attribution (% of questions)\n\n"
            + markdown_table(
                ["set", "correct", "near miss (F1>0.5)", "retrieval miss", "reading miss"], attribution_rows
            ),
            "korquad EM by k\n\n" + markdown_table(["k", *sets], by_k),
            f"The reader's one-line rule (korquad EM at k = {k})\n\n"
            + markdown_table(["set", "answers on one line (default)", "answers may cross a line break"], rule_rows),
            f"Single-question latency at k = {k} ({lat['questions']} questions, one at a time, 2 CPU cores): "
            f"retrieval {lat['retrieve_ms_p50']:.0f} ms + reading {lat['read_ms_p50']:.0f} ms (p50); total p50 "
            f"{lat['total_ms_p50']:.0f} ms, p95 {lat['total_ms_p95']:.0f} ms",
            f"`make demo`'s questions (k = {DEMO_K}, default settings, {retrieval}): {results['demo']['correct']} of "
            f"{len(DEMO)} answered correctly\n\n"
            + markdown_table(
                ["question", "answer", "expected", "correct"],
                [
                    [r["question"], r["answer"], " / ".join(r["expected"]), "yes" if r["correct"] else "no"]
                    for r in results["demo"]["questions"]
                ],
            ),
            *(
                [
                    f"The tuning rule against the best pair (korquad EM; the best pair k = {best_pair[0]}, weight "
                    f"{best_pair[1]:g}: {tuned['best']['exact_match']:.1f} ± {tuned['standard_error']:.1f} on the "
                    f"tuning questions, the chosen {tuned['exact_match']:.1f})\n\n"
                    + markdown_table(["set", f"chosen (k = {k}, weight {weight:g})", "best pair"], best_rows)
                ]
                if best_rows
                else []
            ),
        ]
    )
    write_results(name, results, table + "\n")


if __name__ == "__main__":
    main()
