"""The API's one error type: a status and a message, answered as JSON (or an HTML page)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(message)
