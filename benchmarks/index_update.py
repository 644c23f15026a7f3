"""What adding (and deleting) 1% of the documents of a sparse index costs against rebuilding it,
and a check that the updated index answers exactly as the rebuilt one. Writes
results/index_update.{json,md}.

    cd benchmarks && ../.venv/bin/python index_update.py [--articles 20000] [--share 0.01] [--rounds 3]

The base index holds the first `--articles` articles of the kowiki sample; `--share` of that many
following articles are added, and as many random base articles deleted. A rebuild is `odqa index`
of the final collection without the analysis cache (what a user without incremental updates runs);
the update analyses only the added documents. Defaults: odqa's (mecab, Lucene BM25 + document
context), 2 processes. Updates are timed best of `--rounds`, each on a fresh copy of the base index."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import time

from common import KOWIKI, WORK, log, markdown_table, question_sets, require_shared, write_results

PROCESSES = 2


def write_jsonl(path, documents) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for d in documents:
            f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20000)
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require_shared()
    from odqa.io import read_documents
    from odqa.retrieval.build import build_sparse_index
    from odqa.retrieval.sparse import SparseIndex
    from odqa.retrieval.update import update_index

    n_added = max(1, round(args.articles * args.share))
    folder = WORK / "index_update"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    documents = list(itertools.islice(read_documents(KOWIKI), args.articles + n_added))
    base, added = documents[: args.articles], documents[args.articles :]
    deleted = sorted(random.Random(13).sample([d.id for d in base], n_added))
    write_jsonl(folder / "base.jsonl", base)
    write_jsonl(folder / "added.jsonl", added)
    write_jsonl(folder / "after_add.jsonl", base + added)
    gone = set(deleted)
    write_jsonl(folder / "after_delete.jsonl", [d for d in base if d.id not in gone])
    queries = [q.text for questions, _ in question_sets("eval", korquad_n=None).values() for q in questions][:2000]

    def rebuild(name: str):
        start = time.perf_counter()
        index, timings = build_sparse_index(
            folder / f"{name}.jsonl", folder / name, cache_dir=None, processes=PROCESSES, quiet=True
        )
        return time.perf_counter() - start, index, timings

    log(f"base index: {len(base):,} articles; adding {n_added:,}, deleting {n_added:,}")
    base_s, base_index, _ = rebuild("base")
    results = {
        "articles": len(base),
        "changed_articles": n_added,
        "passages": base_index.n_passages,
        "processes": PROCESSES,
        "queries_compared": len(queries),
        "rows": [],
    }
    for operation, final_name, kwargs in (
        ("add", "after_add", {"add": folder / "added.jsonl"}),
        ("delete", "after_delete", {"delete": deleted}),
    ):
        log(f"{operation}: rebuilding the final collection")
        rebuild_s, _, timings = rebuild(final_name)
        update_s = []
        for _ in range(args.rounds):
            work = folder / f"updated_{operation}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(folder / "base", work)
            report = update_index(work, processes=PROCESSES, quiet=True, **kwargs)
            update_s.append(report.seconds)
        updated, rebuilt = SparseIndex.load(work), SparseIndex.load(folder / final_name)
        same = [[(h.passage_id, h.score) for h in row] for row in updated.search(queries, k=100)] == [
            [(h.passage_id, h.score) for h in row] for row in rebuilt.search(queries, k=100)
        ]
        same_passages = (
            all(updated.passages[i] == rebuilt.passages[i] for i in range(rebuilt.n_passages))
            and updated.n_passages == rebuilt.n_passages
        )
        row = {
            "operation": operation,
            "update_s": min(update_s),
            "rebuild_s": rebuild_s,
            "rebuild_analysis_s": timings["analysis_s"],
            "share_of_rebuild": min(update_s) / rebuild_s,
            "new_passages": report.new_passages,
            "identical_top100": same,
            "identical_passages": same_passages,
        }
        log(json.dumps(row))
        results["rows"].append(row)
    table = markdown_table(
        [
            "operation",
            "articles changed",
            "update / rebuild (%)",
            "new passages analysed",
            "top-100 identical",
            "passages identical",
        ],
        [
            [
                r["operation"],
                f"{n_added:,} of {len(base):,}",
                100 * r["share_of_rebuild"],
                f"{r['new_passages']:,}",
                "yes" if r["identical_top100"] else "NO",
                "yes" if r["identical_passages"] else "NO",
            ]
            for r in results["rows"]
        ],
    )
    table += (
        f"\n{base_index.n_passages:,} passages of the first {len(base):,} kowiki-sample articles; mecab, Lucene BM25 + "
        f"document context, {PROCESSES} processes; update best of {args.rounds}, rebuild without the analysis cache; "
        f"{len(queries):,} evaluation questions compared at top-100 (ids and scores exactly).\n"
    )
    write_results("index_update", results, table)


if __name__ == "__main__":
    main()
