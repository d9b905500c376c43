"""Prometheus metrics. Each process counts into files of a shared directory
(prometheus_client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR, which must be set
before this module is imported: `newsloom up`, `scheduler` and `worker` set it, for
themselves and the processes they start, unless it is set already); the top process of a
machine or container serves them all on NEWSLOOM_METRICS_PORT, with the queue depths
read from the broker at scrape time. Without the variable (tests that run the steps in
process) the counters are the process's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server
from prometheus_client.core import GaugeMetricFamily

FETCH_SECONDS = Histogram(
    "newsloom_fetch_seconds",
    "Time to fetch an article page, redirects included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
URL_OUTCOMES = Counter(
    "newsloom_url_outcomes_total",
    "URLs that reached a final outcome, by outcome and reason.",
    ["outcome", "reason"],
)
ARTICLES_STORED = Counter("newsloom_articles_stored_total", "New articles stored.")
DUPLICATES = Counter("newsloom_duplicates_total", "URLs attached to an article already stored.")
DEAD_LETTERS = Counter(
    "newsloom_dead_letters_total", "Tasks that went to the dead-letter queue.", ["error"]
)
RETRIES = Counter("newsloom_retries_total", "Transient failures retried later.", ["task"])
FEED_POLLS = Counter(
    "newsloom_feed_polls_total", "Feed polls, by result (new, not_modified, error).", ["result"]
)
FEED_POLL_SECONDS = Histogram(
    "newsloom_feed_poll_seconds",
    "Time to poll one feed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
URLS_ENQUEUED = Counter("newsloom_urls_enqueued_total", "New article URLs recorded and enqueued.")
# Data out (issue 14).
WEBHOOK_POSTS = Counter(
    "newsloom_webhook_posts_total",
    "Webhook POSTs, by result (delivered, retrying, dead_lettered, disabled).",
    ["result"],
)
WEBHOOK_LATENCY = Histogram(
    "newsloom_webhook_latency_seconds",
    "From an event's transaction to its endpoint's 2xx.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)

RESTARTS = Counter(
    "newsloom_process_restarts_total",
    "Child processes of `up` / `worker` restarted after an unexpected exit.",
    ["process"],
)


class QueueDepths:
    """A collector reading each queue's waiting messages from the broker at scrape time."""

    def __init__(self, depths: Callable[[], dict[str, int]]):
        self.depths = depths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "newsloom_queue_depth", "Messages waiting in a queue.", labels=["queue"]
        )
        try:
            for name, depth in self.depths().items():
                family.add_metric([name], depth)
        except Exception:  # noqa: BLE001 - a scrape while the broker is away shows no depths
            pass
        yield family


def serve(port: int, queue_depths: Callable[[], dict[str, int]] | None = None) -> None:
    """Serve every process's metrics (and the queue depths) on `port` in a thread."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    if queue_depths is not None:
        registry.register(QueueDepths(queue_depths))
    start_http_server(port, registry=registry)
