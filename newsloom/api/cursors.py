"""Keyset page cursors: the last row's (published_at, id), bound to the query's filters,
signed and dated so a forged, altered or stale one is refused with a clear 400."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from newsloom.api.errors import ApiError

MAX_AGE_SECONDS = 24 * 3600


class Cursors:
    def __init__(self, secret: str) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="newsloom-cursor")

    def make(self, published_at: datetime, article_id: int, filters: dict[str, Any]) -> str:
        return self.serializer.dumps([published_at.isoformat(), article_id, _fingerprint(filters)])

    def read(self, token: str, filters: dict[str, Any]) -> tuple[datetime, int]:
        try:
            moment, article_id, fingerprint = self.serializer.loads(token, max_age=MAX_AGE_SECONDS)
        except SignatureExpired:
            raise ApiError(
                400, "cursor expired (cursors last 24 hours): start again from the first page"
            ) from None
        except (BadSignature, ValueError, TypeError):
            raise ApiError(
                400, "cursor is not valid: use the `next` link of a previous page as it is"
            ) from None
        if fingerprint != _fingerprint(filters):
            raise ApiError(400, "cursor belongs to a query with other filters")
        return datetime.fromisoformat(moment), int(article_id)


def _fingerprint(filters: dict[str, Any]) -> str:
    text = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
