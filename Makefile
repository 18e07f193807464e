# Playground: `make run` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run dev test install migrate setup-link browser bench finetune-deps clean-venv check audit

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/pip install --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

setup-link: migrate
	@$(BIN)/python manage.py setup_link --base http://$(HOST):$(PORT)

## Serve on the embedded default (SQLite, in-memory channel layer, the local engine).
run: migrate
	@$(BIN)/python manage.py setup_link --base http://$(HOST):$(PORT)
	@echo "  Serving on http://$(HOST):$(PORT)  (Ctrl+C to stop)"
	$(BIN)/daphne -b $(HOST) -p $(PORT) playground.asgi:application

## Like run, with auto-reload for development.
dev: migrate
	@$(BIN)/python manage.py setup_link --base http://$(HOST):$(PORT)
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## Debian's chromium for the browser tests (Playwright cannot download a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium (browser tests will be skipped)"; fi; }

## The whole suite, on whatever DATABASE_URL / REDIS_URL say (default: SQLite, in-memory).
test: install browser
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Side-by-side benchmarks: prints a table of ratios and writes bench/results/latest.json.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

## Optional: torch (CPU) + transformers + peft for local fine-tuning.
finetune-deps: install
	$(BIN)/pip install --disable-pip-version-check -r requirements-finetune.txt

check: install
	DEBUG=0 SECRET_KEY=check-deploy-$$(date +%s)-a-long-random-secret-key-for-the-check ALLOWED_HOSTS=playground.example.com \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

## Dependency audit: known vulnerabilities in the pinned requirements (PyPI's vulnerability
## data, so it needs the network: run by .ci/run, not by `make test`). Fails on a known
## vulnerability; packages the service has no record of are listed, not failed.
audit: install
	$(BIN)/python -m pip_audit --version >/dev/null 2>&1 || $(BIN)/pip install --disable-pip-version-check -q pip-audit==2.10.1
	$(BIN)/python -m pip_audit -r requirements.txt --vulnerability-service pypi --progress-spinner off --desc on

clean-venv:
	rm -rf $(VENV)
