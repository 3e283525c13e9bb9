# The three commands of the README: `make setup`, `make book`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The data folder (read-only, never committed). Default: shared/data beside the checkout.
export L2A_DATA_DIR ?= $(abspath ../shared/data)
NOTEBOOKS := data table1 mlm

.PHONY: setup test book notebooks results clean-book

setup:                       ## create the venv and install everything, weights included
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[weights,dev]'
	$(BIN)/python -m l2a_lib prepare-weights

test:                        ## the test suite (CPU only, deterministic)
	$(BIN)/python -m pytest

notebooks:                   ## execute every notebook from the result cache into book/
	@for nb in $(NOTEBOOKS); do \
	  echo "papermill notebooks/$$nb.ipynb -> book/$$nb.ipynb"; \
	  L2A_PROGRESS=0 $(BIN)/python -m papermill --log-level WARNING -k python3 \
	    notebooks/$$nb.ipynb book/.$$nb.ipynb.tmp --no-progress-bar \
	    && mv book/.$$nb.ipynb.tmp book/$$nb.ipynb || exit 1; \
	done

book: notebooks              ## build the HTML book offline from the committed results
	$(BIN)/jupyter-book build book --config _config.yml --path-output book
	@echo "book: book/_build/html/index.html"

results:                     ## compute every cpu-profile run not yet cached (hours; resumable)
	$(BIN)/python -m l2a_lib run --method student_ft teacher_ft --seeds 0 1 2
	$(BIN)/python -m l2a_lib run --method mlm --seeds 0 --table mlm
	$(BIN)/python -m l2a_lib run --method eda cbert tinybert bilstm_soft distilbert bert_pkd4 bert_pkd6 minilm --seeds 0 1 2

clean-book:
	rm -rf book/_build
