# `make demo` and `make test` set everything up on a fresh machine: a virtual environment (which
# reuses a torch already installed system-wide, e.g. a CUDA build), torch 2.13.0 (CPU) only when
# none is importable, then gnnscale itself with its C++ extension.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.gnnscale-installed
SOURCES := setup.py setup.cfg pyproject.toml $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.h csrc/*/*.cu)

.PHONY: install demo test test-slow bench clean

install: $(STAMP)

$(PYTHON):
	python3 -m venv --system-site-packages $(VENV)

$(STAMP): $(PYTHON) $(SOURCES)
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install "setuptools>=64" wheel ninja pytest tensorboard
	$(PYTHON) -m pip install --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(PYTHON) -m gnnscale demo

test: install
	$(PYTHON) -m pytest -q -m "not slow" tests

# Long runs on real datasets (ogbl-ddi to its Hits@20 bar: about 40 minutes on 2 cores).
test-slow: install
	$(PYTHON) -m pytest -q -m slow tests

bench: install
	$(PYTHON) bench/graph_build.py
	$(PYTHON) bench/sampling.py
	$(PYTHON) bench/gather.py
	$(PYTHON) bench/synthetic_scale.py
	$(PYTHON) bench/e2e.py
	$(PYTHON) bench/embedding.py
	$(PYTHON) bench/largegt.py
	$(PYTHON) bench/temporal.py
	$(PYTHON) bench/pipeline.py

clean:
	rm -rf build gnnscale/_C*.so *.egg-info
