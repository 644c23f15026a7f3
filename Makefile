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

.PHONY: demo korean-reader test lint bench bench-reader bench-dense install clean

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

# The reader the demo uses: $(ODQA_READER) or READER=... (a folder or a hub id); without one, the
# small Korean reader recipe below is trained here (no pretrained Korean encoder can be downloaded).
READER ?= $(ODQA_READER)
KO_ENCODER ?= runs/ko-encoder
KO_READER ?= runs/ko-reader
DATA := $(ODQA_SHARED)/data
QUESTIONS := "대한민국의 수도는 어디인가?" "훈민정음을 창제한 조선의 왕은 누구인가?" "마오리언어와 영어, 뉴질랜드 수화를 공식 언어로 사용하는 나라는?" "한국 전쟁이 시작된 해는?" "태양계에서 가장 큰 행성은?"

demo: $(VENV)/.installed-dev
	@test -f "$(CORPUS)" || { echo "corpus not found: $(CORPUS) (set ODQA_SHARED or CORPUS)"; exit 2; }
	$(ODQA) index --corpus "$(CORPUS)" --out $(INDEX) --reuse
	@if [ -n "$(READER)" ]; then \
		$(ODQA) ask --index $(INDEX) --reader "$(READER)" -k 10 $(QUESTIONS); \
	else \
		$(MAKE) --no-print-directory korean-reader && \
		echo "WARNING: answering with the small Korean reader trained here in minutes on a CPU: expect many wrong answers. Set ODQA_READER to a real Korean reader (e.g. one fine-tuned from klue/roberta-large) for useful answers." && \
		$(ODQA) ask --index $(INDEX) --reader $(KO_READER) -k 10 $(QUESTIONS); \
	fi

# The reader recipe of benchmarks/reader.py, cut to ~25 minutes on 2 CPU cores: pretrain a 4-layer
# BERT on the Wikipedia sample, fine-tune it on the competition train + TyDi-ko. Skipped when done.
korean-reader: $(KO_READER)/odqa_reader.json

$(KO_READER)/odqa_reader.json: | $(VENV)/.installed-dev
	@echo "No reader given (ODQA_READER or READER=) and none can be downloaded on this machine:"
	@echo "training the small Korean reader recipe into $(KO_READER) (about 25 minutes on 2 CPU cores)."
	$(ODQA) pretrain-mlm --tokenizer "$(ODQA_SHARED)/tokenizers/klue-bert-base" --corpus "$(CORPUS)" --config small \
		--out $(KO_ENCODER) --max-steps 400 --max-documents 20000 --batch-size 32 --max-minutes 12
	$(ODQA) train-reader --model $(KO_ENCODER) --train "$(DATA)/boostcamp_odqa/train.squad.json" \
		--train "$(DATA)/tydiqa/korean_tydiqa_train.json" --out $(KO_READER) --epochs 1 --lr 2e-4 \
		--max-length 256 --stride 64 --max-minutes 12 --metric korquad

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

# Dense / hybrid / rerank: English (MiniLM, SQuAD dev paragraphs) then Korean (needs the encoder and
# reader of bench-reader and the kowiki index of `make demo`).
bench-dense: $(VENV)/.installed-bench
	cd benchmarks && ../$(PY) retrieval_dense.py && ../$(PY) retrieval_dense_ko.py

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) indexes benchmarks/work
