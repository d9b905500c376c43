"""One request rate per host, shared by every worker on every machine (kept in Redis).

A URL first reserves a slot in its host's timetable, one `interval` after the previous
slot, and waits for it outside any worker (its message comes back when the slot is due).
When due, a last check against the host's latest request keeps the gap even when a
message runs late: a late one never pushes the next request closer than `interval`.
Times are Redis' own clock, so machines' clocks need not agree.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

# Times in microseconds of Redis' clock. Integers returned as strings: Lua numbers
# would be truncated by Redis' integer reply.

# KEYS[1]: the host's next free slot. ARGV: interval. Returns {slot, now}.
_RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', slot + interval),
           'PX', math.floor((slot + interval - now) / 1000) + 60000)
return {string.format('%d', slot), string.format('%d', now)}
"""

# KEYS[1]: the host's latest request. ARGV: interval.
# Returns 0 and records the request, or the microseconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
if now - last < interval then
  return string.format('%d', last + interval - now)
end
redis.call('SET', KEYS[1], string.format('%d', now), 'PX', math.floor(interval / 1000) + 60000)
return '0'
"""
# Requests leave a few milliseconds after their turn is granted, not all equally fast:
# the gap kept is this much wider so that the host never sees it narrower.
SEND_MARGIN = 0.005


@dataclass
class HostLimiter:
    client: redis.Redis
    prefix: str = ""

    def __post_init__(self) -> None:
        self._reserve = self.client.register_script(_RESERVE)
        self._acquire = self.client.register_script(_ACQUIRE)

    def reserve(self, host: str, interval: float) -> float:
        """Book the host's next slot; returns the seconds until it."""
        slot, now = self._reserve(
            keys=[f"{self.prefix}host:{host}:next"], args=[_micros(interval + SEND_MARGIN)]
        )
        return (int(slot) - int(now)) / 1e6

    def acquire(self, host: str, interval: float) -> float:
        """0 when a request to `host` may go now (and records it), else seconds to wait."""
        wait = self._acquire(
            keys=[f"{self.prefix}host:{host}:last"], args=[_micros(interval + SEND_MARGIN)]
        )
        return int(wait) / 1e6


def _micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


# KEYS[1]: a lease. ARGV[1]: its holder's token. Deletes it only if still that holder's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class FetchLeases:
    """At most one fetch of a URL at a time, across workers: a copy of its message
    delivered while another copy is being fetched (a redelivery, a resend by the
    reconciler or after a worker died) waits until that one is done."""

    client: redis.Redis
    prefix: str = ""

    def __post_init__(self) -> None:
        self._release = self.client.register_script(_RELEASE)

    @contextmanager
    def held(self, url_id: int, ttl: float) -> Iterator[bool]:
        """True inside when this caller holds the URL's lease (for at most `ttl` s)."""
        key, token = f"{self.prefix}fetching:{url_id}", secrets.token_hex(8)
        ours = bool(self.client.set(key, token, nx=True, px=_micros(ttl) // 1000))
        try:
            yield ours
        finally:
            if ours:
                self._release(keys=[key], args=[token])
