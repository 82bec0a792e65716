# Two commands do all set-up on a fresh machine:
#   make demo   installs into .venv and upscales the bundled sample to out/big_buck_bunny_x2.mp4
#   make test   installs into .venv and runs the test suite (the fast part; .ci/run adds the slow tests)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned: a bare "torch" may pull a multi-GB CUDA build where a CPU one is at hand.
	$(PY) -m pip install -q "torch==2.13.0" || $(PY) -m pip install -q "torch<=2.14.1"
	$(PY) -m pip install -q -e ".[test,onnx,ray]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p out
	$(VENV)/bin/vsr-pipe samples/big_buck_bunny_640x360.mp4 --scale 2 -o out/big_buck_bunny_x2.mp4

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) bench/pipeline_overhead.py

lint: $(STAMP)
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff check vsr_pipe tests bench

clean:
	rm -rf $(VENV) out build *.egg-info
