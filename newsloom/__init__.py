"""newsloom: news ingestion from feeds to Postgres through Celery workers."""

# The one place the version is written: the package metadata (pyproject.toml reads it
# from here), `newsloom --version`, the User-Agent and the image label come from it.
__version__ = "0.1.0"
