"""A loopback webhook consumer for tests and benchmarks: verifies each POST's signature as
a consumer would, records what arrived, and can fail, answer 410, redirect, or be slow."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, headers, body: bytes, tolerance: float = 300) -> bool:
    """What a consumer runs (the README shows the same lines)."""
    timestamp = headers["X-Newsloom-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return (
        hmac.compare_digest("sha256=" + expected.hexdigest(), headers["X-Newsloom-Signature"])
        and abs(time.time() - int(timestamp)) <= tolerance
    )


@dataclass
class Received:
    document: dict
    signed: bool
    at: float  # time.time() on receipt


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0  # answer 500 to this many POSTs first
    status: int = 200  # then answer this (410: unsubscribe)
    location: str | None = None  # sent with a 3xx status
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                time.sleep(receiver.delay)
                status = 500 if failing else receiver.status
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.received.append(
                            Received(
                                json.loads(body),
                                verify(receiver.secret, self.headers, body),
                                time.time(),
                            )
                        )
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def event_ids(self) -> list[int]:
        with self.lock:
            return [r.document["event"]["id"] for r in self.received]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
