# Every target does its own setup: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint serve bench package clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# chalice needs pip<26.3
	$(BIN)/python -m pip install -q "pip<26.3"
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spotify-etl demo $(ARGS)

test: $(STAMP)
	# The dashboard's browser tests need Chromium: installed here when missing (CI runs as root
	# on Debian); without root, they are skipped with that reason, except in CI.
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| { [ -z "$$CI" ] && echo "no chromium: the browser tests will be skipped"; }
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/chalice local --stage local --no-autoreload

bench: $(STAMP)
	$(BIN)/python -m benchmarks.transform_bench

# What `chalice deploy` would upload for STAGE (default dev), and the zip's size.
STAGE ?= dev
package: $(STAMP)
	rm -rf build/package
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(BIN)/chalice package --stage $(STAGE) --pkg-format terraform build/package
	@$(BIN)/python -c "import os; print(f\"deployment.zip: {os.path.getsize('build/package/deployment.zip') / 1e6:.2f} MB\")"

clean:
	rm -rf $(VENV) lake
