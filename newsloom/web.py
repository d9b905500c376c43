"""Safe HTTP GETs, shared by the scheduler (feeds) and the fetch stage (pages).

Only http(s); the address is checked before every hop, so a redirect cannot reach
loopback, private, link-local or metadata addresses unless allowed; bytes are capped
before and after decompression, and the whole request has a deadline.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpcore
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
    """One client per process: it pools connections. Redirects are followed by `get`.
    Its connections go only to addresses checked when they are opened (CheckedBackend)."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    transport = httpx.HTTPTransport(limits=limits)
    # httpx passes no network backend to httpcore's pool: set the pool's own (httpcore
    # 1.x; a test fails should the attribute go).
    transport._pool._network_backend = CheckedBackend(settings.allow_private_networks)
    return httpx.Client(
        headers={"User-Agent": settings.user_agent},
        timeout=httpx.Timeout(settings.fetch_timeout, connect=min(10.0, settings.fetch_timeout)),
        follow_redirects=False,
        limits=limits,
        transport=transport,
    )


def is_http_url(url: str) -> bool:
    """http or https, with a host: the only URLs newsloom fetches (or keeps as links)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class CheckedBackend(httpcore.SyncBackend):
    """Opens a connection to an address that passed the check, resolved once: a DNS
    answer that changes between the check and the connection (rebinding) cannot lead it
    elsewhere. The URL's host name still goes in the Host header and in TLS (SNI and
    certificate checks), as httpcore takes both from the request, not from the socket."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"DNS lookup failed for {host}: {exc.strerror}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self.allow_private:
            for address in addresses:
                if not ipaddress.ip_address(address.split("%")[0]).is_global:
                    raise Permanent("blocked_address", f"{host} resolves to {address}")
        failure: Exception | None = None
        for address in addresses:  # as socket.create_connection would, but checked ones
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


def check_url(url: str, allow_private: bool) -> None:
    """Refuse what must never be fetched; raises Permanent with the reason."""
    if not is_http_url(url):
        raise Permanent("bad_url", f"not an http(s) URL with a host: {url!r}")
    parts = urlsplit(url)
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
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
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


def get(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    max_bytes: int,
    headers: dict[str, str] | None = None,
) -> Response:
    """GET `url` following redirects safely. Returns 2xx and 304 responses.

    Raises Transient for 408/429/5xx and network errors, Permanent for other 4xx,
    too many redirects, or a body over `max_bytes`.
    """
    deadline = time.monotonic() + settings.fetch_timeout * 3
    with open_stream(client, url, settings, headers=headers) as resp:
        body = _read_capped(resp, max_bytes, deadline)
        return Response(str(resp.url), resp.status_code, resp.headers, body)


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


def post(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
) -> int:
    """POST `body` to `url` (a webhook), after the same address check as fetching.

    Redirects are not followed (a consumer moves by editing its URL), so one cannot lead
    to a private address. Returns the 2xx status; raises Transient for 408/429/5xx and
    network errors, Permanent for other statuses (410 as `http_410`).
    """
    check_url(url, settings.allow_private_networks)
    # Streamed and left unread: what a consumer answers is not ours to download.
    with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as response:
        if response.status_code in REDIRECTS:
            raise Permanent(
                f"http_{response.status_code}",
                f"redirect to {response.headers.get('location')!r} not followed: "
                "webhooks must answer 2xx",
            )
        _raise_for_status(response)
        return response.status_code


@contextmanager
def open_stream(
    client: httpx.Client, url: str, settings: Settings, *, headers: dict[str, str] | None = None
) -> Iterator[httpx.Response]:
    """GET `url` following redirects, each checked (only http(s), no private address
    unless allowed); yields the final response, its body unread (`get` reads it capped,
    an import streams an archive)."""
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
