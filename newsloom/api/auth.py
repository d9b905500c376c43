"""API keys: `Authorization: Bearer KEY` for the API, a signed session cookie for the web
page. Keys are compared as SHA-256 digests in constant time, every key each time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from newsloom.errors import SettingsError
from newsloom.settings import Settings

# Paths anyone may read: liveness, the API's description, the login page itself.
PUBLIC_PATHS = ("/healthz", "/api/v1/openapi.json", "/api/v1/docs", "/login", "/favicon.ico")


class Keys:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self.digests = [_digest(k) for k in keys]

    @property
    def required(self) -> bool:
        return bool(self.digests)

    def digest_if_valid(self, key: str) -> str | None:
        """The key's digest (what the session keeps) if it is one of the keys."""
        return self.digest_known(_digest(key))

    def digest_known(self, digest: str) -> str | None:
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(known, digest)
        return digest if found else None

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, key = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.digest_if_valid(key.strip()) is not None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def session_secret(settings: Settings) -> str:
    """NEWSLOOM_SESSION_SECRET, else one derived from the keys (stable across restarts and
    replicas), else random: without keys nothing secret is kept in the session."""
    if settings.session_secret:
        return settings.session_secret
    if settings.api_keys:
        return hashlib.sha256(
            ("newsloom-session\n" + "\n".join(sorted(settings.api_keys))).encode()
        ).hexdigest()
    return secrets.token_hex(32)


def check_listen_address(settings: Settings) -> None:
    """Without keys, only loopback may reach the server."""
    if settings.api_keys or is_loopback(settings.http_host):
        return
    raise SettingsError(
        f"NEWSLOOM_HTTP_HOST={settings.http_host} is not a loopback address: "
        "set NEWSLOOM_API_KEYS (or NEWSLOOM_API_KEYS_FILE) to serve beyond "
        "this machine"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
