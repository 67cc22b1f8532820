# Every target sets up .venv itself: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: venv demo test lint typecheck bench docs wheel-test pictures clean

venv: $(STAMP)

# torch first, pinned (overridable): a bare `torch` requirement would pull CUDA wheels.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The tutorial sweep (24 runs), trimmed to 10 epochs so it takes about a minute on 2 cores.
demo: $(STAMP)
	rm -rf demo
	$(VENV)/bin/mosaic init demo
	sed -i.bak 's/^epochs = .*/epochs = 10/' demo/config.ini && rm demo/config.ini.bak
	$(VENV)/bin/mosaic run demo/config.ini demo/results --no-progress
	$(VENV)/bin/mosaic plotloss demo/results demo/plotloss.pdf -id all -plot_size 3
	$(VENV)/bin/mosaic metaplot demo/results demo/metaplot.pdf dataset_OR test_loss
	$(VENV)/bin/mosaic report demo/results demo/report.html
	$(VENV)/bin/mosaic verdict demo/results
	@echo
	@echo "results store: demo/results   report: demo/report.html   curves: demo/plotloss.pdf"
	@echo "try: $(VENV)/bin/mosaic query demo/results \"SELECT run_id, test_loss FROM run_results ORDER BY test_loss LIMIT 5\""
	@echo "browse it: $(VENV)/bin/mosaic ui demo/results   (the live page the run's link showed, from the store)"

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# mypy over mosaic/ (settings in pyproject.toml: strict on mosaic.exec and mosaic.store)
typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_generate.py

# The documentation site (site/index.html), with the CLI, config-key and API references
# generated from the code at each build; --strict: any warning fails the build.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# Build the sdist and wheel, install the wheel into a fresh venv outside the checkout and run
# the tutorial from it (tools/wheel_test.py says what it checks).
wheel-test: $(STAMP)
	$(PY) tools/wheel_test.py

# The documentation's pictures (docs/img), redrawn from a fresh `make demo`;
# needs `apt-get install -y chromium poppler-utils`.
pictures: demo
	$(PY) tools/pictures.py

clean:
	rm -rf $(VENV) demo site dist
