# mcviz: every target creates the environment from the project's own files first.
#   make report   set up, then run the default comparison report   (README command 1)
#   make test     set up, then run the whole test suite             (README command 2)
#   make lab      set up, then open JupyterLab on lessons/
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.mcviz-installed
# Extra pip options, e.g. PIP_TORCH="--index-url <PyTorch's CPU wheel index>" on machines where
# torch==2.13.0 would otherwise resolve to a CUDA build.
PIP_TORCH ?=

.PHONY: setup report test test-fast nbval examples lab bench lint book clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "mcviz needs Python >= 3.10, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_TORCH) torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt  # includes the extras mcviz[transformers] needs
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "import mcviz, torch; print('mcviz', mcviz.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

report: setup
	$(BIN)/mcviz report compare

# Both cores (or all of them: -n auto); each notebook's cells stay on one worker (loadgroup), and
# the longest tests start first (conftest.py orders them; --no-loadscope-reorder keeps that order).
XDIST = -n auto --dist loadgroup --no-loadscope-reorder

test: setup
	$(BIN)/python -m pytest $(XDIST) tests reports/examples --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg

nbval: setup
	$(BIN)/python -m pytest $(XDIST) reports/examples --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg

# Regenerate the committed example reports (then commit them; nbval re-executes them in make test).
examples: setup
	rm -rf reports/examples/compare reports/examples/pruning reports/examples/quantization reports/examples/tradeoff reports/examples/deep_compression reports/examples/language_model
	$(BIN)/mcviz report compare -q -p fraction 0.3 -o reports/examples/compare
	$(BIN)/mcviz report pruning -q -o reports/examples/pruning
	$(BIN)/mcviz report quantization -q -o reports/examples/quantization
	$(BIN)/mcviz report tradeoff -q -o reports/examples/tradeoff
	$(BIN)/mcviz report deep_compression -q -o reports/examples/deep_compression
	$(BIN)/mcviz report language_model -q -o reports/examples/language_model
	rm -rf reports/examples/sweep
	# the sweep example keeps its results files and summary report, not its run folders (5 MB each);
	# lenet5 fails on 8x8 digits on purpose (exit code 1): the summary shows how failures are listed
	$(BIN)/mcviz sweep compare -q --grid model=mlp,seed_cnn,lenet5 --grid seed=0,1,2 -p dataset digits \
		-p epochs 5 -p latency false -p methods '[fp16, "weights:bits=4", "magnitude:sparsity=0.8"]' \
		--workers 2 -o reports/examples/sweep || test $$? -eq 1
	rm -rf reports/examples/sweep/runs reports/examples/sweep/.locks

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" tests

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=lessons

# The lesson book: every lesson executed (cached in $$MCVIZ_CACHE_DIR/book until the lesson or
# mcviz changes) and written as an offline HTML site: book/index.html.
book: setup
	$(BIN)/python -m mcviz.book --lessons lessons --out book

bench: setup
	$(BIN)/python benchmarks/foundation.py

lint: setup
	$(BIN)/ruff check mcviz tests benchmarks

clean-venv:
	rm -rf $(VENV)
