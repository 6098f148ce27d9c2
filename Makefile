# The two commands of README.md: `make run` (the service on embedded defaults) and `make test`
# (the whole suite). Both create the virtual environment and install pinned dependencies first.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# pytest processes of `make test` (pytest-xdist; a test module stays in one process).
PYTEST_WORKERS ?= 2

.PHONY: run test check browser stack-tools lint format bench-help clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/base.txt -r requirements/dev.txt
	touch $@

## run: migrate, prepare the demo and start web + Celery worker + beat (Ctrl-C stops all).
## The demo accounts sign in with their passwords alone (TWO_FACTOR_DEBUG_WAIVER, which the
## settings accept with DEBUG=1 only); `make run TWO_FACTOR_DEBUG_WAIVER=0` tries two-factor.
run: export DEBUG ?= 1
run: export TWO_FACTOR_DEBUG_WAIVER ?= 1
run: $(VENV)/.base-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap_demo --url http://127.0.0.1:$(PORT)
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) $(BIN)/honcho -f Procfile.dev start

## test: lint, type-check, Django checks, migrations check, the API schema (generated and
## validated, no warnings), then the whole pytest suite
## (the browser tests drive the Chromium of `make browser`; screenshots in test-artifacts/)
test: export DEBUG ?= 1
test: check browser stack-tools
	CHROMIUM_PATH="$${CHROMIUM_PATH:-$$(command -v chromium)}" \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

AXE_DIR := tests/browser

## browser: Debian's Chromium for the browser tests, installed with apt-get when missing
## (as root, or through password-less sudo); CHROMIUM_PATH names another build instead.
## Also axe-core (the accessibility checks), pinned in tests/browser/package-lock.json and
## installed with `npm ci` when it is missing or older than the lock file
browser:
	@if [ ! -f $(AXE_DIR)/node_modules/axe-core/axe.min.js ] \
		|| [ $(AXE_DIR)/package-lock.json -nt $(AXE_DIR)/node_modules/.package-lock.json ]; then \
		command -v npm >/dev/null 2>&1 || { echo "The browser tests need axe-core from npm:" \
			"install Node.js and npm ('apt-get install nodejs npm')" >&2; exit 1; }; \
		echo "axe-core is missing or out of date: npm ci --prefix $(AXE_DIR)"; \
		npm ci --prefix $(AXE_DIR) --no-audit --no-fund; \
	fi
	@if [ -n "$${CHROMIUM_PATH:-}" ]; then \
		[ -x "$$CHROMIUM_PATH" ] || { echo "CHROMIUM_PATH=$$CHROMIUM_PATH is not an executable" >&2; exit 1; }; \
	elif command -v chromium >/dev/null 2>&1; then \
		:; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "The browser tests need Chromium: install it, or set CHROMIUM_PATH to its binary" >&2; \
		exit 1; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Chromium is missing: installing Debian's package"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	elif sudo -n true 2>/dev/null; then \
		echo "Chromium is missing: installing Debian's package"; \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "The browser tests need Chromium: run 'sudo apt-get install chromium'" \
			"(or set CHROMIUM_PATH to a Chromium binary)" >&2; \
		exit 1; \
	fi

## stack-tools: the PostgreSQL server programs and redis-server, which the end-to-end test
## (tests/browser/test_stack_end_to_end.py) runs privately on free ports; installed with
## apt-get when missing (as root or through password-less sudo).
stack-tools:
	@if { command -v pg_config >/dev/null 2>&1 && [ -x "$$(pg_config --bindir)/initdb" ]; } \
		|| ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	else missing=" postgresql"; fi; \
	command -v redis-server >/dev/null 2>&1 || missing="$${missing:-} redis-server"; \
	if [ -z "$${missing:-}" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing for the end-to-end test:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "Installing for the end-to-end test:$$missing"; \
		sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
		echo "The end-to-end test needs:$$missing (e.g. 'sudo apt-get install$$missing')" >&2; \
		exit 1; \
	fi

check: export DEBUG ?= 1
check: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles test-artifacts
