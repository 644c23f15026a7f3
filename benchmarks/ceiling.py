"""How much of the has-answer gap is reachable at all: for each evaluation set, the share of
questions whose gold article is in the corpus and contains the answer, and odqa's has-answer at
k = 100 and 1,000. Uses the index `make demo` builds (or --index).

    .venv/bin/python benchmarks/ceiling.py [--index indexes/kowiki-bm25]
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, markdown_table, question_sets, require_shared, write_results
from odqa.evaluation import evaluate_retrieval
from odqa.metrics import has_answer, normalize_title
from odqa.retrieval.sparse import SparseIndex


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", default=str(ROOT / "indexes" / "kowiki-bm25"))
    args = parser.parse_args()
    require_shared()
    index = SparseIndex.load(args.index)
    by_title: dict[str, list[int]] = {}
    for pid in range(len(index.passages)):
        by_title.setdefault(normalize_title(index.passages[pid].title), []).append(pid)
    results, rows = {}, []
    for name, (questions, qrels) in question_sets("eval").items():
        if qrels is not None:
            continue
        reachable = sum(
            any(has_answer(index.passages[p].text, q.answers) for p in by_title.get(normalize_title(q.title), []))
            for q in questions
        )
        metrics = evaluate_retrieval(index, questions, (100, 1000))["has_answer"]
        results[name] = {"questions": len(questions), "gold_article_has_answer": reachable / len(questions), **metrics}
        rows.append(
            [name, len(questions), 100 * reachable / len(questions), 100 * metrics["top100"], 100 * metrics["top1000"]]
        )
    header = [
        "set",
        "questions",
        "gold article in corpus and contains answer %",
        "has-answer@100 %",
        "has-answer@1000 %",
    ]
    write_results(
        "ceiling",
        {"index": args.index, "manifest": index.manifest["scoring"], "sets": results},
        markdown_table(header, rows),
    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
