"""Sharded indexes (`odqa index --shards N`) on a local Ray cluster against the embedded index:
build time, queries per second, memory per node, and whether every id and score is the same; then
a projection on paper for a corpus 100x larger, from the measured per-shard figures.
Writes results/scale.{json,md}.

    cd benchmarks && ../.venv/bin/python scale.py [--documents N] [--shards 1,2,4] [--queries 2000]

The cluster is a head (no CPUs: it only schedules) and two worker nodes of one CPU each, started
on this machine with `ray.cluster_utils.Cluster`: the 2 cores split as two machines would be. The
embedded index is built as `odqa index` builds it today (one analysis process per core, no
cache); each sharded build sends pieces of about 8,000 passages to analysis tasks on the workers
as it reads the corpus, and weights each shard in a task on the node holding most of its
pieces' counts. Each build's time is kept by stage (passages, analysis, weighting). Queries: the
competition validation, the KorQuAD dev sample and Mr. TyDi dev (as `retrieval_ko.py`), top 100,
in batches of 100, best of 2 passes. Memory is each searching process's resident set after the
queries (the embedded index measured the same way, served by one actor). Each stage is kept in
work/scale/ (delete a stage's JSON to measure it again)."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from common import KOWIKI, WORK, cached_stage, log, markdown_table, question_sets, require_shared, write_results

BATCH = 100
K = 100


def corpus_file(documents: int | None, folder: Path) -> Path:
    if documents is None:
        return KOWIKI
    from odqa.io import read_documents

    path = folder / f"kowiki-{documents}.jsonl"
    if not path.exists():
        with open(path, "w", encoding="utf-8") as f:
            for d in itertools.islice(read_documents(KOWIKI), documents):
                f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}, ensure_ascii=False) + "\n")
    return path


def searched(search, queries: list[str]) -> tuple[float, np.ndarray, np.ndarray]:
    """(queries per second, best of 2 passes; the scores and ids of the last pass)."""
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        parts = [search(queries[i : i + BATCH], K) for i in range(0, len(queries), BATCH)]
        best = min(best, time.perf_counter() - start)
    return len(queries) / best, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def per_node(stats: list[dict]) -> dict[str, float]:
    nodes: dict[str, float] = {}
    for s in stats:
        nodes[s["node"]] = nodes.get(s["node"], 0.0) + s["rss_mb"]
    return nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=None, help="the first N kowiki articles (default: all)")
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--name", default="scale", help="results/NAME.json (another name keeps the stored run)")
    parser.add_argument("--repeats", type=int, default=1, help="builds of each index, in turns; the fastest kept")
    args = parser.parse_args()
    require_shared()
    import ray
    from ray.cluster_utils import Cluster

    from odqa.distributed.sharded import ShardedIndex, ShardServer
    from odqa.distributed.sparse_shards import PIECE_PASSAGES, build_sharded_index
    from odqa.retrieval.build import build_sparse_index
    from odqa.retrieval.sparse import SparseIndex

    work = WORK / "scale" / (str(args.documents) if args.documents else "all")
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="scale-", dir=WORK))
    corpus = corpus_file(args.documents, work)
    queries = [q.text for questions, _ in question_sets("eval").values() for q in questions][: args.queries]
    # each node's object store as `ray start` sizes it (30% of memory) on a machine with half this one's
    store = int(0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": store})
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=store)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        embedded_path = scratch / "embedded"
        shard_counts = [int(s) for s in args.shards.split(",")]

        def build(name: str) -> dict:
            start = time.perf_counter()
            if name == "embedded":
                _, timings = build_sparse_index(corpus, embedded_path, cache_dir=None, processes=2, quiet=True)
            else:
                _, timings = build_sharded_index(corpus, scratch / name, int(name.split("-")[1]), quiet=True)
            return {"build_s": time.perf_counter() - start, "disk_mb": folder_mb(scratch / name), "timings": timings}

        # the builds in turns (embedded, each sharded, embedded, ...) so the machine's slow spells hit
        # them alike; each keeps its fastest build
        names = ["embedded", *[f"shards-{n}" for n in shard_counts]]
        todo = [name for name in names if not (work / f"{name}.json").exists()]
        builds: dict[str, list[dict]] = {name: [] for name in todo}
        for turn in range(args.repeats if todo else 0):
            for name in todo:
                builds[name].append(build(name))
                log(f"{name} build {turn + 1}: {builds[name][-1]['build_s']:.0f}s")

        def fastest(name: str) -> dict:
            return min(builds[name], key=lambda b: b["build_s"]) | {"builds_s": [b["build_s"] for b in builds[name]]}

        results = {}
        for name in names:
            results[name] = cached_stage(work, name, set(), lambda name=name: fastest(name))
            if not (scratch / name).exists():  # kept stage, index gone: build it to search it
                build(name)
        one = SparseIndex.load(embedded_path)
        qps, reference_scores, reference_ids = searched(one.search_arrays, queries)
        server = ray.remote(ShardServer).options(num_cpus=0).remote(str(embedded_path))
        ray.get(server.search_arrays.remote(queries[:BATCH], K))
        stats = ray.get(server.stats.remote())
        results["embedded"] |= {"qps": qps, "passages": one.n_passages, "rss_mb": stats["rss_mb"]}
        ray.kill(server)
        for n in shard_counts:
            path, row = scratch / f"shards-{n}", results[f"shards-{n}"]
            sharded = ShardedIndex.load(path).warm_up()
            qps, scores, ids = searched(sharded.search_arrays, queries)
            stats = sharded.stats()
            row |= {
                "qps": qps,
                "identical_ids": bool((ids == reference_ids).all()),
                "identical_scores": bool((scores == reference_scores).all()),
                "shards": stats,
                "nodes_used": len(per_node(stats)),
                "max_node_rss_mb": max(per_node(stats).values()),
                "max_shard_rss_mb": max(s["rss_mb"] for s in stats),
            }
            results[f"shards-{n}"] = row
            sharded.close()
            log(f"{n} shards: build {row['build_s']:.0f}s, {qps:.0f} q/s, identical {row['identical_ids']}")
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)

    base = results["embedded"]
    out = {
        "documents": args.documents,
        "passages": base["passages"],
        "queries": len(queries),
        "k": K,
        "batch": BATCH,
        "cluster": {"head_cpus": 0, "workers": 2, "cpus_per_worker": 1, "object_store_mb": store / 2**20},
        "piece_passages": PIECE_PASSAGES,
        "results": results,
        "projection_100x": project(base, results, 100),
    }
    write_results(args.name, out, report(out))


def report(out: dict) -> str:
    """The results as tables: each run against the embedded index, and the projection when there is one."""
    results, base, projection = out["results"], out["results"]["embedded"], out["projection_100x"]
    rows = [["embedded (2 processes)", 1.0, base["qps"], 1.0, base["rss_mb"], base["rss_mb"], "-"]]
    for name, row in results.items():
        if name == "embedded":
            continue
        rows.append(
            [
                f"{name.split('-')[1]} shards on 2 nodes",
                row["build_s"] / base["build_s"],
                row["qps"],
                row["qps"] / base["qps"],
                row["max_node_rss_mb"],
                row["max_shard_rss_mb"],
                "yes" if row["identical_ids"] and row["identical_scores"] else "NO",
            ]
        )
    table = markdown_table(
        [
            "index",
            "build time / embedded",
            "queries/s",
            "q/s / embedded",
            "max MB per node",
            "max MB per shard",
            "same ids and scores",
        ],
        rows,
    )
    table += (
        f"\n{base['passages']:,} passages, {out['queries']:,} questions, top {K} in batches of {BATCH}; "
        f"embedded build {base['build_s']:.0f} s. A local Ray cluster: head (0 CPUs) + 2 worker nodes of 1 CPU "
        "each on 2 cores. Memory: resident set of each searching process after the queries.\n"
    )
    for name, row in results.items():
        if "timings" in row:  # where a build's time went
            parts = ", ".join(f"{key.removesuffix('_s')} {value:.0f} s" for key, value in row["timings"].items())
            what = "the embedded index" if name == "embedded" else f"{name.split('-')[1]} shards"
            table += f"Build of {what}: {parts}.\n"
    if "object_store_mb" in out["cluster"]:
        store_gb = out["cluster"]["object_store_mb"] / 1024
        table += f"Object store per node: {store_gb:.1f} GB (`ray start`'s size on a machine with half this memory).\n"
    if len(base.get("builds_s", [])) > 1:
        turns = "; ".join(
            f"{'embedded' if name == 'embedded' else name.split('-')[1] + ' shards'} "
            + ", ".join(f"{s:.0f}" for s in row["builds_s"])
            for name, row in results.items()
        )
        table += f"Builds in turns, the fastest of each kept (seconds: {turns}).\n"
    if "piece_passages" in out:
        table += (
            f"The sharded builds analyse pieces of about {out['piece_passages']:,} passages as the corpus is read, "
            "so their passages stage overlaps the first pieces' analysis.\n"
        )
    if projection is None:
        return table + "\nNo projection: it needs runs with two different numbers of shards.\n"
    return (
        table
        + "\nProjection for a corpus 100x larger (on paper, from the measured per-shard figures):\n\n"
        + markdown_table(
            ["quantity", "value"],
            [[key.replace("_", " "), value] for key, value in projection.items() if not isinstance(value, str)],
        )
        + f"\n{projection['assumptions']}\n"
    )


def project(base: dict, results: dict, factor: int) -> dict | None:
    """A collection `factor` times larger, cut into `factor` shards each the size of the one
    measured here. Memory: a shard process's resident set = a fixed part + a part per passage,
    both fitted on the measured shards (1 shard of everything against the smallest shards). CPU per
    query: every shard's share of the embedded index's measured CPU time per query (which grows with
    the collection) plus the measured fan-out cost per shard (the sharded runs' extra time per query
    over the embedded index, per shard). None with fewer than two shard counts to fit on."""
    sharded = {len(r["shards"]): r for k, r in results.items() if k != "embedded"}
    if len(sharded) < 2:
        return None
    few, many = sharded[min(sharded)], sharded[max(sharded)]
    big, small = max(few["shards"], key=lambda s: s["passages"]), min(many["shards"], key=lambda s: s["passages"])
    per_passage_mb = (big["rss_mb"] - small["rss_mb"]) / max(1, big["passages"] - small["passages"])
    fixed_mb = small["rss_mb"] - per_passage_mb * small["passages"]
    shard_mb = fixed_mb + per_passage_mb * base["passages"]
    node_memory_gb, cores = 64, 16
    nodes = max(1, math.ceil(factor * shard_mb / (0.75 * node_memory_gb * 1024)))
    cpu_per_query = 2 / base["qps"]  # the embedded index searched on 2 cores
    fan_out = max(0.0, 2 * (1 / many["qps"] - 1 / base["qps"]) / len(many["shards"]))  # CPU-s per query per shard
    total_cpu = factor * cpu_per_query + factor * fan_out
    return {
        "passages": base["passages"] * factor,
        "shards": factor,
        "memory_per_shard_gb": round(shard_mb / 1024, 2),
        "memory_total_gb": round(factor * shard_mb / 1024, 1),
        f"nodes_of_{node_memory_gb}_gb": nodes,
        "disk_total_gb": round(base["disk_mb"] * factor / 1024, 1),
        "cpu_ms_per_query": round(1000 * total_cpu, 1),
        f"queries_per_s_on_{nodes}_nodes_of_{cores}_cores": round(nodes * cores / total_cpu, 1),
        "assumptions": (
            f"{factor} shards of {base['passages']:,} passages; a shard process holds {fixed_mb:.0f} MB + "
            f"{per_passage_mb * 1024:.2f} KB per passage (fitted: 1 shard against {len(many['shards'])}); nodes of "
            f"{node_memory_gb} GB (75% for shards) and {cores} cores; CPU per query = {factor} x the embedded "
            f"index's {1000 * cpu_per_query:.2f} ms + {factor} x the measured fan-out cost of "
            f"{1000 * fan_out:.2f} ms per shard; network time between nodes is not measured here."
        ),
    }


if __name__ == "__main__":
    main()
