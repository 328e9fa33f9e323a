# Two commands set everything up: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
# DATASET=aliccp runs the embedded Ali-CCP sample instead of MovieLens.
DATASET ?= movielens
ifeq ($(DATASET),aliccp)
DATA_DIR ?= data/aliccp-sample
OUTPUT_DIR ?= output/aliccp-sample
else
DATA_DIR ?= data/sample
OUTPUT_DIR ?= output/sample
endif
ML1M_DIR ?= ../shared/data/ml-1m
BENCH_ENCODERS ?= bow,cnn,lstm,gru,attention
BENCH_SHAPES ?= ml-1m,first-1000-users,sparse-20pct,most-active-500,sample,catalog-10k
BENCH_PROFILES ?= before,default,tuned

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

# TFX 1.16 needs Python 3.10: take python3.10 from PATH if it runs (a pyenv
# shim may exist without a 3.10 selected), else the pyenv install.
PYTHON310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10.*/bin/python3.10; do \
  if "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then echo "$$p"; break; fi; done)

STAMP := $(VENV)/.installed

# Test processes: the three shared pipeline runs (tests/conftest.py) go to
# separate workers, the other tests fill in around them.
TEST_WORKERS ?= 2
PYTEST := $(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: venv run run-ml1m test test-fast bench bench-encoders bench-shapes bench-ondevice bench-two-stage bench-aliccp replay clean help

help:
	@echo "make run     - set up $(VENV) if needed and run the pipeline on the embedded sample (DATASET=aliccp: the Ali-CCP sample)"
	@echo "make test    - set up $(VENV) if needed and run the test suite (what CI runs)"
	@echo "make test-fast - the test suite without the pipeline runs (tests marked e2e)"
	@echo "make run-ml1m - run the pipeline on $(ML1M_DIR)"
	@echo "make bench   - bench-encoders, bench-shapes, bench-ondevice, then bench-two-stage"
	@echo "make bench-encoders - run the pipeline per context encoder ($(BENCH_ENCODERS)) on $(ML1M_DIR), write output/bench/bench.md"
	@echo "make bench-shapes - the defaults before and after adapting to the data, and tuned, on $(ML1M_DIR), cuts of it and the sample: output/bench-shapes/shapes.md"
	@echo "make bench-ondevice - the on-device Pareto table on $(ML1M_DIR): each model and quantization's bytes, invoke() against the reference workload, the TFLite file's HR@10: output/bench-ondevice/ondevice.md"
	@echo "make bench-two-stage - retrieval alone against retrieval + the next-item ranker on $(ML1M_DIR), as SavedModels (TFMA) and as TFLite files, with training times, sizes and latency ratios: output/bench-two-stage/two_stage.md"
	@echo "make replay  - $(ML1M_DIR) cut into $(REPLAY_SPANS) spans by time, the pipeline run once per span (warm-started, then from scratch): output/replay/warm/replay.md"
	@echo "make bench-aliccp - Ali-CCP ingestion and sessionization throughput and peak memory (1M, 10M impressions; 1, 2 workers)"

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "error: Python 3.10 not found (tried python3.10 on PATH and ~/.pyenv/versions/3.10.*/bin/python3.10)." >&2; \
	  echo "       TFX 1.16 needs Python 3.10; install it, e.g. 'pyenv install 3.10'." >&2; exit 1; fi
	@test -x $(VENV)/bin/python || { echo "creating $(VENV) with $(PYTHON310)"; $(PYTHON310) -m venv $(VENV); }
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip==24.0"
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
	@touch $@

run: $(STAMP)
	$(VENV)/bin/recsys run --dataset $(DATASET) --data-dir $(DATA_DIR) --output-dir $(OUTPUT_DIR)

run-ml1m: $(STAMP)
	$(VENV)/bin/recsys run --data-dir $(ML1M_DIR) --output-dir output/ml-1m

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not e2e"

bench: bench-encoders bench-shapes bench-ondevice bench-two-stage

bench-encoders: $(STAMP)
	@test -d $(ML1M_DIR) || { echo "error: $(ML1M_DIR) not found (set ML1M_DIR)" >&2; exit 1; }
	$(VENV)/bin/recsys bench --data-dir $(ML1M_DIR) --output-dir output/bench --encoders $(BENCH_ENCODERS)

bench-shapes: $(STAMP)
	@test -d $(ML1M_DIR) || { echo "error: $(ML1M_DIR) not found (set ML1M_DIR)" >&2; exit 1; }
	$(VENV)/bin/recsys bench-shapes --data-dir $(ML1M_DIR) --output-dir output/bench-shapes --data-sets $(BENCH_SHAPES) --profiles $(BENCH_PROFILES)

bench-ondevice: $(STAMP)
	@test -d $(ML1M_DIR) || { echo "error: $(ML1M_DIR) not found (set ML1M_DIR)" >&2; exit 1; }
	$(VENV)/bin/recsys bench --on-device --data-dir $(ML1M_DIR) --output-dir output/bench-ondevice

bench-two-stage: $(STAMP)
	@test -d $(ML1M_DIR) || { echo "error: $(ML1M_DIR) not found (set ML1M_DIR)" >&2; exit 1; }
	$(VENV)/bin/recsys bench --two-stage --data-dir $(ML1M_DIR) --output-dir output/bench-two-stage

# The ML-1M subset replayed as 8 spans arriving one by one, warm-started and
# from scratch (README, Continuous training); the retrieval stage only.
REPLAY_SPANS ?= 8
replay: $(STAMP)
	@test -d $(ML1M_DIR) || { echo "error: $(ML1M_DIR) not found (set ML1M_DIR)" >&2; exit 1; }
	$(VENV)/bin/recsys replay --data-dir $(ML1M_DIR) --spans $(REPLAY_SPANS) --output-dir output/replay/warm --set ranking.enabled=false
	$(VENV)/bin/recsys replay --data-dir $(ML1M_DIR) --spans $(REPLAY_SPANS) --output-dir output/replay/scratch --set ranking.enabled=false --set train.warm_start=false
	$(VENV)/bin/recsys replay-table output/replay/warm output/replay/scratch

bench-aliccp: $(STAMP)
	$(VENV)/bin/recsys bench-aliccp --output-dir output/bench-aliccp

clean:
	rm -rf output
