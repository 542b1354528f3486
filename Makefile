# Two commands for a fresh machine:
#   make report   -- create .venv, install, run every section (PROFILE=smoke by default), build the book
#   make test     -- create .venv, install, run the unit tests, every notebook through papermill, the book with -W
PROFILE ?= smoke
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: report test unit setup bench clean-book lab publish check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

report: $(VENV)/.installed
	$(BIN)/fer-report --profile $(PROFILE)

# Every test in one pytest run on two pytest-xdist workers (each test has its own store, cache and report dir):
# tests/conftest.py hands the end-to-end ones out first, longest first (papermill on every notebook with smoke, the
# book with warnings as errors, the real-cpu book from results/real-cpu, the sweeps and the real Slurm), and the
# unit tests fill the other worker. `make unit` runs the unit tests alone. pytest exits 5 when no test ran, which
# fails the target like any error.
test: $(VENV)/.installed
	$(BIN)/ruff check fer_lib tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist load --durations=15

# JupyterLab with the project's kernel (the venv's python3, with the thread policy that shares the cores) and
# notebook progress bars. Notebooks under notebooks/ are saved without outputs (fer_lib.report.lab.strip_outputs).
# FER_PROFILE=real-cpu make lab: the notebooks open on that profile's parameters (their `profile` parameter reads it).
$(VENV)/.lab-installed: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev,lab]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" \
		--env OMP_WAIT_POLICY PASSIVE
	touch $@

lab: $(VENV)/.lab-installed
	$(BIN)/jupyter lab --ContentsManager.pre_save_hook=fer_lib.report.lab.strip_outputs notebooks/

# Build the book of PROFILE and commit it to the local gh-pages branch (GitHub Pages serves that branch);
# PUSH=1 also pushes the branch to origin.
publish: report
	$(BIN)/ghp-import --no-jekyll --force --message "Report ($(PROFILE) profile) built from $$(git rev-parse --short HEAD)" \
		$(if $(PUSH),--push,) book/_build/html
	@echo "gh-pages now holds the $(PROFILE) book; open book/_build/html/index.html locally or, once pushed, the repository's Pages site"

# Before a GPU run: every run of the profile built at its real size and stepped once on the CPU (no training)
check: $(VENV)/.installed
	$(BIN)/fer-report --profile $(PROFILE) --check

unit: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2 -m "not slow and not slurm"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/engine_throughput.py
	$(BIN)/python benchmarks/kind_efficiency.py --profile real-cpu --write-docs
	$(BIN)/python benchmarks/fer2013_loading.py
	$(BIN)/python benchmarks/distill_epoch.py
	$(BIN)/python benchmarks/report_build.py

clean-book:
	rm -rf book/_build book/sections book/_artifacts
