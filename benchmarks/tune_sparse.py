"""Choose odqa's sparse defaults on training questions only (a seeded 1,000-question sample of the
competition train split and Mr. TyDi-ko train), never on the evaluation sets.

Each passage construction x analyzer is analysed once (cached under benchmarks/work/cache); the
scoring options are swept over the cached analysis. Results: results/tune_sparse.{json,md}.

    .venv/bin/python benchmarks/tune_sparse.py --stage fusion     # analyzer, k1/b, document weight, question words
    .venv/bin/python benchmarks/tune_sparse.py --stage passages   # with or without titles
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from common import ROOT, WORK, markdown_table, passages_for, question_sets, require_shared, write_results
from odqa.analysis.base import MecabConfig, MultiConfig, NgramConfig
from odqa.analysis.corpus import analyze_cached
from odqa.corpus import CorpusConfig
from odqa.evaluation import evaluate_retrieval
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex

ANALYZERS = {
    "mecab-mixed": MecabConfig(),
    "mecab-mixed+ngram2": MultiConfig(parts=(MecabConfig(), NgramConfig(n=2))),
}
NO_STOP = {
    "mecab-mixed": MecabConfig(query_stopwords=()),
    "mecab-mixed+ngram2": MultiConfig(parts=(MecabConfig(query_stopwords=()), NgramConfig(n=2, query_stopwords=()))),
}
PASSAGES = {
    "p500": CorpusConfig(target_chars=500, title=False),
    "p500-title": CorpusConfig(target_chars=500, title=True),
}


def stage_grid(stage: str):
    """(passages, analyzer name, analyzer config, scoring) to try."""
    if stage == "passages":
        for p, a in itertools.product(PASSAGES, ("mecab-mixed", "mecab-mixed+ngram2")):
            yield p, a, ANALYZERS[a], ScoringConfig(k1=0.9, b=0.4, document_weight=0.25)
    elif stage == "fusion":
        for a in ("mecab-mixed", "mecab-mixed+ngram2"):
            for (k1, b), weight in itertools.product(((0.9, 0.4), (1.2, 0.4)), (0.0, 0.25, 0.5)):
                yield "p500-title", a, ANALYZERS[a], ScoringConfig(k1=k1, b=b, document_weight=weight)
            yield (
                "p500-title",
                f"{a} (no question stopwords)",
                NO_STOP[a],
                ScoringConfig(k1=0.9, b=0.4, document_weight=0.25),
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", choices=["passages", "fusion"], default="fusion")
    args = parser.parse_args()
    require_shared()
    sets = question_sets("tune")
    out = ROOT / "benchmarks" / "results" / f"tune_sparse_{args.stage}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {line.split("\t", 1)[0] for line in out.open(encoding="utf-8")} if out.exists() else set()
    with out.open("a", encoding="utf-8") as log:
        for p_name, a_name, analyzer, scoring in stage_grid(args.stage):
            key = json.dumps([p_name, a_name, scoring.model_dump()])
            if key in done:
                continue
            passages, stats = passages_for(PASSAGES[p_name])
            start = time.perf_counter()
            analyzed = analyze_cached([p.text for p in passages], stats["fingerprint"], analyzer, WORK / "cache")
            row = {
                "passages": p_name,
                "analyzer": a_name,
                "scoring": scoring.model_dump(),
                "analysis_s": time.perf_counter() - start,
            }
            index = SparseIndex.from_analyzed(analyzed, analyzer, scoring, passages)
            for s_name, (questions, qrels) in sets.items():
                row[s_name] = evaluate_retrieval(index, questions, (1, 5, 20, 100), qrels)
            log.write(key + "\t" + json.dumps(row) + "\n")
            log.flush()
            print(_summary(row), flush=True)
    rows = [json.loads(line.split("\t", 1)[1]) for line in out.open(encoding="utf-8")]
    table = [
        [
            r["passages"],
            r["analyzer"],
            f"k1={r['scoring']['k1']} b={r['scoring']['b']} doc={r['scoring']['document_weight']}",
            *(100 * r["competition_train"]["has_answer"][f"top{k}"] for k in (1, 5, 20, 100)),
            100 * r["mrtydi_train"]["qrels"]["recall@100"],
            100 * r["mrtydi_train"]["qrels"]["mrr@100"],
        ]
        for r in rows
    ]
    header = [
        "passages",
        "analyzer",
        "scoring",
        "comp-train top1",
        "top5",
        "top20",
        "top100",
        "MrTyDi-train R@100",
        "MRR@100",
    ]
    write_results(f"tune_sparse_{args.stage}", {"results": rows}, markdown_table(header, table))


def _summary(row: dict) -> str:
    c = row["competition_train"]["has_answer"]
    m = row["mrtydi_train"]["qrels"]
    s = row["scoring"]
    return (
        f"{row['passages']} {row['analyzer']} k1={s['k1']} b={s['b']} doc={s['document_weight']}: "
        f"comp {c['top1']:.3f} {c['top5']:.3f} {c['top20']:.3f} {c['top100']:.3f} | mrtydi R {m['recall@100']:.3f} "
        f"MRR {m['mrr@100']:.3f}"
    )


if __name__ == "__main__":
    main()
