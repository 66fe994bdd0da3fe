# The two set-up commands: `make lab` (learn) and `make test` (run every test).
# Both create .venv and install everything on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned, so that nothing else pulls a different (CUDA) build.  On Linux
# PyPI's wheel includes CUDA libraries; for the CPU-only build point pip at PyTorch's
# CPU index (README, "Set up"):
#   make install TORCH_SPEC="torch==2.13.0+cpu" TORCH_PIP_ARGS="--index-url <PyTorch's CPU index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told it may.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True)
PYTEST_ARGS ?=

.PHONY: install system-packages lab instructor-lab test build check-build doctor clean-workspace

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1 && [ -z "$(TORCH_PIP_ARGS)" ]; then \
		echo "note: on Linux, PyPI's torch wheel brings several GB of CUDA libraries unless pip finds a"; \
		echo "      CPU build (a local wheel, or TORCH_PIP_ARGS with PyTorch's CPU index: see README)."; fi
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,gpu]"
	touch $@

install: $(VENV)/.installed

# The learner's JupyterLab (jupyter/learner: no instructor or exchange panels, Validate kept) and the
# instructor's, started in autograder/ (its nbgrader_config.py) serving the whole course (formgrader needs the
# course inside the server's root), with jupyter/instructor: formgrader for the written answers.
lab: install
	PATH="$(abspath $(BIN)):$$PATH" JUPYTER_CONFIG_PATH="$(abspath jupyter/learner)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

instructor-lab: install
	cd autograder && PATH="$(abspath $(BIN)):$$PATH" \
		JUPYTER_CONFIG_PATH="$(abspath jupyter/instructor)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
		$(abspath $(BIN))/jupyter lab --ServerApp.root_dir=.. $(ROOT_ARGS) $(LAB_ARGS)

# The system packages some tests need (bubblewrap, PostgreSQL, Chromium): installed with apt-get when this
# runs as root on Debian/Ubuntu; otherwise named once with how to install them, and those tests skip
# (under CI=true they are required).
system-packages: install
	$(BIN)/python -m transformer_course.system --install

test: install system-packages
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

build: install
	$(BIN)/transformer-course build

check-build: install
	$(BIN)/transformer-course build --check

doctor: install
	$(BIN)/transformer-course doctor

clean-workspace:
	rm -rf autograder/submitted autograder/autograded autograder/feedback autograder/graded autograder/gradebook.db autograder/grades.csv autograder/grading_errors.json
