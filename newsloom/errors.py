"""The one exception tree. Stages raise these; the retry policy and the CLI read them."""

from __future__ import annotations


class NewsloomError(Exception):
    """Base of every error newsloom raises on purpose."""

    exit_code = 2  # the command line's: bad settings, files or arguments


class SettingsError(NewsloomError):
    """A bad setting or feeds file: the program refuses to start."""


class Unreachable(NewsloomError):
    """A server (database, broker) does not answer: the command cannot start or go on."""

    exit_code = 3


class FeedsFileError(SettingsError):
    def __init__(self, path: str, line: int | None, reason: str):
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


class Permanent(NewsloomError):
    """Retrying cannot help: the URL ends now, skipped with `reason` (a short code)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Transient(NewsloomError):
    """May work later (timeouts, 5xx, 429, services down). `retry_after` in seconds, if asked."""

    def __init__(self, detail: str, retry_after: float | None = None):
        self.detail, self.retry_after = detail, retry_after
        super().__init__(detail)


class Deferred(NewsloomError):
    """Not a failure: the step may only run at `not_before` (epoch seconds), e.g. when its
    host's next request slot comes. It is sent again for then, and no attempt is counted."""

    def __init__(self, not_before: float):
        self.not_before = not_before
        super().__init__(f"deferred until {not_before:.3f}")


class Poisoned(NewsloomError):
    """A step was started too many times without finishing: its worker died each time
    (out of memory, a crash in a parser, a time limit). It goes to the dead-letter queue."""
