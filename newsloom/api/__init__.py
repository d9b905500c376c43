"""`newsloom serve`: the read API under /api/v1 and the web page at /."""

from newsloom.api.app import create_app

__all__ = ["create_app"]
