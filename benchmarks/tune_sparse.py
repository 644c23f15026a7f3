"""Choose odqa's sparse defaults on training questions only (competition train sample + Mr. TyDi
train), never on the evaluation sets. Each passage construction × analyzer is analysed once
(cached); BM25 parameters are swept on the cached analysis.

    .venv/bin/python benchmarks/tune_sparse.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import time

from common import WORK, markdown_table, passages_for, question_sets, require_shared, write_results
from odqa.analysis.base import MecabConfig, MultiConfig, NgramConfig
from odqa.analysis.corpus import analyze_cached
from odqa.corpus import CorpusConfig
from odqa.evaluation import evaluate_retrieval
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex

ANALYZERS = {
    "mecab-mixed": MecabConfig(),
    "mecab-all-none": MecabConfig(exclude_pos=("SF", "SP", "SS", "SE", "SO", "SW", "SC", "SY"), compound="none"),
    "ngram2": NgramConfig(n=2),
    "mecab-mixed+ngram2": MultiConfig(parts=(MecabConfig(), NgramConfig(n=2))),
}
PASSAGES = {
    "p500": CorpusConfig(target_chars=500),
    "p500-title": CorpusConfig(target_chars=500, title=True),
}
GRID = [
    ScoringConfig(method="lucene", k1=k1, b=b) for k1, b in itertools.product((0.9, 1.2, 1.6), (0.4, 0.75))
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", nargs="*", default=list(PASSAGES))
    parser.add_argument("--analyzers", nargs="*", default=list(ANALYZERS))
    parser.add_argument("--grid", choices=["full", "one"], default="full")
    args = parser.parse_args()
    require_shared()
    sets = question_sets("tune")
    results = []
    for p_name in args.passages:
        passages, stats = passages_for(PASSAGES[p_name])
        texts = [p.text for p in passages]
        print(f"{p_name}: {stats}", flush=True)
        for a_name in args.analyzers:
            start = time.perf_counter()
            analyzed = analyze_cached(texts, stats["fingerprint"], ANALYZERS[a_name], WORK / "cache")
            analysis_s = time.perf_counter() - start
            for scoring in GRID if args.grid == "full" else GRID[2:3]:
                index = SparseIndex.from_analyzed(analyzed, ANALYZERS[a_name], scoring, passages)
                row = {"passages": p_name, "analyzer": a_name, "scoring": scoring.model_dump(), "analysis_s": analysis_s}
                for s_name, (questions, qrels) in sets.items():
                    row[s_name] = evaluate_retrieval(index, questions, (1, 5, 20, 100), qrels)
                results.append(row)
                print(_summary(row), flush=True)
    rows = [
        [r["passages"], r["analyzer"], f"{r['scoring']['method']} k1={r['scoring']['k1']} b={r['scoring']['b']}",
         *(100 * r["competition_train"]["has_answer"][f"top{k}"] for k in (1, 5, 20, 100)),
         100 * r["mrtydi_train"]["qrels"]["recall@100"], 100 * r["mrtydi_train"]["qrels"]["mrr@100"]]
        for r in results
    ]
    header = ["passages", "analyzer", "scoring", "comp-train top1", "top5", "top20", "top100", "MrTyDi-train R@100", "MRR@100"]
    write_results("tune_sparse", {"results": results}, markdown_table(header, rows))


def _summary(row: dict) -> str:
    c = row["competition_train"]["has_answer"]
    m = row["mrtydi_train"]["qrels"]
    return (f"{row['passages']} {row['analyzer']} {row['scoring']['k1']}/{row['scoring']['b']}: "
            f"comp {c['top1']:.3f} {c['top5']:.3f} {c['top20']:.3f} {c['top100']:.3f} | mrtydi R {m['recall@100']:.3f} MRR {m['mrr@100']:.3f}")


if __name__ == "__main__":
    main()
