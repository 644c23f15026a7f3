"""README figures of retrieval: sparse, its kernel and updates, dense and hybrid, re-scoring,
the nori peer and sharded indexes (benchmarks/retrieval_ko.py, sparse_kernel.py, index_update.py,
retrieval_dense*.py, rescore_ko.py, scale.py)."""

from __future__ import annotations

import json

from readme_figures.base import RESULTS, Figure, gain, system, topk

ME5_POOL = "retrieval_dense_ko_me5_small.json"
ME5_TUNED = "retrieval_dense_ko_me5_ko_dpr.json"  # the same, fine-tuned by train-dense for 40 CPU minutes
POOL_RUNS = (("me5", ME5_POOL), ("me5_tuned", ME5_TUNED))


def pool_row(results: dict, set_name: str, system: str) -> dict:
    """A system's has-answer row in retrieval_dense_ko's or rescore_ko's results: by its exact name, or
    "tuned" for the tuned hybrid."""
    rows = results["evaluate"]["results"][set_name]
    if system == "tuned":
        return next(v for name, v in rows.items() if name.endswith("(tuned)"))
    return rows[system]


RERANK = "rerank_ko.json"


def reranked(results: dict, set_name: str, with_reranker: bool) -> dict:
    """rerank_ko.py's has-answer row of the hybrid, re-sorted by the reranker or not."""
    rows = results["evaluate"]["results"][set_name]
    return next(v for name, v in rows.items() if ("+ rerank" in name) == with_reranker)


def fused(results: dict, set_name: str, tuned: bool) -> dict:
    """rerank_ko.py's stage fuse: the hybrid's has-answer row, or the reranker fused at the tuned weight."""
    rows = results["fuse"]["results"][set_name]
    if tuned:
        return next(v for name, v in rows.items() if name.endswith("(tuned)"))
    return next(v for name, v in rows.items() if "+ rerank" not in name)


def me5_top(results: dict, system: str, k: int) -> float:
    """Has-answer top-k (%) of multilingual-e5-small's `system` (dense, hybrid rrf, hybrid combsum)."""
    systems = results["multilingual"]["systems"]
    return 100 * next(s for name, s in systems.items() if name.startswith(system + " "))[f"top{k}"]


def bf16_row(results: dict, set_name: str, precision: str) -> dict:
    """Has-answer top-k of re-scoring in `precision` (rescore_ko.py's stage bf16) on one question set."""
    return next(v for name, v in results["bf16"]["results"][set_name].items() if name.endswith(", " + precision))


def update_row(results: dict, operation: str) -> dict:
    row = next(r for r in results["rows"] if r["operation"] == operation)
    if not (row["identical_top100"] and row["identical_passages"]):
        raise ValueError(f"index_update.json: the {operation} run did not equal its rebuild")
    return row


ODQA, LUCENE_CJK = "odqa (default)", "Lucene (Pyserini) CJK bigrams, k1 0.9 b 0.4"
BM25S = "bm25s default tokenizer (numba, in memory)"
KERNEL, BM25S_ODQA = "odqa kernel, default tokens, no document context", "bm25s (numba) on odqa's tokens"
qps = lambda d, name: system(d, name)["queries_per_s"]


def build_ratio(data: dict, shards: int) -> float:
    """A sharded build's time over the embedded build's, measured in the same scale.py run."""
    return data["results"][f"shards-{shards}"]["build_s"] / data["results"]["embedded"]["build_s"]


def identical_shardings(data: dict) -> str:
    """ "all" when every sharded run returned the embedded index's ids and scores, else which did not."""
    runs = {k: r for k, r in data["results"].items() if k != "embedded"}
    wrong = [k for k, r in runs.items() if not (r["identical_ids"] and r["identical_scores"])]
    if wrong:
        raise ValueError(f"a scale run: {', '.join(wrong)} differed from the embedded index")
    return "all"


NORI = "Lucene + nori (decompound mixed), k1 0.9 b 0.4"


def nori_gap(data: dict, questions: str, key: str) -> float:
    """nori's row (retrieval_ko_nori.json, `data`) minus odqa (default)'s (retrieval_ko.json), in points."""
    main = json.loads((RESULTS / "retrieval_ko.json").read_text(encoding="utf-8"))
    return 100 * (
        system(data, NORI)["metrics"][questions][key] - system(main, "odqa (default)")["metrics"][questions][key]
    )


KO = "retrieval_ko.json"
KERNEL_RUN = "sparse_kernel.json"
UPDATE_RUN = "index_update.json"


FIGURES: dict[str, Figure] = {
    # Korean sparse retrieval (benchmarks/retrieval_ko.py)
    "ko.documents": Figure(KO, lambda d: d["passages"]["documents"], "{:,}"),
    "ko.passages": Figure(KO, lambda d: d["passages"]["passages"], "{:,}"),
    "ko.queries": Figure(KO, lambda d: d["queries"], "{:,}"),
    **{
        f"ko.top{k}_vs_{peer}.{short}": Figure(
            KO, lambda d, k=k, name=name, sets=sets: gain(d, name, sets, k), "{:+.1f}"
        )
        for peer, name, ks in (("lucene", LUCENE_CJK, (20, 100)), ("bm25s", BM25S, (20,)))
        for k in ks
        for short, sets in (("comp", "competition_validation"), ("korquad", "korquad_dev"))
    },
    "ko.odqa.qps": Figure(KO, lambda d: qps(d, ODQA), "{:,.0f}"),
    "ko.bm25s.qps": Figure(KO, lambda d: qps(d, BM25S), "{:,.0f}"),
    "ko.kernel.qps": Figure(KO, lambda d: qps(d, KERNEL), "{:,.0f}"),
    "ko.bm25s_odqa.qps": Figure(KO, lambda d: qps(d, BM25S_ODQA), "{:,.0f}"),
    "ko.kernel_vs_bm25s": Figure(KO, lambda d: qps(d, KERNEL) / qps(d, BM25S_ODQA), "{:.2f}×"),
    "ko.bm25s_odqa.build_gb": Figure(KO, lambda d: system(d, BM25S_ODQA)["build_peak_rss_mb"] / 1024, "{:.1f}"),
    **{
        f"ko.doc_context.{name}": Figure(KO, value, "{:+.1f}")
        for name, value in (
            (
                "comp20",
                lambda d: topk(d, ODQA, "competition_validation", 20) - topk(d, KERNEL, "competition_validation", 20),
            ),
            ("korquad20", lambda d: topk(d, ODQA, "korquad_dev", 20) - topk(d, KERNEL, "korquad_dev", 20)),
            (
                "mrr",
                lambda d: (
                    100
                    * (
                        system(d, ODQA)["metrics"]["mrtydi_dev"]["mrr@100"]
                        - system(d, KERNEL)["metrics"]["mrtydi_dev"]["mrr@100"]
                    )
                ),
            ),
        )
    },
    "ko.odqa.build_s": Figure(KO, lambda d: system(d, ODQA)["build_s"], "{:.0f}"),
    "ko.odqa.search_gb": Figure(KO, lambda d: system(d, ODQA)["search_peak_rss_mb"] / 1024, "{:.1f}"),
    "ko.odqa.build_gb": Figure(KO, lambda d: system(d, ODQA)["build_peak_rss_mb"] / 1024, "{:.1f}"),
    # odqa's kernel against bm25s on equal input (benchmarks/sparse_kernel.py)
    "kernel.passages": Figure(KERNEL_RUN, lambda d: d["passages"], "{:,}"),
    "kernel.queries": Figure(KERNEL_RUN, lambda d: d["queries"], "{:,}"),
    "kernel.odqa.qps": Figure(KERNEL_RUN, lambda d: system(d, "odqa kernel")["queries_per_s"], "{:,.0f}"),
    "kernel.bm25s.qps": Figure(KERNEL_RUN, lambda d: system(d, "bm25s (numba, in memory)")["queries_per_s"], "{:,.0f}"),
    "kernel.ratio": Figure(KERNEL_RUN, lambda d: d["odqa_vs_bm25s"], "{:.2f}×"),
    "kernel.same_ids": Figure(KERNEL_RUN, lambda d: 100 * d["same_ranked_ids"], "{:.2f}"),
    # adding and deleting 1% of an index's documents against a rebuild (benchmarks/index_update.py)
    "update.articles": Figure(UPDATE_RUN, lambda d: d["articles"], "{:,}"),
    "update.passages": Figure(UPDATE_RUN, lambda d: d["passages"], "{:,}"),
    "update.changed": Figure(UPDATE_RUN, lambda d: d["changed_articles"], "{:,}"),
    "update.add_share": Figure(UPDATE_RUN, lambda d: 100 * update_row(d, "add")["share_of_rebuild"], "{:.1f}"),
    "update.delete_share": Figure(UPDATE_RUN, lambda d: 100 * update_row(d, "delete")["share_of_rebuild"], "{:.1f}"),
    "update.rebuild_s": Figure(UPDATE_RUN, lambda d: update_row(d, "add")["rebuild_s"], "{:.0f}"),
    "update.add_s": Figure(UPDATE_RUN, lambda d: update_row(d, "add")["update_s"], "{:.1f}"),
    "update.delete_s": Figure(UPDATE_RUN, lambda d: update_row(d, "delete")["update_s"], "{:.1f}"),
    # dense (benchmarks/retrieval_dense.py, retrieval_dense_ko.py)
    "dense.me5.dense_top1": Figure("retrieval_dense.json", lambda d: me5_top(d, "dense", 1), "{:.1f}"),
    "dense.me5.dense_gain_top1": Figure(
        "retrieval_dense.json",
        lambda d: me5_top(d, "dense", 1) - 100 * d["evaluate"]["systems"]["dense (zero-shot)"]["top1"],
        "{:+.1f}",
    ),
    "dense.me5.hybrid_top1": Figure("retrieval_dense.json", lambda d: me5_top(d, "hybrid combsum", 1), "{:.1f}"),
    "dense.me5.hybrid_gain_top1": Figure(
        "retrieval_dense.json",
        lambda d: me5_top(d, "hybrid combsum", 1) - 100 * max(s["top1"] for s in d["evaluate"]["systems"].values()),
        "{:+.1f}",
    ),
    "dense.encode_odqa": Figure("retrieval_dense.json", lambda d: d["speed"]["odqa"]["passages_per_s"], "{:.1f}"),
    "dense.encode_st": Figure(
        "retrieval_dense.json", lambda d: d["speed"]["sentence-transformers"]["passages_per_s"], "{:.1f}"
    ),
    "dense.encode_ratio": Figure(
        "retrieval_dense.json",
        lambda d: d["speed"]["odqa"]["passages_per_s"] / d["speed"]["sentence-transformers"]["passages_per_s"],
        "{:.2f}×",
    ),
    **{
        f"dense.hybrid_gain.top{k}": Figure(
            "retrieval_dense.json",
            lambda d, k=k: (
                100
                * (
                    d["evaluate"]["systems"]["hybrid combsum w=2.0 (zero-shot)"][f"top{k}"]
                    - max(
                        d["evaluate"]["systems"][name][f"top{k}"]
                        for name in ("dense (zero-shot)", "dense (fine-tuned)", "BM25 (whitespace words)")
                    )
                )
            ),
            "{:+.1f}",
        )
        for k in (5, 20)
    },
    "dense_ko.pool": Figure("retrieval_dense_ko.json", lambda d: d["evaluate"]["passages"], "{:,}"),
    "dense_ko.encode": Figure("retrieval_dense_ko.json", lambda d: d["evaluate"]["encode_passages_per_s"], "{:.0f}"),
    "dense_ko.competition.dense.top20": Figure(
        "retrieval_dense_ko.json", lambda d: 100 * pool_row(d, "competition validation", "dense")["top20"], "{:.1f}"
    ),
    **{
        f"hnsw.{ef}.{what}": Figure(
            "retrieval_dense_ko.json",
            lambda d, ef=ef, what=what: d["evaluate"]["hnsw"]["ef_sweep"][ef][what],
            "{:.3f}" if what == "recall@10" else "{:.1f}×",
        )
        for ef in ("16", "32", "64", "128", "256")
        for what in ("recall@10", "speedup")
    },
    # multilingual-e5-small as it is on the same pool (retrieval_dense_ko.py --encoder ../models/me5-small --bf16)
    "dense_ko.me5.encode": Figure(ME5_POOL, lambda d: d["evaluate"]["encode_passages_per_s"], "{:.0f}"),
    "dense_ko.me5.chosen": Figure(ME5_POOL, lambda d: d["evaluate"]["chosen"]),
    **{
        f"dense_ko.{run}.{key}.{row}.top{k}": Figure(
            file, lambda d, name=name, row=row, k=k: 100 * pool_row(d, name, row)[f"top{k}"], "{:.1f}"
        )
        for run, file in POOL_RUNS
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for row in ("dense", "BM25")
        for k in (1, 5, 20)
    },
    **{
        f"dense_ko.{run}.gain.{key}.top{k}": Figure(
            file,
            lambda d, name=name, k=k: (
                100 * (pool_row(d, name, "tuned")[f"top{k}"] - pool_row(d, name, "BM25")[f"top{k}"])
            ),
            "{:+.1f}",
        )
        for run, file in POOL_RUNS
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for k in (1, 5, 20)
    },
    **{
        f"hnsw.me5.128.{what}": Figure(
            ME5_POOL,
            lambda d, what=what: d["evaluate"]["hnsw"]["ef_sweep"]["128"][what],
            "{:.3f}" if what == "recall@10" else "{:.1f}×",
        )
        for what in ("recall@10", "speedup")
    },
    **{
        f"dense_ko.me5_tuned.{what}": Figure(ME5_TUNED, lambda d, what=what: d["encoder_training"][what], form)
        for what, form in (
            ("step", "{}"),
            ("total_steps", "{}"),
            ("items", "{:,}"),
            ("minutes", "{:.0f}"),
            ("loss", "{:.2f}"),
        )
    },
    # the same, one question per search call (stage serving)
    "hnsw.me5.serving.flat_ms": Figure(ME5_POOL, lambda d: d["serving"]["flat_ms_per_query"], "{:.1f}"),
    "hnsw.me5.serving.128.ms": Figure(ME5_POOL, lambda d: d["serving"]["ef_sweep"]["128"]["ms_per_query"], "{:.2f}"),
    **{
        f"hnsw.me5.serving.{ef}.{key}": Figure(
            ME5_POOL,
            lambda d, ef=ef, what=what: d["serving"]["ef_sweep"][ef][what],
            "{:.3f}" if what == "recall@10" else "{:.1f}×",
        )
        for ef in ("128", "256")
        for key, what in (("recall", "recall@10"), ("speedup", "speedup"))
    },
    # a cross-encoder from the Korean reader re-sorting that hybrid's top 20 (benchmarks/rerank_ko.py)
    "rerank.questions": Figure(RERANK, lambda d: d["train"]["options"]["--max-train-examples"], "{:,}"),
    "rerank.minutes": Figure(RERANK, lambda d: d["train"]["train_seconds"] / 60, "{:.0f}"),
    "rerank.loss": Figure(RERANK, lambda d: d["train"]["history"][-1]["loss"], "{:.2f}"),
    # the change over the hybrid: re-sorted by the reranker alone (stage evaluate), fused with it (stage fuse)
    **{
        f"rerank.{stage}change.{key}.top{k}": Figure(
            RERANK,
            lambda d, row=row, name=name, k=k: 100 * (row(d, name, True)[f"top{k}"] - row(d, name, False)[f"top{k}"]),
            "{:+.1f}",
        )
        for stage, row in (("", reranked), ("fused.", fused))
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for k in (1, 5)
    },
    # its score fused with the hybrid's at the weight chosen on held-out questions (stage fuse)
    "rerank.fused.chosen": Figure(
        RERANK, lambda d: f"{d['fuse']['chosen']['fusion']} w={d['fuse']['chosen']['weight']:g}"
    ),
    "rerank.fused.competition.top5": Figure(
        RERANK, lambda d: 100 * fused(d, "competition validation", True)["top5"], "{:.1f}"
    ),
    # the reranker scoring in bf16 (stage bf16): speed against fp32, and the fused rankings from its scores
    "rerank.bf16.speedup": Figure(RERANK, lambda d: d["bf16"]["speedup"], "{:.1f}×"),
    "rerank.bf16.pairs": Figure(RERANK, lambda d: d["bf16"]["pairs"], "{:,}"),
    "rerank.bf16.same_first": Figure(RERANK, lambda d: 100 * d["bf16"]["same_first_passage"], "{:.1f}"),
    **{
        f"rerank.bf16.top{k}_change": Figure(
            RERANK,
            lambda d, k=k: (
                100 * (d["bf16"]["has_answer"]["bf16"][f"top{k}"] - d["bf16"]["has_answer"]["fp32"][f"top{k}"])
            ),
            "{:+.1f}",
        )
        for k in (1, 5, 20)
    },
    "rescore.bm25.competition.top5": Figure(
        "rescore_ko.json", lambda d: 100 * pool_row(d, "competition validation", "BM25")["top5"], "{:.1f}"
    ),
    # BM25's top N re-scored by multilingual-e5-small on the fly (benchmarks/rescore_ko.py)
    "rescore.top": Figure("rescore_ko.json", lambda d: d["evaluate"]["top"]),
    "rescore.weight": Figure("rescore_ko.json", lambda d: d["evaluate"]["chosen_weight"], "{:g}"),
    "rescore.passages": Figure("rescore_ko.json", lambda d: d["encode"]["passages"], "{:,}"),
    "rescore.bm25_ms": Figure(
        "rescore_ko.json", lambda d: 1000 * d["latency"]["seconds_per_question"]["BM25"], "{:.0f}"
    ),
    "rescore.rescore_s": Figure(
        "rescore_ko.json", lambda d: d["latency"]["seconds_per_question"]["BM25 + e5 re-scoring"], "{:.1f}"
    ),
    **{
        f"rescore.gain.{key}.top{k}": Figure(
            "rescore_ko.json",
            lambda d, name=name, k=k: (
                100 * (pool_row(d, name, "tuned")[f"top{k}"] - pool_row(d, name, "BM25")[f"top{k}"])
            ),
            "{:+.1f}",
        )
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for k in (1, 5, 10, 20)
    },
    # re-scoring in bf16 against fp32 (rescore_ko.py, stage bf16; latency from stage latency)
    "rescore.bf16.rescore_s": Figure(
        "rescore_ko.json", lambda d: d["latency"]["seconds_per_question"]["BM25 + e5 re-scoring, bf16"], "{:.1f}"
    ),
    "rescore.bf16.latency_ratio": Figure(
        "rescore_ko.json",
        lambda d: (
            d["latency"]["seconds_per_question"]["BM25 + e5 re-scoring"]
            / d["latency"]["seconds_per_question"]["BM25 + e5 re-scoring, bf16"]
        ),
        "{:.1f}×",
    ),
    "rescore.bf16.passages": Figure("rescore_ko.json", lambda d: d["bf16"]["passages"], "{:,}"),
    "rescore.bf16.speedup": Figure("rescore_ko.json", lambda d: d["bf16"]["speedup"], "{:.1f}×"),
    "rescore.bf16.cosine_min": Figure("rescore_ko.json", lambda d: d["bf16"]["cosine_min"], "{:.5f}"),
    **{
        f"rescore.bf16.{key}.same_top1": Figure(
            "rescore_ko.json", lambda d, name=name: d["bf16"]["agreement"][name]["same_top1"], "{:.1f}"
        )
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
    },
    **{
        f"rescore.bf16.{key}.top{k}_change": Figure(
            "rescore_ko.json",
            lambda d, name=name, k=k: (
                100 * (bf16_row(d, name, "bf16")[f"top{k}"] - bf16_row(d, name, "fp32")[f"top{k}"])
            ),
            "{:+.1f}",
        )
        for key, name in (("competition", "competition validation"), ("korquad", "KorQuAD 1.0 dev sample"))
        for k in (1, 5, 10, 20)
    },
    # the nori peer, measured in a later partial run of retrieval_ko.py
    "nori.documents": Figure("retrieval_ko_nori.json", lambda d: d["passages"]["documents"], "{:,}"),
    "nori.passages": Figure("retrieval_ko_nori.json", lambda d: d["passages"]["passages"], "{:,}"),
    "nori.queries": Figure("retrieval_ko_nori.json", lambda d: d["queries"], "{:,}"),
    **{
        f"nori.gap.{short}.{key}": Figure(
            "retrieval_ko_nori.json", lambda d, q=questions, k=key: nori_gap(d, q, k), "{:+.1f}"
        )
        for short, questions in (
            ("comp", "competition_validation"),
            ("korquad", "korquad_dev"),
            ("mrtydi", "mrtydi_dev"),
        )
        for key in (("recall@100", "mrr@100") if short == "mrtydi" else ("top1", "top20"))
    },
    # sharded indexes on a local Ray cluster (benchmarks/scale.py)
    "scale.passages": Figure("scale.json", lambda d: d["passages"], "{:,}"),
    "scale.queries": Figure("scale.json", lambda d: d["queries"], "{:,}"),
    "scale.identical": Figure("scale.json", lambda d: identical_shardings(d)),
    # the 2-shard build again: pieces analysed while reading, builds in turns, the fastest of 2 kept
    # (scale.py --shards 2 --repeats 2 --name scale_build)
    "scale_build.2.build": Figure("scale_build.json", lambda d: build_ratio(d, 2), "{:.2f}×"),
    "scale_build.identical": Figure("scale_build.json", lambda d: identical_shardings(d)),
    "scale_build.2.qps": Figure(
        "scale_build.json",
        lambda d: d["results"]["shards-2"]["qps"] / d["results"]["embedded"]["qps"],
        "{:.2f}×",
    ),
    **{
        f"scale_build.{who}.{stage}_s": Figure(
            "scale_build.json", lambda d, r=row, s=stage: d["results"][r]["timings"][f"{s}_s"], "{:.0f}"
        )
        for who, row in (("embedded", "embedded"), ("2", "shards-2"))
        for stage in ("passages", "analysis", "weighting")
    },
    "scale_build.embedded.save_s": Figure(
        "scale_build.json", lambda d: d["results"]["embedded"]["timings"]["save_s"], "{:.0f}"
    ),
    **{
        f"scale_build.{who}.builds": Figure(
            "scale_build.json",
            lambda d, r=row: " and ".join(f"{s:.0f}" for s in d["results"][r]["builds_s"]),
        )
        for who, row in (("embedded", "embedded"), ("2", "shards-2"))
    },
    **{
        f"scale.{n}.{key}": Figure("scale.json", value, form)
        for n in (1, 2, 4)
        for key, value, form in (
            ("build", lambda d, n=n: build_ratio(d, n), "{:.2f}×"),
            ("qps", lambda d, n=n: d["results"][f"shards-{n}"]["qps"] / d["results"]["embedded"]["qps"], "{:.2f}×"),
            ("node_mb", lambda d, n=n: d["results"][f"shards-{n}"]["max_node_rss_mb"], "{:,.0f}"),
        )
    },
    "scale.embedded_mb": Figure("scale.json", lambda d: d["results"]["embedded"]["rss_mb"], "{:,.0f}"),
    "scale.embedded_build_s": Figure("scale.json", lambda d: d["results"]["embedded"]["build_s"], "{:.0f}"),
}
