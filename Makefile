# Two commands on a fresh clone: `make book` (the main job) and `make test`. Each
# creates the environment first when it is missing (a stamp file), so nothing else
# needs to be typed before them; `make setup` does only that.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The data folder (read-only, never committed). Default: shared/data beside the checkout.
export L2A_DATA_DIR ?= $(abspath ../shared/data)
# `make book STRICT=1`: warnings (a missing glue key, a broken reference) are errors (CI)
STRICT ?=
CORES  ?= 2
SCRATCH ?= $(abspath .smoke)
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup test book pages results smoke clean-book check-book

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# compat: a plain path entry, so setuptools prints no "meta path finder" warning block
	$(BIN)/python -m pip install --quiet -e '.[weights,dev]' --config-settings editable_mode=compat
	$(BIN)/python -m l2a_lib prepare-weights
	touch $@

setup: $(STAMP)              ## create the venv and install everything, pretrained weights included

test: $(STAMP)               ## the test suite (CPU only, deterministic)
	$(BIN)/python -m pytest

pages: $(STAMP)              ## execute every page from the committed result cache into book/ (computes nothing)
	$(SNAKEMAKE) --cores $(CORES) --config profile=cpu cached_only=1 -- pages

book: $(STAMP)               ## build the HTML book offline from the committed results (computes nothing)
	$(SNAKEMAKE) --cores $(CORES) --config profile=cpu cached_only=1 $(if $(STRICT),strict=1) -- book \
	  || { for f in logs/pages/*.log; do p=$$(basename $$f .log); test -f book/$$p.ipynb \
	       || { echo "== page $$p failed; the end of $$f:"; tail -n 30 $$f; }; done; exit 1; }
	@echo "book: book/_build/html/index.html"

results: $(STAMP)            ## compute every cpu-profile run not yet cached, then the pages and the book (hours; resumable)
	$(SNAKEMAKE) --cores $(CORES) --config profile=cpu

smoke: $(STAMP)              ## every run and page on the smoke profile, into a scratch folder (CI)
	mkdir -p $(SCRATCH)
	$(SNAKEMAKE) --cores $(CORES) --directory $(SCRATCH) --config profile=smoke -- pages

check-book: $(STAMP)         ## open every built page in headless Chromium at 1280 px; list what a reader must not see
	$(BIN)/python -m l2a_lib check-book

clean-book:
	rm -rf book/_build
