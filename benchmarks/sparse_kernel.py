"""odqa's sparse kernel against bm25s's numba backend on equal input: the same passages, the same
tokens (odqa's default analyzer) and the same BM25 (Lucene's, k1 0.9, b 0.4), searched in one
run, alternating rounds, best of each. Writes results/sparse_kernel.{json,md}.

    cd benchmarks && ../.venv/bin/python sparse_kernel.py [--articles 30000] [--rounds 3]

Both sides are timed end to end as a user calls them: query analysis + top-100 on 2 threads
(bm25s as its documentation recommends for speed: numba backend, index in memory). The first
`--articles` articles of the kowiki sample keep the run short; the kernel's cost per posting does
not depend on the corpus size, and the ratio is what this benchmark reports."""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import KOWIKI, WORK, log, markdown_table, question_sets, require_shared, write_results

THREADS = 2
K = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=30000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_shared()
    import bm25s

    from odqa.retrieval.build import build_sparse_index
    from odqa.retrieval.scoring import ScoringConfig

    queries = [q.text for questions, _ in question_sets("eval", korquad_n=None).values() for q in questions]
    log(f"{len(queries):,} queries; building odqa's index over the first {args.articles:,} articles")
    scoring = ScoringConfig(document_weight=0.0)  # the kernel alone: bm25s has no document context
    index, timings = build_sparse_index(
        KOWIKI, None, scoring=scoring, limit=args.articles, cache_dir=WORK / "cache", processes=THREADS, quiet=True
    )
    analyzer = index.analyzer_config.build(query=True)
    log(f"{index.n_passages:,} passages; bm25s indexes the same tokens")
    vocab = index.vocab
    start = time.perf_counter()
    # Token strings per passage, rebuilt from odqa's term-major postings (counts from the cache).
    from odqa.analysis.corpus import analyze_cached

    analyzed = analyze_cached(
        [index.passages[i].text for i in range(index.n_passages)],
        index.manifest["corpus"]["fingerprint"],
        index.analyzer_config,
        WORK / "cache",
        THREADS,
        True,
    )
    tokens = [
        [vocab[t] for t in analyzed.ids[analyzed.offsets[i] : analyzed.offsets[i + 1]]] for i in range(len(analyzed))
    ]
    retriever = bm25s.BM25(k1=scoring.k1, b=scoring.b, method="lucene", backend="numba")
    retriever.index(tokens, show_progress=False)
    bm25s_index_s = time.perf_counter() - start
    del tokens, analyzed

    def run_odqa():
        return index.search_arrays(queries, K, threads=THREADS)

    def run_bm25s():
        query_tokens = [analyzer(q) or ["∅"] for q in queries]
        ids, scores = retriever.retrieve(
            query_tokens, k=K, n_threads=THREADS, show_progress=False, backend_selection="numba"
        )
        return scores, ids

    systems = {"odqa kernel": run_odqa, "bm25s (numba, in memory)": run_bm25s}
    for run in systems.values():  # compile and warm up
        run()
    times: dict[str, list[float]] = {name: [] for name in systems}
    outputs = {}
    for round_no in range(args.rounds):
        for name, run in systems.items():
            start = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - start)
        log(f"round {round_no + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()))
    (o_scores, o_ids), (b_scores, b_ids) = outputs["odqa kernel"], outputs["bm25s (numba, in memory)"]
    found = o_ids >= 0
    results = {
        "articles": args.articles,
        "passages": index.n_passages,
        "postings": index.manifest["counts"]["postings"],
        "queries": len(queries),
        "k": K,
        "threads": THREADS,
        "rounds": args.rounds,
        "bm25s_version": bm25s.__version__,
        "odqa_build_s": sum(timings.values()),
        "bm25s_index_s": bm25s_index_s,  # rebuilding token lists from odqa's cached analysis + indexing
        "same_top1": float(np.mean(o_ids[:, 0] == b_ids[:, 0])),
        "same_ranked_ids": float(np.mean(o_ids[found] == b_ids[found])),
        "max_score_difference": float(np.abs(o_scores[found] - b_scores[found]).max()),
        "systems": [
            {
                "system": name,
                "best_s": min(t),
                "rounds_s": t,
                "queries_per_s": len(queries) / min(t),
            }
            for name, t in times.items()
        ],
    }
    ratio = results["systems"][0]["queries_per_s"] / results["systems"][1]["queries_per_s"]
    results["odqa_vs_bm25s"] = ratio
    rows = [[s["system"], f"{s['queries_per_s']:,.0f}", f"{s['best_s']:.2f}"] for s in results["systems"]]
    table = markdown_table(["system (same tokens, same BM25)", "queries/s", "best of rounds, s"], rows)
    table += (
        f"\n{results['passages']:,} passages ({args.articles:,} articles), {len(queries):,} queries, top-{K}, "
        f"{THREADS} threads, best of {args.rounds} alternating rounds; odqa / bm25s = {ratio:.2f}×; "
        f"same ranked ids {100 * results['same_ranked_ids']:.2f} %, "
        f"largest score difference {results['max_score_difference']:.2g}\n"
    )
    write_results("sparse_kernel", results, table)


if __name__ == "__main__":
    main()
