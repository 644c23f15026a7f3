"""The parts of benchmarks/relation.py (KLUE-RE on multilingual-e5-small): training and scoring runs,
the label-shift analysis, prediction speed and the longer runs."""
