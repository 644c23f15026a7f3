# `make demo` and `make test` set everything up themselves (virtual environment, dependencies).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ODQA := $(VENV)/bin/odqa
export ODQA_SHARED ?= $(abspath ../shared)
CORPUS ?= $(ODQA_SHARED)/data/kowiki/kowiki-sample.jsonl.xz
INDEX ?= indexes/kowiki-bm25
# Heavy extras that need torch pin it first, so pip takes the local CPU wheel, not CUDA builds.
TORCH ?= torch==2.13.0

.PHONY: demo test lint bench bench-reader install clean

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed-dev

test: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest

demo: $(VENV)/.installed-dev
	@test -f "$(CORPUS)" || { echo "corpus not found: $(CORPUS) (set ODQA_SHARED or CORPUS)"; exit 2; }
	$(ODQA) index --corpus "$(CORPUS)" --out $(INDEX) --reuse
	$(ODQA) search --index $(INDEX) -k 3 "대한민국의 수도는 어디인가?" "훈민정음을 창제한 조선의 왕은 누구인가?" "마오리언어와 영어, 뉴질랜드 수화를 공식 언어로 사용하는 나라는?"
	$(ODQA) eval-retrieval --index $(INDEX) --questions "$(ODQA_SHARED)/data/boostcamp_odqa/validation.squad.json" -k 1,5,10,20,100

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[bench]" pyserini==0.22.1 faiss-cpu
	touch $@

bench: $(VENV)/.installed-bench
	cd benchmarks && ../$(PY) retrieval_ko.py

# The reader's peers (transformers' QA pipeline, run_qa's Trainer) need transformers 4.x: own venv.
PEER_VENV := benchmarks/work/hf4-venv
$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q "$(TORCH)"
	$(PEER_VENV)/bin/pip install -q "transformers==4.57.6" "accelerate<2" numpy safetensors
	touch $@

bench-reader: $(VENV)/.installed-bench $(PEER_VENV)/.installed
	cd benchmarks && ../$(PY) reader.py

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) indexes benchmarks/work
