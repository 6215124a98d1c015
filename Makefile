# The course in two commands:  `make lab`  (set up + open JupyterLab)  and  `make test`  (set up + all tests).
# Both create .venv on first use and are fast the second time.
#
#   make lab                      set up, open JupyterLab on notebooks/
#   make test                     set up, run the whole test suite (smoke profile, no network needed)
#   make notebooks PROFILE=cpu    execute every notebook headless in a profile into executed/<profile>/
#   make bench                    speed benchmarks (ratios against a baseline run side by side)
#   make release                  instructors: solutions/ -> assignments/ (the student release)
#   make validate                 the solutions pass their tests, the release fails them
#   make collect A=a1_... ZIP=f   an LMS download -> submitted/<student>/<A>/
#   make autograde A=a1_...       grade submitted/*/<A> in parallel, sandboxed (JOBS=, GRADE_ARGS=)
#   make feedback A=a1_...        feedback/<student>/<A>/*.html, without the hidden tests
#   make grades                   grades.csv: one row per submission, one column per test cell
#   make clean                    remove the environment, caches and executed copies (not data/)
#
# Overridable: PYTHON (the interpreter that makes the venv), VENV, TORCH_SPEC (how torch is
# installed when the venv has none; the default is what this project's machines hold on disk --
# elsewhere `make lab TORCH_SPEC="torch torchvision"` takes your platform's build), PROFILE,
# COURSE_DATA (where datasets and caches live; default ./data), NB (chapters for `make notebooks`).

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PROFILE    ?= cpu
NB         ?=
PYTEST_ARGS ?=
# root (containers, cloud VMs) must say so to Jupyter; nobody else needs it
LAB_ARGS   ?= $(if $(filter 0,$(shell id -u)),--allow-root)

BIN := $(VENV)/bin
STAMP := $(VENV)/.course-installed

export COURSE_DATA ?= $(CURDIR)/data
# The project's own machines keep all of CIFAR-10 beside the checkout; users download it instead.
SHARED_CIFAR := $(wildcard $(CURDIR)/../shared/data/cifar10-jpeg.tar.gz)
ifneq ($(SHARED_CIFAR),)
export COURSE_CIFAR10 ?= $(abspath $(SHARED_CIFAR))
endif

.PHONY: lab test notebooks bench clean setup release validate collect autograde feedback grades

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course)" >/dev/null
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py --profile $(PROFILE) $(NB)

bench: $(STAMP)
	$(BIN)/python benchmarks/augment.py
	$(BIN)/python benchmarks/losses.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ssl_cifar.py simclr --profile cpu --epochs 1 --steps-per-epoch 20 --compare-baseline

GRADE := $(BIN)/python -m course_lib.grading
A ?=
JOBS ?=
GRADE_ARGS ?=

release: $(STAMP)
	$(GRADE) release

validate: $(STAMP)
	$(GRADE) validate solutions/*/*.ipynb
	! $(GRADE) validate assignments/*/*.ipynb >/dev/null && echo "the release fails its tests, as it should"

collect: $(STAMP)
	$(GRADE) collect $(A) $(ZIP)

autograde: $(STAMP)
	$(GRADE) autograde $(A) $(if $(JOBS),--jobs $(JOBS)) $(GRADE_ARGS)

feedback: $(STAMP)
	$(GRADE) feedback $(A)

grades: $(STAMP)
	$(GRADE) grades

clean:
	rm -rf $(VENV) executed .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
