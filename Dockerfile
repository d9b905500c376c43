# The newsloom image: every app service of docker-compose.yml runs it with a different
# `newsloom` subcommand.
FROM python:3.11-slim

# newsloom.__version__; tests/test_version.py keeps the two equal.
ARG NEWSLOOM_VERSION=0.1.0
LABEL org.opencontainers.image.title="newsloom" \
      org.opencontainers.image.version=$NEWSLOOM_VERSION \
      org.opencontainers.image.licenses="MIT"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes reuse this layer.
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes -r requirements.lock

# spaCy's official English model is not on PyPI: install it from its release.
RUN pip install --no-deps \
    https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl
ENV NEWSLOOM_SPACY_MODEL=en_core_web_sm

# The app keeps the repository layout: it reads /app/schema.sql beside the package.
COPY pyproject.toml README.md schema.sql ./
COPY newsloom ./newsloom
COPY worker ./worker
COPY scheduler ./scheduler
# Bytecode compiled now: with PYTHONDONTWRITEBYTECODE (and /app not the user's) every start
# would compile the package from source again, a tenth of a command's start-up.
RUN pip install --no-deps -e . \
    && python -m compileall -q newsloom worker scheduler \
    && useradd --create-home --uid 10001 newsloom

USER newsloom
ENV NEWSLOOM_FEEDS=/app/feeds.toml
ENTRYPOINT ["newsloom"]
CMD ["up"]
