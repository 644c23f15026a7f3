"""The parts of benchmarks/korean_model.py (the Korean reader from multilingual-e5-small): the check
against the package's engine, the clean-up's rules and the report. OUT is the benchmark's work folder."""

from common import WORK

OUT = WORK / "korean_model"
