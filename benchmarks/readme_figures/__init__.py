"""Every benchmark figure the README names, by area: each module maps a figure's name to where its
number is in a results file (`Figure`) and how it is printed; benchmarks/figures.py renders them."""

from readme_figures import readers, relations, retrieval, serving
from readme_figures.base import RESULTS, Figure

FIGURES: dict[str, Figure] = {}
for _module in (retrieval, readers, relations, serving):
    _twice = FIGURES.keys() & _module.FIGURES.keys()
    if _twice:
        raise KeyError(f"figures defined twice: {sorted(_twice)}")
    FIGURES |= _module.FIGURES

__all__ = ["FIGURES", "RESULTS", "Figure"]
