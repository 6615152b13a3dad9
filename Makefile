# seq2seq: `make help` lists the targets. Tests run with one OpenMP thread (a second
# thread under contention made small fits up to 45x slower); training uses all cores.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help install chromium train test test-fast bench bench-data report lengths table lint format clean

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv (if needed) and install the package with its dev tools

chromium:  ## install Debian's chromium for the server page's browser test (fails only with CI=true)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { command -v apt-get >/dev/null && (timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    timeout 900 apt-get install -y -qq --no-install-recommends chromium) ; } || \
	  if [ "$$CI" = true ]; then \
	    echo "chromium not installed, and CI=true: tests/integration/test_serve_page.py would fail" >&2; exit 1; \
	  else echo "chromium not installed: tests/integration/test_serve_page.py will skip (with CI=true it fails)"; fi

train: $(STAMP)  ## train the default model (LSTM + Bahdanau, Multi30k de->en); ARGS=overrides
	$(PY) train.py $(ARGS)

test: $(STAMP)  ## run every test (what CI runs)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(ARGS)

test-fast: $(STAMP)  ## skip the tests marked slow: every test that trains (about 4 min on 2 cores)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m "not slow" $(ARGS)

bench: $(STAMP)  ## speed benchmark, float32 then bf16 where the hardware has it (ARGS=--quick; ARGS="--precision P": P only)
	@if echo "$(ARGS)" | grep -q -- --precision; then $(PY) experiments/benchmark.py $(ARGS); \
	else $(PY) experiments/benchmark.py --precision 32-true $(ARGS) && \
	     $(PY) experiments/benchmark.py --precision auto --skip-float32 $(ARGS); fi

bench-data: $(STAMP)  ## data-layer benchmark: cold/warm set-up, memory of 2 ranks (ARGS="--pairs 1000000")
	$(PY) experiments/data_benchmark.py $(ARGS)

report: $(STAMP)  ## compare the runs under RUNS=DIR (a sweep dir): report.md and plots there
	$(PY) experiments/report.py $(RUNS)

lengths: $(STAMP)  ## BLEU by source length of RUNS="dir1 dir2" (run dirs): lengths.md + plot (ARGS="--beam --out DIR")
	$(PY) experiments/lengths.py $(RUNS) $(ARGS)

TABLE ?= experiments/runs
TABLE_MODELS ?= lstm_bahdanau,gru_bahdanau,lstm_luong_general,lstm_noattn
table: $(STAMP)  ## the results table: every TABLE_MODELS preset, de->en and en->de, beam-5 rescoring, report
	$(PY) train.py -m experiment=multi30k_table model=$(TABLE_MODELS) data.src_lang=de data.tgt_lang=en hydra.sweep.dir=$(TABLE)/table_de_en
	$(PY) train.py -m experiment=multi30k_table model=$(TABLE_MODELS) data.src_lang=en data.tgt_lang=de hydra.sweep.dir=$(TABLE)/table_en_de
	$(PY) experiments/rescore.py $(TABLE) --beam 5
	$(PY) experiments/report.py $(TABLE)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check seq2seq tests experiments notebooks train.py translate.py

format: $(STAMP)  ## ruff format + import sorting
	$(VENV)/bin/ruff check --fix --select I seq2seq tests experiments train.py translate.py

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .cache outputs multirun lightning_logs .pytest_cache .ruff_cache **/__pycache__
