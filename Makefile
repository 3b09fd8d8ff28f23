# Two commands for a fresh machine (Python 3.11, pip, Debian apt):
#   make demo   set everything up, then run the demo on built-in synthetic data
#   make test   set everything up, lint (ruff), then run the whole test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: Graphviz draws workflow graphs (demo and tests); the tests also drive
# Chromium (the report) and start a single-node Slurm cluster.
DEMO_APT := graphviz
TEST_APT := $(DEMO_APT) chromium chromium-driver slurmctld slurmd slurm-client munge

.PHONY: demo test venv apt clean

demo: venv
	@$(MAKE) --no-print-directory apt PACKAGES="$(DEMO_APT)"
	$(BIN)/anatcl-nipype demo demo_output

test: venv
	@$(MAKE) --no-print-directory apt PACKAGES="$(TEST_APT)"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		$(MAKE) --no-print-directory apt PACKAGES=python3-venv  # Debian splits venv out
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

apt:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) demo_output .pytest_cache
