"""Safe HTTP GETs, shared by the scheduler (feeds) and the fetch stage (pages).

Only http(s); the address is checked before every hop, so a redirect cannot reach
loopback, private, link-local or metadata addresses unless allowed; bytes are capped
before and after decompression, and the whole request has a deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from newsloom.errors import Permanent, Transient
from newsloom.settings import Settings

REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Response:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    body: bytes


def make_client(settings: Settings) -> httpx.Client:
    """One client per process: it pools connections. Redirects are followed by `get`."""
    return httpx.Client(
        headers={"User-Agent": settings.user_agent},
        timeout=httpx.Timeout(settings.fetch_timeout, connect=min(10.0, settings.fetch_timeout)),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


def check_url(url: str, allow_private: bool) -> None:
    """Refuse what must never be fetched; raises Permanent with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Permanent("bad_url", f"unsupported scheme in {url!r}")
    if not parts.hostname:
        raise Permanent("bad_url", f"no host in {url!r}")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except ValueError as exc:
        raise Permanent("bad_url", f"{url!r}: {exc}") from None
    except socket.gaierror as exc:
        raise Transient(f"DNS lookup failed for {parts.hostname}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise Permanent("blocked_address", f"{parts.hostname} resolves to {address}")


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds, from either of its two forms."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def get(client: httpx.Client, url: str, settings: Settings, *, max_bytes: int,
        headers: dict[str, str] | None = None) -> Response:
    """GET `url` following redirects safely. Returns 2xx and 304 responses.

    Raises Transient for 408/429/5xx and network errors, Permanent for other 4xx,
    too many redirects, or a body over `max_bytes`.
    """
    deadline = time.monotonic() + settings.fetch_timeout * 3
    for _ in range(settings.max_redirects + 1):
        check_url(url, settings.allow_private_networks)
        with client.stream("GET", url, headers=headers) as resp:
            location = resp.headers.get("location")
            if resp.status_code in REDIRECTS and location:
                url = urljoin(url, location)
                continue
            _raise_for_status(resp)
            body = _read_capped(resp, max_bytes, deadline)
            return Response(str(resp.url), resp.status_code, resp.headers, body)
    raise Permanent("too_many_redirects", f"more than {settings.max_redirects} redirects")


def _raise_for_status(resp: httpx.Response) -> None:
    status = resp.status_code
    if status in (408, 429) or status >= 500:
        raise Transient(f"HTTP {status}", retry_after_seconds(resp.headers.get("retry-after")))
    if status >= 400:
        raise Permanent(f"http_{status}")
    if status >= 300 and status != 304:
        raise Permanent(f"http_{status}", "redirect without a location")


def _read_capped(resp: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Permanent("too_large", f"Content-Length {declared} > {max_bytes}")
    chunks, size = [], 0
    # iter_bytes decompresses, so the cap also stops a small body that inflates hugely.
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise Permanent("too_large", f"more than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise Transient("read deadline exceeded")
        chunks.append(chunk)
    return b"".join(chunks)


@contextmanager
def open_stream(client: httpx.Client, url: str, settings: Settings, *,
                headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
    """GET `url` following redirects with the same checks and statuses as `get`, for a
    body too large to hold (an archive file): yields the response, its body unread."""
    for _ in range(settings.max_redirects + 1):
        check_url(url, settings.allow_private_networks)
        with client.stream("GET", url, headers=headers) as resp:
            location = resp.headers.get("location")
            if resp.status_code in REDIRECTS and location:
                url = urljoin(url, location)
                continue
            _raise_for_status(resp)
            yield resp
            return
    raise Permanent("too_many_redirects", f"more than {settings.max_redirects} redirects")
