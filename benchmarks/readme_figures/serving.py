"""README figures of end to end and serving (benchmarks/e2e.py, serve_load.py)."""

from __future__ import annotations

from readme_figures.base import Figure, per_run, results

# the sets benchmarks/e2e.py evaluates (figure key → its name in the results)
E2E_SETS = {"competition": "competition validation", "korquad": "KorQuAD 1.0 dev sample"}
# benchmarks/e2e.py runs (results/{name}.json): e2e: BM25 alone; e2e_rescore: BM25's top 20 re-scored by
# multilingual-e5-small (make demo's); the same with the reader of the recipe with the length curriculum, of the
# bf16 recipe (what make korean-reader trains now), of 1.5 epochs (with the in-context clean-up), and the
# 1.5- and 3-epoch readers soft-voted (korean_ensemble.py's pair); the bf16 recipe's reader over make demo's
# retriever with rerank_ko.py's reranker fused at its tuned weight, and without it (the same reader and tuning
# questions, the same run of the script); the reranker's run tuned by the one-standard-error rule (e2e.py's default now)
E2E_RUNS = [
    "e2e",
    "e2e_rescore",
    "e2e_rescore_curriculum",
    "e2e_rescore_bf16_recipe",
    "e2e_rescore_bf16_long",
    "e2e_rescore_bf16_ens",
    "e2e_rerank",
    "e2e_rerank_baseline",
    "e2e_rerank_1se",
    "e2e_rerank_negatives",
    "e2e_bm25_korquad",
]
E2E_BASES = {
    "e2e_rescore_bf16_recipe": "e2e_rescore",
    "e2e_rescore_bf16_long": "e2e_rescore_bf16_recipe",
    "e2e_rescore_bf16_ens": "e2e_rescore_bf16_long",
    "e2e_rerank": "e2e_rerank_baseline",
    "e2e_rerank_1se": "e2e_rerank",
    "e2e_rerank_negatives": "e2e_rerank_1se",
}


def e2e_em(data: dict) -> float:
    return data["sets"]["competition validation"]["metrics"]["korquad"]["exact_match"]


E2E_FIGURES = {
    "k": (lambda d: d["tuning"]["chosen"]["k"], "{}"),
    "weight": (lambda d: d["tuning"]["chosen"]["retriever_weight"], "{:g}"),
    "tune.chosen": (lambda d: d["tuning"]["exact_match"], "{:.1f}"),
    "tune.questions": (lambda d: d["tuning"]["questions"], "{}"),
    "tune.k1": (lambda d: d["tuning"]["em_korquad"]["k=1 w=0.0"], "{:.1f}"),
    "tune.se": (lambda d: d["tuning"]["standard_error"], "{:.1f}"),
    "tune.best": (lambda d: d["tuning"]["best"]["exact_match"], "{:.1f}"),
    "best.k": (lambda d: d["tuning"]["best"]["k"], "{}"),
    "best.weight": (lambda d: d["tuning"]["best"]["retriever_weight"], "{:g}"),
    # the competition validation's EM at the best pair, where the tuning rule chose another
    "best.competition.em": (
        lambda d: d["at_best"]["sets"]["competition validation"]["korquad"]["exact_match"],
        "{:.1f}",
    ),
    "total_ms": (lambda d: d["latency"]["total_ms_p50"], "{:.0f}"),
    "demo_correct": (lambda d: d["demo"]["correct"], "{}"),
    "read_ms": (lambda d: d["latency"]["read_ms_p50"], "{:.0f}"),
    "retrieve_ms": (lambda d: d["latency"]["retrieve_ms_p50"], "{:.0f}"),
    **{  # the competition validation's EM at each k read (at the chosen weight)
        f"competition.em_k{k}": (
            lambda d, k=k: d["sets"]["competition validation"]["by_k"][str(k)]["korquad"]["exact_match"],
            "{:.1f}",
        )
        for k in (1, 3, 5, 10, 20)
    },
    **{  # the KorQuAD sample's EM at each k read (at the chosen weight)
        f"korquad.em_k{k}": (
            lambda d, k=k: d["sets"]["KorQuAD 1.0 dev sample"]["by_k"][str(k)]["korquad"]["exact_match"],
            "{:.1f}",
        )
        for k in (1, 3, 20)
    },
    **{
        f"{short}.{name}": (fn, "{:.1f}")
        for short, set_name in E2E_SETS.items()
        for name, fn in (
            ("em", lambda d, s=set_name: d["sets"][s]["metrics"]["korquad"]["exact_match"]),
            ("f1", lambda d, s=set_name: d["sets"][s]["metrics"]["korquad"]["f1"]),
            ("has_answer", lambda d, s=set_name: d["sets"][s]["retrieval_has_answer"]),
            ("em_cross_lines", lambda d, s=set_name: d["cross_lines"][s]["exact_match"]),
            (
                "reading_miss",
                lambda d, s=set_name: 100 * d["sets"][s]["attribution"]["reading_miss"] / d["sets"][s]["questions"],
            ),
        )
    },
}


FIGURES: dict[str, Figure] = {
    # end to end and under load (benchmarks/e2e.py, benchmarks/serve_load.py)
    **per_run("", {run: f"{run}.json" for run in E2E_RUNS}, E2E_FIGURES),
    **{
        f"e2e.tune.k{k}_w{w}": Figure(
            "e2e.json", lambda d, k=k, w=w: d["tuning"]["em_korquad"][f"k={k} w={w}"], "{:.1f}"
        )
        for k, w in ((1, 0.0), (3, 0.0), (3, 0.05), (20, 0.0), (20, 0.1))
    },
    **{  # end-to-end EM over the run before (competition validation)
        f"{run}.competition.em_gain": Figure(
            f"{run}.json", lambda d, b=base: e2e_em(d) - e2e_em(results(f"{b}.json")), "{:+.1f}"
        )
        for run, base in E2E_BASES.items()
    },
    "e2e.p95_ms": Figure("e2e.json", lambda d: d["latency"]["total_ms_p95"], "{:.0f}"),
    "serve.requests": Figure("serve_load.json", lambda d: d["requests"]),
    "serve.errors": Figure("serve_load.json", lambda d: d["errors"]),
    "serve.p50_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p50"] / 1000, "{:.1f}"),
    "serve.p95_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p95"] / 1000, "{:.1f}"),
    "serve.p99_s": Figure("serve_load.json", lambda d: d["latency_ms"]["p99"] / 1000, "{:.1f}"),
    "serve.qps": Figure("serve_load.json", lambda d: d["throughput_qps"], "{:.2f}"),
    "serve.ray.replicas": Figure("serve_load.json", lambda d: d["ray"]["replicas"]),
    "serve.ray.requests": Figure("serve_load.json", lambda d: d["ray"]["requests"]),
    "serve.ray.errors": Figure("serve_load.json", lambda d: d["ray"]["errors"]),
    "serve.ray.qps": Figure("serve_load.json", lambda d: d["ray"]["throughput_qps"], "{:.2f}"),
    "serve.ray.ratio": Figure("serve_load.json", lambda d: d["ray"]["qps_vs_plain"], "{:.2f}×"),
    "serve.ray.p50_s": Figure("serve_load.json", lambda d: d["ray"]["latency_ms"]["p50"] / 1000, "{:.1f}"),
    "serve.ray.startup_s": Figure("serve_load.json", lambda d: d["ray"]["startup_s"], "{:.0f}"),
    "serve.startup_s": Figure("serve_load.json", lambda d: d["startup_s"], "{:.0f}"),
    # the default server against the settings e2e.py chose (serve_load.py --config, the same run)
    "serve.tuned.default_qps": Figure("serve_load_tuned.json", lambda d: d["throughput_qps"], "{:.2f}"),
    "serve.tuned.default_p50_s": Figure("serve_load_tuned.json", lambda d: d["latency_ms"]["p50"] / 1000, "{:.1f}"),
    "serve.tuned.qps": Figure("serve_load_tuned.json", lambda d: d["configured"]["throughput_qps"], "{:.2f}"),
    "serve.tuned.ratio": Figure("serve_load_tuned.json", lambda d: d["configured"]["qps_vs_plain"], "{:.2f}×"),
    "serve.tuned.p50_s": Figure(
        "serve_load_tuned.json", lambda d: d["configured"]["latency_ms"]["p50"] / 1000, "{:.1f}"
    ),
    "serve.tuned.errors": Figure("serve_load_tuned.json", lambda d: d["configured"]["errors"] + d["errors"]),
    "serve.tuned.k": Figure("serve_load_tuned.json", lambda d: d["configured"]["k"]),
    # the tuning rules on the stored e2e runs tuned by the best EM (benchmarks/tune_rule.py)
    "tune_rule.runs": Figure("tune_rule.json", lambda d: d["summary"]["measured"]),
    "tune_rule.se_min": Figure("tune_rule.json", lambda d: min(r["standard_error"] for r in d["runs"]), "{:.1f}"),
    "tune_rule.se_max": Figure("tune_rule.json", lambda d: max(r["standard_error"] for r in d["runs"]), "{:.1f}"),
    "tune_rule.questions_min": Figure("tune_rule.json", lambda d: min(r["tuning_questions"] for r in d["runs"])),
    "tune_rule.questions_max": Figure("tune_rule.json", lambda d: max(r["tuning_questions"] for r in d["runs"])),
    "tune_rule.mean_gain": Figure("tune_rule.json", lambda d: d["summary"]["mean_gain"], "{:+.1f}"),
    "tune_rule.better": Figure("tune_rule.json", lambda d: d["summary"]["better"]),
    "tune_rule.same": Figure("tune_rule.json", lambda d: d["summary"]["same"]),
    "tune_rule.worse": Figure("tune_rule.json", lambda d: d["summary"]["worse"]),
    "tune_rule.passages": Figure(
        "tune_rule.json", lambda d: d["summary"]["passages_one_se"] / d["summary"]["passages_best"], "{:.2f}"
    ),
    # EM by k at retriever weight 0: how many passages the pipeline reads by default (benchmarks/default_k.py)
    "default_k.en.questions": Figure("default_k.json", lambda d: d["english"]["questions"]),
    **{
        f"default_k.en.k{k}_{name}": Figure("default_k.json", fn, "{:.1f}")
        for k in (1, 20)
        for name, fn in (
            ("em", lambda d, k=k: d["english"]["by_k"][str(k)]["exact_match"]),
            ("has_answer", lambda d, k=k: d["english"]["has_answer"][str(k)]),
        )
    },
    "default_k.runs": Figure("default_k.json", lambda d: len(d["best_k"])),
    "default_k.k1_best_runs": Figure("default_k.json", lambda d: sum(k == 1 for k in d["best_k"].values())),
    "default_k.k1_worst_loss": Figure("default_k.json", lambda d: d["worst_loss"]["1"], "{:.1f}"),
    "default_k.k20_worst_loss": Figure("default_k.json", lambda d: d["worst_loss"]["20"], "{:.1f}"),
    "default_k.least_worst_k": Figure("default_k.json", lambda d: d["least_worst_k"]),
}
