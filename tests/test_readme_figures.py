"""The README's benchmark figures are the results files' (benchmarks/figures.py): CI fails on drift."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import figures


def test_readme_figures_match_the_results():
    readme = figures.README.read_text(encoding="utf-8")
    _, differences = figures.render(readme)
    assert differences == [], "run `python benchmarks/figures.py` after rerunning a benchmark:\n" + "\n".join(
        differences
    )
    assert readme.count("<!--fig:") >= 40 and readme.count("<!--table:") >= 10


def test_a_wrong_figure_or_table_is_caught_and_rewritten():
    text = "speed <!--fig:serve.errors-->7<!--/fig-->\n<!--table:ceiling.md#1-->\n| stale |\n<!--/table-->\n"
    updated, differences = figures.render(text)
    assert differences == ["serve.errors: README '7', results '0'", "table ceiling.md#1 differs from the results"]
    assert figures.render(updated)[1] == []
    assert figures.render("<!--fig:bad name-->1<!--/fig-->")[1]  # a malformed marker is not silently skipped


def test_the_pipelines_default_k_is_the_one_its_benchmark_chose():
    """odqa.pipeline.DEFAULT_K comes from benchmarks/default_k.py (the k that loses least EM against each
    measured pipeline's best): a rerun that chooses another k fails here until the default follows."""
    import json

    from odqa.pipeline import DEFAULT_K

    measured = json.loads((BENCHMARKS / "results" / "default_k.json").read_text(encoding="utf-8"))
    assert measured["least_worst_k"] == DEFAULT_K
