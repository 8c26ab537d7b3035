# polyglot-asr: the commands a person types. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORPUS ?= corpora/cv-synth
DEMO_CORPUS ?= corpora/cv-synth-demo
JOBS   ?= 2
DATA   ?= data

.PHONY: install demo test test-all lint bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package (quick when nothing changed)

demo: $(STAMP)  ## the transfer experiment in miniature: synthetic corpus, 5 runs, report (~15 min on 2 cores)
	$(PY) scripts/demo.py --corpus $(DEMO_CORPUS) --out exp/transfer_demo --jobs $(JOBS)

test: $(STAMP)  ## fast test suite (minutes)
	$(PY) -m pytest -q

test-all: $(STAMP)  ## every test, the slow ones included
	$(PY) -m pytest -q -m ""

bench: $(STAMP)  ## benchmarks: speed, memory, utilisation -> bench/results.{json,md} (tens of minutes on 2 cores)
	$(PY) scripts/bench.py

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check asr data_prep scripts tests

clean:  ## remove the venv and generated data
	rm -rf $(VENV) $(CORPUS) $(DEMO_CORPUS) $(DATA) exp
