# The three commands of the README: `make setup`, `make book`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The data folder (read-only, never committed). Default: shared/data beside the checkout.
export L2A_DATA_DIR ?= $(abspath ../shared/data)
# `make book STRICT=1`: warnings (a missing glue key, a broken reference) are errors (CI)
STRICT ?=

SCRATCH ?= $(abspath .smoke)

.PHONY: setup test book notebooks results smoke clean-book

setup:                       ## create the venv and install everything, weights included
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[weights,dev]'
	$(BIN)/python -m l2a_lib prepare-weights

test:                        ## the test suite (CPU only, deterministic)
	$(BIN)/python -m pytest

notebooks:                   ## execute every notebook of the batch list from the result cache into book/
	$(BIN)/python -m l2a_lib batch --profile cpu --notebooks-only

book: notebooks              ## build the HTML book offline from the committed results
	$(BIN)/jupyter-book build book --config _config.yml --path-output book $(if $(STRICT),-W -n --keep-going)
	@echo "book: book/_build/html/index.html"

results:                     ## compute every cpu-profile run not yet cached, then the pages (hours; resumable)
	$(BIN)/python -m l2a_lib batch --profile cpu

smoke:                       ## the whole batch on the smoke profile into a scratch folder (CI)
	$(BIN)/python -m l2a_lib --results-dir $(SCRATCH)/results batch --profile smoke --execute-all \
	  --book-dir $(SCRATCH)/book --log-dir $(SCRATCH)/logs

clean-book:
	rm -rf book/_build
