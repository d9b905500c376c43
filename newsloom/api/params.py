"""Query parameters: each endpoint declares what it accepts, once. The same declarations
check requests (an unknown or malformed parameter is a 400 naming it) and describe the
endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from newsloom.api.errors import ApiError

MAX_PAGE = 200
MAX_QUERY_CHARS = 200
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # OpenAPI type: string, integer, boolean
    description: str
    parse: Callable[[str, str], Any]
    format: str | None = None


def parse_int(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        if not text.strip().isdigit() or len(text.strip()) > 19:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
        value = int(text)
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
        return value

    return parse


def parse_text(max_chars: int) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        text = text.strip()
        if not text:
            raise ApiError(400, f"{name} is empty")
        if len(text) > max_chars or "\x00" in text:
            raise ApiError(400, f"{name} must be at most {max_chars} characters of text")
        return text

    return parse


def parse_moment(name: str, text: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when no offset is given)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400,
            f"{name} must be an ISO 8601 date or date-time, like 2024-05-01 "
            f"or 2024-05-01T12:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false")


def parse_id_or_name(name: str, text: str) -> int | str:
    """A numeric id, or a name (feed or entity)."""
    text = parse_text(MAX_QUERY_CHARS)(name, text)
    if text.isdigit():
        return parse_int(1, BIGINT_MAX)(name, text)
    return text


def parse_fields(choices: tuple[str, ...]) -> Callable[[str, str], tuple[str, ...]]:
    def parse(name: str, text: str) -> tuple[str, ...]:
        fields = tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))
        unknown = [f for f in fields if f not in choices]
        if unknown or not fields:
            raise ApiError(
                400,
                f"{name}: unknown field(s) {', '.join(unknown) or '(none)'}; "
                f"choose from {', '.join(choices)}",
            )
        return fields

    return parse


def limit(default: int) -> Param:
    return Param(
        "limit",
        "integer",
        f"Rows per page, 1 to {MAX_PAGE} (default {default}).",
        parse_int(1, MAX_PAGE),
    )


SINCE = Param(
    "since",
    "string",
    "From this date or date-time (inclusive, UTC unless an offset is given).",
    parse_moment,
    "date-time",
)
UNTIL = Param(
    "until", "string", "Up to this date or date-time (exclusive).", parse_moment, "date-time"
)


def parse_query(
    params: tuple[Param, ...], query: Mapping[str, str], multi: Callable[[str], list[str]]
) -> dict[str, Any]:
    """The values of the declared parameters present in `query`; 400 for an unknown,
    repeated or malformed one."""
    known = {p.name: p for p in params}
    unknown = sorted(set(query) - set(known))
    if unknown:
        accepted = ", ".join(known) or "none"
        raise ApiError(400, f"unknown parameter(s): {', '.join(unknown)} (accepted: {accepted})")
    values: dict[str, Any] = {}
    for name, text in query.items():
        if len(multi(name)) > 1:
            raise ApiError(400, f"{name} is given more than once")
        values[name] = known[name].parse(name, text)
    return values


def check_range(since: datetime, until: datetime, widest: float) -> None:
    if since >= until:
        raise ApiError(400, "since must be before until")
    if until - since > timedelta(seconds=widest):
        raise ApiError(
            400, f"the range from since to until may span at most {widest / 86400:g} days"
        )
