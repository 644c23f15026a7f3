"""Every benchmark figure in the README, produced from `benchmarks/results/` (Pyserini's 2CR idea):
a registry of figures (results file, where the number is, how it is printed: `readme_figures/`, a
module per area) and of tables (the tables the benchmarks render next to their JSON). The README
marks each one:

    <!--fig:ko.odqa.qps-->426<!--/fig-->                 a number from readme_figures.FIGURES
    <!--table:retrieval_ko.md#1-->                        the first table of results/retrieval_ko.md
    | … |
    <!--/table-->

    python benchmarks/figures.py           # rewrite the README's marked figures from the results
    python benchmarks/figures.py --check   # exit 1 naming every figure the README has wrong (CI runs it)

No number is typed into the README by hand: rerun a benchmark, then this script. Standard library
only, so the test tier runs it offline in milliseconds."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from readme_figures import FIGURES, RESULTS

README = RESULTS.parent.parent / "README.md"

FIG = re.compile(r"<!--fig:(?P<name>[\w.@\-]+)-->(?P<value>.*?)<!--/fig-->")
TABLE = re.compile(r"<!--table:(?P<file>[\w.\-]+)#(?P<n>\d+)-->\n(?P<body>.*?)<!--/table-->", re.S)


def render_figure(name: str, cache: dict) -> str:
    if name not in FIGURES:
        raise KeyError(
            f"README names figure {name!r}, which benchmarks/readme_figures/ does not define"
            " (a per-run figure is defined only where its results file holds the data)"
        )
    figure = FIGURES[name]
    if figure.results not in cache:
        cache[figure.results] = json.loads((RESULTS / figure.results).read_text(encoding="utf-8"))
    return figure.format.format(figure.value(cache[figure.results]))


def markdown_tables(text: str) -> list[str]:
    """The markdown tables of a results file, in order, each as its lines joined."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current) + "\n")
            current = []
    if current:
        tables.append("\n".join(current) + "\n")
    return tables


def render_table(file: str, n: int) -> str:
    tables = markdown_tables((RESULTS / file).read_text(encoding="utf-8"))
    if not 1 <= n <= len(tables):
        raise KeyError(f"README asks for table {n} of results/{file}, which has {len(tables)}")
    return tables[n - 1]


def render(readme: str) -> tuple[str, list[str]]:
    """The README with every marked figure and table as the results say, and what differed."""
    cache: dict = {}
    differences: list[str] = []

    def figure(match: re.Match) -> str:
        value = render_figure(match["name"], cache)
        if value != match["value"]:
            differences.append(f"{match['name']}: README {match['value']!r}, results {value!r}")
        return f"<!--fig:{match['name']}-->{value}<!--/fig-->"

    def table(match: re.Match) -> str:
        body = render_table(match["file"], int(match["n"]))
        if body != match["body"]:
            differences.append(f"table {match['file']}#{match['n']} differs from the results")
        return f"<!--table:{match['file']}#{match['n']}-->\n{body}<!--/table-->"

    updated = TABLE.sub(table, FIG.sub(figure, readme))
    for marker, pattern in (("<!--fig:", FIG), ("<!--table:", TABLE)):
        if readme.count(marker) != len(pattern.findall(readme)):
            differences.append(f"a {marker}…--> marker in the README is malformed (see the module docstring)")
    return updated, differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the README differs")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    text = args.readme.read_text(encoding="utf-8")
    updated, differences = render(text)
    for line in differences:
        print(line)
    if args.check:
        sys.exit(1 if differences else 0)
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
    print(f"{len(differences)} figures updated in {args.readme}")


if __name__ == "__main__":
    main()
