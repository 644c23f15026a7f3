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

.PHONY: demo korean-reader test test-fast lint bench bench-reader bench-dense bench-relation install clean

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed-dev

test: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m pytest

# The fast tier for development (under 90 s on 2 cores): everything but the tests marked slow.
test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -m "not slow"

# The reader the demo uses: $(ODQA_READER) or READER=... (a folder or a hub id); without one, the
# Korean reader recipe below is trained here from multilingual-e5-small (installed from PyPI), and the
# same encoder re-scores BM25's top 20 passages before reading (benchmarks/e2e.py --rescore measures it).
READER ?= $(ODQA_READER)
ME5 ?= models/me5-small
ME5_KO ?= models/me5-small-ko
ME5_RE ?= models/me5-small-re
KO_READER ?= runs/ko-reader
KO_MINUTES ?= 35
DATA := $(ODQA_SHARED)/data
QUESTIONS := "대한민국의 수도는 어디인가?" "훈민정음을 창제한 조선의 왕은 누구인가?" "마오리언어와 영어, 뉴질랜드 수화를 공식 언어로 사용하는 나라는?" "한국 전쟁이 시작된 해는?" "태양계에서 가장 큰 행성은?"

demo: $(VENV)/.installed-dev
	@test -f "$(CORPUS)" || { echo "corpus not found: $(CORPUS) (set ODQA_SHARED or CORPUS)"; exit 2; }
	$(ODQA) index --corpus "$(CORPUS)" --out $(INDEX) --reuse
	@if [ -n "$(READER)" ]; then \
		$(ODQA) ask --index $(INDEX) --reader "$(READER)" -k 10 $(QUESTIONS); \
	else \
		$(MAKE) --no-print-directory korean-reader || exit $$?; \
		$(ODQA) ask --index $(INDEX) --reader $(KO_READER) --rescore $(ME5) -k 10 $(QUESTIONS); \
	fi

$(ME5)/config.json: | $(VENV)/.installed-dev
	$(ODQA) import-model multilingual-e5-small --out $(ME5) --overwrite

# The vocabulary the Korean reader needs (59k of 250k pieces): same tokens on Korean text, 2.7x fewer parameters.
$(ME5_KO)/config.json: $(ME5)/config.json
	$(ODQA) trim-vocab --model $(ME5) --out $(ME5_KO) --overwrite --max-documents 50000 \
		--corpus "$(DATA)/boostcamp_odqa/train.squad.json" --corpus "$(DATA)/tydiqa/korean_tydiqa_train.json" --corpus "$(CORPUS)"

# The vocabulary of KLUE-RE's training sentences and the Wikipedia sample, for relation extraction.
$(ME5_RE)/config.json: $(ME5)/config.json
	$(ODQA) trim-vocab --model $(ME5) --out $(ME5_RE) --overwrite --max-documents 50000 \
		--corpus "$(DATA)/klue_re/train.jsonl.gz" --corpus "$(CORPUS)"

# The Korean reader recipe (benchmarks/korean_model.py): multilingual-e5-small, trimmed, embeddings frozen,
# fine-tuned on the competition train + TyDi-ko, scored on the competition validation (gold passages) so the
# reader's record says how good it is (ask and the web page warn when it is weak). Each run trains for at most
# KO_MINUTES and keeps the best model so far in $(KO_READER); running it again (or `make demo` again)
# continues until the recipe is done, and then does nothing. On a CPU with bf16 instructions (AVX512-BF16 or
# AMX) it trains under bf16 autocast, 1.6x faster (results/korean_model.md), and goes 0.8 epoch instead of
# fp32's 0.6 (results/korean_model_bf16_recipe.json); benchmarks/first_hour.py times it. With a CUDA GPU it
# trains in the GPU's mixed precision (bf16, or fp16 where the GPU has no bf16) for 1.5 epochs, the longest
# recipe measured (results/korean_model_bf16_long.json; minutes on a GPU).
# each probe imports torch: asked once per make run (`:=`), only by the make that runs korean-reader (make demo calls one)
ifneq ($(filter korean-reader,$(MAKECMDGOALS)),)
ifndef KO_GPU
KO_GPU := $(shell $(PY) -c 'import torch; print("yes" if torch.cuda.is_available() else "no")' 2>/dev/null || echo no)
endif
ifndef KO_PRECISION
KO_PRECISION := $(if $(filter yes,$(KO_GPU)),auto,$(shell $(PY) -c 'from odqa.models.loading import cpu_computes_bf16; print("bf16" if cpu_computes_bf16() else "no")' 2>/dev/null || echo no))
endif
endif
KO_EPOCHS ?= $(if $(filter yes,$(KO_GPU)),1.5,$(if $(filter bf16,$(KO_PRECISION)),0.8,0.6))
# KO_FREEZE_LAYERS=N also fixes the lowest N encoder layers: faster steps, far lower accuracy at 6 (README: the Korean model)
KO_FREEZE_LAYERS ?= 0
korean-reader: $(ME5_KO)/config.json
	@if grep -qs '"finished": true' $(KO_READER)/trainer_state.json; then echo "$(KO_READER): the recipe has finished"; else \
		echo "training the Korean reader into $(KO_READER) ($(KO_EPOCHS) epoch, precision $(KO_PRECISION); at most $(KO_MINUTES) minutes this run; progress every minute)"; \
		$(ODQA) train-reader --model $(ME5_KO) --train "$(DATA)/boostcamp_odqa/train.squad.json" \
			--train "$(DATA)/tydiqa/korean_tydiqa_train.json" --eval "$(DATA)/boostcamp_odqa/validation.squad.json" \
			--out $(KO_READER) --metric korquad \
			--max-length 384 --stride 128 --batch-size 16 --lr 1e-4 --epochs $(KO_EPOCHS) --negative-windows 0.1 \
			--freeze-embeddings --head cnn --save-steps 50 --mixed-precision $(KO_PRECISION) --max-minutes $(KO_MINUTES) \
			--freeze-layers $(KO_FREEZE_LAYERS); \
	fi

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

# KLUE-RE on multilingual-e5-small (about 2 hours on 2 cores; each stage is kept in benchmarks/work/relation)
bench-relation: $(VENV)/.installed-bench $(ME5_RE)/config.json
	cd benchmarks && ../$(PY) relation.py --best-n 31670 --second entity

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) indexes benchmarks/work
