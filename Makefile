# The two set-up commands of the README:  `make demo`  and  `make test`.
# Each creates .venv and installs requirements.txt first (once).
# Development: `make lint` (ruff), `make test-fast` (the tests not marked slow), `make benchmark`,
# `make mutate` (mutation testing with mutmut, hours; never run by CI: docs/mutation.md).
# `make install-fid-test` adds torch and pytorch-fid (setup.cfg extra fid-test) to .venv, so that
# tests/test_fid_inception.py compares the FID network with pytorch-fid's instead of skipping.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FID_TEST_STAMP := $(VENV)/.installed-fid-test
DEMO_DIR ?= runs/demo
export XLA_FLAGS ?= --xla_force_host_platform_device_count=2
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install install-fid-test demo test test-fast lint benchmark mutate clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install-fid-test: $(FID_TEST_STAMP)

$(FID_TEST_STAMP): $(STAMP) setup.cfg
	$(PY) -m pip install -q -e ".[fid-test]"
	touch $(FID_TEST_STAMP)

# GEM on the embedded synthetic_faces data (rendered offline on first use) with the oracle
# scorer (a labelled SIMULATION): warm-up, scoring, alignment, GEM; a rerun resumes. Then a
# traversal grid from the final checkpoint.
# The demo's bald and beard latents do not pass the guard (README, "Latents that carry their
# attributes"): the demo goes on, records that it accepted them, and its labels mark them weak.
demo: $(STAMP)
	$(PY) -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:demo \
	    --workdir $(DEMO_DIR) --config.gem.accept_weak_alignment=True
	$(PY) -m experiments.sample --checkpoint $(DEMO_DIR)/gem --out $(DEMO_DIR)/traversals.png

test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the tests marked slow (end-to-end training, notebooks, subprocess runs).
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check gem_jax experiments tests
	$(PY) -m pytest -q tests/test_style.py tests/test_layering.py

# One JSON line per model: the β-VAE branch and GEM's train step on this machine.
benchmark: $(STAMP)
	$(PY) -m experiments.benchmark --model beta_vae --batch_size 64
	$(PY) -m experiments.benchmark --model gem --batch_size 32

# mutmut over relations, metrics, objectives and train, each with its own fast tests
# ([tool.gem_jax.mutate] in pyproject.toml); results and the table in build/mutate/.
# MUTATE="relations metrics" for some packages; MUTATE_ARGS="--only gem_jax/train/state.py".
MUTATE ?=
MUTATE_ARGS ?=
mutate: $(STAMP)
	$(PY) -m pip install -q mutmut==3.8.1
	$(PY) tests/mutate.py $(MUTATE) $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) runs build mutants *.egg-info
