"""Korean sparse retrieval on the kowiki sample: odqa against the peers a user would pick instead,
all on the same passages, in one run. Writes results/retrieval_ko.{json,md}.

    make bench            # or: cd benchmarks && ../.venv/bin/python retrieval_ko.py [--quick]

Each system builds its index in a subprocess of its own (build time and peak memory are that
process's), then searches in another (load + query analysis + top-100, 2 threads). Accuracy is
computed here, identically for all, from the ranked passage ids each system returns."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import ROOT, WORK, markdown_table, passages_for, question_sets, require_shared, write_results
from odqa.evaluation import score_rankings

KS = (1, 5, 20, 100)
THREADS = 2

SYSTEMS = {
    "odqa (default)": {"kind": "odqa", "config": {}},
    # Ablation: Mecab morphemes alone, no document context — what the analyzer and fusion add.
    "odqa, Mecab only, no document context": {
        "kind": "odqa",
        "config": {"analyzer": {"name": "mecab"}, "scoring": {"document_weight": 0.0}},
    },
    # The kernel alone: odqa's default tokens and BM25, no document context — the row to set
    # against "bm25s (numba) on odqa's tokens", which scores the very same tokens.
    "odqa kernel, default tokens, no document context": {
        "kind": "odqa",
        "config": {"scoring": {"document_weight": 0.0}},
    },
    "Lucene (Pyserini) CJK bigrams": {"kind": "pyserini", "tokens": "cjk"},
    "Lucene (Pyserini) Mecab morphemes": {"kind": "pyserini", "tokens": "mecab"},
    "Lucene (Pyserini) odqa analyzer tokens": {"kind": "pyserini", "tokens": "odqa"},
    # bm25s as its documentation recommends for speed: the numba backend, the index loaded into memory.
    "bm25s default tokenizer (numba, in memory)": {"kind": "bm25s", "backend": "numba", "tokens": "bm25s"},
    "bm25s (numba) on odqa's tokens": {"kind": "bm25s", "backend": "numba", "tokens": "odqa"},
    # What the competition's teams ran: Elasticsearch's nori analyzer with decompound_mode "mixed" —
    # Lucene 8's KoreanAnalyzer (Debian's liblucene8-java), queried as a `match` query.
    "Lucene + nori (decompound mixed)": {"kind": "nori"},
}
NORI_JARS = ("lucene-core-8", "lucene-analyzers-common-8", "lucene-analyzers-nori-8")
LUCENE_PARAMS = ((0.9, 0.4), (1.2, 0.75))


# --- workers (run in subprocesses) -----------------------------------------------------------


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _odqa_config(spec: dict):
    from odqa.config import IndexConfig

    data = IndexConfig().to_dict()
    data["analyzer"] = spec.get("config", {}).get("analyzer", data["analyzer"])
    data["scoring"] |= spec.get("config", {}).get("scoring", {})
    return IndexConfig.from_dict(data)


def _mecab_morphs_config():
    from odqa.analysis.base import MecabConfig

    # What "pretokenize with Mecab" means to most users: every morpheme's surface, as mecab.morphs() gives.
    return MecabConfig(exclude_pos=(), compound="none", lowercase=False)


def _pretokenize(texts: list[str], config, processes: int = THREADS) -> list[str]:
    from odqa.analysis.corpus import analyze_corpus

    analyzed = analyze_corpus(texts, config, processes=processes, quiet=True)
    vocab = analyzed.vocab
    return [
        " ".join(vocab[t] for t in analyzed.ids[analyzed.offsets[i] : analyzed.offsets[i + 1]])
        for i in range(len(texts))
    ]


def build(spec: dict, work: Path) -> dict:
    passages_file = WORK / "passages.jsonl"
    out = work / "index"
    start = time.perf_counter()
    if spec["kind"] == "odqa":
        from odqa.analysis.corpus import analyze_corpus
        from odqa.retrieval.sparse import SparseIndex
        from odqa.types import Passage, PassageSource

        # The same passages as every system, each knowing its article (for document context).
        cfg = _odqa_config(spec)
        passages = []
        for i, line in enumerate(passages_file.open(encoding="utf-8")):
            record = json.loads(line)
            passages.append(
                Passage(i, record["text"], record["title"], (PassageSource(record["doc_id"], 0, len(record["text"])),))
            )
        analysis_start = time.perf_counter()
        analyzed = analyze_corpus([p.text for p in passages], cfg.analyzer, processes=THREADS, quiet=True)
        analysis_s = time.perf_counter() - analysis_start
        index = SparseIndex.from_analyzed(analyzed, cfg.analyzer, cfg.scoring, passages)
        index.save(out)
        extra = {"vocab": index.manifest["counts"]["vocab"], "analysis_s": analysis_s}
    elif spec["kind"] == "nori":
        classes = _nori_classes(work)
        lines = work / "passages.txt"
        with open(lines, "w", encoding="utf-8") as f:
            for line in passages_file.open(encoding="utf-8"):
                f.write(" ".join(json.loads(line)["text"].split()) + "\n")
        subprocess.run(
            ["java", "-Xmx6g", "-cp", classes, "NoriBM25", "index", str(lines), str(out), str(THREADS)], check=True
        )
        lines.unlink()
        extra = {}
    elif spec["kind"] == "bm25s":
        import bm25s

        texts = [json.loads(line)["text"] for line in passages_file.open(encoding="utf-8")]
        if spec["tokens"] == "odqa":  # odqa's analyzer output and BM25 parameters: only the kernel differs
            scoring = _odqa_config({}).scoring
            tokens = [text.split() for text in _pretokenize(texts, _odqa_config({}).analyzer)]
            retriever = bm25s.BM25(k1=scoring.k1, b=scoring.b, method="lucene", backend=spec["backend"])
            vocab = len({t for row in tokens for t in row})
        else:
            tokens = bm25s.tokenize(texts, stopwords=None, show_progress=False)
            retriever = bm25s.BM25(backend=spec["backend"])
            vocab = len(tokens.vocab)
        retriever.index(tokens, show_progress=False)
        retriever.save(out)
        extra = {"vocab": vocab}
    else:
        docs = work / "docs"
        docs.mkdir()
        texts = [json.loads(line)["text"] for line in passages_file.open(encoding="utf-8")]
        args = []
        if spec["tokens"] != "cjk":
            config = _mecab_morphs_config() if spec["tokens"] == "mecab" else _odqa_config({}).analyzer
            texts = _pretokenize(texts, config)
            args = ["--pretokenized"]
        else:
            args = ["--language", "ko"]
        with open(docs / "docs.jsonl", "w", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(json.dumps({"id": str(i), "contents": text}, ensure_ascii=False) + "\n")
        del texts
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pyserini.index.lucene",
                "--collection",
                "JsonCollection",
                "--input",
                str(docs),
                "--index",
                str(out),
                "--generator",
                "DefaultLuceneDocumentGenerator",
                "--threads",
                str(THREADS),
                *args,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(docs)
        extra = {}
    return {"build_s": time.perf_counter() - start, "build_peak_rss_mb": _peak_rss_mb(), **extra}


def search(spec: dict, work: Path, queries: list[str], params: list) -> dict:
    """Load the index (timed apart), warm up on a few queries, then time the whole batch:
    query analysis + top-100 retrieval on THREADS threads."""
    out = work / "index"
    runs = []
    start = time.perf_counter()
    if spec["kind"] == "odqa":
        from odqa.retrieval.sparse import SparseIndex

        index = SparseIndex.load(out)
        load_s = time.perf_counter() - start
        index.search_arrays(queries[:20], 100, threads=THREADS)
        start = time.perf_counter()
        _, ids = index.search_arrays(queries, 100, threads=THREADS)
        runs.append({"params": None, "search_s": time.perf_counter() - start, "ids": ids.tolist(), "load_s": load_s})
    elif spec["kind"] == "nori":
        classes = _nori_classes(work)
        (work / "queries.txt").write_text("".join(" ".join(q.split()) + "\n" for q in queries), encoding="utf-8")
        for k1, b in params:
            found = subprocess.run(
                ["java", "-cp", classes, "NoriBM25", "search", str(out), str(work / "queries.txt"),
                 str(work / "ids.txt"), str(THREADS), "100", str(k1), str(b)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            lines = (work / "ids.txt").read_text(encoding="utf-8").splitlines()
            ids = [[int(i) for i in line.split()] for line in lines]
            runs.append({"params": [k1, b], "search_s": float(found.stdout.split()[-1]), "ids": ids, "load_s": 0.0})
    elif spec["kind"] == "bm25s":
        import bm25s

        retriever = bm25s.BM25.load(out, mmap=False)
        retriever.backend = spec["backend"]
        load_s = time.perf_counter() - start
        if spec["tokens"] == "odqa":
            analyzer = _odqa_config({}).analyzer.build(query=True)

        def run(batch):
            if spec["tokens"] == "odqa":
                tokens = [analyzer(q) or ["∅"] for q in batch]
            else:
                tokens = bm25s.tokenize(batch, stopwords=None, show_progress=False, return_ids=False)
            return retriever.retrieve(
                tokens, k=100, n_threads=THREADS, show_progress=False, backend_selection=spec["backend"]
            )[0]

        run(queries[:20])
        start = time.perf_counter()
        ids = run(queries)
        runs.append({"params": None, "search_s": time.perf_counter() - start, "ids": ids.tolist(), "load_s": load_s})
    else:
        from pyserini.search.lucene import LuceneSearcher

        searcher = LuceneSearcher(str(out))
        if spec["tokens"] == "cjk":
            searcher.set_language("ko")
        else:
            from pyserini.analysis import JWhiteSpaceAnalyzer

            searcher.set_analyzer(JWhiteSpaceAnalyzer())
        load_s = time.perf_counter() - start

        def run(batch):
            texts = batch
            if spec["tokens"] != "cjk":
                config = _mecab_morphs_config() if spec["tokens"] == "mecab" else _odqa_config({}).analyzer
                analyzer = config.build()
                texts = [" ".join(analyzer(q)) or "∅" for q in batch]
            qids = [str(i) for i in range(len(batch))]
            results = searcher.batch_search(texts, qids, k=100, threads=THREADS)
            return [[int(h.docid) for h in results[q]] for q in qids]

        for k1, b in params:
            searcher.set_bm25(k1, b)
            run(queries[:20])
            start = time.perf_counter()
            ids = run(queries)
            runs.append({"params": [k1, b], "search_s": time.perf_counter() - start, "ids": ids, "load_s": load_s})
    return {"runs": runs, "search_peak_rss_mb": _peak_rss_mb()}


def _nori_classes(work: Path) -> str:
    """NoriBM25.java compiled against Debian's Lucene 8 jars: the class path to run it with."""
    import glob

    jars = [sorted(glob.glob(f"/usr/share/java/{name}*.jar")) for name in NORI_JARS]
    if not all(jars) or shutil.which("javac") is None:
        sys.exit("the nori peer needs Java and Lucene 8: apt-get install default-jdk-headless liblucene8-java")
    classes = work / "classes"
    if not (classes / "NoriBM25.class").exists():
        classes.mkdir(parents=True, exist_ok=True)
        source = Path(__file__).parent / "peers" / "NoriBM25.java"
        subprocess.run(["javac", "-d", str(classes), "-cp", ":".join(j[-1] for j in jars), str(source)], check=True)
    return ":".join([*(j[-1] for j in jars), str(classes)])


def worker(args) -> None:
    spec = json.loads(args.spec)
    work = Path(args.work)
    if args.worker == "build":
        result = build(spec, work)
    else:
        queries = json.loads((work / "queries.json").read_text(encoding="utf-8"))
        result = search(spec, work, queries, LUCENE_PARAMS)
    (work / f"{args.worker}.json").write_text(json.dumps(result), encoding="utf-8")


# --- driver ------------------------------------------------------------------------------------


def run_worker(stage: str, spec: dict, work: Path) -> dict:
    env = {**os.environ, "ODQA_QUIET": "1", "PYTHONPATH": str(Path(__file__).parent)}
    subprocess.run(
        [sys.executable, __file__, "--worker", stage, "--spec", json.dumps(spec), "--work", str(work)],
        check=True,
        env=env,
    )
    return json.loads((work / f"{stage}.json").read_text(encoding="utf-8"))


def score(ids: list[list[int]], sets: dict, offsets: dict, passages: list) -> dict:
    """The same metric code as `odqa eval-retrieval`, on each system's ranked passage ids."""
    metrics = {}
    for name, (questions, qrels) in sets.items():
        start, end = offsets[name]
        rows = np.asarray([row + [-1] * (100 - len(row)) for row in ids[start:end]], dtype=np.int64)
        result = score_rankings(rows, questions, passages, KS, qrels)
        metrics[name] = result["has_answer"] if qrels is None else result["qrels"]
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["build", "search"])
    parser.add_argument("--spec")
    parser.add_argument("--work")
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS))
    parser.add_argument("--korquad-n", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="first 5,000 documents only: checks the script runs")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    require_shared()
    from odqa.config import IndexConfig

    corpus_config = IndexConfig().corpus
    if args.quick:
        import itertools

        from common import KOWIKI
        from odqa.corpus import build_passages
        from odqa.io import read_documents

        passages, stats = build_passages(itertools.islice(read_documents(KOWIKI), 5000), corpus_config)
    else:
        passages, stats = passages_for(corpus_config)
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "passages.jsonl", "w", encoding="utf-8") as f:
        for i, p in enumerate(passages):
            f.write(
                json.dumps({"id": str(i), "doc_id": p.doc_id, "title": p.title, "text": p.text}, ensure_ascii=False)
                + "\n"
            )
    sets = question_sets("eval", korquad_n=args.korquad_n)
    queries, offsets = [], {}
    for name, (questions, _) in sets.items():
        offsets[name] = (len(queries), len(queries) + len(questions))
        queries.extend(q.text for q in questions)
    results = {
        "passages": {k: v for k, v in stats.items()},
        "corpus_config": corpus_config.model_dump(),
        "queries": len(queries),
        "korquad_questions": len(sets["korquad_dev"][0]),
        "threads": THREADS,
        "cpu_count": os.cpu_count(),
        "systems": [],
    }
    print(f"{len(passages):,} passages; {len(queries):,} queries", flush=True)
    for name in args.systems:
        spec = SYSTEMS[name]
        work = WORK / "systems" / name.replace(" ", "_").replace("(", "").replace(")", "")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "queries.json").write_text(json.dumps(queries, ensure_ascii=False), encoding="utf-8")
        built = run_worker("build", spec, work)
        searched = run_worker("search", spec, work)
        for run in searched["runs"]:
            label = name if run["params"] is None else f"{name}, k1 {run['params'][0]} b {run['params'][1]}"
            row = {
                "system": label,
                **built,
                "load_s": run["load_s"],
                "search_s": run["search_s"],
                "queries_per_s": len(queries) / run["search_s"],
                "search_peak_rss_mb": searched["search_peak_rss_mb"],
                "metrics": score(run["ids"], sets, offsets, passages),
            }
            results["systems"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "metrics"}), json.dumps(row["metrics"]), flush=True)
        shutil.rmtree(work / "index", ignore_errors=True)
    name = "retrieval_ko" + ("_quick" if args.quick else "")
    previous = ROOT / "benchmarks" / "results" / f"{name}.json"
    if set(args.systems) != set(SYSTEMS) and previous.exists():
        # A partial rerun keeps the other systems' rows from the last run on the same passages.
        old = json.loads(previous.read_text(encoding="utf-8"))
        if old.get("passages", {}).get("fingerprint") == stats["fingerprint"]:
            rerun = {r["system"] for r in results["systems"]}
            kept = [
                r
                for r in old["systems"]
                if r["system"] not in rerun
                and r["system"].split(",")[0] not in args.systems
                and any(r["system"].startswith(name) for name in SYSTEMS)  # a system since removed goes
            ]
            results["systems"] = sorted(kept + results["systems"], key=lambda r: _order(r["system"]))
    write_results(name, results, table(results))


def _order(label: str) -> int:
    return next((i for i, name in enumerate(SYSTEMS) if label.startswith(name)), len(SYSTEMS))


def table(results: dict) -> str:
    header = [
        "system",
        "competition val top-1 / 5 / 20 / 100",
        f"KorQuAD dev ({results['korquad_questions']:,} sample) top-1 / 5 / 20 / 100",
        "Mr. TyDi dev R@100 / MRR@100",
        "queries/s",
        "build s",
        "build peak MB",
        "search peak MB",
    ]
    rows = []
    for r in results["systems"]:
        m = r["metrics"]
        fmt = lambda d: " / ".join(f"{100 * d[f'top{k}']:.1f}" for k in KS)
        rows.append(
            [
                r["system"],
                fmt(m["competition_validation"]),
                fmt(m["korquad_dev"]),
                f"{100 * m['mrtydi_dev']['recall@100']:.1f} / {100 * m['mrtydi_dev']['mrr@100']:.1f}",
                f"{r['queries_per_s']:,.0f}",
                f"{r['build_s']:.0f}",
                f"{r['build_peak_rss_mb']:,.0f}",
                f"{r['search_peak_rss_mb']:,.0f}",
            ]
        )
    return markdown_table(header, rows)


if __name__ == "__main__":
    main()
